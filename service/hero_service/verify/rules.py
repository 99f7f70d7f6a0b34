"""The rule verifier: extraction and guards in the parent, Math-Verify in the pool.

Each rollout ends as label 1 (`correct`) or label 0 with a status: `incorrect`,
`no_answer`, `rejected` (pre-filter or reward-hacking guard), `timeout`, `error`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from functools import lru_cache
from typing import TYPE_CHECKING

from hero_client.schema import VerifierStatus
from hero_service.metrics import Metrics
from hero_service.verify import units, worker
from hero_service.verify.extract import all_boxed, extract_answer, extract_choice, normalize_choice
from hero_service.verify.forms import bracketed, components
from hero_service.verify.intervals import parse_set
from hero_service.verify.normalize import (
    brace_args,
    exact_match,
    is_equiv,
    numeric_value,
    strip_string,
)
from hero_service.verify.notation import canonical
from hero_service.verify.pool import VerifierPool
from hero_service.verify.prefilter import PrefilterConfig, prefilter
from hero_service.verify.repair import repair_reference
from hero_service.verify.semantic import compare
from hero_service.verify.verdict import Verdict
from hero_service.verify.words import texts_differ

if TYPE_CHECKING:
    from hero_service.verify.judge import Judge

_DETERMINISTIC = ("correct", "incorrect")


# Program text is never a math answer; graders that parse it may pull a number out.
_CODE = re.compile(
    r"__|(?<!\\)\blambda\b|\bimport\b|\beval\s*\(|\bexec\s*\(|\bos\.|\bsystem\s*\(|\bopen\s*\("
    r"|\bsubprocess\b|\bgetattr\b|\bglobals\s*\(|\bcompile\s*\(|;\s*\w+\s*\("
)


_HEDGE = re.compile(r"\\lor\b|\\vee\b|\\neq?\b|\\not\b|\bor\b|\\text\s*\{\s*or\s*\}")
_PREFIXED_CHOICE = re.compile(
    r"\s*\(?(?P<letter>[A-E])\)?\s*[:.．、：]\s*(?P<body>\S.*)", re.DOTALL
)
_CHOICE_REF = re.compile(r"\s*(?:\\text(?:bf)?\s*\{)?\s*\(?\s*[A-E]\s*\)?\s*\}?\s*")


def _guard(reference: str, answer: str) -> str | None:
    """Known false positives of numeric comparison, caught before any grading."""
    ref_pm = _PM.search(reference) is not None
    listed = bracketed(reference)
    parts = len(listed[1]) if listed is not None else len(components(reference))
    if _PM.search(answer) is not None and not ref_pm and parts < 2:
        return "plus_minus"  # `\\pm 5` for `0, 5, -5` is a list: the components stage counts
    hedged = not ref_pm and _HEDGE.search(answer) and not _HEDGE.search(reference)
    # "7 or 8", "x = 7 \\lor x \\neq 7"; a union of intervals is not a hedge, and the
    # parts of a multi-part reference are counted by the components stage
    not_sets = parse_set(reference) is None or parse_set(answer) is None
    if hedged and not_sets and len(components(reference)) < 2:
        return "hedge"
    if units.mismatch(reference, answer):  # `100 m` vs `100 km`; `0.1 km` vs `100 m` passes
        return "unit_mismatch"
    return None


_PM = re.compile(r"\\(?:pm|mp)(?![A-Za-z])|±|∓")  # not `\pmod`


class LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[tuple[str, str, str], Verdict] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> Verdict | None:
        v = self._d.get(key)
        if v is not None:
            self._d.move_to_end(key)
        return v

    def put(self, key: tuple[str, str, str], value: Verdict) -> None:
        if self.size <= 0:
            return
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)


def _is_choice_reference(reference: str) -> bool:
    """An upper-case letter A-E, maybe in brackets: a lower-case `e` or `x` is maths."""
    return _CHOICE_REF.fullmatch(reference) is not None and normalize_choice(reference) is not None


@lru_cache(maxsize=4096)
def _prepared(reference: str) -> str:
    """The reference repaired and in canonical notation: once per reference, not per answer."""
    return canonical(repair_reference(reference))


class RuleVerifier:
    def __init__(
        self,
        pool: VerifierPool,
        metrics: Metrics,
        cache_size: int = 100_000,
        inner_timeout_s: int = 3,
        prefilter_config: PrefilterConfig | None = None,
        judge: Judge | None = None,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.cache = LRU(cache_size)
        self.inner_timeout_s = inner_timeout_s
        self.prefilter_config = prefilter_config or PrefilterConfig()
        self.judge = judge  # verify/judge.py; used only by verifier "cascade+judge"

    async def verify_group(
        self, reference: str, responses: list[str], verifier: str, question: str = ""
    ) -> list[Verdict]:
        rule = "cascade" if verifier == "cascade+judge" else verifier
        prefixed = _PREFIXED_CHOICE.fullmatch(reference) if rule == "cascade" else None
        if rule == "choice" or (rule == "cascade" and _is_choice_reference(reference)):
            verdicts = [self._choice(reference, r) for r in responses]
        elif prefixed is not None:  # `B: x+4y-5=0`: the letter, or what it stands for
            verdicts = await self._math(prefixed["body"], responses, rule)
            for i, r in enumerate(responses):
                ans = extract_answer(r).answer
                got = normalize_choice(ans) if ans is not None else None
                if got is not None and got.isupper():
                    ok = got == prefixed["letter"]
                    verdicts[i] = Verdict(
                        int(ok), "correct" if ok else "incorrect", got, None, "choice"
                    )
        else:
            verdicts = await self._math(reference, responses, rule)
        if verifier == "cascade+judge" and self.judge is not None:
            # second opinion on eligible rule-negative answers (verify/judge.py)
            verdicts = await self.judge.review(question, reference, verdicts)
        for v in verdicts:
            self.metrics.verifier_outcomes.labels(verifier, v.status).inc()
            self.metrics.verifier_stage.labels(verifier, v.stage or "none", v.status).inc()
        return verdicts

    def _choice(self, reference: str, response: str) -> Verdict:
        gold = normalize_choice(reference)
        got = extract_choice(response)
        if got is None:
            ans = extract_answer(response).answer
            status: VerifierStatus = "no_answer" if ans is None else "rejected"
            return Verdict(0, status, ans, None if ans is None else "not_a_single_choice", "choice")
        ok = gold is not None and got == gold
        return Verdict(int(ok), "correct" if ok else "incorrect", got, None, "choice")

    def _screen(self, reference: str, response: str) -> Verdict | str:
        """Extract the final answer, or a verdict when no verification is needed."""
        ex = extract_answer(response)
        if ex.answer is None:
            return Verdict(0, "no_answer", None, None, "extract")
        if ex.n_boxed <= 1 and exact_match(reference, ex.answer):
            # the reference itself may be "huge"
            return Verdict(1, "correct", ex.answer, None, "exact")
        reason = prefilter(ex.answer, self.prefilter_config)
        if reason is not None:
            return Verdict(0, "rejected", ex.answer[:200], reason, "prefilter")
        if _CODE.search(ex.answer) and not _CODE.search(reference):
            return Verdict(0, "rejected", ex.answer[:200], "code", "guard")
        if ex.n_boxed > 1 and not ex.final_marked:  # marked: the earlier boxes are steps
            boxes = list(dict.fromkeys(all_boxed(response)))
            distinct = {strip_string(b) for b in boxes}
            if len(distinct) > 1:
                # one box per part of a k-part reference is an answer, not a hedge
                parts = len(components(_prepared(reference)))
                joined = ", ".join(boxes)
                if parts < 2 or len(boxes) != parts or prefilter(joined, self.prefilter_config):
                    return Verdict(0, "rejected", ex.answer, "multiple_answers", "guard")
                return joined
        return ex.answer

    async def _math(self, reference: str, responses: list[str], verifier: str) -> list[Verdict]:
        screened = [self._screen(reference, r) for r in responses]
        distinct = {s for s in screened if isinstance(s, str)}
        results = dict(
            zip(
                distinct,
                await asyncio.gather(*(self._check(reference, a, verifier) for a in distinct)),
                strict=True,
            )
        )
        return [s if isinstance(s, Verdict) else results[s] for s in screened]

    async def _check(self, reference: str, answer: str, verifier: str) -> Verdict:
        guard = _guard(_prepared(reference), canonical(answer))
        if guard is not None:
            return Verdict(0, "incorrect", answer, guard, "guard")
        key = (verifier, reference, answer)
        cached = self.cache.get(key)
        if cached is not None:
            self.metrics.verifier_cache.labels("hit").inc()
            return cached
        self.metrics.verifier_cache.labels("miss").inc()
        t0 = time.perf_counter()
        status, reason, stage = await self._grade(reference, answer, verifier)
        self.metrics.verifier_duration.labels(verifier).observe(time.perf_counter() - t0)
        v = Verdict(int(status == "correct"), status, answer, reason, stage)
        if status in _DETERMINISTIC:
            self.cache.put(key, v)
        return v

    async def _grade(
        self, reference: str, answer: str, verifier: str
    ) -> tuple[VerifierStatus, str | None, str]:
        if verifier == "exact":
            return ("correct" if exact_match(reference, answer) else "incorrect"), None, "exact"
        if verifier == "string":
            ok = is_equiv(reference, answer)
            return ("correct" if ok else "incorrect"), None, "string"
        if verifier == "cascade":
            if exact_match(reference, answer):
                return "correct", None, "exact"
            if is_equiv(reference, answer) and not texts_differ(reference, answer):
                return "correct", None, "string"
            ref_v, ans_v = numeric_value(reference), numeric_value(answer)
            if ref_v is not None and ans_v is not None and ref_v == ans_v:
                return "correct", "numeric", "numeric"  # two plain numbers: exact compare
            sem = compare(_prepared(reference), canonical(answer))
            if sem.status is not None:
                return sem.status, sem.reason, sem.stage
            pairs = [(r, brace_args(a)) for r, a in sem.pending]
            kind, out = await self.pool.run(worker.math_verify_pairs, pairs, self.inner_timeout_s)
            stage = sem.stage
        else:
            kind, out = await self.pool.run(
                worker.math_verify_task, reference, brace_args(answer), self.inner_timeout_s
            )
            stage = "math_verify"
        if kind == "timeout":
            return "timeout", None, stage
        if kind == "error":
            return "error", str(out), stage
        if out == "correct":
            return "correct", None, stage
        if out == "timeout":  # Math-Verify's own SIGALRM fired inside the worker
            return "timeout", "inner_timeout", stage
        if out == "unparsed_gold":  # the library cannot read the gold: string check only
            ok = is_equiv(reference, answer)
            return ("correct" if ok else "incorrect"), "unparsed_gold", "string"
        return "incorrect", None if out == "incorrect" else str(out), stage
