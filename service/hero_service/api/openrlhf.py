"""OpenRLHF's `POST /get_reward`: whole groups found inside one batch request are scored
at once; the rest (and every one-sample request) wait in the group barrier (barrier.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from hero_client.schema import (
    GET_REWARD_LOG_KEYS,
    JOB_ID_PATTERN,
    ErrorBody,
    GetRewardRequest,
    GetRewardResponse,
    GroupIn,
    GroupResult,
    PresetName,
    ShapingOverrides,
    VerifierName,
)
from hero_service.api.barrier import Barrier
from hero_service.api.groups import (
    CLIENT_CLOSED,
    ClientGone,
    Gone,
    SampleIn,
    SampleOutcome,
    disconnect_watch,
)
from hero_service.api.runtime import live_barrier, runtime
from hero_service.errors import DeadlineExceeded, InvalidInput, ServiceError
from hero_service.pipeline import Pipeline, check_text
from hero_service.state import payload_digest

if TYPE_CHECKING:  # redis-py is an extra; the shared barrier is imported when used
    from hero_service.api.shared import SharedBarrier

log = logging.getLogger("hero_service.api.openrlhf")
router = APIRouter()
# How far into the query the prompt may start (special tokens the trainer decoded first).
_PROMPT_SLACK = 64
# Errors the trainer must retry (overload, shutdown, deadline, backend), never turned into
# 200 with fallback rewards it would train on.
RETRYABLE = frozenset({429, 502, 503})


# -- /get_reward (OpenRLHF) ----------------------------------------------------------------
def split_query(query: str, prompt: str) -> tuple[str, bool]:
    """The response inside OpenRLHF's query (prompt + response); (text, prompt_missing)."""
    if not prompt:
        return query, False
    if query.startswith(prompt):
        return query[len(prompt) :], False
    at = query.find(prompt, 0, _PROMPT_SLACK + len(prompt))
    if at >= 0:
        return query[at + len(prompt) :], False
    return query, True


def _label_text(x: str | int | float | None) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return "" if x is None else str(x)


class _Rows:
    """The parallel lists of a /get_reward answer, filled sample by sample."""

    def __init__(self, n: int, mismatch: list[bool], use_verifier: bool, fallback: float):
        self.rewards = [fallback] * n
        self.scores = [0.0 if use_verifier else fallback] * n
        self.logs = {k: [0.0] * n for k in GET_REWARD_LOG_KEYS}
        self.logs["hero_error"] = [1.0] * n
        self.logs["hero_prompt_mismatch"] = [float(m) for m in mismatch]
        self.use_verifier = use_verifier

    def put(self, i: int, g: GroupResult, pos: int, partial: bool, count: int) -> None:
        self.rewards[i] = g.rewards[pos]
        self.scores[i] = float(g.verifier[pos]) if self.use_verifier else g.rewards[pos]
        row = {
            "hero_verifier": float(g.verifier[pos]),
            "hero_rm_score": g.rm_scores[pos],
            "hero_normalized": g.normalized[pos],
            "hero_weight": g.weight,
            "hero_sigma": g.sigma,
            "hero_sigma_bar": g.sigma_bar,
            "hero_all_correct": float(g.collapse == "all_correct"),
            "hero_all_incorrect": float(g.collapse == "all_incorrect"),
            "hero_partial": float(partial),
            "hero_group_count": float(count),
            "hero_error": 0.0,
        }
        for k, v in row.items():
            self.logs[k][i] = v

    def response(self) -> GetRewardResponse:
        return GetRewardResponse(rewards=self.rewards, scores=self.scores, extra_logs=self.logs)


