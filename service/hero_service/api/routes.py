"""HTTP routes. Validation lives in the wire schema and the pipeline; no logic here."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hero_client.schema import (
    JOB_ID_PATTERN,
    ErrorBody,
    GroupIn,
    GroupResult,
    Health,
    JobState,
    Ready,
    RMScoreRequest,
    RMScoreResponse,
    ScoreBatchRequest,
    ScoreBatchResponse,
    ScoreGroupRequest,
    ScoreGroupResponse,
    ServiceConfig,
    ShapingConfigOut,
    VerifyRequest,
    VerifyResponse,
)
from hero_service import __version__
from hero_service.api.runtime import live_pipeline, runtime
from hero_service.config import Settings
from hero_service.errors import InvalidInput, NotFound
from hero_service.rm import RMInput
from hero_service.shaping import RunningSigma, ShapingConfig, ShapingError
from hero_service.state import JobRecord, payload_digest
from hero_service.verify.pool import owned_by

router = APIRouter()
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The job id.")]
_ERRORS: dict[int | str, dict[str, object]] = {
    c: {"model": ErrorBody} for c in (401, 404, 409, 413, 415, 422, 429, 502, 503)
}


@router.post("/score_group", response_model=ScoreGroupResponse, responses=_ERRORS, tags=["scoring"])
@router.post("/v1/score_group", response_model=ScoreGroupResponse, include_in_schema=False)
async def score_group(req: ScoreGroupRequest, request: Request) -> Response:
    """Score one group (all rollouts of one prompt) and return HERO rewards."""
    p = live_pipeline(request)
    group = GroupIn(
        prompt=req.prompt, reference=req.reference, responses=req.responses, labels=req.labels
    )
    p.check_limits([group], lambda _: "")
    out = await p.score(
        req.job_id,
        [group],
        req.request_id,
        payload_digest(req.model_dump_json()),
        req.shaping,
        req.verifier,
    )
    r = out.groups[0]
    body = ScoreGroupResponse.model_construct(
        **{k: getattr(r, k) for k in GroupResult.model_fields if k != "group_id"},
        group_id=None,
        job_id=req.job_id,
        request_id=req.request_id,
        replayed=out.replayed,
        timings=out.timings,
    )
    return _json(body.model_dump_json(exclude={"group_id"}))


@router.post("/score_batch", response_model=ScoreBatchResponse, responses=_ERRORS, tags=["scoring"])
@router.post("/v1/score_batch", response_model=ScoreBatchResponse, include_in_schema=False)
async def score_batch(req: ScoreBatchRequest, request: Request) -> Response:
    """Score many groups of one job in one call; they share the pre-call sigma_bar."""
    p = live_pipeline(request)
    p.check_limits(req.groups, lambda i: f"groups[{i}].")
    out = await p.score(
        req.job_id,
        req.groups,
        req.request_id,
        payload_digest(req.model_dump_json()),
        req.shaping,
        req.verifier,
    )
    body = ScoreBatchResponse.model_construct(
        job_id=req.job_id,
        request_id=req.request_id,
        replayed=out.replayed,
        sigma_bar=out.sigma_bar,
        groups=out.groups,
        timings=out.timings,
    )
    return _json(body.model_dump_json())


def _json(body: str) -> Response:
    return Response(body, media_type="application/json")


@router.post("/verify", response_model=VerifyResponse, responses=_ERRORS, tags=["debug"])
async def verify(req: VerifyRequest, request: Request) -> VerifyResponse:
    """The rule verifier alone (no state is touched)."""
    p = live_pipeline(request)
    p.check_limits(
        [GroupIn(prompt=req.prompt, reference=req.reference, responses=req.responses)],
        lambda _: "",
    )
    p.verifier_name(req.verifier)  # cascade+judge needs a judge
    name = req.verifier or p.settings.verifier
    with owned_by():  # one request's answers share the pool fairly with other requests
        vs = await p.verifier.verify_group(req.reference, req.responses, name, req.prompt)
    return VerifyResponse.model_construct(
        verifier=[v.label for v in vs],
        verifier_status=[v.status for v in vs],
        answers=[v.answer for v in vs],
        reasons=[v.reason for v in vs],
        verifier_name=name,
        verifier_stage=[v.stage for v in vs],
        judge=[v.judge for v in vs] if any(v.judge for v in vs) else None,
    )


@router.post("/rm_score", response_model=RMScoreResponse, responses=_ERRORS, tags=["debug"])
async def rm_score(req: RMScoreRequest, request: Request) -> RMScoreResponse:
    """The reward model alone (raw scores)."""
    p = live_pipeline(request)
    p.check_limits(
        [
            GroupIn.model_construct(
                prompt=req.prompt,
                reference=req.reference or "-",
                responses=req.responses,
                labels=None,
            )
        ],
        lambda _: "",
    )
    res = await p.scorer.score_details(
        [RMInput(req.prompt, r, req.reference) for r in req.responses]
    )
    max_length, side = p.scorer.truncation
    return RMScoreResponse(
        rm_scores=[r.score for r in res],
        backend=p.scorer.name,
        n_tokens=[r.n_tokens for r in res],
        truncated=[r.truncated for r in res],
        max_length=max_length,
        truncation_side=side,
    )


def _state(rec: JobRecord) -> JobState:
    # constructed, not validated: a record stored by an older version must still export
    return JobState.model_construct(
        job_id=rec.job_id,
        sigma_bar=rec.running.sigma_bar,
        count=rec.running.count,
        config=ShapingConfigOut.model_construct(**rec.config.to_dict()),
        created_at=rec.created_at,
        updated_at=rec.updated_at,
    )


@router.get("/jobs", response_model=list[JobState], tags=["jobs"])
async def list_jobs(request: Request) -> list[JobState]:
    return [_state(r) for r in await live_pipeline(request).store.list_jobs()]


@router.get("/jobs/{job_id}", response_model=JobState, responses=_ERRORS, tags=["jobs"])
async def get_job(job_id: JobId, request: Request) -> JobState:
    """A job's state; the body is also the export format accepted by PUT."""
    rec = await live_pipeline(request).store.get(job_id)
    if rec is None:
        raise NotFound(f"job {job_id!r} not found", "job_id")
    return _state(rec)


