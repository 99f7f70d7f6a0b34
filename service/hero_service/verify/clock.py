"""Times of day: `2:30 p.m.`, `14:30`, `2 PM`, `10{:}20 \\text{ AM}` name one minute of the day.

`clock_equal(ref, ans)` is True/False when both sides read as a time of day, else None. A
side is a time only with a colon or an am/pm marker (`11` alone is a number). A side with no
marker and an hour of 12 or less may mean either half of the day (`2:30` for `14:30`).
"""

from __future__ import annotations

import re

__all__ = ["clock_equal"]

_TIME = re.compile(
    r"\s*+(?:\\text\{\s*+)?(?:at\s++)?(?P<h>\d{1,2})(?:\s*+(?::|\{:\})\s*+(?P<m>\d{2}))?"
    r"(?:\s|\\text\{|\\ |~)*+"
    r"(?P<ap>[ap]\.?\s?m\.?|o'clock(?:\s++[ap]\.?\s?m\.?)?)?(?:\s|\}|\.)*+",
    re.IGNORECASE,
)


def _read(s: str) -> tuple[int, str | None] | None:
    """(minutes after midnight, 'am'/'pm' or None), for a time of day; else None."""
    m = _TIME.fullmatch(s)
    if m is None or (m.group("m") is None and m.group("ap") is None):
        return None
    h, mins = int(m.group("h")), int(m.group("m") or 0)
    ap = re.sub(r"o'clock|[.\s]", "", (m.group("ap") or "").lower())
    half = ap[0] if ap in ("am", "pm") else None
    if mins >= 60 or h > 24 or (half is not None and not 1 <= h <= 12):
        return None
    if half == "p" and h != 12:
        h += 12
    if half == "a" and h == 12:
        h = 0
    return (h * 60 + mins) % 1440, half


def clock_equal(ref: str, ans: str) -> bool | None:
    r, a = _read(ref), _read(ans)
    if r is None or a is None:
        return None
    (rm, rh), (am, ah) = r, a
    if rh is None and rm < 13 * 60:  # `2:30` may be either half of the day
        return am in (rm, (rm + 720) % 1440)
    if ah is None and am < 13 * 60:
        return rm in (am, (am + 720) % 1440)
    return rm == am
