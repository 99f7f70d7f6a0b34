"""Units: split a trailing (or leading currency) unit off an answer and compare two units.

`split(s)` returns `(value, canonical unit or None)`: `\\frac{4\\pi}{3} \\text{cm}^3` ->
(`\\frac{4\\pi}{3}`, `cm^3`), `825 joules` -> (`825`, `J`), `\\textdollar{152}` ->
(`144`, `dollar`), `1.5 \\Omega` -> (`1.5`, `ohm`). `align(ref, ans)` is what the semantic
stage and the `unit_mismatch` guard use: the same unit, or a unit on one side only, leaves
the two values to compare; two units of one dimension with exact factors (km/m/cm/mm, kg/g,
h/min/s, kJ/J, ...) convert the answer's value to the reference's unit when both values are
exact rationals; anything else is a mismatch (`None`). Nothing that changes a value is ever
stripped: `2\\pi`, `3e`, `5\\%`, `90^{\\circ}` keep their symbols, and a bare single letter
(`5 m`, `3s`, `2\\pi h`) is read as a unit only when the other side has the same unit, or it
is set apart by a space and the other side is a plain number.

Input is in `notation.canonical` form (`\\,` and `\\ ` are spaces, `\\$` has lost its `$`).
One tokenising pass plus a bounded look at the last few tokens: linear time; no evaluation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from hero_service.verify.numeval import exact_value

__all__ = ["UNITS", "Unit", "align", "mismatch", "split", "split_unit"]

F = Fraction
# canonical unit -> (spellings, dimension, factor to the dimension's base unit); units outside
# this table are never stripped nor compared. Factors are exact (the inch is 0.0254 m by
# definition); month and year get their own dimension: no exact number of days.
UNITS: dict[str, tuple[tuple[str, ...], str, Fraction]] = {
    # length (base: metre)
    "mm": (("mm", "millimeter", "millimetre"), "L", F(1, 1000)),
    "cm": (("cm", "centimeter", "centimetre"), "L", F(1, 100)),
    "dm": (("dm", "decimeter", "decimetre"), "L", F(1, 10)),
    "m": (("m", "meter", "metre"), "L", F(1)),
    "km": (("km", "kilometer", "kilometre"), "L", F(1000)),
    "in": (("in", "inch", "inche"), "L", F(254, 10000)),
    "ft": (("ft", "foot", "feet"), "L", F(3048, 10000)),
    "yd": (("yd", "yard"), "L", F(9144, 10000)),
    "mi": (("mi", "mile"), "L", F(1609344, 1000)),
    # mass (base: gram)
    "mg": (("mg", "milligram"), "M", F(1, 1000)),
    "g": (("g", "gram"), "M", F(1)),
    "kg": (("kg", "kilogram", "kilo"), "M", F(1000)),
    "t": (("tonne", "ton"), "M", F(10**6)),
    "lb": (("lb", "lbs", "pound"), "M", F(45359237, 100000)),
    "oz": (("oz", "ounce"), "M", F(45359237, 1600000)),
    # time (base: second)
    "s": (("s", "sec", "second"), "T", F(1)),
    "min": (("min", "minute"), "T", F(60)),
    "h": (("h", "hr", "hrs", "hour"), "T", F(3600)),
    "day": (("day",), "T", F(86400)),
    "week": (("week", "wk"), "T", F(604800)),
    "month": (("month",), "Y", F(1)),
    "year": (("year", "yr", "yrs"), "Y", F(12)),
    # volume (base: cubic metre, so that 1 mL = 1 cm^3)
    "ml": (("ml", "milliliter", "millilitre"), "L3", F(1, 10**6)),
    "l": (("l", "liter", "litre"), "L3", F(1, 1000)),
    # speeds written as one word
    "km/h": (("kmh", "kph", "km/h"), "L/T", F(1000, 3600)),
    "mph": (("mph",), "L/T", F(1609344, 3600000)),
    # physics
    "J": (("J", "joule"), "E", F(1)),
    "kJ": (("kj", "kilojoule"), "E", F(1000)),
    "W": (("W", "watt"), "P", F(1)),
    "kW": (("kw", "kilowatt"), "P", F(1000)),
    "V": (("V", "volt"), "U", F(1)),
    "ohm": (("ohm", "Ω"), "R", F(1)),
    "kohm": (("kohm", "kiloohm", "kilohm"), "R", F(1000)),
    # money: one dimension per currency
    "dollar": (("dollar", "usd", "$", "\\$", "\\textdollar"), "$", F(1)),
    "cent": (("cent", "¢"), "$", F(1, 100)),
    "yuan": (("yuan", "rmb", "¥", "元", "\\yen"), "¥", F(1)),
    "euro": (("euro", "eur", "€", "\\euro"), "€", F(1)),
    "gbp": (("£", "\\pounds"), "£", F(1)),
    "rupee": (("₹", "rs", "inr", "rupee"), "₹", F(1)),
}
_OF = {alias: canon for canon, (names, _, _) in UNITS.items() for alias in names}
_LETTERS = frozenset("mgshlLJWVΩ")  # the single-letter spellings, case-sensitive
_POWER_WORDS = {"square": 2, "sq": 2, "cubic": 3, "cu": 3}

_TOKEN = re.compile(
    r"\\(?:text|mathrm|textrm|mbox|textnormal|operatorname|mathit)\s*\{(?P<grp>[^{}]*)\}"
    r"|(?P<cur>\\textdollar|\\\$|\\(?=\d)|\\euro|\\yen|\\pounds|[¥€£$¢元₹])"
    r"|(?P<omega>\\Omega(?![A-Za-z])|Ω)"
    r"|(?P<cmd>\\[A-Za-z]+)"
    r"|(?P<word>[A-Za-z]+)"
    r"|(?P<exp>\^\s*\{\s*-?\d\s*\}|\^\s*-?\d)"
    r"|(?P<slash>/)"
    r"|(?P<sp>\s+)"
    r"|(?P<other>.)",
    re.DOTALL,
)
_MAX_UNIT_TOKENS = 10  # `\text{kilometers} \text{ per } \text{hour}`: a unit is short
# a short unit-like `\\text{..}` after a number that the table does not know
_UNKNOWN = re.compile(r"\d\s*\\(?:text|mathrm)\s*\{\s*[A-Za-z]{1,4}\s*\}(?:\^\s*\{?\d\}?)?\s*$")
_VALUE_END = re.compile(r"(?:\d|\}|\)|\]|\\pi)$")


@dataclass(frozen=True)
class Unit:
    name: str  # canonical spelling: `cm^3`, `km/h`, `J`
    dims: tuple[tuple[str, int], ...]
    factor: Fraction  # to the base unit of `dims`
    ambiguous: bool = False  # a bare letter, or letters glued to the value: maybe variables
    spaced: bool = False  # set apart from the value by a space


@dataclass(frozen=True)
class _Split:
    value: str
    unit: Unit | None


def _atom(word: str, explicit: bool) -> str | None:
    """The canonical atom of one spelling; single letters are case-sensitive (`J`, not `j`),
    plurals are read off (`joules`, `inches`), and a bare `in` is the word, not the inch."""
    if len(word) == 1:
        return _OF.get(word if word in "JWVΩ" else word.lower()) if word in _LETTERS else None
    w = word.lower()
    if w == "in" and not explicit:
        return None
    for cand in (w, w[:-1] if len(w) > 3 and w.endswith("s") else ""):
        if cand in _OF:
            return _OF[cand]
    return None


def _phrase(items: list[tuple[str, str]], explicit: bool) -> Unit | None:
    """A unit from words, exponents and slashes in reading order, or None."""
    num: list[tuple[str, int]] = []
    den: list[tuple[str, int]] = []
    side, pending = num, 0
    for kind, text in items:
        low = text.lower()
        if kind == "slash" or low == "per":
            if side is den or not num:
                return None
            side = den
        elif kind == "exp":
            power = int(re.sub(r"[^\d-]", "", text))
            if not side or power == 0:
                return None
            side[-1] = (side[-1][0], power)
        elif low in _POWER_WORDS and pending == 0:
            pending = _POWER_WORDS[low]
        else:
            atom = _atom(text, explicit)
            if atom is None:
                return None
            side.append((atom, pending or 1))
            pending = 0
    if not num or pending:
        return None
    dims: dict[str, int] = {}
    factor = F(1)
    for atoms, sign in ((num, 1), (den, -1)):
        for atom, power in atoms:
            _, dim, f = UNITS[atom]
            dims[dim] = dims.get(dim, 0) + sign * power
            factor *= f ** (sign * power)
    if "L3" in dims:  # litres are cubic metres
        dims["L"] = dims.get("L", 0) + 3 * dims.pop("L3")
    if "L/T" in dims:
        p = dims.pop("L/T")
        dims["L"], dims["T"] = dims.get("L", 0) + p, dims.get("T", 0) - p
    name = "/".join(
        "".join(a + (f"^{p}" if p != 1 else "") for a, p in atoms) for atoms in (num, den) if atoms
    )
    return Unit(name, tuple(sorted((d, p) for d, p in dims.items() if p)), factor)


def _unit_items(tokens: list[re.Match[str]]) -> tuple[list[tuple[str, str]], bool] | None:
    """Words, exponents and slashes of unit tokens; whether any came from `\\text{...}`."""
    items: list[tuple[str, str]] = []
    explicit = False
    for t in tokens:
        kind = t.lastgroup or "other"
        if kind == "grp":
            inner = [m for m in _TOKEN.finditer(t.group("grp")) if m.lastgroup != "sp"]
            if not inner or any(
                m.lastgroup not in ("word", "exp", "slash", "omega") for m in inner
            ):
                return None
            items += [
                ("word", "Ω") if m.lastgroup == "omega" else (m.lastgroup or "", m.group())
                for m in inner
            ]
            explicit = True
        elif kind == "omega":
            items.append(("word", "Ω"))
            explicit = True
        elif kind in ("word", "exp", "slash"):
            items.append((kind, t.group()))
    return items, explicit


def split_unit(s: str) -> tuple[str, Unit | None]:
    """The value and its unit (None: no unit from the table; the value is then `s`)."""
    text = s.strip()
    tokens = list(_TOKEN.finditer(text))
    # a leading currency sign: `\\textdollar{152}`, `\\$3.50` (canonical: `\\3.50`), `¥5`
    lead = 1 if tokens and tokens[0].group() == "-" else 0
    if len(tokens) > lead + 1 and tokens[lead].lastgroup == "cur":
        rest = text[tokens[lead].end() :].strip()
        if rest.startswith("{") and rest.endswith("}") and rest.count("{") == 1:
            rest = rest[1:-1].strip()
        sym = tokens[lead].group()
        name = _OF.get("\\$" if sym == "\\" else sym)
        if name is not None and re.fullmatch(r"\d[\d.,]*", rest):  # a plain amount
            value = ("-" if lead else "") + rest
            u = UNITS[name]
            return value, Unit(name, ((u[1], 1),), u[2])
    i = len(tokens)
    while i > 0 and tokens[i - 1].lastgroup == "sp":
        i -= 1
    end = i
    while i > 0 and tokens[i - 1].lastgroup in ("grp", "omega", "word", "exp", "slash", "sp"):
        i -= 1
        if end - i > _MAX_UNIT_TOKENS:
            return s, None
    for j in range(i, end):  # the longest tail that is a unit: `the tower is 100 m` is not
        if tokens[j].lastgroup in ("sp", "exp", "slash"):
            continue
        got = _unit_items(tokens[j:end])
        if got is None or not got[0]:
            continue
        items, explicit = got
        unit = _phrase(items, explicit)
        value = text[: tokens[j].start()].rstrip()
        if unit is not None and any(c.isdigit() for c in value) and _VALUE_END.search(value):
            spaced = j > 0 and tokens[j - 1].lastgroup == "sp"
            # a bare letter, or bare letters glued to the value (`5m`, `2km`), may be a variable
            words = [w for k, w in items if k == "word"]
            bare = not explicit and (not spaced or (len(words) == 1 and len(words[0]) == 1))
            return value, Unit(unit.name, unit.dims, unit.factor, bare, spaced)
    if end > 0 and tokens[end - 1].lastgroup == "cur" and end > 1:  # `144¥`
        sym = tokens[end - 1].group()
        value = text[: tokens[end - 1].start()].rstrip()
        name = _OF.get(sym)
        if name is not None and value and value[-1].isdigit():
            u = UNITS[name]
            return value, Unit(name, ((u[1], 1),), u[2])
    return s, None


def split(s: str) -> tuple[str, str | None]:
    """`(value, canonical unit)`; `(s, None)` when no unit from the table ends `s`."""
    value, unit = split_unit(s)
    return value, None if unit is None else unit.name


def _plain(value: str) -> bool:
    return exact_value(value.strip()) is not None


def _resolve(ref: str, ans: str) -> tuple[_Split, _Split]:
    """Both sides split; an ambiguous bare letter counts as a unit only when the other side
    has the same unit, or it is set apart by a space and the other side is a plain number."""
    r, a = _Split(*split_unit(ref)), _Split(*split_unit(ans))

    def keep(x: _Split, y: _Split, y_raw: str) -> _Split:
        if x.unit is None or not x.unit.ambiguous:
            return x
        if y.unit is not None and y.unit.name == x.unit.name:
            return x
        other = y.value if y.unit is not None and not y.unit.ambiguous else y_raw
        if x.unit.spaced and _plain(other):
            return x
        return _Split("", None)

    r2, a2 = keep(r, a, ans), keep(a, r, ref)
    return (r2 if r2.unit else _Split(ref, None)), (a2 if a2.unit else _Split(ans, None))


def _fraction(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def align(ref: str, ans: str) -> tuple[str, str] | None:
    """The two values to compare, the answer's in the reference's unit; None: the units
    differ (another dimension, or a conversion that needs more than exact rationals)."""
    r, a = _resolve(ref, ans)
    if r.unit is None or a.unit is None:
        return r.value.strip(), a.value.strip()
    if (r.unit.dims, r.unit.factor) == (a.unit.dims, a.unit.factor):
        return r.value.strip(), a.value.strip()
    if r.unit.dims != a.unit.dims:
        return None
    rv, av = exact_value(r.value.strip()), exact_value(a.value.strip())
    if rv is None or av is None:
        return None
    return r.value.strip(), _fraction(av * a.unit.factor / r.unit.factor)


def mismatch(ref: str, ans: str) -> bool:
    """Both sides carry units from the table that are not the same quantity: the guard."""
    r, a = _resolve(ref, ans)
    if (r.unit is None) != (a.unit is None):  # `40 \\text{m}^2` vs `40 \\text{dam}^2`
        return _UNKNOWN.search(ans if r.unit is not None else ref) is not None
    if r.unit is None or a.unit is None:
        return False
    if (r.unit.dims, r.unit.factor) == (a.unit.dims, a.unit.factor):
        return False
    got = align(ref, ans)
    return got is None or exact_value(got[0]) != exact_value(got[1])
