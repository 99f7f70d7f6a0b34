"""Integer classes said in words, as a congruence or as a parametric form.

`n is even`, `n \\equiv 0 \\pmod 2`, `n = 2k` and `2m` name one class: the multiples of 2.
`class_of(s)` reads one answer as `(d, r)` (the integers congruent to r mod d) and says
whether it was a worded or congruence form. Two parametric forms are never compared this
way (`4k` and `4k + 4` are one class but two expressions in a given `k`): the semantic
stage uses a class only when one side is worded or a congruence (`even n` vs `n = 2k`,
`any multiple of 4` vs `4k`). `power of two` vs `2^m` is read the same way, as `(2, -1)`.
Regexes without nested quantifiers; no evaluation.
"""

from __future__ import annotations

import re

__all__ = ["class_of"]

_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_FILLER_WORDS = (
    "n k m x y a b the an is are be must all any every only integer integers number numbers "
    "natural positive whole value values when if of by it its that those which"
)
_FILLER = frozenset(_FILLER_WORDS.split())
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10}
_PARAM = re.compile(
    r"\s*+(?:(?P<v>[a-z])\s*+=\s*+)?(?P<d>\d+)\s*+\\?(?P<k>[a-z])"
    r"(?:\s*+(?P<s>[+-])\s*+(?P<r>\d+))?\s*+"
)
_CONGRUENCE = re.compile(
    r"\s*+(?P<v>[a-z])\s*+\\equiv\s*+(?P<r>-?\d+)\s*+"
    r"(?:\\pmod\s*+\{?\s*+(?P<d1>\d+)\s*+\}?|\(\s*+\\(?:bmod|mod)\s*+\{?\s*+(?P<d2>\d+)\s*+\}?\s*+\))\s*+"
)
_POWER = re.compile(r"\s*+(?:(?P<v>[a-z])\s*+=\s*+)?2\s*+\^\s*+\{?\s*+(?P<k>[a-z])\s*+\}?\s*+")


def _words(s: str) -> list[str] | None:
    """The words of a plain-text answer (maths markup aside), or None when it has maths."""
    t = _WRAP.sub(r" \1 ", s).replace("$", " ")
    if re.search(r"[\\^_=<>{}()]", t):
        return None
    return [w for w in re.findall(r"[a-z]+|\d+", t.lower()) if w not in _FILLER]


def _worded(ws: list[str]) -> tuple[int, int] | None:
    if ws in (["even"], ["evens"]):
        return 2, 0
    if ws in (["odd"], ["odds"]):
        return 2, 1
    if len(ws) == 2 and ws[0] in ("multiple", "multiples", "divisible"):
        d = int(ws[1]) if ws[1].isdigit() else _NUMBER_WORDS.get(ws[1])
        return (d, 0) if d else None
    if len(ws) == 2 and ws[0] in ("power", "powers") and ws[1] in ("2", "two"):
        return 2, -1
    return None


def class_of(s: str) -> tuple[tuple[int, int], bool] | None:
    """`((d, r), worded)` for an answer naming an integer class, else None."""
    ws = _words(s)
    got = _worded(ws) if ws is not None else None
    if got is not None:
        return got, True
    if (m := _CONGRUENCE.fullmatch(s)) is not None:
        d = int(m.group("d1") or m.group("d2"))
        return ((d, int(m.group("r")) % d), True) if d > 1 else None
    if (m := _PARAM.fullmatch(s)) is not None and m.group("k") != m.group("v"):
        d = int(m.group("d"))
        if d < 2:
            return None
        r = int(m.group("r") or 0) * (-1 if m.group("s") == "-" else 1)
        return (d, r % d), False
    if (m := _POWER.fullmatch(s)) is not None and m.group("k") != m.group("v"):
        return (2, -1), False
    return None
