"""Sets of reals: interval notation, inequalities and set-builder notation as one object.

`(-\\infty, 3)`, `x < 3`, `\\{x \\mid x < 3\\}` and `x \\in (-\\infty, 3)` all parse to the
same union of intervals, so they compare equal; an open endpoint for a closed one, a
swapped inequality or a different bound do not. Input is already in `notation.canonical`
form. Pure and linear: a top-level split, then a fixed number of regex matches per piece.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from hero_service.verify.latex import split_relations, split_top
from hero_service.verify.normalize import strip_string
from hero_service.verify.numeval import evaluate

__all__ = ["Bound", "Interval", "is_interval", "looks_like_set", "parse_set", "same_bound"]


@dataclass(frozen=True)
class Bound:
    text: str  # canonical text of the endpoint
    value: float | None  # numeric value when it has one (+-inf included)


@dataclass(frozen=True)
class Interval:
    lo: Bound
    hi: Bound
    lo_closed: bool
    hi_closed: bool


_INF = Bound("\\infty", math.inf)
_NINF = Bound("-\\infty", -math.inf)
_AND = re.compile(r"\band\b|\\land|\\wedge")
_UNION = re.compile(r"\\cup|\bor\b|\\lor|\\vee")
_VAR = re.compile(r"\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?[A-Za-z0-9]+\}?)?(?:\([A-Za-z]\))?\s*")
_BUILDER = re.compile(r"\\\{\s*(?P<v>[^|:]{1,20}?)\s*(?:\||:)\s*(?P<c>.*)\\\}")
_MEMBER = re.compile(r"(?P<v>[^=<>]{1,20}?)\s*\\in\s*(?P<s>.+)")
_INTERVAL = re.compile(r"(?P<l>[(\[])(?P<a>[^,;]+)[,;](?P<b>[^,;]+)(?P<r>[)\]])")
_REALS = re.compile(r"\\mathbb\{R\}|\\mathbb R|\(\s*-\\infty\s*,\s*\\infty\s*\)")
_SUM = re.compile(r"\s*[a-z](?:\s*[-+]\s*[a-z]){1,3}\s*")
_NORM = re.compile(r"\s*\|\s*(?:\\vec\s*\{?\s*)?[A-Za-z]\}?\s*\|\s*")  # `|\\vec c|`
_ABS = re.compile(r"\s*\|\s*(?:[A-Za-z]|\\[A-Za-z]+)\s*\|\s*")
_PARAM = re.compile(r"[,;]\s*[a-z]\s*\\in\s*\\mathbb\s*\{?\s*[ZN]\s*\}?[^,;]*$")
_DOMAIN = re.compile(r",?\s*(?:[A-Za-z]|\\[A-Za-z]+)\s*\\in\s*\\mathbb\{R\}\s*$")


def is_interval(s: str) -> bool:
    """`(a, b]`, `[a, b]`, ...: two endpoints in brackets (a point `(a, b)` reads the same)."""
    return _INTERVAL.fullmatch(s.strip()) is not None


def looks_like_set(s: str) -> bool:
    """Cheap test: worth parsing as a set of reals (an inequality, infinity, union, ...)."""
    return bool(
        re.search(r"\\infty|\\cup|\\le |\\ge |<|>|\\neq |\\in |\\mathbb\{R\}|\\emptyset", s)
    )


_FINITE = re.compile(r"\s*\\\{(?P<b>[^{}|]+)\\\}\s*")


def _bound(text: str) -> Bound:
    t = text.strip()
    if t in ("\\infty", "+\\infty", "\\infty "):
        return _INF
    if t == "-\\infty":
        return _NINF
    return Bound(strip_string(t), evaluate(t))


def _flip(op: str) -> str:
    return {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le"}.get(op, op)


def _inequality(s: str) -> list[Interval] | None:
    split = split_relations(s, equals=False)
    if split is None:
        return None
    parts, ops = split
    if len(parts) == 2:
        got = _absolute(parts, ops[0])
        if got is not None:
            return got
    var_at = [i for i, p in enumerate(parts) if _VAR.fullmatch(p) and evaluate(p) is None]
    if len(parts) == 2 and len(var_at) >= 1:
        if len(var_at) == 2:
            return None
        if var_at[0] == 1:  # `3 > x` -> `x < 3`
            parts, ops = [parts[1], parts[0]], [_flip(ops[0])]
        op, b = ops[0], _bound(parts[1])
        if op == "\\neq":
            return [Interval(_NINF, b, False, False), Interval(b, _INF, False, False)]
        if op in ("<", "\\le"):
            return [Interval(_NINF, b, False, op == "\\le")]
        return [Interval(b, _INF, op == "\\ge", False)]
    if len(parts) == 3 and not var_at and (_SUM.fullmatch(parts[1]) or _NORM.fullmatch(parts[1])):
        var_at = [1]  # `-5 \\le x + y \\le 5`: the bounds of one quantity
    if len(parts) == 3 and var_at == [1] and "\\neq" not in ops:
        if ops[0] in (">", "\\ge") and ops[1] in (">", "\\ge"):
            parts, ops = parts[::-1], [_flip(ops[1]), _flip(ops[0])]
        if ops[0] in ("<", "\\le") and ops[1] in ("<", "\\le"):
            return [
                Interval(_bound(parts[0]), _bound(parts[2]), ops[0] == "\\le", ops[1] == "\\le")
            ]
    return None


def _absolute(parts: list[str], op: str) -> list[Interval] | None:
    """`|x| > 2` -> `(-\\infty, -2) \\cup (2, \\infty)`; `|a| \\le c` -> `[-c, c]`."""
    if _ABS.fullmatch(parts[1]) and not _ABS.fullmatch(parts[0]):
        parts, op = [parts[1], parts[0]], _flip(op)
    if not _ABS.fullmatch(parts[0]) or op not in ("<", ">", "\\le", "\\ge"):
        return None
    b = _bound(parts[1])
    if b.value is None or not 0 < b.value < math.inf:
        return None
    nb = Bound(strip_string(f"-({parts[1].strip()})"), -b.value)
    closed = op in ("\\le", "\\ge")
    if op in ("<", "\\le"):
        return [Interval(nb, b, closed, closed)]
    return [Interval(_NINF, nb, False, closed), Interval(b, _INF, closed, False)]


def _intersect(a: Interval, b: Interval) -> Interval | None:
    """The intersection of two intervals with numeric bounds (None: not numeric)."""
    if None in (a.lo.value, a.hi.value, b.lo.value, b.hi.value):
        return None
    lo, lo_c = (a.lo, a.lo_closed) if a.lo.value > b.lo.value else (b.lo, b.lo_closed)  # type: ignore[operator]
    if a.lo.value == b.lo.value:
        lo_c = a.lo_closed and b.lo_closed
    hi, hi_c = (a.hi, a.hi_closed) if a.hi.value < b.hi.value else (b.hi, b.hi_closed)  # type: ignore[operator]
    if a.hi.value == b.hi.value:
        hi_c = a.hi_closed and b.hi_closed
    return Interval(lo, hi, lo_c, hi_c)


def _empty(i: Interval) -> bool:
    lo, hi = i.lo.value, i.hi.value
    assert lo is not None and hi is not None  # _intersect only builds numeric intervals
    return lo > hi or (lo == hi and not (i.lo_closed and i.hi_closed))


def _piece(p: str) -> list[Interval] | None:
    p = p.strip()
    if not p:
        return None
    both = split_top(p, _AND)
    if len(both) == 2:  # `x > 1 and x < 3`, `-2 < a < 2 and a \\neq 0`: numeric bounds only
        a, b = _inequality(both[0].strip()), _inequality(both[1].strip())
        if a is None or b is None:
            return None
        out = []
        for x in a:
            for y in b:
                got = _intersect(x, y)
                if got is None:
                    return None
                if not _empty(got):
                    out.append(got)
        return out
    if _REALS.fullmatch(p):
        return [Interval(_NINF, _INF, False, False)]
    if p == "\\emptyset" or p == "\\{\\}":
        return []
    m = _INTERVAL.fullmatch(p)
    if m is not None:
        lo, hi = _bound(m.group("a")), _bound(m.group("b"))
        return [Interval(lo, hi, m.group("l") == "[", m.group("r") == "]")]
    return _points(p) or _inequality(p)


def _points(p: str) -> list[Interval] | None:
    """Isolated points of a union: `\\{4\\}`, `\\{1, 5\\}`, `x = 4` (numbers only)."""
    m = _FINITE.fullmatch(p)
    if m is not None:
        values = [v.strip() for v in m.group("b").split(",")]
    else:
        rel = split_relations(p, equals=True)
        if rel is None or rel[1] != ["="] or not _VAR.fullmatch(rel[0][0]):
            return None
        values = [rel[0][1].strip()]
    bounds = [_bound(v) for v in values]
    if not values or any(b.value is None or math.isinf(b.value) for b in bounds):
        return None
    return [Interval(b, b, True, True) for b in bounds]


def parse_set(s: str) -> list[Interval] | None:
    """The union of intervals `s` denotes, or None when `s` is not a set of reals."""
    s = _DOMAIN.sub("", s.strip())
    m = _BUILDER.fullmatch(s)
    if m is not None:
        # `\\{x \\mid 2k\\pi < x < 2k\\pi+\\pi, k \\in \\mathbb{Z}\\}`: the parameter is not a bound
        s = _PARAM.sub("", m.group("c"))
    mm = _MEMBER.fullmatch(s)  # `x \\in (1, 2)`, and `\\{x \\mid x \\in \\mathbb{R}\\}`
    if mm is not None and _VAR.fullmatch(mm.group("v")):
        s = mm.group("s")
    out: list[Interval] = []
    for piece in split_top(s, _UNION):
        got = _piece(piece.strip().strip(",;"))  # `-3 < x \\le -2, or 1 \\le x \\le 2`
        if got is None:
            return None
        out.extend(got)
    return out


def same_bound(a: Bound, b: Bound) -> bool | None:
    """True/False when decidable here; None when only a CAS can tell."""
    if a.text == b.text:
        return True
    if a.value is not None and b.value is not None:
        return math.isclose(a.value, b.value, rel_tol=1e-9, abs_tol=1e-12) or (a.value == b.value)
    return None