@router.post(
    "/get_reward",
    response_model=GetRewardResponse,
    responses={c: {"model": ErrorBody} for c in (401, 413, 415, 422, 429, 502, 503)},
    tags=["compat"],
)
async def get_reward(
    req: GetRewardRequest,
    request: Request,
    job_id: Annotated[str | None, Query(pattern=JOB_ID_PATTERN)] = None,
    group_size: Annotated[int | None, Query(ge=1)] = None,
    deadline_s: Annotated[float | None, Query(gt=0)] = None,
    verifier: VerifierName | None = None,
    preset: PresetName | None = None,
    scores: Literal["verifier", "reward"] = "verifier",
) -> Response:
    """OpenRLHF-compatible remote reward (`--reward.remote_url http://host/get_reward?...`).

    Takes `{"query", "prompts", "labels"}` and answers `{"rewards", "scores", "extra_logs"}`
    (numbers only, the same keys every time). One sample per request (OpenRLHF >= 0.10)
    goes through the group barrier keyed by (job, prompt, label), so `group_size` (the
    trainer's n_samples_per_prompt) must be in the URL. A batch (OpenRLHF <= 0.9) is
    grouped by (prompt, label): whole groups are scored at once, leftovers wait in the
    barrier for the rest of their group. `scores` is the verifier label by default, so
    dynamic filtering drops groups that are all correct or all wrong. Overload, shutdown
    and deadlines answer 429/503 with Retry-After (retry the batch), never 200 with
    fallback rewards; other scoring failures (409) give `compat_fallback_reward` and
    `hero_error` = 1 in extra_logs.
    """
    n = len(req.query)
    if n == 0:  # OpenRLHF sends empty lists to all but one of several URLs
        return _json(GetRewardResponse(rewards=[], scores=[], extra_logs={}))
    p, barrier = live_barrier(request)
    st = p.settings
    p.verifier_name(verifier)
    prompts = req.prompts if req.prompts is not None else [""] * n
    if len(prompts) != n:
        raise InvalidInput(f"prompts has {len(prompts)} entries but query has {n}", "prompts")
    if req.labels is None:
        raise InvalidInput(
            "labels is required: HERO's rule verifier needs each sample's reference answer "
            "(OpenRLHF sends it from --data.label_key)",
            "labels",
        )
    if len(req.labels) != n:
        raise InvalidInput(f"labels has {len(req.labels)} entries but query has {n}", "labels")
    if group_size is not None and group_size > st.max_group_size:
        raise InvalidInput(
            f"group_size is {group_size}, over the limit of {st.max_group_size}", "group_size"
        )
    if group_size is None and n == 1:
        raise InvalidInput(
            "group_size is required for one-sample requests: OpenRLHF >= 0.10 scores each "
            "rollout alone, so put its n_samples_per_prompt in the URL, e.g. "
            "/get_reward?job_id=run-1&group_size=8",
            "group_size",
        )
    labels = [_label_text(x) for x in req.labels]
    texts: list[str] = []
    mismatch: list[bool] = []
    for i in range(n):
        check_text(req.query[i], f"query[{i}]", st.max_prompt_chars + st.max_response_chars)
        check_text(prompts[i], f"prompts[{i}]", st.max_prompt_chars)
        if not labels[i].strip():
            raise InvalidInput(
                f"labels[{i}] is empty: HERO needs the reference answer", f"labels[{i}]"
            )
        check_text(labels[i], f"labels[{i}]", st.max_reference_chars)
        text, missing = split_query(req.query[i], prompts[i])
        check_text(text, f"query[{i}]", st.max_response_chars)
        texts.append(text)
        mismatch.append(missing)
    job = job_id or st.compat_job_id
    overrides = ShapingOverrides(preset=preset) if preset is not None else None
    if overrides is not None:
        await p.resolve_config(job, overrides)

    # (prompt, label) -> sample indices, in request order
    by_key: dict[tuple[str, str], list[int]] = {}
    for i in range(n):
        by_key.setdefault((prompts[i], labels[i]), []).append(i)
    whole: list[list[int]] = []
    waiting: list[int] = []
    for (prompt, _), idxs in by_key.items():
        if group_size is None and len(idxs) > st.max_group_size:
            raise InvalidInput(
                f"{len(idxs)} samples share the prompt {prompt[:60]!r} and label, over the "
                f"group size limit of {st.max_group_size} (setting max_group_size); put the "
                "trainer's n_samples_per_prompt in the URL: /get_reward?group_size=N",
                "group_size",
            )
        size = group_size or len(idxs)
        full = len(idxs) - len(idxs) % size
        whole.extend(idxs[k : k + size] for k in range(0, full, size))
        waiting.extend(idxs[full:])

    rows = _Rows(n, mismatch, scores == "verifier", st.compat_fallback_reward)
    async with disconnect_watch(request) as gone:
        try:
            if whole:
                work = _score_whole(
                    p, rows, job, whole, prompts, labels, texts, overrides, verifier
                )
                await _unless_gone(work, gone, st.request_deadline_s)
            if waiting:
                assert group_size is not None
                samples = [
                    SampleIn(
                        job_id=job,
                        group_id="prompt-" + _key_digest(prompts[i], labels[i])[:16],
                        group_key="prompt:" + _key_digest(prompts[i], labels[i]),
                        reusable=True,
                        group_size=group_size,
                        prompt=prompts[i],
                        reference=labels[i],
                        response=texts[i],
                        deadline_s=deadline_s,
                        shaping=overrides,
                        verifier=verifier,
                    )
                    for i in waiting
                ]
                shared = runtime(request).shared  # Redis: groups shared by every replica
                await _score_waiting(shared or barrier, rows, waiting, samples, gone)
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED)
    return _json(rows.response())


