"""The judge stage: a model's second opinion on rule-negative answers (docs/verifier.md).

Used only under verifier `cascade+judge`. It reviews answers the rules called `incorrect`
that have an extracted answer; never `rejected` (hacks, multiple answers, code, absurd
input), `timeout`, `no_answer`, the stages in `skip_stages` (those whose `incorrect` proves a
difference: guards, pre-filter, numbers, intervals, components, multiple choice), answers
far longer than the reference, or answers `screen` calls a trick (prompt injection,
invisible or look-alike characters, "everything" answers).

The judge is any OpenAI-compatible /v1/chat/completions server (vLLM, SGLang) serving
TinyV-1.5B or an instruct model. The verdict is read from the first generated token's
top logprobs, P(True) against P(False), never from free text. One call per distinct
(question, reference, answer) of a group, an LRU cache, a deadline per call, a concurrency
limit and a circuit breaker: whatever the judge does, the rule verdict stands unless the
judge said True in time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import re
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from hero_client.schema import JudgeOutcome
from hero_service.config import SKIP_STAGES
from hero_service.metrics import Metrics
from hero_service.verify.normalize import numeric_value

if TYPE_CHECKING:
    from hero_service.config import Settings
    from hero_service.verify.verdict import Verdict

log = logging.getLogger("hero_service.judge")

# TinyV's verifier prompt (uw-nsl/TinyV, arXiv 2505.14625): an instruction to find false
# negatives, three tagged fields, and "True"/"False" as the answer, so TinyV-1.5B works as
# it is. Written from TinyV's published prompt, not copied from its repository (none is
# reachable here): whitespace may differ; judge_prompt_file takes their text verbatim.
# Placeholders: {question}, {reference}, {answer}; nothing else is substituted.
DEFAULT_PROMPT = (
    "You are an AI tasked with identifying false negatives in answer verification. A false "
    "negative occurs when a model's answer is essentially correct but is marked as incorrect "
    "due to minor discrepancies or formatting issues. Your job is to analyze the given "
    "question, ground truth answer, and model answer to determine if the model's answer is "
    "actually correct despite appearing different from the ground truth.\n\n"
    "<question>{question}</question>\n\n"
    "<ground_truth_answer>{reference}</ground_truth_answer>\n\n"
    "<model_answer>{answer}</model_answer>\n\n"
    'Return "True" if the model\'s answer is correct, otherwise return "False".'
)

_FIELD = re.compile(r"\{(question|reference|answer)\}")
# Text that could close the answer's tag or forge chat turns once rendered (`</model_answer>`,
# `<|im_end|>`): such an answer is an injection attempt, never a math answer.
_INJECTION = re.compile(
    r"</|<\|[\w.-]{1,40}\|>|\[/?INST\]|<\s*(?:question|ground_truth_answer|model_answer|s)\s*>",
    re.I,
)
_EVERYTHING = re.compile(r"\\infty|∞|\\mathbb\s*\{?\s*R\b|ℝ|\ball\s+real", re.I)
_LATEX_CMD = re.compile(r"\\[A-Za-z]+")
_DIGIT_LOOKALIKE = re.compile(r"\d[A-Za-z]|[A-Za-z]\d|^[lIOoSBZ0-9]*[lIOoSBZ][lIOoSBZ0-9]*$")


def screen(answer: str, reference: str) -> str | None:
    """Tricks a judge could fall for, caught by cheap scans before asking it (the rules
    only call these `incorrect`): the reason, or None for an answer worth a second opinion."""
    if _INJECTION.search(answer):
        return "injection"  # could close the answer's tag or forge chat turns
    hidden = ("Cc", "Cf", "Co", "Cn", "Cs")
    if any(unicodedata.category(ch) in hidden and ch not in "\n\r\t" for ch in answer):
        return "invisible"  # zero-width and control characters: `7\u200b0`
    if unicodedata.normalize("NFKC", answer) != answer:
        return "confusable"  # compatibility forms: `Ⅶ`, full-width digits
    if answer.count("{") != answer.count("}"):
        return "unbalanced"
    if _EVERYTHING.search(answer) and not _EVERYTHING.search(reference):
        return "everything"  # `\mathbb{R}`, `(-\infty, \infty)` for a number
    plain = _LATEX_CMD.sub(" ", answer).strip()
    if numeric_value(reference) is not None and _DIGIT_LOOKALIKE.search(plain):
        return "confusable"  # `1O` or `ll` for a number
    return None


def render_prompt(template: str, question: str, reference: str, answer: str) -> str:
    """Fill the placeholders in one pass: text from the rollout is never re-scanned, so an
    answer containing "{reference}" stays literal."""
    values = {"question": question, "reference": reference, "answer": answer}
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def load_template(path: str) -> str:
    text = Path(path).read_text(encoding="utf-8")
    missing = [f for f in ("{reference}", "{answer}") if f not in text]
    if missing:
        raise ValueError(f"judge prompt {path} lacks {', '.join(missing)}")
    return text


@dataclass(frozen=True)
class Reading:
    """Probabilities of the first generated token being True / False (summed over
    spellings: "True", " true", ...)."""

    p_true: float
    p_false: float

    def share(self) -> float:
        return self.p_true / (self.p_true + self.p_false)


def _word(token: str) -> str:
    # byte-level BPE and sentencepiece markers, if a server returns raw token strings
    return token.replace("Ġ", " ").replace("▁", " ").strip().lower()


def read_logprobs(choice: dict[str, Any]) -> Reading | None:
    """P(True), P(False) from an OpenAI chat-completions choice with logprobs on; None when
    neither word is among the first token's top logprobs."""
    first = choice["logprobs"]["content"][0]
    p = {"true": 0.0, "false": 0.0}
    seen: set[str] = set()
    for cand in [*(first.get("top_logprobs") or []), first]:
        tok = str(cand["token"])
        if tok in seen:
            continue
        seen.add(tok)
        w = _word(tok)
        if w in p:
            p[w] += math.exp(float(cand["logprob"]))
    if p["true"] <= 0.0 and p["false"] <= 0.0:
        return None
    return Reading(p["true"], p["false"])


