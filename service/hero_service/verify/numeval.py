"""A bounded numeric evaluator for plain arithmetic in LaTeX (no CAS, no `eval`).

Recursive descent over `+ - * / ^ !`, `\\frac`, `\\sqrt`, `\\sqrt[n]`, brackets and, when
asked, the constant `\\pi`. Depth is capped and every step stays a float, so a hostile span
costs time linear in its length. Shared by the pre-filter (limits on literal size) and the
semantic stages (rounding, angles, interval endpoints).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from hero_service.verify.normalize import numeric_value as plain_number

__all__ = ["evaluate", "exact_value", "numeric_value"]

_EVAL_MAX_DEPTH = 60
_SPACING = frozenset({"\\,", "\\;", "\\:", "\\!", "\\ "})


class _EvalError(Exception):
    pass


_NUM_TOKEN = re.compile(r"\s+|\\[A-Za-z]+|\\.|\d+(?:\.\d*)?|\.\d+|\*\*|.", re.DOTALL)
_NUM_SKIP_CMDS = frozenset(
    {"left", "right", "big", "Big", "bigl", "bigr", "Bigl", "Bigr", "displaystyle"}
)
_NUM_OP_CMDS = {"cdot": "*", "times": "*", "div": "/", "frac": "frac", "dfrac": "frac",
                "tfrac": "frac", "sqrt": "sqrt"}  # fmt: skip
_NUM_CLOSE = {"(": ")", "{": "}", "[": "]"}


def _num_tokens(span: str, constants: bool = False) -> list[str | float]:
    out: list[str | float] = []
    for m in _NUM_TOKEN.finditer(span):
        tok = m.group()
        if tok.isspace() or tok in _SPACING:
            continue
        if tok[0].isdigit() or (tok[0] == "." and len(tok) > 1):
            out.append(float(tok))
        elif tok.startswith("\\") and tok[1:].isalpha():
            name = tok[1:]
            if name in _NUM_SKIP_CMDS:
                continue
            if name == "pi" and constants:
                out.append(math.pi)
                continue
            if name not in _NUM_OP_CMDS:
                raise _EvalError(tok)
            out.append(_NUM_OP_CMDS[name])
        elif tok == "**":
            out.append("^")
        elif tok in "+-*/^!(){}[]":
            out.append(tok)
        else:
            raise _EvalError(tok)
    return out


class _NumEval:
    """Recursive descent over + - * / ^ ! \\frac \\sqrt and brackets."""

    def __init__(self, tokens: list[str | float]) -> None:
        self.toks = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> str | float | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str | float:
        tok = self.peek()
        if tok is None:
            raise _EvalError("eof")
        self.i += 1
        return tok

    def run(self) -> float:
        value = self.expr()
        if self.i != len(self.toks):
            raise _EvalError("trailing")
        return value

    def expr(self) -> float:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term()
            value = _finite_or_inf(value + rhs if op == "+" else value - rhs)
        return value

    def term(self) -> float:
        value = self.unary()
        while True:
            tok = self.peek()
            if tok in ("*", "/"):
                self.take()
                rhs = self.unary()
                if tok == "*":
                    value = _finite_or_inf(value * rhs)
                else:
                    if rhs == 0:
                        raise _EvalError("div0")
                    value = _finite_or_inf(value / rhs)
            elif tok == "frac" and isinstance(self.toks[self.i - 1], float):
                raise _EvalError("mixed")  # `3\\frac{1}{2}` is a mixed number, not 3 * 1/2
            elif isinstance(tok, float) or tok in ("(", "{", "[", "frac", "sqrt"):
                value = _finite_or_inf(value * self.unary())
            else:
                return value

    def unary(self) -> float:
        self.enter()
        try:
            if self.peek() in ("-", "+"):
                op = self.take()
                value = self.unary()
                return -value if op == "-" else value
            return self.postfix()
        finally:
            self.depth -= 1

    def postfix(self) -> float:
        value = self.power()
        while self.peek() == "!":
            self.take()
            value = _factorial(value)
        return value

    def power(self) -> float:
        base = self.primary()
        if self.peek() == "^":
            self.take()
            exponent = self.unary()
            try:
                value = _finite_or_inf(math.pow(base, exponent))
                if value == 0 and base != 0:
                    raise _EvalError("underflow")  # 10^{-10^{10}} is not 0
                return value
            except OverflowError:
                return math.inf
            except ValueError as exc:
                raise _EvalError("pow") from exc
        return base

    def primary(self) -> float:
        self.enter()
        try:
            tok = self.take()
            if isinstance(tok, float):
                return tok
            if tok in _NUM_CLOSE:
                value = self.expr()
                if self.take() != _NUM_CLOSE[tok]:
                    raise _EvalError("bracket")
                return value
            if tok == "frac":
                num = self.primary()
                den = self.primary()
                if den == 0:
                    raise _EvalError("div0")
                return _finite_or_inf(num / den)
            if tok == "sqrt":
                root = 2.0
                if self.peek() == "[":
                    self.take()
                    root = self.expr()
                    if self.take() != "]" or root < 1:
                        raise _EvalError("root")
                value = self.primary()
                if root != 2.0:
                    if value < 0:
                        raise _EvalError("sqrt")
                    return float(value ** (1.0 / root))
                if value < 0:
                    raise _EvalError("sqrt")
                return math.sqrt(value)
            raise _EvalError(str(tok))
        finally:
            self.depth -= 1

    def enter(self) -> None:
        self.depth += 1
        if self.depth > _EVAL_MAX_DEPTH:
            raise _EvalError("depth")


def _finite_or_inf(value: float) -> float:
    if math.isnan(value):
        raise _EvalError("nan")
    return value


def _factorial(value: float) -> float:
    if math.isnan(value) or value < 0:
        raise _EvalError("factorial")
    if value > 170:
        return math.inf
    return math.gamma(value + 1)


def numeric_value(span: str, constants: bool = False) -> float | None:
    """Value of a numeric span, None if it is not plain arithmetic."""
    try:
        return _NumEval(_num_tokens(span, constants)).run()
    except (_EvalError, OverflowError, ValueError):
        return None


def evaluate(span: str) -> float | None:
    """Value of a numeric span that may use `\\pi`; None for anything else or non-finite."""
    if len(span) > 300:
        return None
    v = numeric_value(span, constants=True)
    return v if v is not None and math.isfinite(v) else None


_REPEAT = re.compile(r"\s*(-?)(\d+)\.(\d*)\\overline\{(\d{1,12})\}\s*")
_SCI = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*\\times\s*10\s*\^\s*\{?\s*(-?\d{1,3})\s*\}?\s*")


def exact_value(s: str) -> Fraction | None:
    """Exact value of a plain number, a repeating decimal or scientific notation."""
    v = plain_number(s)
    if v is not None:
        return v
    m = _REPEAT.fullmatch(s)
    if m is not None:  # 0.1\overline{6} = (16 - 1) / 90
        sign, whole, fixed, rep = m.groups()
        v = Fraction(int(whole)) + Fraction(int(fixed or "0"), 10 ** len(fixed))
        v += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))
        return -v if sign else v
    m = _SCI.fullmatch(s)
    if m is not None:
        return Fraction(m.group(1)) * Fraction(10) ** int(m.group(2))
    return None
