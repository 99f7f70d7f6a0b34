"""Text answers (verify/words.py): worded answers decided by their content words, with the
near misses that must stay incorrect; pure, through the semantic stages and end to end."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hero_service.verify import words
from hero_service.verify.notation import canonical
from hero_service.verify.repair import repair_reference
from hero_service.verify.rules import RuleVerifier
from hero_service.verify.semantic import compare
from tests.verifying import label

EQUIVALENT = [
    ("This is impossible.", r"\text{No}"),
    ("This is impossible.", "No — it is not possible to end up with 2007 pieces."),
    ("This is impossible.", r"\text{Impossible}"),
    ("This is impossible.", r"\text{No, it is impossible}"),
    ("Not Possible", r"\text{No}"),
    ("Not Possible", r"\text{Impossible}"),
    ("Not Possible", "No, this puzzle could not have arisen that way"),
    ("The circles are tangent internally.", r"\text{internally tangent}"),
    ("The circles are tangent internally.", "Internally tangent."),
    ("Both probabilities are equal", r"\text{equal}"),
    ("Both probabilities are equal", "Neither — both probabilities are the same."),
    ("second quadrant", r"\text{second}"),
    ("second quadrant", "Quadrant II."),
    ("second quadrant", r"2\text{nd}"),
    ("increasing function", r"\text{monotonically increasing}"),
    ("increasing function", "strictly increasing"),
    ("increasing function", "increasing"),
    ("obtuse triangle", r"\text{obtuse-angled}"),
    ("obtuse triangle", "an obtuse triangle (with $C$ the obtuse angle)"),
    ("This number is composed", r"\text{composite}"),
    ("This number is composed", r"\text{not prime}"),
    (" n must be even", r"n \text{ even}"),
    ("Decision", r"\text{Decision symbol (diamond)}"),
    ("Decision", "decision box"),
    ("unchanged", r"It stays constant (always equal to $\tfrac{1}{16}BC^4$)"),
    (r"\text{The first player}", "first player"),
]

NOT_EQUIVALENT = [
    ("isosceles right triangle", "right triangle"),
    ("right triangle", "isosceles right triangle"),
    ("obtuse triangle", "obtuse, isosceles"),
    ("equal", "not equal"),
    ("Both probabilities are equal", r"\text{not equal}"),
    ("Both probabilities are equal", r"\text{more likely}"),
    ("increasing function", "decreasing"),
    ("increasing function", r"\text{not increasing}"),
    ("unchanged", r"\text{decreases}"),
    ("This is impossible.", "possible"),
    ("This is impossible.", r"\text{Yes}"),
    ("This is impossible.", r"\text{Yes, it is possible}"),
    ("Not Possible", r"\text{Yes}"),
    ("second quadrant", "third quadrant"),
    ("second quadrant", "first quadrant, second quadrant"),
    ("second quadrant", r"3\text{rd}"),
    ("internally tangent", "externally tangent"),
    ("The circles are tangent internally.", r"\text{intersect at two points}"),
    ("obtuse triangle", r"\text{acute}"),
    (" n must be even", r"n \text{ is odd}"),
    ("even", "odd"),
    ("This number is composed", r"\text{prime}"),
    ("composite", "prime"),
    ("Yes", "Yes, but only when n is even"),
    ("The pirates can still locate the treasure without the missing stake.", "No"),
    ("mais de tres quilos", r"\text{more than three kilograms}"),
    (r"y = \sin(2x - \pi/6)", r"\sin(2x - \pi/7)"),
]


def _canon(ref: str, ans: str) -> tuple[str, str]:
    return canonical(repair_reference(ref)), canonical(ans)


@pytest.mark.parametrize(("ref", "ans"), EQUIVALENT)
def test_semantic_stages_accept_worded_answers(ref: str, ans: str) -> None:
    out = compare(*_canon(ref, ans))
    assert out.status == "correct", out


@pytest.mark.parametrize(("ref", "ans"), NOT_EQUIVALENT)
def test_semantic_stages_never_accept_worded_near_misses(ref: str, ans: str) -> None:
    out = compare(*_canon(ref, ans))
    assert out.status != "correct", out


@pytest.mark.parametrize(
    ("ref", "ans"),
    [
        ("This is impossible.", "possible"),
        ("second quadrant", "third quadrant"),
        ("internally tangent", "externally tangent"),
        ("obtuse triangle", "acute"),
        ("even", "odd"),
        ("composite", "prime"),
        ("equal", "not equal"),
        ("increasing", "decreasing"),
        ("Not Possible", "Yes"),
    ],
)
def test_a_flipped_family_member_is_decided_incorrect(ref: str, ans: str) -> None:
    assert words.compare(ref, ans) == "incorrect"


def test_undecided_pairs_are_left_to_later_stages() -> None:
    assert words.compare("isosceles right triangle", "right triangle") is None
    assert words.compare("Yes", "Yes, but only when n is even") is None
    assert words.compare("2 or 3", "2") is None  # no words to read
    assert words.compare(r"\sin x", r"x \sin") is None  # maths, whatever its letters


def test_concepts_read_families() -> None:
    got = words.concepts("No - it is not possible (sadly)")
    assert got == ([frozenset({"impossible"}), frozenset({"impossible"})], [frozenset({"sadly"})])
    assert words.concepts("Quadrant II") == ([frozenset({"second"})], [])
    assert words.concepts("x + y") is None


_FAMILY_WORDS = ["possible", "impossible", "equal", "increasing", "decreasing", "prime",
                 "composite", "even", "odd", "obtuse", "acute", "second", "third"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(_FAMILY_WORDS),
    st.sampled_from(["", "The answer is ", r"\text{", "It is "]),
    st.sampled_from(["", " number", " function", "."]),
)
def test_a_word_matches_itself_and_not_its_negation(word: str, pre: str, post: str) -> None:
    ans = pre + word + post + ("}" if pre.endswith("{") else "")
    assert words.compare(word, canonical(ans)) == "correct"
    assert words.compare(word, "not " + word) == "incorrect"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.text(max_size=60))
def test_words_never_raise(a: str, b: str) -> None:
    words.compare(a, b)
    words.compare(canonical(b), canonical(a))


@pytest.mark.parametrize(("ref", "ans"), EQUIVALENT)
def test_cascade_accepts_worded_answers(verifier: RuleVerifier, ref: str, ans: str) -> None:
    assert label(verifier, ref, f"**Answer:** {ans}") == 1


@pytest.mark.parametrize(("ref", "ans"), NOT_EQUIVALENT)
def test_cascade_rejects_worded_near_misses(verifier: RuleVerifier, ref: str, ans: str) -> None:
    assert label(verifier, ref, f"**Answer:** {ans}") == 0
