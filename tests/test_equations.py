"""Answers that name the reference's value another way (verify/equations.py, the quantifier,
domain and parameter rules of verify/forms.py, `|x|` and exclusions in verify/intervals.py),
found on a blind set of model-style responses (tests/data/model_answers_*.jsonl). Each family
has its near misses, end to end through the RuleVerifier with real worker processes."""

from __future__ import annotations

from fractions import Fraction

import pytest

from hero_service.verify import equations, forms
from hero_service.verify.notation import canonical
from hero_service.verify.rules import RuleVerifier
from tests.verifying import verdict

EQUIVALENT = [
    # an equation against the value it names (the answer's side, or a named reference)
    (r"30^\circ", r"\angle A = 30^\circ"),
    (r"\frac{\pi}{4}", r"\angle BAC = 45°"),
    (r"\cos \beta = -\frac{3}{5}", r"-0.6"),
    (r"\mathrm{PQ} = 5 \sqrt{2}", r"5\sqrt{2}"),
    (r"\mathrm{PQ} = 5 \sqrt{2}", r"PQ = 5√2"),
    (r"f(10) = 1", r"1"),
    (r"2", r"\frac{AC}{BC}=2"),
    (r"\frac{3\sqrt{3} + 4}{10}", r"\sin\left(2\alpha+\frac{\pi}{3}\right)=0.4+0.3\sqrt{3}"),
    # chains and tuples of names
    (r"a = b = 2", r"a=2,\ b=2"),
    (r"a = b = 2", r"(a,b)=(2,2)"),
    # ratios
    (r"5:2", r"CO:ON=5:2"),
    (r"5:2", r"2.5"),
    (r"2:1", r"4:2"),
    (r"3:1", r"3 \text{ to } 1"),
    # one sign symbol: a list of two values
    (r"0, 5, -5", r"0,\ \pm 5"),
    (
        r"\left\{ \dfrac {-1+ \sqrt {7}}{3}, \dfrac {1+ \sqrt {7}}{3} \right\}",
        r"\{\frac{\sqrt{7}\pm 1}{3}\}",
    ),
    (
        r"\left\{ \dfrac {-1+ \sqrt {7}}{3}, \dfrac {1+ \sqrt {7}}{3} \right\}",
        r"\left\{\frac{1+\sqrt7}{3},\ \frac{\sqrt7-1}{3}\right\}",
    ),
    (r"y=\pm\frac{\sqrt{3}}{3}(x-5)", r"y=\pm\frac{1}{\sqrt{3}}(x-5)"),
    # quantifier tails and declared parameters
    (r"f(x) = ax + b", r"f(x) = kx + m \text{ for constants } k, m \in \mathbb{R}"),
    (r"f(x) = x", r"f(x)=x\ \forall x\in\mathbb{R}"),
    (r"b_n = 2n \quad \forall n", r"b_n=2n \text{ for all } n\in\mathbb{N}^+"),
    (
        r"Q(x) = (x^2 - x + 1)^n \text{ for any } n \in \mathbb{N} \cup \{0\}",
        r"Q(x)=(x^2-x+1)^k,\ k=0,1,2,\dots",
    ),
    (r"(d, 2d, 3d) \text{ or } (d, 3d, 6d)", r"(t,3t,6t), (t,2t,3t) \text{ for any } t"),
    (
        r"x = \frac{\pi}{12}(4k + 1), \quad k \in \mathbb{Z}",
        r"x=\frac{\pi}{12}+\frac{k\pi}{3},\ k\in\mathbb{Z}",
    ),
    # domain conditions
    (r"3- \sqrt{x+2} \ (x\geqslant -2)", r"3-\sqrt{x+2},\quad x \geq -2"),
    (r"y=10-2x(2 < x < 5)", r"y=10-2x,\ x\in(2,5)"),
    # sets
    (r"(-\infty, -3) \cup (3, +\infty)", r"|x|>3"),
    (r"-\frac{\sqrt{5}}{2} \leq a \leq \frac{\sqrt{5}}{2}", r"|a| \le \frac{\sqrt{5}}{2}"),
    (r"-3\sqrt{2}<a<3\sqrt{2}\text{ and }a\neq 0", r"(-3\sqrt2, 0) \cup (0, 3\sqrt2)"),
    (r"{x|-2 < x < 3}", r"(-2, 3)"),
    (r"{x|-2 < x < 3}", r"-2<x<3"),
    (r"\mathbb{R}", r"\{x \mid x\in\mathbb{R}\}"),
    (r"\{x|0<x<1\}", r"\complement_U(A\cup B)=\{x\in\mathbb{R} : 0<x<1\}"),
    (r"3 \text{ or } -7", r"a\in\{-7,\,3\}"),
    # relations that differ by moving terms or a positive factor
    (r"a - 3b \geq 0", r"a \geq 3b"),
    (r"a - 3b \geq 0", r"b\le \dfrac{a}{3}"),
    (r"a - 3b \geq 0", r"3b \leqslant a"),
    (r"f(5) > f(0.5) > f(2)", r"f(5) > f(\frac{1}{2}) > f(2)"),
    # lists and numbers
    (r"0, 1, 2, \ldots, 36", r"\{0,1,2,\dots,36\}"),
    (r"0, 1, 2, \ldots, 36", r"S\in\{0,1,\dots,36\}"),
    (r"81,213", r"81213"),
    (r"81,213", r"81{,}213"),
    (r"2i", r"2\mathrm{i}"),
    (
        r"60^	ext{\circ} \text{ or } 30^	ext{\circ}",
        r"\frac{\pi}{3} \text{ or } \frac{\pi}{6}",
    ),
    (r"z \in [-5, 5]", r"-5 \leq x + y \leq 5"),
    # a reference inside a sentence; lines and curves written as `... = 0`
    (r"The solution set is } (0,  \infty)", r"x > 0"),
    (r"the line x = -1", r"x + 1 = 0"),
    (r"y = 2x + 1", r"2x - y + 1 = 0"),
    (r"x^2+y^2=1", r"2x^2+2y^2=2"),
    (
        r"g(x) \sim 4 \sum_{k=1}^{\infty} \frac{(-1)^{k+1}}{k} \sin(kx)",
        r"4\sum_{k=1}^{\infty}\frac{(-1)^{k+1}}{k}\sin kx",
    ),
    (r" sin\left(x- \frac{\pi}{4}\right) = -\frac{2}{3}", r"-2/3"),
    (r"\{ x \mid x = 6k - 1, \, k \in \mathbf{Z} \}", r"x=6n-1\ (n\in\mathbb Z)"),
    (
        r"\left(k\pi - \frac {\pi }{3},k\pi + \frac {2\pi }{3}\right)(k\in \mathbb{Z})",
        r"\left(\dfrac{(3k-1)\pi}{3},\dfrac{(3k+2)\pi}{3}\right),\ k\in\mathbb Z",
    ),
    (r"[{\sqrt{3}-1}, {\sqrt{3}+1}]", r"\sqrt3-1\le|\vec c|\le\sqrt3+1"),
    (r"\{x|-4<x\leq-3, \text{or} 1\leq x\leq 3\}", r"(-4,-3]\cup[1,3]"),
    ("①④", "(1)(4)"),
    ("B: x+4y-5=0", r"y=-\dfrac14x+\dfrac54"),
    ("B: x+4y-5=0", "B"),
    (r"C_{18}^{9} \cdot C_{18}^{9}", r"\dbinom{18}{9}^{2}"),
    (r"A_n^k", r"\dfrac{n!}{(n-k)!}"),
    ("90^", r"\dfrac{\pi}{2}"),  # a reference that lost its `\circ`
    ("90^\\textcirc", r"90^{\circ}"),
    (r"\sigma^2 = 4", "4"),
    (r"2\sin \frac{\pi}{3}=\sqrt{3}", r"\sqrt{3}"),  # a computation, then its value
    ("280", "approximately 280"),
    ("<", r"-\dfrac{4}{3}<-\dfrac{5}{4}"),  # a comparison symbol asked for
    (">", r"y_1>y_2"),
    (r"b - b^{-1} = \pm 2\sqrt{3}", r"\pm 2\sqrt{3}"),  # the quantity asked for, its value
    ("\\\\{x|x < -2\\\\}", r"(-\infty,-2)"),  # doubled backslashes before braces
    ("75,000", r"₹75{,}000"),
    (r"2.2 \times 10^3", "2.2 × 10³"),
    (r"f(x) = x^2 - 4 \text{ (for } x\geqslant -2)", r"f(x)=x^2-4,\ x\in[-2,+\infty)"),
    (r"\{x \,|\, 1 \leq x < 3\}", "the set of all x with 1 ≤ x < 3"),
    (r"\angle C_{2} B_{2} A_{2} = 90^\circ", r"\angle C_2B_2A_2=\dfrac{\pi}{2}"),
    (
        r"(2k\pi - \pi, 2k\pi), \text{ for } k \in \mathbb{Z}",
        r"\{x\mid 2k\pi-\pi<x<2k\pi,\ k\in\mathbb{Z}\}",
    ),
    (r"(a, b) = \left(\frac{1}{3}, -\frac{1}{3}\right)", r"\left(\frac{1}{3},-\frac{1}{3}\right)"),
    ("A and D", "D and A"),  # choice letters: a set
    ("= -e^(π/3)", r"-e^{\pi/3}"),
    ("x = 2, x = 3", "(3, 2)"),  # the roots: a set
]

