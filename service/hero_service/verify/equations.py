"""Equations and relations written another way: what models write instead of the reference.

* `\\pm`: `0, \\pm 5` is the list `0, 5, -5`; `\\frac{\\sqrt5 \\pm 1}{2}` is two values
  (one sign symbol per answer: two or more stay for Math-Verify);
* chains and tuples of names: `a = b = 2` and `(a, b) = (2, 2)` are `a = 2, b = 2`;
* an equation against a bare value: `\\angle A = 30^\\circ`, `\\cos\\alpha = -\\frac45`,
  `CO:ON = 5:2` name the value on their right (the last side of a chain);
* ratios: `5:2` is the number `5/2` (and `10:4`);
* inequalities that differ by moving terms or by a positive factor: `a - 3b \\ge 0`,
  `a \\ge 3b`, `b \\le \\frac{a}{3}` (found at sample points, then checked exactly by
  Math-Verify as `L - R` against `c (L' - R')`).

Input is in `notation.canonical` form. Pure, bounded: no evaluation of model text beyond
`numeval`'s bounded evaluator.
"""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction

from hero_service.verify.forms import components
from hero_service.verify.latex import split_relations, split_top, strip_outer
from hero_service.verify.numeval import evaluate

__all__ = [
    "LETTER",
    "derivation",
    "difference",
    "expand_chain",
    "expand_pm",
    "expand_pm_list",
    "function_args",
    "progression",
    "proportional",
    "ratio",
    "value_side",
]

