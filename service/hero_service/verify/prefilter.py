"""Cheap structural screen of an extracted answer before it reaches a symbolic verifier.

`prefilter` rejects answers that could make a CAS hang or blow up memory (exponent
towers, enormous literals or factorials, pathological nesting) and malformed text
(NUL bytes, lone surrogates, control characters). It is one left-to-right pass over a
token stream, plus a bounded look-back at each `!`, so it is linear in the input.

The limits are far above anything a legitimate answer uses: `2^{10}`, `x^{2^{3}}`,
`10^{100}`, `100!`, `\\log_{2}(\\log_{3} 9)` and matrices all pass.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from hero_service.verify.numeval import numeric_value as _numeric_value

__all__ = ["PrefilterConfig", "prefilter"]


@dataclass(frozen=True)
class PrefilterConfig:
    """Limits; `max_distinct_boxed` is not checked here (the caller counts boxes)."""

    max_answer_chars: int = 1000
    max_brace_depth: int = 40
    max_exponent_depth: int = 3
    max_digits: int = 400
    max_factorial_operand: int = 1000
    max_log_nesting: int = 3
    max_sqrt_nesting: int = 10
    max_distinct_boxed: int = 3


_DEFAULT = PrefilterConfig()

# Control characters other than \t \n \r, lone surrogates, bidi overrides/isolates.
_BAD_CHARS = re.compile(
    "[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]"
)
_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[A-Za-z]+|\d+|\s+|\*\*|.", re.DOTALL)

_LOG_NAMES = frozenset({"log", "ln", "lg"})
# Commands that take arguments or only adjust layout: they neither end nor start a scope.
_NEUTRAL_CMDS = frozenset(
    {
        "left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr",
        "biggl", "biggr", "Biggl", "Biggr", "middle", "frac", "dfrac", "tfrac", "cfrac",
        "binom", "dbinom", "tbinom", "text", "textbf", "textit", "textrm", "mathrm",
        "mathbf", "mathit", "mathsf", "mathbb", "mathcal", "operatorname", "displaystyle",
        "boldsymbol", "overline", "underline", "bar", "hat", "vec", "tilde", "widehat",
        "begin", "end", "mbox",
    }
)  # fmt: skip
# Commands that separate terms: they end an ungrouped log/sqrt argument.
_SEPARATOR_CMDS = frozenset(
    {
        "cdot", "times", "div", "pm", "mp", "le", "leq", "ge", "geq", "ne", "neq", "lt",
        "gt", "quad", "qquad", "cup", "cap", "setminus", "to", "implies", "iff", "land",
        "lor", "wedge", "vee", "approx", "equiv", "sim", "in", "subset", "subseteq",
    }
)  # fmt: skip
_SPACING = frozenset({"\\,", "\\;", "\\:", "\\!", "\\ "})
_SEPARATOR_CHARS = frozenset("+-=,;<>*/&:")
_OPENERS = frozenset("{([")
_CLOSERS = frozenset("})]")

_EVAL_MAX_SPAN = 256
_POWER_CHAIN_STEPS = 8


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Frame:
    """One open bracket: nesting inherited from outside plus chains started inside."""

    __slots__ = (
        "exp_base",
        "exp_pending",
        "is_exp",
        "log_base",
        "log_pending",
        "open_pos",
        "resets_parent",
        "sqrt_base",
        "sqrt_pending",
    )

    def __init__(
        self,
        open_pos: int,
        exp_base: int,
        log_base: int,
        sqrt_base: int,
        is_exp: bool,
        resets_parent: bool,
    ) -> None:
        self.open_pos = open_pos
        self.exp_base = exp_base
        self.log_base = log_base
        self.sqrt_base = sqrt_base
        self.is_exp = is_exp
        self.resets_parent = resets_parent
        self.exp_pending = 0
        self.log_pending = 0
        self.sqrt_pending = 0


# ---------------------------------------------------------------------------
# A tiny numeric evaluator for factorial operands (floats, overflow -> inf).


# ---------------------------------------------------------------------------


class _Scanner:
    def __init__(self, s: str, cfg: PrefilterConfig) -> None:
        self.s = s
        self.cfg = cfg
        self.open_of: dict[int, int] = {}  # closing-bracket index -> opening index
        self.word_starts: list[int] = []  # plain-letter runs (variables), for `!`
        self.word_ends: list[int] = []

    def run(self) -> None:
        s = self.s
        cfg = self.cfg
        stack = [_Frame(-1, 0, 0, 0, False, False)]
        awaiting_exp = False  # after ^ / ** / \exp: the next atom or group is an exponent
        chain_exp = False  # an exponent just ended: another ^ extends the tower
        awaiting_sub = False  # after _: the next atom or group is a subscript
        after_sqrt = False  # \sqrt[n]{x}: the [n] group is not the argument
        for m in _TOKEN.finditer(s):
            tok = m.group()
            pos = m.start()
            first = tok[0]
            if first.isspace() or tok in _SPACING:
                continue
            top = stack[-1]
            is_caret = tok in ("^", "**")
            kind = "atom"
            name = ""
            if first == "\\":
                name = tok[1:]
                if name in _LOG_NAMES:
                    kind = "log"
                elif name == "sqrt":
                    kind = "sqrt"
                elif name == "exp":
                    is_caret = True
                elif name in _NEUTRAL_CMDS:
                    kind = "neutral"
                elif name in _SEPARATOR_CMDS or name == "\\":
                    kind = "sep"
                elif name == "{":
                    kind = "open"
                elif name == "}":
                    kind = "close"
            elif first.isdigit():
                if len(tok) > cfg.max_digits:
                    raise _Reject("huge_number")
            elif first.isascii() and first.isalpha():
                if tok in _LOG_NAMES:
                    kind = "log"
                elif tok == "sqrt":
                    kind = "sqrt"
                elif tok == "exp":
                    is_caret = True
                else:
                    self.word_starts.append(pos)
                    self.word_ends.append(m.end())
            elif tok in _OPENERS:
                kind = "open"
            elif tok in _CLOSERS:
                kind = "close"
            elif tok == "_":
                kind = "sub"
            elif tok == "!":
                kind = "neutral"
                self.check_factorial(pos)
            elif tok == "|":
                kind = "neutral"
            elif tok in _SEPARATOR_CHARS:
                kind = "sep"

            if is_caret:
                # `a^b^c` and `\exp\exp x` stack up; `\exp(a)\exp(b)` is a product
                chained = awaiting_exp or (chain_exp and tok in ("^", "**"))
                top.exp_pending = top.exp_pending + 1 if chained else 1
                chain_exp = False
                awaiting_exp = True
                if top.exp_base + top.exp_pending > cfg.max_exponent_depth:
                    raise _Reject("exponent_tower")
                continue
            if chain_exp:  # the tower ended
                top.exp_pending = 0
                chain_exp = False

            if kind == "open":
                is_exp = awaiting_exp
                no_reset = awaiting_sub or (tok == "[" and after_sqrt) or is_exp
                stack.append(
                    _Frame(
                        pos,
                        top.exp_base + (top.exp_pending if is_exp else 0),
                        top.log_base + top.log_pending,
                        top.sqrt_base + top.sqrt_pending,
                        is_exp,
                        not no_reset and (top.log_pending > 0 or top.sqrt_pending > 0),
                    )
                )
                if len(stack) - 1 > cfg.max_brace_depth:
                    raise _Reject("brace_depth")
                awaiting_exp = awaiting_sub = after_sqrt = False
                continue
            if kind == "close":
                if len(stack) > 1:
                    frame = stack.pop()
                    self.open_of[m.end() - 1] = frame.open_pos
                    parent = stack[-1]
                    if frame.resets_parent:
                        parent.log_pending = parent.sqrt_pending = 0
                    chain_exp = frame.is_exp
                    if not frame.is_exp:
                        parent.exp_pending = 0
                awaiting_exp = awaiting_sub = after_sqrt = False
                continue
            if kind == "log":
                top.log_pending += 1
                if top.log_base + top.log_pending > cfg.max_log_nesting:
                    raise _Reject("log_nesting")
                continue
            if kind == "sqrt":
                top.sqrt_pending += 1
                if top.sqrt_base + top.sqrt_pending > cfg.max_sqrt_nesting:
                    raise _Reject("sqrt_nesting")
                after_sqrt = True
                continue
            if kind == "neutral":
                if awaiting_exp and first != "\\":
                    awaiting_exp = False
                    top.exp_pending = 0
                continue
            if kind == "sub":
                awaiting_sub = True
                continue
            if kind == "sep":
                if awaiting_exp and tok in ("-", "+"):
                    continue
                awaiting_exp = awaiting_sub = after_sqrt = False
                top.exp_pending = top.log_pending = top.sqrt_pending = 0
                continue
            # an atom: a number, a letter run, a symbol command, any other character
            if awaiting_exp:
                awaiting_exp = False
                chain_exp = True
            elif awaiting_sub:
                awaiting_sub = False
            else:
                top.log_pending = top.sqrt_pending = 0
            after_sqrt = False

    # -- factorials -------------------------------------------------------

    def check_factorial(self, pos: int) -> None:
        s = self.s
        n = len(s)
        if pos + 1 < n and s[pos + 1] in "!=":
            return  # `!=`, or not the last `!` of a run (`n!!`)
        k = pos
        while k > 0 and s[k - 1] == "!":
            k -= 1
        start = self.atom_start(self.skip_space_back(k - 1))
        if start is None:
            return
        for _ in range(_POWER_CHAIN_STEPS):  # `10^{10}!` is (10^{10})!: include the base
            p = self.skip_space_back(start - 1)
            if p >= 0 and s[p] == "^":
                p -= 1
            elif p >= 1 and s[p - 1 : p + 1] == "**":
                p -= 2
            else:
                break
            base = self.atom_start(self.skip_space_back(p))
            if base is None:
                break
            start = base
        if self.has_variable(start, k):
            return  # symbolic: `n!`, `(2n)!`, `(n+1)!`
        span = s[start:k]
        if len(span) > _EVAL_MAX_SPAN:
            raise _Reject("huge_factorial")
        value = _numeric_value(span)
        if value is None:
            if "^" in span or "*" in span or "!" in span:
                raise _Reject("huge_factorial")
            return
        if value > self.cfg.max_factorial_operand:
            raise _Reject("huge_factorial")

    def skip_space_back(self, j: int) -> int:
        s = self.s
        while j >= 0 and s[j].isspace():
            j -= 1
        return j

    def atom_start(self, j: int) -> int | None:
        """Start of the operand that ends at index `j` (a number, group or name)."""
        if j < 0:
            return None
        s = self.s
        c = s[j]
        if c.isdigit() or c == ".":
            while j > 0 and (s[j - 1].isdigit() or s[j - 1] == "."):
                j -= 1
            return j
        if c in _CLOSERS:
            o = self.open_of.get(j)
            if o is None:
                return None
            if o >= 5 and s.startswith("\\left", o - 5):
                o -= 5
            return o
        if c.isascii() and c.isalpha():
            while j > 0 and s[j - 1].isascii() and s[j - 1].isalpha():
                j -= 1
            if j > 0 and s[j - 1] == "\\":
                j -= 1
            return j
        return None

    def has_variable(self, start: int, end: int) -> bool:
        """Is there a plain letter run (not a command name) in s[start:end]?"""
        i = bisect.bisect_right(self.word_ends, start)
        return i < len(self.word_starts) and self.word_starts[i] < end


def prefilter(answer: str, cfg: PrefilterConfig = _DEFAULT) -> str | None:
    """None if the answer may go to a symbolic verifier, else a short reason code:
    too_long, null_byte, bad_unicode, brace_depth, exponent_tower, huge_number,
    huge_factorial, log_nesting, sqrt_nesting."""
    if len(answer) > cfg.max_answer_chars:
        return "too_long"
    if "\x00" in answer:
        return "null_byte"
    if _BAD_CHARS.search(answer) is not None:
        return "bad_unicode"
    try:
        _Scanner(answer, cfg).run()
    except _Reject as rej:
        return rej.reason
    return None
