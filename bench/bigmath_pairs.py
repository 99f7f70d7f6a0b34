"""Labelled (reference, answer) pairs built on the real Big-Math references in shared/data.

The references are public data we may use but not copy: they are read from
`../shared/data/bigmath-hard-references.jsonl` at run time and referred to by line number;
only the answers are written here, by rules that imitate how models write answers (an
inequality for an interval, a decimal for an exact value, a bare value for `a_n = ...`)
and how they miss (a different rounding, an open endpoint for a closed one, a flipped
inequality, one wrong component). The generator is deterministic, and the split is fixed
by a hash of each pair's id: 30% of pairs form the frozen test split. Rules of the
verifier are never tuned while looking at that split.

    python bench/bigmath_pairs.py            # counts per category and split
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_DEFAULT = ROOT.parent / "shared" / "data" / "bigmath-hard-references.jsonl"
DATA = Path(os.environ.get("HERO_BIGMATH", _DEFAULT))
MAX_PER_CATEGORY = 260


@dataclass(frozen=True)
class Pair:
    id: str
    line: int  # 1-based line in the shared file
    reference: str
    answer: str
    equivalent: bool
    category: str

    @property
    def split(self) -> str:
        h = int(hashlib.sha1(self.id.encode()).hexdigest()[:8], 16)
        return "test" if h % 10 < 3 else "dev"


def available() -> bool:
    return DATA.is_file()


def references() -> list[tuple[int, str]]:
    out = []
    with DATA.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                out.append((i, str(json.loads(line)["reference"])))
    return out


_INT = re.compile(r"-?\d+")
_DEC = re.compile(r"-?\d+\.(\d+)")
_FRAC = re.compile(r"(-?)\\frac\{(\d+)\}\{(\d+)\}")
_PCT = re.compile(r"(\d+(?:\.\d+)?)\s*\\%")
_DEG = re.compile(r"(\d+)\s*\^\s*\{?\\circ\}?")
_IV = re.compile(r"([(\[])\s*([^,()\[\]]+?)\s*,\s*([^,()\[\]]+?)\s*([)\]])")
_REL = r"(<|>|\\leqslant|\\geqslant|\\leq|\\geq|\\le|\\ge|≤|≥)"
_LREL = r"(<|\\leqslant|\\leq|\\le|≤)"
_INEQ1 = re.compile(r"([a-z])\s*" + _REL + r"\s*([^<>=]+)")
_INEQ2 = re.compile(r"([^<>=]+?)\s*" + _LREL + r"\s*([a-z])\s*" + _LREL + r"\s*([^<>=]+)")
_MESSY = re.compile(r"\\text|\||\\\{|\\mid|\\middle|cases|\bor\b|\band\b|\\neq|\\cup|,")
_EQN = re.compile(r"([A-Za-z](?:_\{?[a-z0-9]+\}?)?(?:\([a-z]\))?)\s*=\s*([^=,<>]+)")
_LIST = re.compile(r"(-?\d+)\s*(?:,|\\text\{\s*and\s*\})\s*(-?\d+)")
_DIGIT = re.compile(r"\d")
GEQ, LEQ = "\\geq", "\\leq"
_LE = {"<": "\\leq", "\\le": "<", "\\leq": "<", "≤": "<", "\\leqslant": "<"}


def _bump(s: str) -> str | None:
    """Change the last digit: a near miss that looks right."""
    m = list(_DIGIT.finditer(s))
    if not m:
        return None
    i = m[-1].start()
    d = int(s[i])
    return s[:i] + str((d + 1) % 10 if d != 9 else 7) + s[i + 1 :]


def _clean(ref: str) -> str:
    return ref.strip().strip("$").strip()


_DAMAGE = {"\x0c": "\\f", "\x08": "\\b", "\t": "\\t", "\r": "\\r", "\x0b": "\\v"}


def _variants(ref: str) -> Iterator[tuple[str, str, bool]]:
    """(category, answer, equivalent) for one reference (a model never writes the JSON
    damage of a reference, so answers are written from an undamaged copy)."""
    r = "".join(_DAMAGE.get(c, c) for c in _clean(ref))
    if _INT.fullmatch(r):
        v = int(r)
        yield "integer", f"{v}", True
        yield "integer", f"x = {v}" if v % 2 else f"{v}.0", True
        yield "integer", str(v + (1 if v % 3 else -1)), False
        return
    m = _DEC.fullmatch(r)
    if m:
        d = len(m.group(1))
        v = Fraction(r)
        yield "decimal", r + "0", True
        yield "decimal", _bump(r) or r, False
        if d >= 2 and not r.endswith("0"):
            yield "decimal", f"{float(v):.{d - 1}f}", False  # less precise
        return
    m = _FRAC.fullmatch(r)
    if m:
        sign, a, b = m.groups()
        fv = Fraction(int(a), int(b)) * (-1 if sign else 1)
        yield "fraction", f"{sign}{a}/{b}", True
        yield "fraction", f"{sign}\\dfrac{{{a}}}{{{b}}}", True
        den = fv.denominator
        while den % 2 == 0 or den % 5 == 0:
            den //= 2 if den % 2 == 0 else 5
        if den > 1 and abs(fv) < 1000:  # a non-terminating value
            shown = f"{float(fv):.3f}"  # an exact reference is not matched by a rounding
            yield "rounding", shown, False
        yield "fraction", f"{sign}\\frac{{{b}}}{{{a}}}" if a != b else f"{sign}{a}", False
        return
    m = _PCT.fullmatch(r)
    if m:
        yield "percent", m.group(1), True
        yield "percent", m.group(1) + "%", True
        yield "percent", (_bump(m.group(1)) or "0") + "\\%", False
        return
    m = _DEG.fullmatch(r)
    if m:
        deg = int(m.group(1))
        fr = Fraction(deg, 180)
        if 0 < deg < 360 and fr.denominator <= 12:
            num = "" if fr.numerator == 1 else str(fr.numerator)
            yield "angle", f"\\frac{{{num}\\pi}}{{{fr.denominator}}}", True
        yield "angle", f"{deg}°", True
        yield "angle", f"{deg + 10}^\\circ", False
        return
    if _MESSY.search(r.replace(",", "", 1) if _IV.fullmatch(r) else r):
        return
    m = _IV.fullmatch(r)
    is_set = "infty" in r or "∞" in r or (m is not None and m.group(1) != m.group(4))
    if m and (is_set or re.search(r"[a-z]", r) is None):
        lo_b, lo, hi, hi_b = m.groups()
        lo_op = "<" if lo_b == "(" else "\\leq"
        hi_op = "<" if hi_b == ")" else "\\leq"
        if "infty" in lo or "∞" in lo:
            if "infty" in hi or "∞" in hi:
                return
            yield "interval", f"x {hi_op} {hi}", True
            yield "interval", f"x {_LE.get(hi_op, '<')} {hi}", False
        elif "infty" in hi or "∞" in hi:
            yield "interval", f"x {lo_op.replace('<', '>').replace('leq', 'geq')} {lo}", True
            wrong = GEQ if lo_op == "<" else ">"
            yield "interval", f"x {wrong} {lo}", False
        else:
            yield "interval", f"{lo} {lo_op} x {hi_op} {hi}", True
            yield "interval", f"\\{{x \\mid {lo} {lo_op} x {hi_op} {hi}\\}}", True
            flip = "[" if lo_b == "(" else "("
            yield "interval", f"{flip}{lo}, {hi}{hi_b}", False
        return
    m = _INEQ2.fullmatch(r)
    if m:
        lo, op1, var, op2, hi = m.groups()
        lb = "(" if op1 == "<" else "["
        rb = ")" if op2 == "<" else "]"
        yield "inequality", f"{lb}{lo.strip()}, {hi.strip()}{rb}", True
        yield "inequality", f"{var} \\in {lb}{lo.strip()}, {hi.strip()}{rb}", True
        yield "inequality", f"{'[' if lb == '(' else '('}{lo.strip()}, {hi.strip()}{rb}", False
        return
    m = _INEQ1.fullmatch(r)
    if m:
        var, op, val = m.groups()
        val = val.strip()
        strict = op in ("<", ">")
        less = op in ("<", "\\le", "\\leq", "\\leqslant", "≤")
        if less:
            yield "inequality", f"(-\\infty, {val}{')' if strict else ']'}", True
        else:
            yield "inequality", f"{'(' if strict else '['}{val}, +\\infty)", True
        flipped = GEQ if less else LEQ
        yield "inequality", f"{var} {flipped} {val}", False
        other = {"<": LEQ, ">": GEQ}.get(op, "<" if less else ">")
        yield "inequality", f"{var} {other} {val}", False
        return
    m = _EQN.fullmatch(r)
    if m and "\\" not in m.group(1):
        rhs = m.group(2).strip()
        yield "equation", rhs, True
        b = _bump(rhs)
        if b is not None and b != rhs:
            yield "equation", b, False
        return
    m = _LIST.fullmatch(r)
    if m:
        a, b = m.groups()
        yield "components", f"{a} \\text{{ and }} {b}", True
        yield "components", f"{a}, {int(b) + 1}", False
        yield "components", f"{a}", False
        return


def pairs() -> list[Pair]:
    """The whole generated set (empty when the shared file is absent)."""
    if not available():
        return []
    out: list[Pair] = []
    per_cat: Counter[str] = Counter()
    for line, ref in references():
        for k, (cat, ans, eq) in enumerate(_variants(ref)):
            if per_cat[cat] >= MAX_PER_CATEGORY or ans.strip() == ref.strip():
                continue
            per_cat[cat] += 1
            out.append(Pair(f"bm-{line}-{k}", line, ref, ans, eq, cat))
    return out


if __name__ == "__main__":
    ps = pairs()
    c = Counter((p.category, p.split, p.equivalent) for p in ps)
    print(f"{len(ps)} pairs; near misses {sum(not p.equivalent for p in ps)}")
    for k, v in sorted(c.items()):
        print(k, v)