NOT_EQUIVALENT = [
    (r"30^\circ", r"\angle A = 60^\circ"),
    (r"\cos \beta = -\frac{3}{5}", r"0.6"),
    (r"x^2 + y^2 = 1", r"1"),  # an equation is not the value of its right side
    (r"\mathrm{PQ} = 5 \sqrt{2}", r"PQ = 2\sqrt{5}"),
    (r"a = b = 2", r"a=2,\ b=3"),
    (r"a = b = 2", r"(a,b)=(2,3)"),
    (r"5:2", r"2:5"),
    (r"5:2", r"0.4"),
    (r"11:00", r"11"),
    (r"0, 5, -5", r"\pm 5"),
    (r"5", r"\pm 5"),
    (
        r"\left\{ \dfrac {-1+ \sqrt {7}}{3}, \dfrac {1+ \sqrt {7}}{3} \right\}",
        r"\{\frac{\sqrt{7}\pm 1}{2}\}",
    ),
    (r"f(x) = ax + b", r"f(x) = kx + m"),  # undeclared letters are never renamed
    (r"2a + b", r"2b + a \text{ for constants } a, b"),
    (r"f(x) = x", r"f(x)=2x\ \forall x\in\mathbb{R}"),
    (
        r"x = \frac{\pi}{12}(4k + 1), \quad k \in \mathbb{Z}",
        r"x=\frac{\pi}{12}+\frac{k\pi}{2},\ k\in\mathbb{Z}",
    ),
    (r"3- \sqrt{x+2} \ (x\geqslant -2)", r"3+\sqrt{x+2}\ (x\ge-2)"),
    (r"3- \sqrt{x+2} \ (x\geqslant -2)", r"3-\sqrt{x+2},\ x > -2"),
    (r"(-\infty, -3) \cup (3, +\infty)", r"|x| \ge 3"),
    (r"[-3, 3]", r"|a| < 3"),
    (r"-3\sqrt{2}<a<3\sqrt{2}\text{ and }a\neq 0", r"(-3\sqrt2, 3\sqrt2)"),
    (r"{x|-2 < x < 3}", r"[-2, 3)"),
    (r"\{x|0<x<1\}", r"\complement_U(A\cup B)=\{x\in\mathbb{R} : 0 \le x<1\}"),
    (r"3 \text{ or } -7", r"a\in\{-7,\,4\}"),
    (r"a - 3b \geq 0", r"a \le 3b"),
    (r"a - 3b \geq 0", r"a - 3b > 0"),
    (r"a - 3b \geq 0", r"b \ge \frac{a}{3}"),
    (r"f(5) > f(0.5) > f(2)", r"f(5) > f(2) > f(\frac{1}{2})"),
    (r"0, 1, 2, \ldots, 36", r"\{0,1,\dots,35\}"),
    (r"0, 1, 2, \ldots, 36", r"0, 2, 4, \dots, 36"),
    (r"81,213", r"81214"),
    (r"2i", r"-2\mathrm{i}"),
    (r"z \in [-5, 5]", r"-5 \leq x + y < 5"),
    (r"z \in [-5, 5]", r"-5 \leq 2x + y \leq 5"),
    (r"The solution set is } (0,  \infty)", r"x \ge 0"),
    (r"the line x = -1", r"x - 1 = 0"),
    (r"y = 2x + 1", r"2x - y - 1 = 0"),
    (r"x^2+y^2=1", r"x^2+y^2=2"),
    (r"30 \, \text{m}^2", r"30\ \text{dm}^2"),  # an unknown or another unit
    (r"30 \, \text{m}^2", r"30\ \text{dam}^2"),
    (
        r"g(x) \sim 4 \sum_{k=1}^{\infty} \frac{(-1)^{k+1}}{k} \sin(kx)",
        r"\sum_{k=1}^{\infty}\frac{(-1)^{k+1}}{k}\sin kx",
    ),
    (r"2", r"\sum_{k=1}^{2} k"),  # `\sum_{k` is not a label naming `1}^{2} k`
    (r"x^2+y^2=1", "1"),  # `x^2+y^2` is not a label
    (r" sin\left(x- \frac{\pi}{4}\right) = -\frac{2}{3}", r"2/3"),
    (r"\{ x \mid x = 6k - 1, \, k \in \mathbf{Z} \}", r"x=6n+1\ (n\in\mathbb Z)"),
    (
        r"\left(k\pi - \frac {\pi }{3},k\pi + \frac {2\pi }{3}\right)(k\in \mathbb{Z})",
        r"\left(\dfrac{(3k-1)\pi}{3},\dfrac{(3k+2)\pi}{3}\right],\ k\in\mathbb Z",
    ),
    (r"\{x|-4<x\leq-3, \text{or} 1\leq x\leq 3\}", r"(-4,-3)\cup[1,3]"),
    ("①④", "(1)(3)"),
    ("B: x+4y-5=0", r"y=-\dfrac14x+\dfrac94"),
    ("B: x+4y-5=0", "C"),
    (r"C_{18}^{9} \cdot C_{18}^{9}", r"\dbinom{18}{9}"),
    ("90^", r"\dfrac{\pi}{3}"),
    (r"2\sin \frac{\pi}{3}=\sqrt{3}", r"\sqrt{2}"),
    ("280", "about 281"),
    ("<", r"-\dfrac{4}{3}>-\dfrac{5}{4}"),
    (r"b - b^{-1} = \pm 2\sqrt{3}", r"2\sqrt{3}"),
    (r"x^2 - 5x + 6 = 0", "0"),  # an equation set to zero is not the value 0
    ("75,000", r"₹75{,}001"),
    (r"n \text{ may be any positive integer}", r"n \text{ even}"),  # text is not dropped
    (r"\{x \,|\, 1 \leq x < 3\}", "the set of all x with 1 < x < 3"),
    (r"f(x) = x^2 - 4 \text{ (for } x\geqslant -2)", r"f(x)=x^2-4\ (x\ge0)"),  # another domain
    (r"(a, b) = \left(\frac{1}{3}, -\frac{1}{3}\right)", r"\left(-\frac{1}{3},\frac{1}{3}\right)"),
    ("A and D", "D and B"),
    ("3, 8", "(8, 3)"),  # a parenthesised answer is an ordered tuple
    (
        r"(2k\pi - \pi, 2k\pi), \text{ for } k \in \mathbb{Z}",
        r"\{x\mid 2k\pi-\pi<x\le 2k\pi,\ k\in\mathbb{Z}\}",
    ),
]


