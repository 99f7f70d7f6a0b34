"""Repair of references damaged by JSON escaping in real datasets (the reference only).

A reference is trusted data; its damage is mechanical: `"\\frac"` written as `"\frac"` in
JSON decodes to a form feed + `rac`, `"\text"` to a tab + `ext`, `"\neq"` to a newline +
`eq`. Doubled backslashes before a command, `$,$` between parts, an unmatched closing
brace at the end, and a leading phrase (`The solution set is`, `the line`) are undone too.
The response is never repaired: it is not trusted.
"""

from __future__ import annotations

import re

from hero_service.verify.latex import match_braces

__all__ = ["repair_reference"]

# control character -> the letter its escape ate, and the commands that letter starts
_ESCAPES = {
    "\x0c": ("f", None),  # \f: \frac, \forall
    "\x08": ("b", None),  # \b: \beta, \binom, \bar, \boxed
    "\x0b": ("v", None),  # \v: \vec, \varphi
    "\x07": ("a", None),  # \a: \alpha, \angle
    "\t": ("t", ("ext", "imes", "heta", "an", "frac", "au", "riangle", "o", "extbf", "extit")),
    "\r": ("r", ("ight", "ho", "angle", "m", "Rightarrow")),
    "\n": ("n", ("eq", "e ", "ot", "u", "abla", "otin", "exists", "mid", "leq", "geq")),
}
_CONTROL = re.compile("[\x07\x08\x0b\x0c\t\r\n]")
# `\\\\frac` is a doubled `\\frac`; `\\\\ y=1` (a row break, then a letter) is not
_DOUBLED = re.compile(
    r"\\\\(?=(?:[dt]?frac|sqrt|text|mathrm|mathbf|pi|cdot|times|left|right|leq?|geq?|neq|leqslant|geqslant"
    r"|infty|alpha|beta|gamma|theta|lambda|circ|cup|cap|in|pm|mp|log|ln|sin|cos|tan|boxed"
    r"|forall|exists|neg|notin|mathbb|dots|ldots|cdots|varphi|omega|mu|sigma|rho|delta|angle"
    r")(?![A-Za-z]))"
)
_DOLLAR_SEP = re.compile(r"\$\s*([,;])\s*\$")
# a sentence around the answer: `The solution set is } (0, \infty)`, `the line x = -1`
_LEAD = re.compile(
    r"^\s*(?:(?:the|its)\s+)?(?:solution\s+set|solutions?|answer|result|range|domain|line|point)\b"
    r"(?:\s+(?:is|are))?\s*:?\s*\}?\s*(?=[-(\[\\{$0-9A-Za-z])",
    re.IGNORECASE,
)


def _fix(m: re.Match[str]) -> str:
    s = m.string
    letter, starts = _ESCAPES[m.group()]
    rest = s[m.end() : m.end() + 12]
    if starts is None:
        return "\\" + letter if rest[:1].isalpha() else m.group()
    if any(rest.startswith(p) for p in starts):
        return "\\" + letter
    return " " if m.group() in "\t\r\n" else m.group()


_UNICODE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})(?![A-Za-z0-9])")


def repair_reference(ref: str) -> str:
    s = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), ref)  # `90\\u00B0` as text
    s = _CONTROL.sub(_fix, s)
    s = _DOUBLED.sub(r"\\", s)
    s = s.replace("\\\\{", "\\{").replace("\\\\}", "\\}")  # `\\\\{x | x < -1\\\\}`
    s = _DOLLAR_SEP.sub(r"\1 ", s)
    if re.fullmatch(r"\s*-?\d+(?:\.\d+)?\s*\^\s*", s):  # `90^`: the `\\circ` was lost
        s = s.rstrip().rstrip("^") + "^{\\circ}"
    lead = _LEAD.match(s)
    if lead is not None and re.search(r"[\d=<>()\[\]\\]", s[lead.end() :]):
        s = s[lead.end() :]
    if s.rstrip().endswith("}"):
        t = s.rstrip()
        if (len(t) - 1) not in match_braces(t).values() and not t.endswith("\\}"):
            s = t[:-1]
    return s