async def _unless_gone(work: Coroutine[Any, Any, None], gone: Gone, deadline_s: float) -> None:
    """Run the scoring of whole groups; a client that goes away, or the request deadline,
    cancels it (queued RM inputs and verifications are dropped, nothing is folded)."""
    task = asyncio.ensure_future(work)
    waits: set[asyncio.Future[Any]] = {task, gone}
    try:
        done, _ = await asyncio.wait(
            waits, timeout=deadline_s or None, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=5.0)
    if task in done:
        task.result()
    elif gone in done:
        raise ClientGone()
    else:
        raise DeadlineExceeded(
            f"/get_reward did not finish within {deadline_s:g}s (setting request_deadline_s); "
            "its scoring was cancelled, retry"
        )


def _key_digest(prompt: str, label: str) -> str:
    return hashlib.sha256(
        f"{len(prompt)}:{prompt}{label}".encode("utf-8", "surrogatepass")
    ).hexdigest()


def _json(body: GetRewardResponse) -> Response:
    return Response(body.model_dump_json(), media_type="application/json")


async def _score_whole(
    p: Pipeline,
    rows: _Rows,
    job: str,
    whole: list[list[int]],
    prompts: Sequence[str],
    labels: Sequence[str],
    texts: Sequence[str],
    overrides: ShapingOverrides | None,
    verifier: str | None,
) -> None:
    """Whole groups found inside one batch request: one pipeline call, no barrier."""
    groups = [
        GroupIn(prompt=prompts[ix[0]], reference=labels[ix[0]], responses=[texts[i] for i in ix])
        for ix in whole
    ]

    digest = payload_digest("".join(g.model_dump_json() for g in groups))
    try:
        out = await p.score(job, groups, None, digest, overrides, verifier)
    except ServiceError as e:
        if e.status in RETRYABLE or isinstance(e, InvalidInput):
            raise
        log.warning("/get_reward: %d groups not scored (%s): %s", len(groups), e.kind, e.message)
        return
    results = out.groups
    for ix, g in zip(whole, results, strict=True):
        for pos, i in enumerate(ix):
            rows.put(i, g, pos, partial=False, count=len(ix))


async def _score_waiting(
    barrier: Barrier | SharedBarrier,
    rows: _Rows,
    waiting: list[int],
    samples: list[SampleIn],
    gone: Gone,
) -> None:
    """Samples whose group is not complete in this request wait in the barrier."""
    outs = await asyncio.gather(*(barrier.submit(s, gone) for s in samples), return_exceptions=True)
    for out in outs:  # one retryable error: the trainer retries the whole batch
        if isinstance(out, ServiceError) and out.status in RETRYABLE:
            raise out
    for i, out in zip(waiting, outs, strict=True):
        if isinstance(out, SampleOutcome):
            rows.put(i, out.group, out.position, out.partial, out.count)
        elif isinstance(out, ClientGone):
            raise out
        elif isinstance(out, ServiceError):
            log.warning("/get_reward: sample not scored (%s): %s", out.kind, out.message)
        elif isinstance(out, BaseException):
            raise out


__all__ = ["router", "split_query"]
