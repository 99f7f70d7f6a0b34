"""`POST /score_sample`: one rollout per request, held by the group barrier (barrier.py)
until its group is complete, then answered with its own share of ONE scoring."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from hero_client.schema import ErrorBody, ScoreSampleRequest, ScoreSampleResponse
from hero_service.api.groups import (
    CLIENT_CLOSED,
    ClientGone,
    SampleIn,
    SampleOutcome,
    disconnect_watch,
)
from hero_service.api.runtime import live_barrier, runtime
from hero_service.pipeline import check_text

router = APIRouter()
_ERRORS: dict[int | str, dict[str, object]] = {
    c: {"model": ErrorBody} for c in (401, 409, 413, 415, 422, 429, 502, 503)
}


@router.post(
    "/score_sample", response_model=ScoreSampleResponse, responses=_ERRORS, tags=["scoring"]
)
@router.post("/v1/score_sample", response_model=ScoreSampleResponse, include_in_schema=False)
async def score_sample(req: ScoreSampleRequest, request: Request) -> Response:
    """Score one rollout as part of its group (group barrier).

    The request waits until `group_size` samples of (`job_id`, `group_id`) have arrived or
    the group's deadline passes, then every sample gets its own reward from ONE scoring of
    the group. `partial` marks a group scored at its deadline. A new sample for a group
    already scored gets 409; a retry (same `sample_index` or `request_id`) gets the same
    answer again, never counted twice.
    """
    p, barrier = live_barrier(request)
    s = p.settings
    check_text(req.prompt, "prompt", s.max_prompt_chars)
    check_text(req.reference, "reference", s.max_reference_chars)
    check_text(req.response, "response", s.max_response_chars)
    if req.shaping is not None:
        await p.resolve_config(req.job_id, req.shaping)  # bad overrides fail now, not later
    p.verifier_name(req.verifier)  # cascade+judge without a judge fails now, not later
    sample = SampleIn(
        job_id=req.job_id,
        group_id=req.group_id,
        group_key="id:" + req.group_id,
        reusable=False,
        group_size=req.group_size,
        prompt=req.prompt,
        reference=req.reference,
        response=req.response,
        label=req.label,
        sample_index=req.sample_index,
        request_id=req.request_id,
        deadline_s=req.deadline_s,
        shaping=req.shaping,
        verifier=req.verifier,
    )
    try:
        async with disconnect_watch(request) as gone:
            shared = runtime(request).shared  # Redis: groups shared by every replica
            out = await (shared or barrier).submit(sample, gone)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    return Response(
        _sample_response(out, req.job_id, req.group_id, req.request_id).model_dump_json(),
        media_type="application/json",
    )


def _sample_response(
    out: SampleOutcome, job_id: str, group_id: str, request_id: str | None
) -> ScoreSampleResponse:
    g, i = out.group, out.position
    return ScoreSampleResponse(
        job_id=job_id,
        group_id=group_id,
        request_id=request_id,
        sample_index=out.sample_index,
        position=i,
        reward=g.rewards[i],
        verifier=g.verifier[i],
        verifier_status=g.verifier_status[i],
        answer=g.answers[i],
        verifier_stage=g.verifier_stage[i] if g.verifier_stage is not None else None,
        judge=g.judge[i] if g.judge is not None else None,
        rm_score=g.rm_scores[i],
        normalized=g.normalized[i],
        advantage=g.advantages[i] if g.advantages is not None else None,
        weight=g.weight,
        sigma=g.sigma,
        sigma_bar=g.sigma_bar,
        collapse=g.collapse,
        group_size=out.group_size,
        group_count=out.count,
        partial=out.partial,
        replayed=out.replayed,
        wait_s=out.wait_s,
        timings=out.timings,
    )
