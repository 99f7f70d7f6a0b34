"""The semantic stages: decide what cheap string and number checks cannot, before any CAS.

`compare(reference, answer)` (both in `notation.canonical` form, the reference repaired)
returns a decision with the stage that made it, or the leaf pairs that only Math-Verify can
settle; the caller sends those to the sandboxed workers and requires every one to hold.
Stages, in order: `interval` (sets of reals), `components` (every part of a multi-part
answer, by name or in order), `relation` (both sides and the direction of `<`, `=`, ...),
and per leaf `string`, `numeric`, `rounding`, `angle`, `text`. Pure, no evaluation of model
text beyond the bounded numeric evaluator; linear in the input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from hero_service.verify import (
    equations,
    forms,
    intervals,
    latex,
    presentation,
    residues,
    units,
    words,
)
from hero_service.verify.clock import clock_equal
from hero_service.verify.normalize import strip_string
from hero_service.verify.numeval import evaluate, exact_value
from hero_service.verify.presentation import THOUSANDS
from hero_service.verify.rounding import angle_equal, rounding_equal

__all__ = ["Outcome", "compare"]

Decision = Literal["correct", "incorrect"]


@dataclass(frozen=True)
class Outcome:
    status: Decision | None  # None: undecided until Math-Verify settles `pending`
    stage: str
    reason: str | None = None
    pending: tuple[tuple[str, str], ...] = field(default=())


_TEXT = re.compile(r"\\(?:text|textbf|mathrm|textit|mbox)\s*\{([^{}]*)\}")
_ARTICLES = re.compile(r"\b(?:the|a|an|is|are)\b")
_PM = re.compile(r"\\(?:pm|mp)(?![A-Za-z])")  # not `\pmod`
_MAX_CHARS = 4000  # the stages are linear, but a server-side scan stays small
_IN_SET = re.compile(r"^\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w{1,4}\}?)?\s*\\in\s*(?=\\\{)")
# `\\{x \\mid x = 4k - 1, k \\in \\mathbb{Z}\\}`: the values of `x`, written as an equation
_BUILDER_EQ = re.compile(r"^\s*\\\{\s*([A-Za-z])\s*\|\s*\1\s*=\s*([^=<>|]+)\\\}\s*$")
_CURRENCY = re.compile(r"^\s*(?:\\\$|\\textdollar|\\(?=\d)|[$₹¥€£])\s*")
_NUMBER_SET = re.compile(r"\s*+[A-Za-z]\s*+\\in\s*+\\mathbb\s*+\{?\s*+[RZNQC]\s*+\}?\S{0,6}\s*+")
_LETTER_CHOICE = re.compile(r"\s*(?:\\text\{\s*)?[A-E](?:\s*\})?\s*")
_SYMBOLS = frozenset({"<", ">", "=", "\\le", "\\ge", "\\neq"})
_FLIP = {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le", "=": "=", "\\neq": "\\neq"}


def _words(s: str) -> str | None:
    """Plain-text form of a text answer (no digits, no maths), or None."""
    t = _TEXT.sub(lambda m: m.group(1), s)
    if re.fullmatch(r"[A-Za-z ',.-]*", t) is None or not re.search(r"[A-Za-z]{3}", t):
        return None  # maths, or too short to be words: `x - y`, `a`
    t = _ARTICLES.sub(" ", t.lower())
    t = re.sub(r"[^a-z]+", " ", t).strip()
    return t or None


def _relation(s: str) -> tuple[list[str], list[str]] | None:
    return latex.split_relations(s, equals=True)


_POINT = {
    c: f"({0.5 + 0.1 * i + 0.0137 * i * i:.4f})" for i, c in enumerate("abcdfghjklmnopqrstuvwxyz")
}


def _differs_at_a_point(ref: str, ans: str) -> bool:
    """Two expressions in the same variables that take different values at one point are
    different functions: a cheap `incorrect` without a CAS. Equality is never decided here
    (`\\sqrt{x^2}` and `x` agree at positive points): it goes to Math-Verify."""
    lr, la = set(equations.LETTER.findall(ref)), set(equations.LETTER.findall(ans))
    if not lr or lr != la or "=" in ref or "=" in ans:
        return False
    vr = evaluate(equations.LETTER.sub(lambda m: _POINT[m.group()], ref))
    va = evaluate(equations.LETTER.sub(lambda m: _POINT[m.group()], ans))
    if vr is None or va is None:
        return False
    return not math.isclose(vr, va, rel_tol=1e-6, abs_tol=1e-9)


def _combine(outs: list[Outcome], stage: str) -> Outcome:
    bad = [o for o in outs if o.status == "incorrect"]
    if bad:
        return Outcome("incorrect", stage, bad[0].reason or bad[0].stage)
    pending = tuple(p for o in outs for p in o.pending)
    if pending:
        return Outcome(None, stage, None, pending)
    return Outcome("correct", stage)


def _leaf(ref: str, ans: str) -> Outcome:
    aligned = units.align(ref, ans)  # `50\\pi cm^3` vs `50\\pi`, `0.1 km` vs `100 m`
    if aligned is None:
        return Outcome("incorrect", "unit", "unit_mismatch")
    ref, ans = aligned
    rp, ap = forms.part(ref), forms.part(ans)
    if rp.value != ref.strip() and ap.value != ans.strip() and words.labels_differ(ref, ans):
        return Outcome("incorrect", "text", "different_words")  # `9 apples` vs `9 pears`
    if rp.func_var and ap.func_var:
        ap = forms.Part(ap.name, forms.rename_var(ap.value, ap.func_var, rp.func_var))
    # `S = 2n+3` vs `2n+3`: the value; `y = 2x+1` vs `2x-y+1 = 0`: two equations
    keep = (rp.name is None) != (ap.name is None) and _relation(ref if rp.name is None else ans)
    rv, av = (ref, ans) if keep else (rp.value, ap.value)
    av = forms.rename_params(rv, av)
    rrel, arel = _relation(rv), _relation(av)
    if (rrel is None) != (arel is None):  # `\\angle A = 30^\\circ` vs `30^\\circ`: the value
        side = _value_side(rv, ans_side=False) if arel is None else _value_side(av, True)
        if side is not None:  # no `=` left in `side`: one more step at most
            return compare(side, av) if arel is None else compare(rv, side)
    if rrel is not None or arel is not None:
        return _relations(rv, av, rrel, arel)
    if intervals.looks_like_set(rv) or intervals.looks_like_set(av):  # a labelled set
        got = _sets(rv, av)
        if got is not None:
            return got
    rs, as_ = strip_string(rv), strip_string(av)
    if rs and rs == as_ and not words.texts_differ(rv, av):
        return Outcome("correct", "string")
    for mark in ("^{\\circ}", "\\%"):  # the same unit on both sides: compare the numbers
        if rv.endswith(mark) and av.endswith(mark):
            rv, av = rv[: -len(mark)].strip(), av[: -len(mark)].strip()
    rn, an = exact_value(rv), exact_value(av)
    if rn is not None and an is not None and rn == an:
        return Outcome("correct", "numeric")
    rr, ar = equations.ratio(rv), equations.ratio(av)
    if rr is not None or ar is not None:  # `5:2` vs `10:4` or `2.5`
        x, y = rr if rr is not None else rn, ar if ar is not None else an
        if x is not None and y is not None:
            return Outcome("correct" if x == y else "incorrect", "numeric", "ratio")
    rf, af = equations.function_args(rv), equations.function_args(av)
    if rf is not None and af is not None and rf[0] == af[0] and len(rf[1]) == len(af[1]):
        args = [_leaf(x, y) for x, y in zip(rf[1], af[1], strict=True)]  # `f(0.5)`, `f(\\frac12)`
        return _combine(args, "relation")
    for stage, fn in (("rounding", rounding_equal), ("angle", angle_equal)):
        same = fn(rv, av)
        if same is not None:
            return Outcome("correct" if same else "incorrect", stage)
    if rn is not None and an is not None:
        return Outcome("incorrect", "numeric")
    re_, ae = evaluate(rv), evaluate(av)
    if re_ is not None and ae is not None and not math.isclose(re_, ae, rel_tol=1e-9):
        return Outcome("incorrect", "numeric")  # equal floats still go to exact sympy
    if _differs_at_a_point(rv, av):
        return Outcome("incorrect", "numeric", "differs_at_point")
    said = words.compare(rv, av)  # `\\text{No}` for `This is impossible`; `third` for `second`
    if said is not None:
        return Outcome(said, "text")
    rw, aw = _words(rv), _words(av)
    if rw is not None and aw is not None:
        return Outcome("correct" if rw == aw else "incorrect", "text")
    return Outcome(None, "math_verify", None, ((rv, av),))


_NAME_LIKE = re.compile(r"[^+\-^=<>]*")


def _value_side(s: str, ans_side: bool) -> str | None:
    """The value an equation names. An answer's `L = R` names R; a reference's only when L is a
    name (`\\mathrm{BN}`, `\\cos\\alpha`, `f(10)`, `\\frac{AC}{BC}`), not an expression:
    `x^2 + y^2 = 1` is an equation, not the value 1."""
    side = equations.value_side(s)
    if side is None or ans_side:
        return side
    left = s[: s.index("=")]
    letters = set(re.findall(r"(?<![A-Za-z\\])[A-Za-z](?![A-Za-z])", left))
    if re.search(r"\d", left) and not letters:
        return side  # `2\\sin\\frac{\\pi}{4} = \\sqrt{2}`: a computation, then its value
    constant = not re.search(r"(?<![A-Za-z\\])[A-Za-z](?![A-Za-z])", side)
    if len(letters) == 1 and constant and strip_string(side) != "0":
        return side  # `b - b^{-1} = \\pm 2\\sqrt{3}`: the quantity asked for, and its value
    bare = re.sub(r"\([^()]*\)|_\{[^{}]*\}|_\w", "", left)  # `\\sin(x - \\frac{\\pi}{3})`
    if _NAME_LIKE.fullmatch(bare) and not re.search(r"\d", bare):
        return side
    return None


def _relations(
    rv: str,
    av: str,
    rrel: tuple[list[str], list[str]] | None,
    arel: tuple[list[str], list[str]] | None,
) -> Outcome:
    if rrel is None or arel is None:
        return Outcome("incorrect", "relation", "relation_mismatch")
    (rparts, rops), (aparts, aops) = rrel, arel
    dr, da = equations.difference(rparts, rops), equations.difference(aparts, aops)
    if dr is not None and da is not None and dr[1] == da[1]:  # `x + 1 = 0` vs `x = -1` too
        c = equations.proportional(dr[0], da[0], positive=dr[1] != "=")
        if c is not None:  # `a - 3b \\ge 0` vs `b \\le \\frac{a}{3}`: exactly, by Math-Verify
            scaled = f"\\frac{{{c.numerator}}}{{{c.denominator}}} ({da[0]})"
            return Outcome(None, "relation", None, ((dr[0], scaled),))
    if rops == ["="] and aops == ["="]:
        sides = [_leaf(x, y) for x, y in zip(rparts, aparts, strict=True)]
        same = _combine(sides, "relation")
        if same.status == "correct":
            return same
        if any(o.status == "correct" for o in sides) and any(
            o.status == "incorrect" and o.stage == "numeric" for o in sides
        ):  # `A = 4` vs `A = 2`: one side the same, the other a different value
            return Outcome("incorrect", "relation", "relation_side")
        return Outcome(None, "math_verify", None, ((rv, av),))  # `y = 2x` vs `2x - y = 0`
    if len(rops) == len(aops):
        if rops == aops:
            pairs = list(zip(rparts, aparts, strict=True))
        elif rops == [_FLIP.get(o, o) for o in reversed(aops)]:
            pairs = list(zip(rparts, reversed(aparts), strict=True))
        else:
            return Outcome("incorrect", "relation", "relation_direction")
        return _combine([_leaf(x, y) for x, y in pairs], "relation")
    return Outcome("incorrect", "relation", "relation_mismatch")


def _sets(ref: str, ans: str) -> Outcome | None:
    rs, as_ = intervals.parse_set(ref), intervals.parse_set(ans)
    if rs is None or as_ is None:
        return None
    if len(rs) != len(as_):
        return Outcome("incorrect", "interval", "interval_count")

    def key(iv: intervals.Interval) -> float:
        return iv.lo.value if iv.lo.value is not None else math.nan

    if all(not math.isnan(key(i)) for i in rs + as_):
        rs, as_ = sorted(rs, key=key), sorted(as_, key=key)
    pending: list[tuple[str, str]] = []
    for x, y in zip(rs, as_, strict=True):
        if x.lo_closed != y.lo_closed or x.hi_closed != y.hi_closed:
            return Outcome("incorrect", "interval", "endpoint_closure")
        for bx, by in ((x.lo, y.lo), (x.hi, y.hi)):
            same = intervals.same_bound(bx, by)
            if same is False:
                return Outcome("incorrect", "interval", "endpoint_value")
            if same is None:
                pending.append((bx.text, by.text))
    if pending:
        return Outcome(None, "interval", None, tuple(pending))
    return Outcome("correct", "interval")


def _match_parts(rparts: list[str], aparts: list[str], unordered: bool) -> Outcome:
    rp = [forms.part(x) for x in rparts]
    ap = [forms.part(x) for x in aparts]
    rnames = [p.name for p in rp]
    anames = [p.name for p in ap]
    named = all(rnames) and all(anames) and len(set(rnames)) == len(rnames)
    if named and sorted(map(str, rnames)) == sorted(map(str, anames)):  # match by name
        by = {p.name: p for p in ap}
        return _combine([_leaf(x.value, by[x.name].value) for x in rp], "components")
    if unordered:  # each reference part matches a distinct answer part, in any order
        got = _unordered(rparts, aparts)
        if got is not None and got.status == "correct":
            return got
    in_order = _combine([_leaf(x, y) for x, y in zip(rparts, aparts, strict=True)], "components")
    if in_order.status != "incorrect" or not unordered:
        return in_order
    got = _unordered(rparts, aparts)
    return in_order if got is None else got


def _unordered(rparts: list[str], aparts: list[str]) -> Outcome | None:
    """A one-to-one matching: decided parts first; then parts of the same float value
    (`\\frac{-1+\\sqrt5}{2}` vs `\\frac{\\sqrt5-1}{2}`) left to the CAS. None: no matching."""
    left = list(aparts)
    pending: list[tuple[str, str]] = []
    for x in rparts:
        hit = next((y for y in left if _leaf(x, y).status == "correct"), None)
        if hit is None:
            hit = next((y for y in left if _same_float(x, y) and _leaf(x, y).pending), None)
            if hit is None:
                return None
            pending.extend(_leaf(x, hit).pending)
        left.remove(hit)
    if pending:
        return Outcome(None, "components", None, tuple(pending))
    return Outcome("correct", "components")


def _same_float(x: str, y: str) -> bool:
    a, b = evaluate(x), evaluate(y)
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def compare(ref: str, ans: str) -> Outcome:
    """Decide `ans` against `ref`, or name the leaf pairs that need Math-Verify."""
    if len(ref) > _MAX_CHARS or len(ans) > _MAX_CHARS:
        return Outcome(None, "math_verify", "too_long", ((ref, ans),))  # the sandbox's job
    if ref.strip() in _SYMBOLS:  # `<`: which of two quantities is larger
        rel = latex.split_relations(ans, equals=True)
        op = ans.strip() if rel is None else (rel[1][0] if len(rel[1]) == 1 else None)
        if op in _SYMBOLS:
            return Outcome("correct" if op == ref.strip() else "incorrect", "relation")
    ans = forms.rename_bound(ref, ans)  # `\\exists x_0 \\ge 0, x_0 - 2 \\le 0`: a bound name
    if (same_time := clock_equal(ref, ans)) is not None:  # `2 PM` vs `14:00`; before strings
        return Outcome("correct" if same_time else "incorrect", "clock")
    ref, ans = presentation.unwrap(ref, ans)
    sr, sa = strip_string(ref), strip_string(ans)
    if sr and sr == sa and not words.texts_differ(ref, ans):
        return Outcome("correct", "string")
    ref, rdecl = forms.cut_quantifier(ref)  # `f(x) = x \\forall x`, `... for constants k, m`
    ans, declared = forms.cut_quantifier(ans)
    (ref, rdom), (ans, adom) = forms.split_domain(ref), forms.split_domain(ans)
    if adom is not None and _NUMBER_SET.fullmatch(adom):  # `(t, t, t), t \\in \\mathbb{R}`
        declared |= set(equations.LETTER.findall(adom))
    if (rdecl or (rdom is not None and _NUMBER_SET.fullmatch(rdom))) and not declared:
        # the reference declares its constants (`x + b, where b is a fixed real number`):
        # the answer's own letters play their part (`x + c`)
        declared = set(equations.LETTER.findall(ans)) - set(equations.LETTER.findall(ref))
    if rdom is not None and adom is not None:  # `(x \\ge -1)` vs `, x \\in [-1, \\infty)`
        dom = _sets(rdom, adom)
        if dom is not None and dom.status == "incorrect":
            return Outcome("incorrect", "interval", "domain")
    rcls, acls = residues.class_of(ref), residues.class_of(ans)
    if rcls is not None and acls is not None and (rcls[1] or acls[1]):  # `even n` vs `n = 2k`
        same = rcls[0] == acls[0]
        return Outcome("correct" if same else "incorrect", "text", None if same else "residue")
    if declared:
        ans = forms.rename_declared(ref, ans, declared)
    if rdom is not None or adom is not None or declared:
        sr, sa = strip_string(ref), strip_string(ans)
        if sr and sr == sa and not words.texts_differ(ref, ans):
            return Outcome("correct", "string")
    both_intervals = intervals.is_interval(ref) and intervals.is_interval(ans)
    if both_intervals or intervals.looks_like_set(ref) or intervals.looks_like_set(ans):
        got = _sets(ref, ans)
        if got is not None:
            return got
    ref, ans = _BUILDER_EQ.sub(r"\1 = \2", ref), _BUILDER_EQ.sub(r"\1 = \2", ans)
    ref, ans = forms.system_to_list(ref), forms.system_to_list(ans)
    ref, ans = equations.expand_chain(ref) or ref, equations.expand_chain(ans) or ans
    ans = equations.derivation(ans) or ans  # `S_n = \\frac{4(4^n-1)}{4-1} = \\frac{4^{n+1}-4}{3}`
    ref, ans = equations.expand_pm_list(ref), equations.expand_pm_list(ans)
    if _PM.search(ref) or _PM.search(ans):
        return Outcome(None, "math_verify", None, ((ref, ans),))  # two signs: the CAS's job
    rt, at = forms.vector_to_tuple(ref), forms.vector_to_tuple(ans)
    if (rt != ref) != (at != ans) and (forms.bracketed(rt) and forms.bracketed(at)):
        ref, ans = rt, at  # a vector against a tuple; two matrices stay matrices
    if THOUSANDS.fullmatch(ref.strip()) and _CURRENCY.match(ans):  # `₹75{,}000`
        ans = _CURRENCY.sub("", ans, count=1)
    if THOUSANDS.fullmatch(ans.strip()):
        ans = ans.replace("{,}", "").replace(",", "")
        if THOUSANDS.fullmatch(ref.strip()):  # `81,213` vs `81{,}213`
            ref = ref.replace("{,}", "").replace(",", "")
    elif THOUSANDS.fullmatch(ref.strip()) and re.fullmatch(r"\s*-?\d+(?:\.\d+)?\s*", ans):
        ref = ref.replace("{,}", "").replace(",", "")  # `81,213` vs `81213`
    ans = _IN_SET.sub("", ans, count=1)  # `a \\in \\{-8, 2\\}` is the list `-8, 2`
    rb, ab = forms.bracketed(ref), forms.bracketed(ans)
    side = _value_side(ans, ans_side=True) if rb is not None and ab is None else None
    if side is not None and (bs := forms.bracketed(side)) is not None:
        ans, ab = side, bs  # `M \\cap N = \\{3, 2\\}`: the set it names
    rc, ac = forms.components(ref), forms.components(ans)
    pr = equations.progression(rb[1] if rb is not None else rc)
    pa = equations.progression(ab[1] if ab is not None else ac)
    if pr is not None and pa is not None:  # `0, 1, 2, \\dots, 45` vs `\\{0, 1, \\dots, 45\\}`
        return Outcome("correct" if pr == pa else "incorrect", "components", "progression")
    if rb is not None and ab is not None:
        if len(rb[1]) != len(ab[1]) or (rb[0], rb[2]) != (ab[0], ab[2]):
            return Outcome("incorrect", "components", "tuple_shape")
        return _match_parts(rb[1], ab[1], unordered=rb[0] == "\\{")
    if rb is not None and ab is None and len(ac) == 1 and not forms.part(ans).name:
        return Outcome("incorrect", "components", "tuple_shape")  # `\\{3, 4\\}` vs `59`
    if rb is not None and len(ac) == len(rb[1]) > 1:
        return _match_parts(rb[1], ac, unordered=rb[0] == "\\{")
    if ab is not None and len(rc) == len(ab[1]) > 1:
        # `(-\\frac14, \\frac14)` against `a = \\frac14, b = -\\frac14`: a tuple is ordered
        names = [forms.part(x).name for x in rc]
        distinct = len(set(names)) == len(names) or not any(names)  # `x = 2, x = 3`: roots
        ordered = ab[0] == "(" and distinct and not re.search(r"\bor\b", ref)
        return _match_parts(rc, ab[1], unordered=not ordered)
    if len(rc) != len(ac) and (said := words.compare(ref, ans)) is not None:
        return Outcome(said, "text")  # `No, it cannot be done` is one answer, not two parts
    if len(rc) > 1 or len(ac) > 1:
        if len(rc) != len(ac):
            return Outcome("incorrect", "components", "component_count")
        letters = all(_LETTER_CHOICE.fullmatch(x) for x in rc)  # `A and D`: choices, a set
        unordered = (
            bool(re.search(r"\bor\b", ref)) or len({forms.part(x).name for x in rc}) == 1 or letters
        )
        return _match_parts(rc, ac, unordered)
    if len(rc) == 1 and len(ac) == 1:  # without a qualifier such as `, k \\in \\mathbb{Z}`
        ref, ans = rc[0], ac[0]
    return _leaf(ref, ans)
