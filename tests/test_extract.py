"""Answer extraction: boxed / "the answer is" / "Answer:" lines, and multiple choice."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hero_service.verify.extract import (
    Extraction,
    all_boxed,
    extract_answer,
    extract_choice,
    last_boxed,
    normalize_choice,
)

LATEXY = st.lists(
    st.sampled_from(
        [
            *"\\{}[]()$^_!=:.,;*#- \n\tABCDEabcxyz0123456789",
            *("\\boxed", "\\fbox", "\\boxed ", "\\text", "answer", "The answer is", "Answer:"),
        ]
    ),
    max_size=60,
).map("".join)

HOSTILE_UNITS = [
    "\\boxed{",
    "\\boxed",
    "\\boxed ",
    "\\fbox{",
    "{",
    "}",
    "\\{",
    "\\\\",
    "\\boxed{\\boxed{",
    "\\boxed{}",
    "the answer is ",
    "The final answer is ",
    "final answer",
    "final answer ",
    "Answer:",
    "\nAnswer: ",
    "answer ",
    "\n",
    " ",
    "$",
    "A or ",
    "ABCDE",
    "\\text{(",
    "*",
    ".",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So the result is \\boxed{42}.", "42"),
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}"),
        (
            "\\boxed{\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}}",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        ),
        ("\\boxed{a^{b^{c}}}", "a^{b^{c}}"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\boxed{\\}}", "\\}"),
        ("\\fbox{7}", "7"),
        ("\\boxed{3} and finally \\fbox{4}", "4"),
        ("The answer is $\\boxed 5$.", "5"),
        ("so \\boxed 12 is it\n", "12 is it"),
        ("\\boxed {6}", "6"),
        ("\\boxed{\\boxed{9}}", "9"),
        ("\\boxed{ \\boxed{ 9 } }", " 9 "),
        ("\\boxed{\\text{(B)}}", "\\text{(B)}"),
        ("\\boxed{}", ""),
        ("no box here", None),
        ("\\boxed{3} then truncated \\boxed{4", None),
        ("\\boxed{", None),
        ("\\boxed", None),
        ("\\boxedx{5}", None),
        ("\\boxed{{}", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("\\boxed{1}, \\boxed{2} and \\fbox{3}", ["1", "2", "3"]),
        ("\\boxed{x \\boxed{1}} \\boxed{2}", ["x \\boxed{1}", "2"]),
        ("\\boxed{\\boxed{1}} \\boxed{2", ["1"]),
        ("\\boxed{A}\\boxed{B}\\boxed{C}\\boxed{D}", ["A", "B", "C", "D"]),
    ],
)
def test_all_boxed(text: str, expected: list[str]) -> None:
    assert all_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "answer", "source", "n_boxed"),
    [
        # boxed wins over everything
        ("The answer is 3.\nThus \\boxed{4}", "4", "boxed", 1),
        ("Step 1 gives \\boxed{2}. Final: \\boxed{ 5 }", "5", "boxed", 2),
        ("\\[\\boxed{x = \\frac{\\pi}{2}}\\]", "x = \\frac{\\pi}{2}", "boxed", 1),
        # empty or truncated final box -> the text patterns
        ("I'll write \\boxed{}.\nThe answer is 6.", "6", "answer_is", 1),
        ("The answer is 7. \\boxed{8", "7", "answer_is", 0),
        # "the answer is" / "final answer"
        ("Therefore, the answer is 12.", "12", "answer_is", 0),
        ("So the answer is $\\frac{3}{4}$.", "\\frac{3}{4}", "answer_is", 0),
        ("The answer is: **42**.", "42", "answer_is", 0),
        ("the answer is 3.5. Done.", "3.5", "answer_is", 0),
        ("The final answer is \\(x=2\\).", "x=2", "answer_is", 0),
        ("the answer is 1\nbut wait, the answer is 2\n", "2", "answer_is", 0),
        (
            "Final Answer: The final answer is $\\sqrt{2}$. I hope it is correct.",
            "\\sqrt{2}",
            "answer_is",
            0,
        ),
        ("**Final Answer:** 17", "17", "answer_is", 0),
        ("## Final Answer\n\n$x=3$\n", "x=3", "answer_is", 0),
        ("THE ANSWER IS (1, 2)", "(1, 2)", "answer_is", 0),
        # Minerva / DAPO style "Answer:" line
        ("work...\nAnswer: 3.5\n", "3.5", "answer_line", 0),
        ("Answer: $-1$", "-1", "answer_line", 0),
        ("**Answer**: 10", "10", "answer_line", 0),
        ("Answer: 1\nAnswer: 2", "2", "answer_line", 0),
        # nothing usable
        ("I am not sure.", None, "none", 0),
        ("", None, "none", 0),
        ("Let me compute the final answer carefully", None, "none", 0),
        ("The answer is", None, "none", 0),
        ("Answer:   ", None, "none", 0),
    ],
)
def test_extract_answer(text: str, answer: str | None, source: str, n_boxed: int) -> None:
    assert extract_answer(text) == Extraction(answer, source, n_boxed)  # type: ignore[arg-type]


def test_extraction_is_frozen() -> None:
    ex = extract_answer("\\boxed{1}")
    with pytest.raises(AttributeError):
        ex.answer = "2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{B}", "B"),
        ("\\boxed{(B)}", "B"),
        ("\\boxed{\\text{(B)}}", "B"),
        ("\\boxed{\\textbf{B}}", "B"),
        ("\\boxed{\\mathrm{D}}", "D"),
        ("\\boxed{B)}", "B"),
        ("\\boxed{B.}", "B"),
        ("\\boxed{b}", "B"),
        ("\\boxed{(c)}", "C"),
        ("\\boxed{(B) 42}", "B"),
        ("\\boxed{Option B}", "B"),
        ("I first thought \\boxed{A}, but the correct one is \\boxed{C}", "C"),
        ("The answer is (C).", "C"),
        ("Answer: D", "D"),
        ("**Final Answer:** E", "E"),
        # hedging / reward hacking: more than one letter
        ("\\boxed{A, B}", None),
        ("\\boxed{A or C}", None),
        ("\\boxed{ABCD}", None),
        ("\\boxed{ACE}", None),
        ("\\boxed{\\text{A}\\text{B}}", None),
        ("\\boxed{(A) and (B)}", None),
        ("\\boxed{Both A and B}", None),
        ("The answer is A or B.", None),
        # not a choice
        ("\\boxed{F}", None),
        ("\\boxed{42}", None),
        ("\\boxed{\\frac{1}{2}}", None),
        ("no answer", None),
        ("\\boxed{}", None),
    ],
)
def test_extract_choice(text: str, expected: str | None) -> None:
    assert extract_choice(text) == expected


def test_extract_choice_custom_choices() -> None:
    assert extract_choice("\\boxed{F}", choices="ABCDEFGHIJ") == "F"
    assert extract_choice("\\boxed{E}", choices="ABCD") is None
    assert extract_choice("\\boxed{(j)}", choices="abcdefghij") == "J"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("b", "B"),
        (" (d) ", "D"),
        ("\\text{(C)}", "C"),
        ("$A$", "A"),
        ("Option B", "B"),
        ("Answer: E", "E"),
        ("[A]", "A"),
        ("AB", None),
        ("5", None),
        ("", None),
        ("\\frac{1}{2}", None),
        ("A or B", None),
    ],
)
def test_normalize_choice(ref: str, expected: str | None) -> None:
    assert normalize_choice(ref) == expected


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(text: str) -> None:
    ex = extract_answer(text)
    assert ex.source in ("boxed", "answer_is", "answer_line", "none")
    assert ex.answer is None or (ex.answer and ex.answer == ex.answer.strip())
    assert ex.n_boxed == len(all_boxed(text))
    assert last_boxed(text) is None or isinstance(last_boxed(text), str)
    choice = extract_choice(text)
    assert choice is None or choice in "ABCDE"
    gold = normalize_choice(text)
    assert gold is None or (len(gold) == 1 and gold.isupper())


@settings(max_examples=300, deadline=None)
@given(LATEXY)
def test_never_raises_on_latexy_text(text: str) -> None:
    ex = extract_answer(text)
    if ex.source == "boxed":
        assert ex.answer == (last_boxed(text) or "").strip()
    extract_choice(text)
    normalize_choice(text)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.sampled_from(HOSTILE_UNITS), st.text(max_size=8))
def test_finishes_on_100k_hostile_text(unit: str, filler: str) -> None:
    piece = unit + filler
    text = (piece * (100_000 // len(piece) + 1))[:100_000]
    extract_answer(text)
    all_boxed(text)
    last_boxed(text)
    extract_choice(text)
    normalize_choice(text)


@pytest.mark.parametrize("unit", HOSTILE_UNITS)
def test_finishes_on_100k_repetition(unit: str) -> None:
    text = unit * (100_000 // len(unit))
    for wrapped in (text, "\\boxed{" + text + "}", text + "\nThe answer is 5."):
        ex = extract_answer(wrapped)
        assert ex.n_boxed >= 0
        extract_choice(wrapped)
