"""How an answer is presented, taken off before it is compared: a restatement in
parentheses, a whole `\\text{...}`, thousands separators before a unit, `the set of all x`,
and `X \\approx d` (the exact value, or the decimal against a decimal reference)."""

from __future__ import annotations

import re

from hero_service.verify import latex, units

__all__ = ["THOUSANDS", "unwrap"]

THOUSANDS = re.compile(r"-?\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?")
_ASIDE = re.compile(
    r"\(\s*+(?:\\text\s*+\{\s*+)?(?:i\.\s?e\.|e\.g\.|that is|or|approx\.?|about|=|\\approx)"
    r"[^()]*\)\s*+$"
)
_APPROX = re.compile(r"\\approx(?![A-Za-z])")
_DECIMAL = re.compile(r"\s*+-?\d*\.\d+\s*+(?:\\?%)?\s*+")
_NAME_ONLY = re.compile(
    r"\s*(?:\\[A-Za-z]+\s?)?[A-Za-z]{1,3}(?:_\{?\w{1,4}\}?)?(?:\([^()]{1,12}\))?\s*"
)
_THOUSANDS_UNIT = re.compile(
    r"\s*(?P<n>-?\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?)"
    r"(?P<unit>(?:\s|\\ |\\text)(?!.*\b(?:and|or)\b)[^,]*)"
)
_WRAPPED = re.compile(r"\s*\\(?:text|textbf|mathrm|mbox)\s*\{(?P<t>[^{}\\$]*)\}\s*")
_ALL_X = re.compile(
    r"^\s*(?:the\s+set\s+of\s+)?all\s+(?:real\s+)?(?:numbers\s+)?[a-z]\s+"
    r"(?:with|such\s+that|satisfying|where|for\s+which)\s+(?=\S)",
    re.IGNORECASE,
)


def unwrap(ref: str, ans: str) -> tuple[str, str]:
    """(ref, ans) with the answer's presentation taken off (module docstring)."""
    ans = _ASIDE.sub("", ans).rstrip()  # `0.04599 \\; (\\text{i.e. } 4.599\\%)`: a restatement
    if (w := _WRAPPED.fullmatch(ans)) is not None and "," not in w.group("t"):
        ans = w.group("t").strip()  # `\\text{D and A}`, `\\text{2 crucian carps}`: read inside
    if (m := _THOUSANDS_UNIT.fullmatch(ans)) is not None and THOUSANDS.fullmatch(ref.strip()):
        ref = ref.replace("{,}", "").replace(",", "")  # `1{,}541.67 \\text{fl oz}`
        ans = m.group("n").replace("{,}", "").replace(",", "") + m.group("unit")
    ans = _ALL_X.sub("", ans, count=1)  # `the set of all x with 1 \\le x < 2`
    approx = latex.split_top(ans, _APPROX)
    if len(approx) == 2 and all(p.strip() for p in approx) and "\\approx" not in ref:
        # `\\frac{400}{101} \\approx 3.96`: the exact value, or the decimal when the reference
        # is a decimal (`\\frac{5}{7} \\text{ h} \\approx 42.86 \\text{ min}`) or the exact
        # side is only a name (`C_5 \\approx 0.236`)
        first, last = approx[0].strip(), approx[1].strip()
        decimal = _DECIMAL.fullmatch(units.split(ref)[0]) is not None
        ans = last if decimal or _NAME_ONLY.fullmatch(first) else first
    return ref, ans
