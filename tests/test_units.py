"""Units (verify/units.py): a unit on one side only, spelled differently, or another unit of
the same dimension; what must never be stripped; the guard; end to end through the cascade."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hero_service.verify import units
from hero_service.verify.notation import canonical
from hero_service.verify.repair import repair_reference
from hero_service.verify.rules import RuleVerifier, _guard
from hero_service.verify.semantic import compare
from tests.verifying import label

# (reference, boxed answer): equivalent
EQUIVALENT = [
    (r"\dfrac{5}{3}\pi cm^{3}", r"\frac{5\pi}{3}\ \text{cm}^3"),
    (r"\dfrac{5}{3}\pi cm^{3}", r"\tfrac{5}{3}\pi"),
    (r"50\pi cm^3", r"50\pi\ \text{cm}^3"),
    (r"50\pi cm^3", r"50\pi"),
    (r"825\,J", "825"),
    (r"825\,J", "825 joules"),
    (r"825\,J", r"0.825\ \text{kJ}"),
    (r"1.5 \, \Omega ", r"1.5\ \text{ohms}"),
    (r"100 \, \text{m}", "100 m"),
    (r"100 \, \text{m}", r"0.1\text{ km}"),
    (r"\textdollar{152}", "152"),
    (r"\$3.50", "3.5"),
    ("12", r"12\text{ yuan}"),
    ("12", r"12\text{ dollars}"),
    ("9.1", "9.1 mph"),
    ("12", r"12\text{ hours}"),  # accepted before this module: kept
    ("25.67", r"\dfrac{77}{3}\text{ m/s}"),
    ("36 km/h", r"10 \text{ m/s}"),
    (r"2 \text{ kg}", "2000 g"),
    (r"3 \text{ cm}^2", r"300 \text{ mm}^2"),
    (r"1 \text{ L}", r"1000 \text{ cm}^3"),
    (r"10 \text{ m}/\text{s}", r"36 \text{ kilometers per hour}"),
    (r"5 \text{ cents}", r"\$0.05"),
    ("¥5", r"5\text{ yuan}"),
    (r"4 \text{ hours}", r"240 \text{ minutes}"),
]

NOT_EQUIVALENT = [
    (r"\dfrac{5}{3}\pi cm^{3}", r"\frac{40\pi}{3}\text{ cm}^3"),
    (r"825\,J", r"875\text{ J}"),
    (r"825\,J", r"825\ \text{kJ}"),
    (r"100 \, \text{m}", r"100\text{ km}"),
    (r"100 \, \text{m}", r"100\sqrt{2}\ \text{m}"),
    (r"1.5 \, \Omega ", r"R=0.75\ \Omega"),
    (r"\textdollar{152}", r"\$15.20"),
    (r"3 \text{ m}", r"3 \text{ s}"),
    (r"1 \text{ year}", r"365 \text{ days}"),  # no exact factor: different
    (r"4 \text{ hours}", "6 hours"),
    ("0.71", r"0.75\text{ kg}"),
    (r"5\pi \text{ m}", r"5\pi \text{ km}"),  # same dimension, not rationals: no conversion
    ("2", r"2\pi"),
    ("3", "3e"),
]


def _canon(ref: str, ans: str) -> tuple[str, str]:
    return canonical(repair_reference(ref)), canonical(ans)


@pytest.mark.parametrize(("ref", "ans"), EQUIVALENT)
def test_semantic_stages_accept_a_unit_on_one_side_or_converted(ref: str, ans: str) -> None:
    out = compare(*_canon(ref, ans))
    assert out.status != "incorrect", out


@pytest.mark.parametrize(("ref", "ans"), NOT_EQUIVALENT)
def test_semantic_stages_never_accept_another_value_or_unit(ref: str, ans: str) -> None:
    r, a = _canon(ref, ans)
    out = compare(r, a)  # a whole answer meets the unit guard first (the string stage
    assert _guard(r, a) == "unit_mismatch" or out.status != "correct", out  # drops units)


@pytest.mark.parametrize(
    ("s", "value", "unit"),
    [
        (r"\frac{4\pi}{3} \text{cm}^3", r"\frac{4\pi}{3}", "cm^3"),
        (r"\frac{4}{3}\pi cm^{3}", r"\frac{4}{3}\pi", "cm^3"),
        ("825 joules", "825", "J"),
        ("825 J", "825", "J"),
        (r"1.5 \Omega", "1.5", "ohm"),
        (r"1.5 \text{ohms}", "1.5", "ohm"),
        (r"\textdollar{152}", "152", "dollar"),
        (r"\3.50", "3.50", "dollar"),  # `\\$3.50` once notation dropped the `$`
        (r"12\text{ dollars}", "12", "dollar"),
        (r"7 \text{ yuan}", "7", "yuan"),
        ("€5", "5", "euro"),
        ("9.1 mph", "9.1", "mph"),
        ("60 km/h", "60", "km/h"),
        (r"3 \text{m}/\text{s}", "3", "m/s"),
        ("5 meters per second", "5", "m/s"),
        ("4 square meters", "4", "m^2"),
        (r"12\text{ hours}", "12", "h"),
        ("100 m", "100", "m"),
    ],
)
def test_split_reads_the_unit(s: str, value: str, unit: str) -> None:
    assert units.split(s) == (value, unit)


@pytest.mark.parametrize(
    "s",
    [r"2\pi", "3e", "x", r"5\%", r"90^{\circ}", "2 \\text{ or } 3", "the tower is tall",
     r"465.116 \text{ billion}", "7 apples", "cm", r"\text{m}", "3j", "2 in"],
)  # fmt: skip
def test_split_leaves_values_alone(s: str) -> None:
    assert units.split(s) == (s, None)


def test_a_bare_letter_is_a_unit_only_beside_the_same_unit_or_a_plain_number() -> None:
    assert units.align("5m", "5") == ("5m", "5")  # glued: maybe the variable m
    assert units.align("5 m", "5") == ("5", "5")  # set apart, the other side a number
    assert units.align("5m", "5 m") == ("5", "5")  # the same unit on both sides
    assert units.align(r"2\pi h", r"2\pi") == (r"2\pi h", r"2\pi")  # not beside a number
    assert units.align("x", "5 m") == ("x", "5 m")
    assert units.align("0.05", r"5\%") == ("0.05", r"5\%")  # a percent is a value, not a unit
    assert units.align("5km", "5") == ("5km", "5")  # letters glued to a value: maybe k*m


def test_conversion_is_exact() -> None:
    assert units.align("100 m", r"0.1 \text{km}") == ("100", "100")
    assert units.align(r"1 \text{ mi}", r"1609.344 \text{ m}") == ("1", "1")
    assert units.align(r"1 \text{ ft}", r"12 \text{ in}") == ("1", "1")
    assert units.align(r"1 \text{ h}", r"\frac{1}{3} \text{ s}") == ("1", r"\frac{1}{10800}")
    assert units.align(r"1 \text{ year}", r"365 \text{ days}") is None


def test_the_guard_uses_the_table() -> None:
    assert _guard(canonical(r"100 \, \text{m}"), canonical(r"100\text{ km}")) == "unit_mismatch"
    assert _guard(canonical(r"100 \, \text{m}"), canonical(r"0.1\text{ km}")) is None
    assert _guard(canonical(r"825\,J"), canonical(r"0.825\text{ kJ}")) is None
    assert _guard(canonical("12 hours"), canonical(r"12\text{ minutes}")) == "unit_mismatch"
    assert _guard(canonical("12"), canonical(r"12\text{ minutes}")) is None


@settings(max_examples=200, deadline=None)
@given(
    st.fractions(min_value=0, max_value=10**6, max_denominator=1000),
    st.sampled_from(sorted(units.UNITS)),
    st.sampled_from([" ", r" \text{", r"\ \text{", r" \mathrm{"]),
)
def test_a_number_with_a_spelled_unit_splits_back(v: Fraction, unit: str, sep: str) -> None:
    spelling = units.UNITS[unit][0][-1]  # the longest spelling: a word or a symbol
    if spelling.startswith("\\") or len(spelling) == 1:
        return
    value = (
        f"{v.numerator}" if v.denominator == 1 else f"\\frac{{{v.numerator}}}{{{v.denominator}}}"
    )
    s = canonical(value + sep + spelling + ("}" if "{" in sep else ""))
    got, name = units.split(s)
    assert (got, name) == (value, unit), s
    assert units.align(s, value) == (value, value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_units_never_raise(s: str) -> None:
    units.split(s)
    units.align(s, s[::-1])
    units.mismatch(canonical(s), "5 m")


@pytest.mark.parametrize(("ref", "ans"), EQUIVALENT)
def test_cascade_accepts_units(verifier: RuleVerifier, ref: str, ans: str) -> None:
    assert label(verifier, ref, f"The final answer is $\\boxed{{{ans}}}$.") == 1


@pytest.mark.parametrize(("ref", "ans"), NOT_EQUIVALENT)
def test_cascade_rejects_unit_near_misses(verifier: RuleVerifier, ref: str, ans: str) -> None:
    assert label(verifier, ref, f"The final answer is $\\boxed{{{ans}}}$.") == 0


def test_cascade_reads_a_unit_outside_the_box(verifier: RuleVerifier) -> None:
    assert label(verifier, r"825\,J", r"So the work done is $\boxed{825}$ J.") == 1
    assert label(verifier, r"825\,J", r"So the work done is $\boxed{875}$ J.") == 0
