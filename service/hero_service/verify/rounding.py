"""Numbers given to d decimals, exact values, and angles in degrees or radians.

Rule (rounded reference): when the reference is a decimal with d places, an exact answer
(`4\\pi`, `\\frac{2}{3}`, `\\sqrt{2}`) or a longer decimal that rounds to it is correct; a
shorter decimal or a different rounding is not. Rule (exact reference): a decimal answer
with at least 2 places and 2 significant digits that is the reference rounded to its own
places is correct (`0.667` for `\\frac{2}{3}`; not `0.7`). Angles: `45^{\\circ}` is
`\\frac{\\pi}{4}` when the other side is in radians (it contains `\\pi`).
"""

from __future__ import annotations

import math
import re

from hero_service.verify.numeval import evaluate

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
    """True/False when one side is a rounded decimal and the other has a value; else None."""
    r, a = _places(ref), _places(ans)
    if r is not None:
        rv, rp, _ = r
        if a is not None:
            av, ap, _ = a
            if ap < rp:
                return False  # less precise than the reference
            return _rounds_to(av, rv, rp)
        av2 = evaluate(ans)
        return None if av2 is None else _rounds_to(av2, rv, rp)
    if a is not None:
        av, ap, asig = a
        rv2 = evaluate(ref)
        if rv2 is None:
            return None
        if ap < 2 or asig < 2:
            return False
        return _rounds_to(rv2, av, ap)
    return None


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
