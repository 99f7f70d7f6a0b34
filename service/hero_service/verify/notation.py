"""Notation: one spelling for each symbol, applied to both sides before any comparison.

Unicode and full-width symbols become their LaTeX commands (`≤` -> `\\le`, `＞` -> `>`,
`∞` -> `\\infty`), synonyms collapse (`\\leqslant`, `\\leq` -> `\\le`; `\\dfrac` -> `\\frac`),
every degree spelling becomes `^{\\circ}`, circled numerals become a list (`①②` -> `1,2`),
spacing commands become spaces. One regex pass per rule: linear time.
"""

from __future__ import annotations

import re

__all__ = ["canonical"]

_UNICODE = {
    "∞": r"\infty ", "≤": r"\le ", "≦": r"\le ", "⩽": r"\le ", "≥": r"\ge ", "≧": r"\ge ",
    "⩾": r"\ge ", "≠": r"\neq ", "∪": r"\cup ", "∩": r"\cap ", "×": r"\times ", "·": r"\cdot ",
    "⋅": r"\cdot ", "∙": r"\cdot ", "−": "-", "–": "-", "—": "-", "＞": ">", "＜": "<",
    "＝": "=", "，": ",", "、": ",", "；": ";", "：": ":", "（": "(", "）": ")", "［": "[",
    "］": "]", "｛": r"\{", "｝": r"\}", "∈": r"\in ", "∉": r"\notin ", "π": r"\pi ",
    "√": r"\sqrt ", "°": r"^{\circ}", "º": r"^{\circ}", "α": r"\alpha ", "β": r"\beta ",
    "γ": r"\gamma ", "θ": r"\theta ", "λ": r"\lambda ", "μ": r"\mu ", "φ": r"\varphi ",
    "ω": r"\omega ", "ρ": r"\rho ", "′": "'", "∅": r"\emptyset ", "ℝ": r"\mathbb{R}",
    "ℤ": r"\mathbb{Z}", "ℕ": r"\mathbb{N}", "ℚ": r"\mathbb{Q}", "∣": "|", "÷": r"\div ",
    "±": r"\pm ", "∓": r"\mp ", "\u00a0": " ", "\u3000": " ", "＋": "+", "－": "-", "／": "/",
    "∀": r"\forall ", "∃": r"\exists ", "¬": r"\neg ",
}  # fmt: skip
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))
_SUPERSCRIPT = {c: str(i) for i, c in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")}
_SUPERSCRIPT_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
_FULLWIDTH_DIGIT = {chr(0xFF10 + i): str(i) for i in range(10)}
_CIRCLED = {chr(0x2460 + i): str(i + 1) for i in range(20)}  # ① .. ⑳
_CIRCLED_RUN = re.compile("[①-⑳](?:[\\s,]*[①-⑳])*")
_NUM = r"(\d+(?:\.\d+)?)"
_FUNCS = "arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|cot|sec|csc|ln|log|exp"
_TOKEN = r"\d|[A-Za-z]|\\pi(?![A-Za-z])"  # one TeX token as a \frac argument
_COMMANDS = [
    # upright constants, names and wrapped commands: `2\mathrm{i}`, `\mathrm{BN}`,
    # `\text{\pi}` (from `\text{π}`), `90^\text{\circ}` (from a repaired tab)
    (re.compile(r"\\(?:mathrm|text|operatorname)\s*\{\s*([ie])\s*\}"), r"\1"),
    (re.compile(r"\\(?:mathrm|text)\s*\{\s*(\\[A-Za-z]+)\s*\}"), r"\1 "),
    (re.compile(r"\\(?:mathrm|text|operatorname)\s*\{\s*([A-Z]{2,4})\s*\}"), r"\1"),
    (re.compile(r"\\(?:leqslant|leq|le)(?![A-Za-z])"), r"\\le "),
    (re.compile(r"\\(?:geqslant|geq|ge)(?![A-Za-z])"), r"\\ge "),
    (re.compile(r"\\(?:neq|ne)(?![A-Za-z])"), r"\\neq "),
    (re.compile(r"\\(in|notin|cup|cap)(?![A-Za-z])\s*"), r"\\\1 "),  # `a\in(1,2)` has no space
    (re.compile(r"\\lt(?![A-Za-z])"), "<"),
    (re.compile(r"\\gt(?![A-Za-z])"), ">"),
    (re.compile(r"\\[dt]frac(?![A-Za-z])"), r"\\frac"),
    # TeX's one-token arguments: `\frac13`, `\frac1{10}`, `\frac{\sqrt6}3`, `\frac\pi4`
    (re.compile(rf"\\frac\s*({_TOKEN})\s*({_TOKEN})"), r"\\frac{\1}{\2}"),
    (re.compile(rf"\\frac\s*({_TOKEN})\s*\{{"), r"\\frac{\1}{"),
    (re.compile(rf"\\frac\s*\{{([^{{}}]*)\}}\s*({_TOKEN})"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\(?:displaystyle|textstyle|mathrm\{\s*\}|limits)(?![A-Za-z])"), ""),
    (re.compile(r"\\left\s*\.|\\right\s*\."), ""),
    (re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![A-Za-z])"), ""),
    (re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\degree(?![A-Za-z])"), "^{°}"),
    (re.compile(r"(?<!\\)\\(?:,|;|:|!|\s)|~|\\q?quad(?![A-Za-z])"), " "),
    (re.compile(r"\\mid(?![A-Za-z])|\\vert(?![A-Za-z])"), "|"),
    (re.compile(r"\\(?:text|mathrm|textrm|mbox)\s*\{\s*(or|and)\s*\}"), r" \1 "),
    (re.compile(r"\+\s*\\infty"), r"\\infty"),
    (re.compile(r"\\sim(?![A-Za-z])"), "="),  # `f(x) \\sim 2\\sum ...`: names a value
    (re.compile(r"\^?\s*\\text(?:circ|degree)(?![A-Za-z])"), "^{°}"),
    # textbook notation: `C_{n}^{k}` is a binomial coefficient, `A_{n}^{k}` an arrangement
    (re.compile(r"(?<![A-Za-z\\])C_\{?(\w{1,3})\}?\^\{?(\w{1,3})\}?"), r"\\binom{\1}{\2}"),
    (
        re.compile(r"(?<![A-Za-z\\])A_\{?(\w{1,3})\}?\^\{?(\w{1,3})\}?"),
        r"\\frac{\1!}{(\1-\2)!}",
    ),
    (re.compile(r"\\varnothing(?![A-Za-z])"), r"\\emptyset "),
    (re.compile(r"_\{\s*([A-Za-z0-9])\s*\}"), r"_\1"),  # `C_{1}` is `C_1`
    (re.compile(r"\^\s*\(([^()]{1,40})\)"), r"^{(\1)}"),  # `e^(\pi/2)`: the power is the group
    (re.compile(r"\\middle\s*(?=[|/])"), ""),
    (re.compile(r"(?<=[)\]])\s*U\s*(?=[(\[])"), r" \\cup "),  # `(-1, 0) U (1, 2)`
    (re.compile(r"(?<![A-Za-z\\])sqrt\s*(?=[({\d])"), r"\\sqrt"),  # plain-text maths
    (re.compile(r"(?<![A-Za-z\\])pi(?![A-Za-z])"), r"\\pi "),
    # `sin(2x - π/6)`, `ln 2`: function names written without their backslash
    (re.compile(rf"(?<![A-Za-z\\])({_FUNCS})(?=\s*[(\d\\_^]|\s+[a-z](?![A-Za-z]))"), r"\\\1 "),
    (re.compile(r"(?<![A-Za-z\\])inf(?:inity)?(?![A-Za-z])"), r"\\infty "),
    (re.compile(r"^\s*(?:\\approx|=)\s*"), ""),  # `\\approx 3.14`, `= 5`
    # `approximately 280 meters`: the value a model rounded, said in words
    (re.compile(r"^\s*(?:approximately|approx\.?|about|around|roughly)\s+(?=[-\d\\$])", re.I), ""),
    (re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])"), r"\1 \\times 10^{\2}"),
    (re.compile(r"\\infin(?![A-Za-z])|\\inf(?:ty)?(?![A-Za-z])"), r"\\infty "),
    (re.compile(r"\\mathbf\s*\{\s*([RZNQ])\s*\}|\\Bbb\s*\{?\s*([RZNQ])\s*\}?"), r"\\mathbb{\1\2}"),
    (re.compile(r"\\(?:ldots|cdots|dotsc|dotsb)(?![A-Za-z])|\.\.\.|…"), r"\\dots "),
    # `2 to 1`, `3 \text{ to } 1`: a ratio
    (re.compile(rf"(?<![\w.]){_NUM}\s*(?:\\text\{{\s*to\s*\}}|to)\s*{_NUM}(?![\w.])"), r"\1:\2"),
]
# `{x | x > 0}` written without the backslashes a LaTeX set needs
_BARE_SET = re.compile(r"\{(?P<body>[^{}]*(?:\||\\mid)[^{}]*)\}")
_PAREN_LIST = re.compile(r"\s*(?:\(\d{1,2}\)\s*[,，、]?\s*){2,}")
# a labelled point; not `C(5, 2)`, a binomial coefficient
_POINT = re.compile(r"\s*+([ABD-Z])\s*+\(([^()]*)\)\s*+")
_DEGREE_MARK = "^{°}"
_SPACES = re.compile(r"\s+")


def _circled(m: re.Match[str]) -> str:
    return ",".join(_CIRCLED[c] for c in m.group() if c in _CIRCLED)


def canonical(s: str) -> str:
    """One spelling per symbol; whitespace collapsed; `$` and a final period removed."""
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group()], s)
    if any(c in _FULLWIDTH_DIGIT for c in s):
        s = "".join(_FULLWIDTH_DIGIT.get(c, c) for c in s)
    s = _CIRCLED_RUN.sub(_circled, s)
    s = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + "".join(_SUPERSCRIPT[c] for c in m.group()) + "}", s)
    for pat, rep in _COMMANDS:
        s = pat.sub(rep, s)
    s = s.replace(_DEGREE_MARK, "^{\\circ}")
    if _PAREN_LIST.fullmatch(s):  # `(1)(4)`: the statements chosen, like `①④`
        s = ",".join(re.findall(r"\d+", s))
    m = _POINT.fullmatch(s)
    if m is not None and "," in m.group(2) and re.search(r"\d", m.group(2)):
        s = f"{m.group(1)} = ({m.group(2)})"  # `A(0, -1, 0)`: the point A is `(0, -1, 0)`
    m = _BARE_SET.fullmatch(s.strip())
    if m is not None and not s.strip().startswith("\\{"):
        s = "\\{" + m.group("body") + "\\}"
    s = s.replace("$", "")
    s = _SPACES.sub(" ", s).strip()
    while s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    return s