@pytest.mark.parametrize(("ref", "ans"), EQUIVALENT)
def test_equivalent_forms_are_correct(verifier: RuleVerifier, ref: str, ans: str) -> None:
    v = verdict(verifier, ref, f"So the answer is $\\boxed{{{ans}}}$.")
    assert (v.label, v.status) == (1, "correct"), (v.status, v.stage)


@pytest.mark.parametrize(("ref", "ans"), NOT_EQUIVALENT)
def test_near_misses_are_not_correct(verifier: RuleVerifier, ref: str, ans: str) -> None:
    v = verdict(verifier, ref, f"So the answer is $\\boxed{{{ans}}}$.")
    assert v.label == 0, (v.status, v.stage)


def test_pure_helpers() -> None:
    assert equations.expand_pm(r"\frac{\sqrt5 \pm 1}{2}") == [
        r"\frac{\sqrt5 + 1}{2}",
        r"\frac{\sqrt5 - 1}{2}",
    ]
    assert equations.expand_pm(r"\pm 1 \pm 2") is None  # two signs: four values
    assert equations.expand_chain("a = b = 2") == "a = 2, b = 2"
    assert equations.expand_chain("x = y = z") is None
    assert equations.ratio("10:4") == Fraction(5, 2) and equations.ratio("11:00") is None
    assert equations.progression(["1", "3", "5", r"\dots"]) == (1, 2, None)
    assert equations.progression(["1", "3", "6", r"\dots"]) is None
    c = equations.proportional("(a) - (3b)", "(a/3) - (b)", positive=True)
    assert c == 3
    assert equations.proportional("(a) - (3b)", "(3b) - (a)", positive=True) is None
    assert forms.cut_quantifier(canonical(r"f(x)=x \text{ for all } x")) == ("f(x)=x", {"x"})
    assert forms.split_domain("x^2, y > 0") == ("x^2, y > 0", None)  # y is not in x^2


def test_the_box_a_response_names_final_wins_over_earlier_boxes(verifier: RuleVerifier) -> None:
    steps = r"The speed is $\boxed{40}$ km/h, then $s = 7$. "
    assert verdict(verifier, "7", steps + r"The final answer is $\boxed{7}$.").label == 1
    assert verdict(verifier, "7", steps + "**Final Answer**\n\\[\n\\boxed{7}\n\\]").label == 1
    hedge = verdict(verifier, "7", r"So $\boxed{7}$ or $\boxed{8}$.")
    assert (hedge.label, hedge.reason) == (0, "multiple_answers")
    hedge = verdict(verifier, "7", r"The final answer is $\boxed{8}$ or $\boxed{7}$.")
    assert (hedge.label, hedge.reason) == (0, "multiple_answers")


def test_only_the_text_after_a_reasoning_block_counts(verifier: RuleVerifier) -> None:
    think = "<think>\nmaybe $\\boxed{8}$? wait, no\n</think>\n\n"
    assert verdict(verifier, "7", think + r"So the answer is $\boxed{7}$.").label == 1
    assert verdict(verifier, "8", think + r"So the answer is $\boxed{7}$.").label == 0