BreakerState = Literal["closed", "half_open", "open"]
_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class Breaker:
    """Consecutive-failure circuit breaker. Open: every call is skipped for `reset_s`; then
    one probe call (half-open) decides between closed and open again."""

    def __init__(
        self, failures: int, reset_s: float, metrics: Metrics, clock: Callable[[], float]
    ) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self.metrics = metrics
        self.clock = clock
        self.state: BreakerState = "closed"
        self.count = 0
        self.opened_at = 0.0

    def _set(self, state: BreakerState) -> None:
        self.state = state
        self.metrics.judge_breaker_state.set(_STATE_VALUE[state])

    def allow(self) -> Literal["call", "probe"] | None:
        """May a call go out: a plain call, the one probe of a half-open breaker, or None."""
        if self.state == "closed":
            return "call"
        if self.state == "open" and self.clock() - self.opened_at >= self.reset_s:
            self._set("half_open")
            return "probe"
        return None

    def success(self) -> None:
        self.count = 0
        if self.state != "closed":
            self._set("closed")

    def failure(self) -> None:
        self.count += 1
        if self.state == "half_open" or self.count >= self.failures:
            if self.state != "open":
                self.metrics.judge_breaker_trips.inc()
            self.opened_at = self.clock()
            self._set("open")

    def abort(self, kind: Literal["call", "probe"]) -> None:
        """A call that ended without an answer either way (cancelled, never sent): a probe
        gives its turn back, so the next call probes."""
        if kind == "probe" and self.state == "half_open":
            self._set("open")


@dataclass(frozen=True)
class Ruling:
    outcome: JudgeOutcome
    share: float | None = None  # P(True) / (P(True) + P(False)) when the judge answered


@dataclass(frozen=True)
class JudgeConfig:
    url: str
    model: str = ""
    api_key: str = ""
    timeout_s: float = 10.0
    connect_timeout_s: float = 2.0
    max_concurrency: int = 16
    cache_size: int = 100_000
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    prompt: str = DEFAULT_PROMPT
    top_logprobs: int = 5
    threshold: float = 0.5
    max_answer_ratio: float = 4.0
    answer_slack_chars: int = 16
    max_question_chars: int = 4000
    skip_stages: frozenset[str] = frozenset(SKIP_STAGES)

    @classmethod
    def from_settings(cls, s: Settings) -> JudgeConfig:
        return cls(
            url=s.judge_url,
            model=s.judge_model,
            api_key=s.judge_api_key,
            timeout_s=s.judge_timeout_s,
            connect_timeout_s=s.judge_connect_timeout_s,
            max_concurrency=s.judge_max_concurrency,
            cache_size=s.judge_cache_size,
            breaker_failures=s.judge_breaker_failures,
            breaker_reset_s=s.judge_breaker_reset_s,
            prompt=load_template(s.judge_prompt_file) if s.judge_prompt_file else DEFAULT_PROMPT,
            top_logprobs=s.judge_top_logprobs,
            threshold=s.judge_threshold,
            max_answer_ratio=s.judge_max_answer_ratio,
            answer_slack_chars=s.judge_answer_slack_chars,
            max_question_chars=s.judge_max_question_chars,
            skip_stages=frozenset(s.judge_skip_stages),
        )


def _base_url(url: str) -> str:
    u = url.rstrip("/")
    return u[: -len("/v1")] if u.endswith("/v1") else u