@router.put("/jobs/{job_id}", response_model=JobState, responses=_ERRORS, tags=["jobs"])
async def import_job(job_id: JobId, state: JobState, request: Request) -> JobState:
    """Create or overwrite a job from an exported state (restore from a checkpoint).
    Every GET export imports unchanged; an invalid state is a 422 naming the field and
    nothing is stored (docs/reliability.md, "Jobs API")."""
    if state.job_id != job_id:
        raise InvalidInput(f"job_id in body ({state.job_id!r}) != path ({job_id!r})", "job_id")
    try:
        cfg = ShapingConfig(**state.config.model_dump())
    except ShapingError as e:
        raise InvalidInput(f"config.{e.field}: {e.message}", f"config.{e.field}") from None
    rec = JobRecord(
        job_id, RunningSigma(state.sigma_bar, state.count), cfg, state.created_at, state.updated_at
    )
    try:
        await live_pipeline(request).store.put(rec)  # the store checks the record too
    except ShapingError as e:
        raise InvalidInput(f"{e.field}: {e.message}", e.field) from None
    return _state(rec)


@router.delete("/jobs/{job_id}", responses=_ERRORS, tags=["jobs"])
async def reset_job(job_id: JobId, request: Request) -> JSONResponse:
    """Forget a job: its sigma_bar, config and remembered request ids."""
    if not await live_pipeline(request).store.delete(job_id):
        raise NotFound(f"job {job_id!r} not found", "job_id")
    return JSONResponse({"job_id": job_id, "deleted": True})


@router.get("/health", response_model=Health, tags=["ops"])
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(version=__version__)


@router.get("/ready", response_model=Ready, tags=["ops"], responses={503: {"model": Ready}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: the state store, verifier pool and reward model are up."""
    rt = runtime(request)
    body = Ready(ready=rt.ready, components=dict(rt.components)).model_dump()
    return JSONResponse(body, status_code=200 if rt.ready else 503)


def rm_model_name(s: Settings) -> str:
    if s.rm_backend == "embedded":
        return "all-MiniLM-L6-v2"  # rm/embedded.py: the demo scorer, not a trained RM
    if s.rm_backend == "remote":
        return s.rm_remote_model or s.rm_model or s.rm_remote_url
    return s.rm_model


def judge_name(s: Settings) -> str | None:
    """The judge's model name, else its host (never the URL: it may carry credentials)."""
    if not s.judge_url:
        return None
    return s.judge_model or urlparse(s.judge_url).hostname or "judge"


@router.get("/config", response_model=ServiceConfig, tags=["ops"])
async def config(request: Request) -> ServiceConfig:
    """The server's reward model, default verifier and shaping (read-only, no secrets)."""
    s = runtime(request).settings
    return ServiceConfig(
        version=__version__,
        rm_backend=s.rm_backend,
        rm_model=rm_model_name(s),
        verifier=s.verifier,
        shaping_preset=s.shaping_preset,
        shaping=ShapingConfigOut(**s.default_shaping().to_dict()),
        judge=judge_name(s),
    )


@router.get("/metrics", tags=["ops"])
async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(runtime(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