_PM_CMD = re.compile(r"\\pm(?![A-Za-z])|\\mp(?![A-Za-z])")
_NAME = re.compile(r"\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?[A-Za-z0-9]{1,4}\}?)?\s*")
_TUPLE_NAMES = re.compile(r"\s*\(\s*(?P<n>[A-Za-z](?:\s*,\s*[A-Za-z]){1,5})\s*\)\s*")
_LIST_SEP = re.compile(r",|;|\\text|\bor\b|\band\b")
_RATIO = re.compile(r"\s*(?P<a>\d+(?:\.\d+)?)\s*:\s*(?P<b>\d+(?:\.\d+)?)\s*")
_CALL = re.compile(r"\s*(?P<f>[A-Za-z](?:_\{?\w{1,3}\}?)?)\s*\((?P<args>[^()]{1,60})\)\s*")
# a one-letter variable (`e` and `i` are constants); shared with semantic.py
LETTER = re.compile(r"(?<![A-Za-z\\])[a-df-hj-z](?![A-Za-z])")
_POINTS = (
    {c: 0.37 + 0.11 * i + 0.0131 * i * i for i, c in enumerate("abcdfghjklmnopqrstuvwxyz")},
    {c: 1.73 - 0.07 * i + 0.0217 * i * i for i, c in enumerate("abcdfghjklmnopqrstuvwxyz")},
    {c: -0.61 + 0.19 * i - 0.0053 * i * i for i, c in enumerate("abcdfghjklmnopqrstuvwxyz")},
)
_FLIP = {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le"}


def expand_pm(s: str) -> list[str] | None:
    """The two values of an expression with one `\\pm`/`\\mp`, or None."""
    found = list(_PM_CMD.finditer(s))
    if len(found) != 1:
        return None
    m = found[0]
    plus, minus = ("+", "-") if m.group() == "\\pm" else ("-", "+")
    head, tail = s[: m.start()].rstrip(), s[m.end() :].lstrip()
    out = []
    for sign in (plus, minus):
        if not head or head.endswith(("(", "{", "=", ",")):
            out.append(f"{head}{'' if sign == '+' else '-'}{tail}")
        else:
            out.append(f"{head} {sign} {tail}")
    return out


def expand_chain(s: str) -> str | None:
    """`a = b = 2` -> `a = 2, b = 2`; `(a, b) = (2, 2)` -> `a = 2, b = 2`; else None."""
    rel = split_relations(s, equals=True)
    if rel is None or set(rel[1]) != {"="}:
        return None
    sides, _ = rel
    if len(sides) > 2 and all(_NAME.fullmatch(x) for x in sides[:-1]):
        if _NAME.fullmatch(sides[-1]):
            return None  # `x = y = z`: nothing is a value
        return ", ".join(f"{x.strip()} = {sides[-1]}" for x in sides[:-1])
    if len(sides) == 2:
        m = _TUPLE_NAMES.fullmatch(sides[0])
        vals = sides[1].strip()
        if m is not None and vals.startswith("(") and vals.endswith(")"):
            names = [n.strip() for n in m.group("n").split(",")]
            parts = [p.strip() for p in split_top(vals[1:-1], re.compile(","))]
            if len(parts) == len(names) and all(parts):
                return ", ".join(f"{n} = {v}" for n, v in zip(names, parts, strict=True))
    return None


def derivation(s: str) -> str | None:
    """`a_n = \\frac23 - (n-1) = \\frac{5-3n}{3}` -> `a_n = \\frac{5-3n}{3}`: a name, then
    steps of a computation, ends with its result; else None. Only for answers: the steps are
    the model's working, the last side is what it concluded."""
    if len(split_top(s, _LIST_SEP)) > 1:
        return None  # `x = 3, x = 4`: a list of equations
    rel = split_relations(s, equals=True)
    if rel is None or set(rel[1]) != {"="} or len(rel[0]) < 3:
        return None
    sides = rel[0]
    if not (_NAME.fullmatch(sides[0]) or _CALL.fullmatch(sides[0])):
        return None
    if any(_NAME.fullmatch(x) or _CALL.fullmatch(x) for x in sides[1:]):
        return None  # `a = b = 2`, `f(x) = g(x) = ...`: more than one name
    return f"{sides[0].strip()} = {sides[-1].strip()}"


def value_side(s: str) -> str | None:
    """The value an equation names (its last side) when every relation in it is `=`."""
    rel = split_relations(s, equals=True)
    if rel is None or set(rel[1]) != {"="}:
        return None
    return rel[0][-1]


def ratio(s: str) -> Fraction | None:
    """`5:2` -> 5/2 (positive parts; `11:00` is a time, not a ratio)."""
    m = _RATIO.fullmatch(s)
    if m is None:
        return None
    a, b = Fraction(m.group("a")), Fraction(m.group("b"))
    if a == 0 or b == 0 or re.fullmatch(r"0\d", m.group("b")):
        return None
    return a / b


def function_args(s: str) -> tuple[str, list[str]] | None:
    """`f(0.5)` -> ("f", ["0.5"]); None unless `s` is one function applied to arguments."""
    m = _CALL.fullmatch(s)
    if m is None:
        return None
    return m.group("f"), [a.strip() for a in m.group("args").split(",")]


def _at(expr: str, point: dict[str, float]) -> float | None:
    return evaluate(LETTER.sub(lambda m: f"({point[m.group()]:.6f})", expr))


def proportional(left: str, right: str, positive: bool) -> Fraction | None:
    """A rational c with `left = c * right` at three sample points (c > 0 if `positive`),
    or None. Only a candidate: the caller has Math-Verify check it exactly."""
    letters = set(LETTER.findall(left)) | set(LETTER.findall(right))
    if not letters or set(LETTER.findall(left)) != set(LETTER.findall(right)):
        return None
    ratios = []
    for p in _POINTS:
        a, b = _at(left, p), _at(right, p)
        if a is None or b is None or abs(b) < 1e-9:
            return None
        ratios.append(a / b)
    c = Fraction(ratios[0]).limit_denominator(60)
    if not all(math.isclose(r, float(c), rel_tol=1e-7) for r in ratios) or c == 0:
        return None
    if positive and c < 0:
        return None
    return c


def difference(parts: list[str], ops: list[str]) -> tuple[str, str] | None:
    """`L op R` as (`(L) - (R)`, op with `L - R` on the left of `op 0`), `\\le`/`<` flipped
    to `\\ge`/`>` by negating; None for chains and `\\neq`."""
    if len(parts) != 2 or ops[0] not in (*_FLIP, "="):
        return None
    left, right = parts
    if ops[0] in ("<", "\\le"):
        left, right = right, left
        return f"({left}) - ({right})", _FLIP[ops[0]]
    return f"({left}) - ({right})", ops[0]


def progression(parts: list[str]) -> tuple[Fraction, Fraction, Fraction | None] | None:
    """`0, 1, 2, \\dots, 45` -> (start, step, last); `1, 3, 5, \\dots` -> (1, 2, None).
    An arithmetic progression of exact numbers around one `\\dots`, else None."""
    dots = [i for i, p in enumerate(parts) if p.strip() == "\\dots"]
    if len(dots) != 1 or dots[0] < 2 or dots[0] < len(parts) - 2:
        return None
    try:
        head = [Fraction(p.strip()) for p in parts[: dots[0]]]
        last = Fraction(parts[-1].strip()) if dots[0] == len(parts) - 2 else None
    except ValueError:
        return None
    step = head[1] - head[0]
    if step == 0 or any(b - a != step for a, b in itertools.pairwise(head)):
        return None
    if last is not None and ((last - head[0]) / step < len(head) - 1 or (last - head[0]) % step):
        return None
    return head[0], step, last


def expand_pm_list(s: str) -> str:
    """`0, \\pm 5` -> `0, 5, -5`; `\\{\\frac{\\sqrt5 \\pm 1}{2}\\}` -> both values."""
    if _PM_CMD.search(s) is None:
        return s
    inner = strip_outer(s, (("\\{", "\\}"),))
    body = inner[1] if inner is not None else s
    parts = []
    for c in components(body):
        both = expand_pm(c)
        parts.extend(both if both is not None else [c])
    out = ", ".join(parts)
    return f"\\{{{out}\\}}" if inner is not None else out
