"""What the sync and async clients share: the retry policy, request building (one
`Call` per endpoint) and response parsing. No I/O here."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from hero_client import schema as s
from hero_client._exceptions import (
    HeroAPIError,
    HeroConnectionError,
    HeroError,
    HeroResponseError,
    HeroTimeoutError,
    InvalidArgumentError,
    error_for_status,
)
from hero_client.retry import parse_retry_after

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
DEFAULT_TIMEOUT = 60.0
USER_AGENT = "hero-client/0.1.0"
# A per-sample call waits for its group: allow the deadline plus this much for scoring.
SAMPLE_TIMEOUT_MARGIN_S = 30.0
Shaping = s.ShapingOverrides | Mapping[str, Any] | None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One endpoint call, ready to send (any number of times: it never changes)."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = None
    params: Mapping[str, Any] | None = None
    timeout: httpx.Timeout | None = None
    accept: tuple[int, ...] = (200,)
    headers: Mapping[str, str] = field(default_factory=dict)


def new_request_id() -> str:
    return uuid.uuid4().hex


def make_timeout(t: float | httpx.Timeout | None) -> httpx.Timeout:
    if isinstance(t, httpx.Timeout):
        return t
    return httpx.Timeout(DEFAULT_TIMEOUT if t is None else t, connect=min(10.0, t or 10.0))


def _validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except PydanticValidationError as e:
        raise InvalidArgumentError(f"invalid {model.__name__} arguments: {e}") from e


def _shaping(v: Shaping) -> s.ShapingOverrides | None:
    if v is None or isinstance(v, s.ShapingOverrides):
        return v
    return _validate(s.ShapingOverrides, dict(v))


def _body(m: BaseModel) -> Any:
    return m.model_dump(mode="json", exclude_none=True)


def api_error(resp: httpx.Response) -> HeroAPIError:
    text = resp.text
    kind = message = fld = None
    details = None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        kind = data.get("error") if isinstance(data.get("error"), str) else None
        message = data.get("message") if isinstance(data.get("message"), str) else None
        fld = data.get("field") if isinstance(data.get("field"), str) else None
        details = data.get("details") if isinstance(data.get("details"), list) else None
    cls = error_for_status(resp.status_code)
    return cls(
        resp.status_code,
        message or (text[:500] if text else resp.reason_phrase),
        kind,
        fld,
        details,
        text,
        parse_retry_after(resp),
    )


def transport_error(e: httpx.TransportError, method: str, url: str) -> HeroError:
    what = f"{method} {url}: {type(e).__name__}: {e or 'no detail'}"
    if isinstance(e, httpx.TimeoutException):
        return HeroTimeoutError(what)
    if isinstance(e, (httpx.NetworkError, httpx.RemoteProtocolError)):
        return HeroConnectionError(what)
    return HeroError(what)  # a local misconfiguration (bad URL, proxy): not retried


def model_parser(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(resp: httpx.Response) -> M:
        try:
            return model.model_validate_json(resp.content)
        except PydanticValidationError as e:
            raise HeroResponseError(
                f"{resp.request.method} {resp.request.url.path}: the answer is not a "
                f"{model.__name__}: {e}",
                resp.status_code,
                resp.text,
            ) from e

    return parse


def adapter_parser(tp: Any) -> Callable[[httpx.Response], Any]:
    ta: TypeAdapter[Any] = TypeAdapter(tp)

    def parse(resp: httpx.Response) -> Any:
        try:
            return ta.validate_json(resp.content)
        except PydanticValidationError as e:
            raise HeroResponseError(str(e), resp.status_code, resp.text) from e

    return parse


def _text(resp: httpx.Response) -> str:
    return resp.text


def _deleted(resp: httpx.Response) -> bool:
    return resp.status_code == 200


# -- one builder per endpoint ---------------------------------------------------------------
def score_group(
    job_id: str,
    prompt: str,
    reference: str,
    responses: Sequence[str],
    labels: Sequence[int] | None,
    shaping: Shaping,
    verifier: str | None,
    request_id: str | None,
    timeout: httpx.Timeout | None,
) -> Call[s.ScoreGroupResponse]:
    req = _validate(
        s.ScoreGroupRequest,
        {
            "job_id": job_id,
            "prompt": prompt,
            "reference": reference,
            "responses": list(responses),
            "labels": list(labels) if labels is not None else None,
            "shaping": _shaping(shaping),
            "verifier": verifier,
            "request_id": request_id,
        },
    )
    parse = model_parser(s.ScoreGroupResponse)
    return Call("POST", "/score_group", parse, _body(req), None, timeout)


def score_batch(
    job_id: str,
    groups: Sequence[s.GroupIn | Mapping[str, Any]],
    shaping: Shaping,
    verifier: str | None,
    request_id: str | None,
    timeout: httpx.Timeout | None,
) -> Call[s.ScoreBatchResponse]:
    req = _validate(
        s.ScoreBatchRequest,
        {
            "job_id": job_id,
            "groups": [g if isinstance(g, s.GroupIn) else dict(g) for g in groups],
            "shaping": _shaping(shaping),
            "verifier": verifier,
            "request_id": request_id,
        },
    )
    parse = model_parser(s.ScoreBatchResponse)
    return Call("POST", "/score_batch", parse, _body(req), None, timeout)


def score_sample(
    job_id: str,
    group_id: str,
    group_size: int,
    response: str,
    reference: str,
    prompt: str,
    sample_index: int | None,
    label: int | None,
    deadline_s: float | None,
    shaping: Shaping,
    verifier: str | None,
    request_id: str | None,
    timeout: httpx.Timeout,
) -> Call[s.ScoreSampleResponse]:
    req = _validate(
        s.ScoreSampleRequest,
        {
            "job_id": job_id,
            "group_id": group_id,
            "group_size": group_size,
            "prompt": prompt,
            "reference": reference,
            "response": response,
            "sample_index": sample_index,
            "label": label,
            "deadline_s": deadline_s,
            "shaping": _shaping(shaping),
            "verifier": verifier,
            "request_id": request_id,
        },
    )
    return Call(
        "POST", "/score_sample", model_parser(s.ScoreSampleResponse), _body(req), None, timeout
    )


def get_reward(
    query: Sequence[str],
    prompts: Sequence[str] | None,
    labels: Sequence[str | int | float | None] | None,
    job_id: str | None,
    group_size: int | None,
    deadline_s: float | None,
    verifier: str | None,
    preset: str | None,
    scores: Literal["verifier", "reward"] | None,
    timeout: httpx.Timeout,
) -> Call[s.GetRewardResponse]:
    req = _validate(
        s.GetRewardRequest,
        {
            "query": list(query),
            "prompts": list(prompts) if prompts is not None else None,
            "labels": list(labels) if labels is not None else None,
        },
    )
    params = {
        k: v
        for k, v in {
            "job_id": job_id,
            "group_size": group_size,
            "deadline_s": deadline_s,
            "verifier": verifier,
            "preset": preset,
            "scores": scores,
        }.items()
        if v is not None
    }
    return Call(
        "POST",
        "/get_reward",
        model_parser(s.GetRewardResponse),
        req.model_dump(mode="json"),
        params,
        timeout,
    )


def verify(
    reference: str, responses: Sequence[str], verifier: str | None, prompt: str = ""
) -> Call[s.VerifyResponse]:
    req = _validate(
        s.VerifyRequest,
        {
            "reference": reference,
            "responses": list(responses),
            "verifier": verifier,
            "prompt": prompt,
        },
    )
    body = _body(req)
    if not prompt:  # only the judge stage reads it; servers before it refuse the field
        body.pop("prompt", None)
    return Call("POST", "/verify", model_parser(s.VerifyResponse), body)


def rm_score(
    responses: Sequence[str], prompt: str, reference: str | None
) -> Call[s.RMScoreResponse]:
    req = _validate(
        s.RMScoreRequest,
        {"prompt": prompt, "responses": list(responses), "reference": reference},
    )
    return Call("POST", "/rm_score", model_parser(s.RMScoreResponse), _body(req))


def _job_path(job_id: str) -> str:
    if not isinstance(job_id, str) or not job_id:
        raise InvalidArgumentError("job_id must be a non-empty string")
    return "/jobs/" + urllib.parse.quote(job_id, safe="")


def get_job(job_id: str) -> Call[s.JobState]:
    return Call("GET", _job_path(job_id), model_parser(s.JobState))


def list_jobs() -> Call[list[s.JobState]]:
    parse: Callable[[httpx.Response], list[s.JobState]] = adapter_parser(list[s.JobState])
    return Call("GET", "/jobs", parse)


def import_job(state: s.JobState) -> Call[s.JobState]:
    return Call(
        "PUT", _job_path(state.job_id), model_parser(s.JobState), state.model_dump(mode="json")
    )


def reset_job(job_id: str) -> Call[bool]:
    return Call("DELETE", _job_path(job_id), _deleted, accept=(200, 404))


def health() -> Call[s.Health]:
    return Call("GET", "/health", model_parser(s.Health))


def ready() -> Call[s.Ready]:
    # 503 carries a Ready body too: it is an answer, not an error, so it is not retried.
    return Call("GET", "/ready", model_parser(s.Ready), accept=(200, 503))


def config() -> Call[s.ServiceConfig]:
    return Call("GET", "/config", model_parser(s.ServiceConfig))


def metrics() -> Call[str]:
    return Call("GET", "/metrics", _text)


def sample_timeout(base: httpx.Timeout, deadline_s: float | None) -> httpx.Timeout:
    """A per-sample call waits for its group: give the read the deadline plus a margin."""
    if deadline_s is None or base.read is None:
        return base
    read = max(base.read, deadline_s + SAMPLE_TIMEOUT_MARGIN_S)
    return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)


def headers(token: str | None, user_agent: str) -> dict[str, str]:
    h = {"User-Agent": user_agent, "Accept": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    return h
