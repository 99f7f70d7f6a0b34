"""Scoring a call end to end: limits -> verifier + RM (concurrently) -> HERO shaping
inside the job store's transaction -> metrics. `score` returns the canonical result
(result.py); the edges build their answers from it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from hero_client.schema import GroupIn, GroupResult, ShapingOverrides, Timings
from hero_service.config import Settings
from hero_service.errors import Conflict, InvalidInput, Overloaded
from hero_service.metrics import Metrics
from hero_service.result import Scored
from hero_service.rm import RMInput, RMScorer
from hero_service.shaping import (
    GroupShaping,
    RunningSigma,
    ShapingConfig,
    ShapingError,
    shape_batch,
)
from hero_service.state import JobRecord, JobStore, RequestIdConflict
from hero_service.state.base import Commit
from hero_service.verify.pool import owned_by
from hero_service.verify.rules import RuleVerifier
from hero_service.verify.verdict import Verdict


def check_text(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidInput(f"{field} has {len(value)} characters, over the limit of {limit}", field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} is not valid UTF-8 text (lone surrogate)", field) from None


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        verifier: RuleVerifier,
        scorer: RMScorer,
        store: JobStore,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.verifier = verifier
        self.scorer = scorer
        self.store = store
        self.default_shaping = settings.default_shaping()

    # -- validation ----------------------------------------------------------------------
    def verifier_name(self, requested: str | None) -> str:
        """The verifier a call uses; cascade+judge only where a judge is configured."""
        name = requested or self.settings.verifier
        if name == "cascade+judge" and self.verifier.judge is None:
            raise InvalidInput(
                "verifier cascade+judge needs a judge: set the service's judge_url", "verifier"
            )
        return name

    def check_limits(self, groups: Sequence[GroupIn], prefix: Callable[[int], str]) -> None:
        s = self.settings
        if len(groups) > s.max_batch_groups:
            raise InvalidInput(
                f"groups has {len(groups)} entries, over the limit of {s.max_batch_groups}",
                "groups",
            )
        for gi, g in enumerate(groups):
            p = prefix(gi)
            if len(g.responses) > s.max_group_size:
                raise InvalidInput(
                    f"{p}responses has {len(g.responses)} entries, over the limit of "
                    f"{s.max_group_size}",
                    f"{p}responses",
                )
            if g.labels is not None and len(g.labels) != len(g.responses):
                raise InvalidInput(
                    f"{p}labels has {len(g.labels)} entries but {p}responses has "
                    f"{len(g.responses)}",
                    f"{p}labels",
                )
            check_text(g.prompt, f"{p}prompt", s.max_prompt_chars)
            check_text(g.reference, f"{p}reference", s.max_reference_chars)
            for i, r in enumerate(g.responses):
                check_text(r, f"{p}responses[{i}]", s.max_response_chars)

    async def resolve_config(
        self, job_id: str, overrides: ShapingOverrides | None
    ) -> tuple[ShapingConfig, ShapingConfig]:
        """(the job's stored config, or the one it will be created with; this call's)."""
        over: dict[str, Any] = overrides.model_dump(exclude_none=True) if overrides else {}
        rec = await self.store.get(job_id)
        try:
            job_cfg = rec.config if rec else self.default_shaping.with_overrides(over)
            call_cfg = job_cfg.with_overrides(over)
        except ShapingError as e:
            raise InvalidInput(f"shaping.{e.field}: {e.message}", f"shaping.{e.field}") from None
        for f in ("sigma_mean", "momentum"):
            if rec and f in over and over[f] != getattr(job_cfg, f):
                raise Conflict(
                    f"job {job_id!r} keeps its running mean with {f}={getattr(job_cfg, f)!r}; "
                    f"it cannot change per request (reset or import the job to change it)",
                    f"shaping.{f}",
                )
        return job_cfg, call_cfg

    # -- scoring -------------------------------------------------------------------------
    async def score(
        self,
        job_id: str,
        groups: Sequence[GroupIn],
        request_id: str | None,
        digest: str,
        overrides: ShapingOverrides | None,
        verifier: str | None,
    ) -> Scored:
        with owned_by():  # this call's verifications share the pool fairly with others
            return await self._score(job_id, groups, request_id, digest, overrides, verifier)

    async def _score(
        self,
        job_id: str,
        groups: Sequence[GroupIn],
        request_id: str | None,
        digest: str,
        overrides: ShapingOverrides | None,
        verifier: str | None,
    ) -> Scored:
        t0 = time.perf_counter()
        if request_id is not None:
            try:
                stored = await self.store.lookup(job_id, request_id, digest)
            except RequestIdConflict as e:
                raise Conflict(str(e), "request_id") from None
            if stored is not None:
                self.metrics.replays.inc()
                return Scored.from_stored(stored)
        vname = self.verifier_name(verifier)
        job_cfg, cfg = await self.resolve_config(job_id, overrides)

        async def verify_all() -> list[list[Verdict]]:
            t = time.perf_counter()
            try:
                out = await asyncio.gather(
                    *(
                        self.verifier.verify_group(g.reference, g.responses, vname, g.prompt)
                        for g in groups
                    )
                )
            except Overloaded:
                self.metrics.rejected.labels("verifier").inc()
                raise
            timings.verify_s = time.perf_counter() - t
            return list(out)

        async def rm_all() -> list[float]:
            t = time.perf_counter()
            items = [RMInput(g.prompt, r, g.reference) for g in groups for r in g.responses]
            # One forward per distinct input: batched scores carry float noise that depends
            # on what else shares the batch, and min-max normalisation inside a stratum
            # would blow that noise up into different rewards for identical responses.
            distinct = list(dict.fromkeys(items))
            out = await self.scorer.score(distinct)
            timings.rm_s = time.perf_counter() - t
            if len(distinct) == len(items):
                return out
            by_item = dict(zip(distinct, out, strict=True))
            return [by_item[it] for it in items]

        timings = Timings()
        verdicts, flat = await asyncio.gather(verify_all(), rm_all())
        scores: list[list[float]] = []
        pos = 0
        for g in groups:
            scores.append(flat[pos : pos + len(g.responses)])
            pos += len(g.responses)
        labels = [[v.label for v in vs] for vs in verdicts]

        def compute(rec: JobRecord) -> Commit[tuple[Scored, list[GroupShaping]]]:
            ts = time.perf_counter()
            run_cfg = (
                cfg
                if rec.config == job_cfg
                else rec.config.with_overrides(
                    overrides.model_dump(exclude_none=True) if overrides else {}
                )
            )
            shaped, new_state = shape_batch(
                list(zip(scores, labels, strict=True)), rec.running, run_cfg
            )
            results = [
                _result(g, vs, sc, sh)
                for g, vs, sc, sh in zip(groups, verdicts, scores, shaped, strict=True)
            ]
            timings.shaping_s = time.perf_counter() - ts
            timings.total_s = time.perf_counter() - t0
            scored = Scored(results, shaped[0].sigma_bar, timings)
            return Commit(new_state, scored.stored(), (scored, shaped))

        try:
            out = await self.store.transact(job_id, request_id, digest, job_cfg, compute)
        except RequestIdConflict as e:
            raise Conflict(str(e), "request_id") from None
        except ShapingError as e:
            raise InvalidInput(e.message, e.field) from None
        if isinstance(out, str):  # another call with this request id committed first
            self.metrics.replays.inc()
            return Scored.from_stored(out)
        scored, shaped = out.value
        self._observe(job_id, groups, verdicts, scores, shaped, out.running)
        return scored

    def _observe(
        self,
        job_id: str,
        groups: Sequence[GroupIn],
        verdicts: list[list[Verdict]],
        scores: list[list[float]],
        shaped: list[GroupShaping],
        state: RunningSigma,
    ) -> None:
        m = self.metrics
        job = m.job_label(job_id)
        for g, vs, sc, sh in zip(groups, verdicts, scores, shaped, strict=True):
            m.groups.labels(job, sh.collapse).inc()
            m.rollouts.labels(job).inc(len(vs))
            m.weight.labels(job).observe(sh.weight)
            if g.labels is not None:
                for v, y in zip(vs, g.labels, strict=True):
                    kind = ("tp" if y else "fp") if v.label else ("fn" if y else "tn")
                    m.verifier_confusion.labels(job, kind).inc()
                    m.verifier_stage_confusion.labels(v.stage or "none", kind).inc()
            if sh.collapse == "mixed":
                lo, hi = min(sc), max(sc)
                for v, s in zip(vs, sc, strict=True):
                    if v.label == 1 and s == lo:
                        m.disagreement.labels(job, "verified_low_rm").inc()
                    elif v.label == 0 and s == hi:
                        m.disagreement.labels(job, "rejected_high_rm").inc()
        if state.sigma_bar is not None:
            m.sigma_bar.labels(job).set(state.sigma_bar)


def _result(g: GroupIn, vs: list[Verdict], scores: list[float], sh: GroupShaping) -> GroupResult:
    return GroupResult.model_construct(
        group_id=g.group_id,
        rewards=sh.rewards,
        verifier=[v.label for v in vs],
        verifier_status=[v.status for v in vs],
        answers=[v.answer for v in vs],
        verifier_stage=[v.stage for v in vs],
        judge=[v.judge for v in vs] if any(v.judge for v in vs) else None,
        rm_scores=scores,
        normalized=sh.normalized,
        weight=sh.weight,
        sigma=sh.sigma,
        sigma_bar=sh.sigma_bar,
        collapse=sh.collapse,
        advantages=sh.advantages,
    )
