"""String normalization in the spirit of Hendrycks MATH `is_equiv` (a clean re-write).

`strip_string` follows the original steps (drop `\\left`/`\\right`, `\\!`, degrees,
`\\$`, `\\%`, trailing units, spaces; `\\tfrac`/`\\dfrac` -> `\\frac`; `\\frac12` ->
`\\frac{1}{2}`; `\\sqrt2` -> `\\sqrt{2}`; `a/b` -> `\\frac{a}{b}`; `.5` -> `0.5`; a short
`x =` prefix dropped; `0.5` -> `\\frac{1}{2}`) with a few hardening changes:

* it never raises (the original asserted on two `\\text{ ` groups and indexed past the
  end on a trailing `\\sqrt` / `\\frac`);
* units are removed only when the `\\text{...}` group ends the answer and reads like a
  unit, so `5\\text{ or }7` / `\\text{ yes}` are no longer collapsed to `5` / "";
* `\\left`/`\\right` are removed as whole commands (`\\rightarrow` survives);
* `\\frac`/`\\sqrt` arguments may be commands (`\\frac\\pi2`) or groups (`\\frac{1}2`);
* everything is linear time (one pass, precomputed brace matching).
"""

from __future__ import annotations

import re
from fractions import Fraction

from hero_service.verify.latex import match_braces

__all__ = ["brace_args", "exact_match", "is_equiv", "numeric_value", "strip_string"]

_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![A-Za-z])")
_THIN_SPACES = re.compile(r"\\[,;:]")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|°")
_UNIT_CMD = re.compile(r"\\(?:text|textrm|mbox)\s*\{")
_UNIT_BODY = re.compile(r"\s*[A-Za-z][A-Za-z./ ]*")
_UNIT_SUFFIXES = frozenset({"", ".", "^2", "^3", "^{2}", "^{3}", "^2.", "^3.", "^{2}.", "^{3}."})
_NOT_UNIT_WORDS = frozenset({"or", "and", "not", "nor", "but", "if", "else", "otherwise"})
_BARE_DECIMAL = re.compile(r"(?<![0-9A-Za-z])\.(?=[0-9])")
_ASSIGNEE = re.compile(r"\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?[A-Za-z0-9]+\}?)?\s*")
_NUMERATOR = re.compile(r"-?(?:0|[1-9][0-9]*)")
_DENOMINATOR = re.compile(r"0|[1-9][0-9]*")


def _remove_trailing_units(s: str) -> str:
    """`5\\text{ cm}` -> `5`, `12\\text{ sq. units}` -> `12`, `3\\mbox{ m}^2` -> `3`.

    Only the last `\\text`-like group, only when it ends the answer (up to a `^2`/`^3`),
    has a non-empty prefix, and its body reads like a unit (letters, spaces, `.`, `/`).
    """
    last = None
    for m in _UNIT_CMD.finditer(s):
        last = m
    if last is None or not s[: last.start()].strip():
        return s
    open_pos = last.end() - 1
    close = match_braces(s).get(open_pos, -1)
    if close < 0 or "\\" in s[open_pos + 1 : close]:
        return s  # unclosed, or commands inside: not a plain unit
    body = s[open_pos + 1 : close]
    if _UNIT_BODY.fullmatch(body) is None:
        return s
    if "".join(s[close + 1 :].split()) not in _UNIT_SUFFIXES:
        return s
    if any(w.lower() in _NOT_UNIT_WORDS for w in re.split(r"[ ./]+", body)):
        return s
    return s[: last.start()]


def _drop_assignment(s: str) -> str:
    """`x = 5` / `k=5` / `x_1 = 3` / `\\theta = 30` -> right-hand side (one `=` only)."""
    if s.count("=") != 1:
        return s
    left, _, right = s.partition("=")
    if _ASSIGNEE.fullmatch(left) is None or not right.strip():
        return s
    return right


def _token_end(s: str, j: int) -> int | None:
    """End of the single-token argument starting at `j` (a char or a `\\command`)."""
    n = len(s)
    if j >= n:
        return None
    c = s[j]
    if c == "\\":
        k = j + 1
        while k < n and s[k].isalpha():
            k += 1
        return k if k > j + 1 else None
    if c in "{}" or c.isspace():
        return None
    return j + 1