class Judge:
    def __init__(
        self, cfg: JudgeConfig, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg = cfg
        self.metrics = metrics
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        self.client = httpx.AsyncClient(
            base_url=_base_url(cfg.url),
            headers=headers,
            timeout=httpx.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=cfg.max_concurrency, max_keepalive_connections=cfg.max_concurrency
            ),
        )
        self.breaker = Breaker(cfg.breaker_failures, cfg.breaker_reset_s, metrics, clock)
        self._slots = asyncio.Semaphore(cfg.max_concurrency)
        self._cache: OrderedDict[tuple[str, str, str], Ruling] = OrderedDict()
        self._model = cfg.model
        metrics.judge_breaker_state.set(0)

    async def close(self) -> None:
        await self.client.aclose()

    def eligible(self, v: Verdict, reference: str) -> bool:
        c = self.cfg
        return (
            v.status == "incorrect"
            and v.answer is not None
            and bool(v.answer.strip())
            and (v.stage or "") not in c.skip_stages
            and len(v.answer) <= c.max_answer_ratio * len(reference) + c.answer_slack_chars
            and screen(v.answer, reference) is None
        )

    async def review(
        self, question: str, reference: str, verdicts: Sequence[Verdict]
    ) -> list[Verdict]:
        """The verdicts with the judge's flips applied; one ask per distinct answer."""
        n = self.cfg.max_question_chars
        q = question[-n:] if n > 0 else ""
        ok = [self.eligible(v, reference) for v in verdicts]
        distinct = list(dict.fromkeys(v.answer for v, e in zip(verdicts, ok, strict=True) if e))
        if not distinct:
            return list(verdicts)
        rulings = await asyncio.gather(*(self.ask(q, reference, a or "") for a in distinct))
        by_answer = dict(zip(distinct, rulings, strict=True))
        out: list[Verdict] = []
        for v, e in zip(verdicts, ok, strict=True):
            if not e:
                out.append(v)
                continue
            r = by_answer[v.answer]
            if r.outcome == "true":
                self.metrics.judge_flips.inc()
                # share: P(True) / (P(True) + P(False)) of the first token
                reason = f"judge_true p={r.share:.3f}"
                out.append(
                    dataclasses.replace(
                        v, label=1, status="correct", reason=reason, stage="judge", judge="true"
                    )
                )
            else:
                tag = f"judge_{r.outcome}"
                reason = tag if v.reason is None else f"{v.reason};{tag}"
                out.append(dataclasses.replace(v, reason=reason, judge=r.outcome))
        return out

    async def ask(self, question: str, reference: str, answer: str) -> Ruling:
        """The judge's ruling on one answer; never raises (except on cancellation)."""
        key = (question, reference, answer)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.metrics.judge_cache.labels("hit").inc()
            return hit
        self.metrics.judge_cache.labels("miss").inc()
        kind = self.breaker.allow()
        if kind is None:
            self.metrics.judge_skipped.labels("breaker_open").inc()
            return Ruling("unavailable")
        prompt = render_prompt(self.cfg.prompt, question, reference, answer)
        sent = False
        t0 = 0.0
        try:
            async with asyncio.timeout(self.cfg.timeout_s), self._slots:
                sent = True
                t0 = time.perf_counter()
                reading = await self._call(prompt)
        except asyncio.CancelledError:
            self.breaker.abort(kind)
            raise
        except (TimeoutError, httpx.TimeoutException):
            if not sent:  # waited for a slot the whole deadline: judge busy, not broken
                self.breaker.abort(kind)
                self.metrics.judge_skipped.labels("busy").inc()
                return Ruling("unavailable")
            return self._failed("timeout")
        except Exception as e:  # scoring never fails because of the judge
            log.warning("judge call failed: %s: %s", type(e).__name__, e)
            return self._failed("error")
        self.metrics.judge_duration.observe(time.perf_counter() - t0)
        self.breaker.success()  # it answered, even if not in the expected format
        if reading is None:
            self.metrics.judge_requests.labels("unparsed").inc()
            return Ruling("error")
        share = reading.share()
        ruling = Ruling("true" if share > self.cfg.threshold else "false", share)
        self.metrics.judge_requests.labels(ruling.outcome).inc()
        if self.cfg.cache_size > 0:
            self._cache[key] = ruling
            while len(self._cache) > self.cfg.cache_size:
                self._cache.popitem(last=False)
        return ruling

    def _failed(self, outcome: Literal["timeout", "error"]) -> Ruling:
        self.metrics.judge_requests.labels(outcome).inc()
        self.breaker.failure()
        return Ruling(outcome)

    async def _call(self, prompt: str) -> Reading | None:
        if not self._model:  # TinyV's own reward code reads the model id the same way
            r = await self.client.get("/v1/models")
            r.raise_for_status()
            self._model = str(r.json()["data"][0]["id"])
        body = {
            "model": self._model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.cfg.top_logprobs,
        }
        r = await self.client.post("/v1/chat/completions", json=body)
        r.raise_for_status()
        return read_logprobs(r.json()["choices"][0])
