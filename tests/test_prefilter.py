"""The structural pre-filter: legitimate answers pass, CAS bombs are rejected."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hero_service.verify.prefilter import PrefilterConfig, prefilter

REASONS = {
    "too_long",
    "null_byte",
    "bad_unicode",
    "brace_depth",
    "exponent_tower",
    "huge_number",
    "huge_factorial",
    "log_nesting",
    "sqrt_nesting",
}

# Every limit lifted: the scan runs to the end of a 100k input.
UNLIMITED = PrefilterConfig(
    max_answer_chars=10**9,
    max_brace_depth=10**9,
    max_exponent_depth=10**9,
    max_digits=10**9,
    max_factorial_operand=10**300,
    max_log_nesting=10**9,
    max_sqrt_nesting=10**9,
)

LEGIT = [
    "42",
    "-7",
    "2^{10}",
    "e^{i\\pi}",
    "x^{2^{3}}",
    "e^{e^{e^{e}}}",
    "2^{2^{2^{2}}}",
    "\\frac{\\sqrt{3}}{2}",
    "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
    "\\begin{bmatrix} \\frac{1}{2} & 0 \\\\ 0 & \\frac{1}{2} \\end{bmatrix}",
    "(-\\infty, 3] \\cup [5, \\infty)",
    "\\left[ -\\frac{1}{2}, \\frac{1}{2} \\right)",
    "\\{1, 2, 3\\}",
    "10^{100}",
    "3.14159265358979323846",
    "6.02 \\times 10^{23}",
    "1.6e-19",
    "\\log_2 8",
    "\\log_{2}(\\log_{3} 9)",
    "\\ln 2 \\ln 3 \\ln 5 \\ln 7",
    "\\log x + \\log y + \\log z + \\log w",
    "\\ln|\\ln x|",
    "\\sqrt{2}\\sqrt{3}\\sqrt{5}\\sqrt{7}\\sqrt{11}\\sqrt{13}\\sqrt{17}\\sqrt{19}\\sqrt{23}\\sqrt{29}\\sqrt{31}",
    "\\sqrt{\\sqrt{\\sqrt{2}}}",
    "\\sqrt[3]{2} + \\sqrt[4]{3}",
    "\\sqrt{2+\\sqrt{2+\\sqrt{2}}}",
    "5!",
    "20!",
    "100!",
    "1000!",
    "(5!)!",
    "3!!",
    "10!!",
    "n!",
    "(2n)!",
    "(n+1)!",
    "\\frac{(2n)!}{n!(n+1)!}",
    "\\frac{100!}{98! \\cdot 2!}",
    "\\binom{1000}{3}",
    "(2 \\cdot 5)!",
    "(10-3)!",
    "2^{3}!",
    "x \\neq 100000",
    "x != 100000",
    "\\exp(a)\\exp(b)\\exp(c)\\exp(d)",
    "e^{x}e^{y}e^{z}e^{w}",
    "2^3 + 2^4 + 2^5 + 2^6",
    "\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{2}}}}",
    "\\begin{cases} x & x > 0 \\\\ -x & x \\le 0 \\end{cases}",
    "\\text{Monday}",
    "\\text{(B)}",
    "5\\text{ cm}^2",
    "90^\\circ",
    "50\\%",
    "\\$1,000,000",
    "12345678901234567890123456789012345678901234567890",
    "x^2 + y^2 = r^2",
    "y = 2x + 3",
    "a_{n} = 2^{n-1}",
    "\\pm\\sqrt{5}",
    "\\infty",
    "\\emptyset",
    "\\left\\{ x \\mid x > 0 \\right.",
    "line one\nline two\twith tab",
    "π/2",
    "√2",
    "x²",
    "",
]


@pytest.mark.parametrize("answer", LEGIT)
def test_legitimate_answers_pass(answer: str) -> None:
    assert prefilter(answer) is None


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("1" * 1001, "too_long"),
        ("x" * 5000, "too_long"),
        ("1\x00", "null_byte"),
        ("\\boxed{\x00}", "null_byte"),
        ("5\ud800", "bad_unicode"),
        ("5\x07", "bad_unicode"),
        ("5\x1b[31m", "bad_unicode"),
        ("5\x7f", "bad_unicode"),
        ("abc\u202edcba", "bad_unicode"),
        ("{" * 41 + "1" + "}" * 41, "brace_depth"),
        ("(" * 41 + "1" + ")" * 41, "brace_depth"),
        ("[" * 60, "brace_depth"),
        ("2^{2^{2^{2^{2}}}}", "exponent_tower"),
        ("10^{10^{10^{10^{10}}}}", "exponent_tower"),
        ("x^{x^{x^{x^{x}}}}", "exponent_tower"),
        ("2^2^2^2^2", "exponent_tower"),
        ("2**3**4**5**6", "exponent_tower"),
        ("2**(3**(4**(5**6)))", "exponent_tower"),
        ("2^{3}^{4}^{5}^{6}", "exponent_tower"),
        ("\\exp(\\exp(\\exp(\\exp(1))))", "exponent_tower"),
        ("e^{\\exp(\\exp(\\exp(1)))}", "exponent_tower"),
        ("1" * 401, "huge_number"),
        ("0." + "3" * 500, "huge_number"),
        ("10^{" + "9" * 401 + "}", "huge_number"),
        ("1000000!", "huge_factorial"),
        ("1001!", "huge_factorial"),
        ("(10^{10})!", "huge_factorial"),
        ("\\left(10^{10}\\right)!", "huge_factorial"),
        ("10^{10}!", "huge_factorial"),
        ("10^{10} !", "huge_factorial"),
        ("2**100!", "huge_factorial"),
        ("(10!)!", "huge_factorial"),
        ("((4!)!)!", "huge_factorial"),
        ("(500+600)!", "huge_factorial"),
        ("(2 \\cdot 10^{3})!", "huge_factorial"),
        ("{10^{10}}!", "huge_factorial"),
        ("(\\sqrt{10^{40}})!", "huge_factorial"),
        ("(\\pi^{100})!", "huge_factorial"),
        ("\\log\\log\\log\\log x", "log_nesting"),
        ("\\ln(\\ln(\\ln(\\ln(x))))", "log_nesting"),
        ("\\log_{2}(\\log_{2}(\\log_{2}(\\log_{2}(16))))", "log_nesting"),
        ("log(log(log(log(x))))", "log_nesting"),
        ("\\ln|\\ln|\\ln|\\ln x|||", "log_nesting"),
        ("\\sqrt{" * 11 + "2" + "}" * 11, "sqrt_nesting"),
        ("\\sqrt" * 11 + "2", "sqrt_nesting"),
        ("sqrt(" * 11 + "2" + ")" * 11, "sqrt_nesting"),
    ],
)
def test_hostile_answers_rejected(answer: str, reason: str) -> None:
    assert prefilter(answer) == reason


def test_default_config() -> None:
    cfg = PrefilterConfig()
    assert dataclasses.asdict(cfg) == {
        "max_answer_chars": 1000,
        "max_brace_depth": 40,
        "max_exponent_depth": 3,
        "max_digits": 400,
        "max_factorial_operand": 1000,
        "max_log_nesting": 3,
        "max_sqrt_nesting": 10,
        "max_distinct_boxed": 3,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_digits = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("answer", "cfg", "reason"),
    [
        ("12345", PrefilterConfig(max_answer_chars=4), "too_long"),
        ("12345", PrefilterConfig(max_digits=4), "huge_number"),
        ("{{1}}", PrefilterConfig(max_brace_depth=1), "brace_depth"),
        ("x^{2^{3}}", PrefilterConfig(max_exponent_depth=1), "exponent_tower"),
        ("21!", PrefilterConfig(max_factorial_operand=20), "huge_factorial"),
        ("\\log(\\log x)", PrefilterConfig(max_log_nesting=1), "log_nesting"),
        ("\\sqrt{\\sqrt{2}}", PrefilterConfig(max_sqrt_nesting=1), "sqrt_nesting"),
        ("1" * 401, UNLIMITED, None),
        ("2^{2^{2^{2^{2}}}}", UNLIMITED, None),
        ("(10^{10})!", UNLIMITED, None),
    ],
)
def test_custom_config(answer: str, cfg: PrefilterConfig, reason: str | None) -> None:
    assert prefilter(answer, cfg) == reason


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(answer: str) -> None:
    assert prefilter(answer) in REASONS | {None}
    assert prefilter(answer, UNLIMITED) in REASONS | {None}


LATEXY = st.lists(
    st.sampled_from(
        [
            *"{}()[]^_!*=+-/|.,0123456789 xne",
            *("**", "\\log", "\\ln", "\\sqrt", "\\exp", "\\frac", "\\left", "\\right"),
            *("\\cdot", "\\{", "\\}", "\\\\", "\\pi", "log", "sqrt", "999999"),
        ]
    ),
    max_size=80,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(LATEXY)
def test_never_raises_on_latexy_text(answer: str) -> None:
    assert prefilter(answer) in REASONS | {None}
    assert prefilter(answer, UNLIMITED) in REASONS | {None}


HOSTILE_UNITS = [
    "{",
    "}",
    "(",
    "^{",
    "2^",
    "**",
    "x^",
    "\\exp(",
    "\\log(",
    "\\ln ",
    "\\sqrt{",
    "\\sqrt",
    "\\sqrt[",
    "_{",
    "1",
    "9!",
    "(3)!",
    ")!",
    "}!",
    "1 !",
    "1.",
    "!",
    "2^{3}!",
    "^ ",
    "\\left(",
    "\\",
    "\\{",
    " ",
]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.sampled_from(HOSTILE_UNITS), st.text(max_size=8))
def test_finishes_on_100k_hostile_text(unit: str, filler: str) -> None:
    piece = unit + filler
    text = (piece * (100_000 // len(piece) + 1))[:100_000]
    assert prefilter(text) == "too_long"
    assert prefilter(text, UNLIMITED) in REASONS | {None}


@pytest.mark.parametrize("unit", HOSTILE_UNITS)
def test_finishes_on_100k_repetition(unit: str) -> None:
    text = unit * (100_000 // len(unit))
    for answer in (text, "(" + text + ")!", "(" + text + ")" * 1000 + "!"):
        assert prefilter(answer, UNLIMITED) in REASONS | {None}
