"""Numbers given to d decimals, exact values, and angles in degrees or radians.

Rule (rounded reference): when the reference is a decimal with d places, an exact answer
(`4\\pi`, `\\frac{2}{3}`, `\\sqrt{2}`) that rounds to it is correct; a decimal answer is
compared exactly, so a different rounding is not. An exact reference is never matched by
a rounded answer (`0.3333` is not `\\frac{1}{3}`). Angles: `45^{\\circ}` is
`\\frac{\\pi}{4}` when the other side is in radians (it contains `\\pi`).
"""

from __future__ import annotations

import math
import re

from hero_service.verify.numeval import evaluate, exact_value

__all__ = ["angle_equal", "rounding_equal"]

_DECIMAL = re.compile(r"\s*(?P<sign>-?)\s*(?P<int>\d+)\.(?P<frac>\d+)\s*")
_DEG = re.compile(r"\^\{\\circ\}")


def _places(s: str) -> tuple[float, int, int] | None:
    """(value, decimal places, significant digits) of a plain decimal."""
    m = _DECIMAL.fullmatch(s)
    if m is None:
        return None
    digits = (m.group("int") + m.group("frac")).lstrip("0")
    return float(s), len(m.group("frac")), len(digits)


def _rounds_to(exact: float, shown: float, places: int) -> bool:
    half = 0.5 * 10.0**-places
    return abs(exact - shown) <= half * (1 + 1e-9) + 1e-12 * abs(exact)


def rounding_equal(ref: str, ans: str) -> bool | None:
    """True/False when the reference is a rounded decimal and the answer an exact value
    (not a decimal: two decimals compare exactly); else None."""
    r = _places(ref)
    if r is None or _places(ans) is not None:
        return None
    rv, rp, _ = r
    exact = exact_value(ans)  # `33.\\overline{3}`, `1.2 \\times 10^{3}`
    av = float(exact) if exact is not None else evaluate(ans)
    return None if av is None else _rounds_to(av, rv, rp)


def angle_equal(ref: str, ans: str) -> bool | None:
    """Degrees on one side, radians (with `\\pi`) on the other: compare the angles."""
    rd, ad = bool(_DEG.search(ref)), bool(_DEG.search(ans))
    if rd == ad:
        return None
    deg, rad = (ref, ans) if rd else (ans, ref)
    if "\\pi" not in rad:
        return None
    dv, rv = evaluate(_DEG.sub("", deg)), evaluate(rad)
    if dv is None or rv is None:
        return None
    return math.isclose(dv * math.pi / 180.0, rv, rel_tol=1e-9, abs_tol=1e-12)