def _brace_args(s: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{72}`, `\\frac{1}2`, `\\sqrt2` -> `\\sqrt{2}`."""
    if "\\frac" not in s and "\\sqrt" not in s:
        return s
    match = match_braces(s)
    wrap_after: set[int] = set()  # `}` closing a \frac numerator: brace what follows
    out: list[str] = []
    n = len(s)
    i = 0
    while i < n:
        if s.startswith("\\frac", i):
            out.append("\\frac")
            j = i + 5
            if j < n and s[j] == "{" and j in match:
                wrap_after.add(match[j])
                i = j
                continue
            end = _token_end(s, j)
            if end is None:
                i = j
                continue
            out.append("{" + s[j:end] + "}")
            j = end
            if j < n and s[j] == "{":
                i = j
                continue
            end = _token_end(s, j)
            if end is None:
                i = j
                continue
            out.append("{" + s[j:end] + "}")
            i = end
            continue
        if s.startswith("\\sqrt", i):
            out.append("\\sqrt")
            j = i + 5
            end = None if j < n and s[j] in "{[" else _token_end(s, j)
            if end is None:
                i = j
                continue
            out.append("{" + s[j:end] + "}")
            i = end
            continue
        c = s[i]
        out.append(c)
        i += 1
        if c == "}" and (i - 1) in wrap_after and i < n and s[i] != "{":
            end = _token_end(s, i)
            if end is not None:
                out.append("{" + s[i:end] + "}")
                i = end
    return "".join(out)


def brace_args(s: str) -> str:
    """Public form of the `\\frac12` -> `\\frac{1}{2}` repair (used before Math-Verify,
    whose parser misreads unbraced arguments)."""
    return _brace_args(s)


def _slash_to_frac(s: str) -> str:
    """`3/4` -> `\\frac{3}{4}`, `-3/4` -> `-\\frac{3}{4}` (plain integers only)."""
    if s.count("/") != 1:
        return s
    a, _, b = s.partition("/")
    if _NUMERATOR.fullmatch(a) is None or _DENOMINATOR.fullmatch(b) is None:
        return s
    if a.startswith("-"):
        return "-\\frac{" + a[1:] + "}{" + b + "}"
    return "\\frac{" + a + "}{" + b + "}"


def strip_string(s: str) -> str:
    """Hendrycks-style canonical form of an answer string (never raises)."""
    s = s.replace("\n", "").replace("\\!", "")
    s = s.replace("\\\\", "\\")
    s = s.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac")
    s = _LEFT_RIGHT.sub("", s)
    s = _THIN_SPACES.sub(" ", s)
    s = _DEGREES.sub("", s)
    s = s.replace("\\$", "").replace("$", "")
    s = _remove_trailing_units(s)
    s = s.replace("\\%", "").replace("%", "")
    s = _BARE_DECIMAL.sub("0.", s)
    s = _drop_assignment(s)
    s = "".join(s.split())
    if not s:
        return s
    s = _brace_args(s)
    if s == "0.5":
        return "\\frac{1}{2}"
    return _slash_to_frac(s)


def is_equiv(a: str, b: str) -> bool:
    """Equal after `strip_string` on both sides; an empty answer never matches."""
    try:
        sa, sb = strip_string(a), strip_string(b)
    except Exception:  # defensive: strip_string is not expected to raise
        return bool(a.strip()) and a.strip() == b.strip()
    return bool(sa) and sa == sb


def _collapse(s: str) -> str:
    return " ".join(s.replace("$", "").split())


def exact_match(a: str, b: str) -> bool:
    """Exact compare with `$` removed and whitespace collapsed; empty never matches."""
    ca = _collapse(a)
    return bool(ca) and ca == _collapse(b)


# A plain number and nothing else: integer, decimal, a/b or \frac{a}{b} (optionally signed,
# in $...$, with a trailing period). Anything richer (units, %, degrees, text) is not matched.
_PLAIN_NUMBER = re.compile(
    r"\s*\$?\s*(?P<sign>-?)\s*(?:"
    r"(?P<dec>\d+(?:\.\d+)?|\.\d+)"
    r"|\\[dt]?frac\s*\{\s*(?P<fn>\d+)\s*\}\s*\{\s*(?P<fd>\d+)\s*\}"
    r"|(?P<sn>\d+)\s*/\s*(?P<sd>\d+)"
    r")\s*\.?\s*\$?\s*"
)


def numeric_value(s: str) -> Fraction | None:
    """The exact value of a plain-number answer, or None if it is anything else.

    Exact rational arithmetic: `0.5 == \\frac{1}{2}`, but `0.3333 != 1/3`.
    """
    if len(s) > 200:
        return None
    m = _PLAIN_NUMBER.fullmatch(s)
    if m is None:
        return None
    if m.group("dec") is not None:
        v = Fraction(m.group("dec"))
    else:
        num, den = (
            (m.group("fn"), m.group("fd")) if m.group("fn") else (m.group("sn"), m.group("sd"))
        )
        if int(den) == 0:
            return None
        v = Fraction(int(num), int(den))
    return -v if m.group("sign") else v
