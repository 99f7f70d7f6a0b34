"""Answer extraction: boxed / "the answer is" / "Answer:" lines, the concluding-maths
fallback (`last_math`), and multiple choice."""

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
    "**",
    "\\(",
    "\\[",
    "$$",
    "so it is 1, ",
    "1,000,",
    "1:",
    "$x$ for ",
    ". So x is $1$",
    " or ",
    "x = 1 = ",
    "\\in\\mathbb{R}",
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


# The fallback: the maths the final sentence concludes with (verify/conclude.py). One row
# per family, then the near misses that must stay `none` (or keep a hedge visible).
@pytest.mark.parametrize(
    ("text", "answer"),
    [
        # a bold span
        (
            "The product is non-positive between the roots, so the set is **0 ≤ x ≤ 1**.",
            "0 ≤ x ≤ 1",
        ),
        ("Comparing the two cases, the triangle is **obtuse**.", "obtuse"),
        ("**So the limit equals $e^{-2}$.**", "e^{-2}"),
        # a chain: the last side, the name kept; an equation is not a chain result
        ("The axis of symmetry is the line $x = \\frac{-4+2}{2} = -1$.", "x = -1"),
        ("Thus $BN = 12\\cdot\\frac{\\sqrt3}{2} = 6\\sqrt{3}$.", "BN = 6\\sqrt{3}"),
        ("The value in February was $(1-10\\%)a = 0.9a$ billion yuan.", "0.9a"),
        ("Hence the axis is $x + 1 = 0$.", "x + 1 = 0"),
        ("So $a = b = 2$.", "a = b = 2"),
        ("So $x = 3 = 4$.", "x = 3 = 4"),
        ("Therefore $S = n(n+1)/2 = 10$.", "S = n(n+1)/2 = 10"),
        # the first maths span, a trailing qualifier skipped
        (
            "Therefore $f(x)=\\frac{2}{3}x+\\frac{2}{3}-\\frac{1}{3x}$ for $x\\neq 0$.",
            "f(x)=\\frac{2}{3}x+\\frac{2}{3}-\\frac{1}{3x}",
        ),
        ("So $y = 12-2x$, where $3 < x < 6$.", "y = 12-2x"),
        ("Hence the maximum is $5$ when $x = 2$.", "5"),
        (
            "Thus $x = \\frac{\\pi}{4} + k\\pi$, $k \\in \\mathbb{Z}$.",
            "x = \\frac{\\pi}{4} + k\\pi",
        ),
        ("So the angle is $90^\\circ$ (a right angle).", "90^\\circ"),
        ("Therefore $a$ satisfies $1 < a < 3$.", "1 < a < 3"),
        ("Thus \\(x = 4\\).", "x = 4"),
        ("Hence\n\\[ y = 2x + 1. \\]", "y = 2x + 1"),
        # a number, with its unit words
        ("The average Erdős number is approximately 4.65.", "4.65"),
        ("Since $a<b$ we must have $A<B$, so $A$ measures 30 degrees.", "30 degrees"),
        ("So the two options differ by 144 dollars.", "144 dollars"),
        ("Thus the iron block's volume is 50π cubic centimeters.", "50π cubic centimeters"),
        ("Thus the senior class is twice the junior, i.e. the ratio is 2 to 1.", "2 to 1"),
        ("So the population will be 81,213.", "81,213"),
        ("The LCM is 12, so they meet after 12 hours.", "12 hours"),
        ("So Johnny jogs at $v \\approx 9.1$ miles per hour.", "v \\approx 9.1"),
        # a list stays a list; a hedge stays visible to the hedge guard
        (
            "All solutions are $(t,3t,6t)$ and $(t,2t,3t)$ for any positive integer $t$.",
            "(t,3t,6t) and (t,2t,3t)",
        ),
        ("So it is 3 or 4.", "3 or 4"),
        ("Hence $a = 2$ or $a = -8$.", "a = 2 or a = -8"),
        ("Thus the roots are $1$, $2$, and $3$.", "1, 2 and 3"),
        ("So the correct option is **C**.", "C"),
        # only the final sentence counts
        ("At first I got $x = 5$. But redoing it, the value is $x = 4$.", "x = 4"),
        ("x" * 3000 + "\nSo the total is 17.", "17"),
        # a label and a colon conclude too
        ("Union: $(-\\infty, 27]$.", "(-\\infty, 27]"),
        ("Domain: $\\{x \\mid x \\ge 3\\}$.", "\\{x \\mid x \\ge 3\\}"),
        # the response ends with maths on its own line, alone or after a lead
        ("$42$", "42"),
        # a restatement after `i.e.` names the answer, else the part before it does; what a
        # colon introduces is the answer
        ("So the roots are $\\pm5$, i.e. $5$ or $-5$.", "5 or -5"),
        ("Hence $\\bar z = 3i + 1$, i.e. real part $1$, imaginary part $3$.", "\\bar z = 3i + 1"),
        ("So it is at least 120 and at most 240: $120 \\le x \\le 240$.", "120 \\le x \\le 240"),
        # a condition on the variable of a range is part of it, other qualifiers are not
        ("The range is $m<2$ with $m\\neq 1$.", "m<2 \\text{ and } m\\neq 1"),
        ("So $f(x) = \\frac{1}{x}$ for $x \\neq 0$.", "f(x) = \\frac{1}{x}"),
        # the one value of the last sentence, without a concluding word
        ("So each episode is short. The show ends at 14:30.", "14:30"),
        ("Together the children run a total of 100 meters.", "100 meters"),
        ("Probability $=\\dfrac{3}{36}$.", "=\\dfrac{3}{36}"),
        ("The negation must hold for all $x$.\n\n$$a \\in [-2, 2]$$", "a \\in [-2, 2]"),
        ("So\n$$M \\cap N = \\{3, 2\\}$$\n", "M \\cap N = \\{3, 2\\}"),
        ("Combining both cases we get $$m \\in (-\\infty, 1]$$", "m \\in (-\\infty, 1]"),
        ("with ratio 4.\n$$S_3 = \\frac{4 \\cdot 3}{2} = 6.$$", "S_3 = 6"),
    ],
)
def test_last_math(text: str, answer: str) -> None:
    assert extract_answer(text) == Extraction(answer, "last_math", 0)


@pytest.mark.parametrize(
    "text",
    [
        # hedges: two different values, or a hedge word
        "So it is 3, but it might be 4.",
        "It is either $3$ or maybe $4$.",
        "So $x = 3$, or possibly $x=4$ if the sign flips.",
        "Solving, 16 sheets are used for bodies and the remaining 20 sheets for bottoms.",
        "So the edge is 2 cm and the radius is 1 cm.",
        "Thus the value is not $5$.",
        "So $x$ can't be $5$.",
        # reasoning that trails off: no full stop, a reasoning word, no concluding word
        "Let me compute $x^2$ at $x = 2$",
        "So we substitute $x=2$ into the equation.",
        "Next we substitute $x = 2$.",
        "Let's check that $f(2) = 5$.",
        "So the value is 5...",
        "Is the answer $5$?",
        "We get:",
        "We first expand $(x+1)^2$.",
        "Now simplify $2x + 4$.",
        # maths alone on the last line, but closing a hedge or a reasoning step
        "It could be\n$$a \\in [-2, 2]$$",
        "Let us check $a$ in\n$$a \\in [-2, 2]$$",
        "we get $3$ and $$x = 4$$",
        # no maths, or only a bare variable / a qualifier
        "Hence the triangle is isosceles.",
        "So the negation is: **There is some real number $x$ with $2^{x-1} \\le 0$.**",
        "Therefore the function is positive for $x > 0$ only when we restrict it.",
        "So the solution is $x$.",
        "So the value is $5$ in all cases.",
        # a long single line cut mid-way: the tail cannot be read safely
        "so the total is $" + "1" * 3000 + "$.",
    ],
)
def test_last_math_near_misses(text: str) -> None:
    assert extract_answer(text) == Extraction(None, "none", 0)


def test_last_math_only_without_answer_phrase() -> None:
    text = "The answer is 5.\nSo the total is 17."
    assert extract_answer(text) == Extraction("5", "answer_is", 0)
    assert extract_answer("\\boxed{3}\nSo the total is 17.").source == "boxed"


@pytest.mark.parametrize(
    ("text", "answer", "source"),
    [
        # an answer phrase mixing words and maths gives the maths it concludes with
        ("The answer is: all $k$ of the form $2^j$, $j\\in\\mathbb{N}_0$.", "2^j", "answer_is"),
        ("The answer is $5$ apples.", "5", "answer_is"),
        ("**Answer:** the tower is $100$ m tall", "100", "answer_line"),
        # two things named, or a hedge: the text as before
        ("The answer is $x = 3$ or maybe $x = 4$.", "x = 3$ or maybe $x = 4", "answer_is"),
        (
            "Final Answer: $f(x)=\\sqrt{x+1}$ on $[-1,0]$, and $-\\sqrt x$ on $(0,1]$.",
            "f(x)=\\sqrt{x+1}$ on $[-1,0]$, and $-\\sqrt x$ on $(0,1]",
            "answer_is",
        ),
        # unchanged forms
        ("**Answer:** $x=7$", "x=7", "answer_line"),
        ("**Answer:** 2 to 1", "2 to 1", "answer_line"),
        ("Final Answer: The final answer is $7$. I hope it is correct.", "7", "answer_is"),
        (
            "The final answer is $x=\\frac{\\pi}{16}$, $k \\in \\mathbb{Z}$.",
            "x=\\frac{\\pi}{16}$, $k \\in \\mathbb{Z}",
            "answer_is",
        ),
    ],
)
def test_answer_phrase_with_words(text: str, answer: str, source: str) -> None:
    assert extract_answer(text) == Extraction(answer, source, 0)  # type: ignore[arg-type]


def test_last_math_choice() -> None:
    assert extract_choice("Only one option fits, so the correct option is **B**.") == "B"
    assert extract_choice("So it is **A** or **C**.") is None


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
    assert ex.source in ("boxed", "answer_is", "answer_line", "last_math", "none")
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


def test_math_inside_a_parenthetical_aside_is_not_the_answer() -> None:
    got = extract_answer(r"**Answer:** It stays constant (always equal to $\tfrac{1}{16}BC^4$)")
    assert got.answer is not None and got.answer.startswith("It stays constant")
    assert extract_answer(r"Thus the minimum is $5$ (attained at $x=2$).").answer == "5"
