"""The job-state store contract shared by every backend."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from hero_client.schema import JOB_ID_PATTERN, TIMESTAMP_MAX
from hero_service.shaping import RunningSigma, ShapingConfig, ShapingError, check_running


class RequestIdConflict(Exception):
    """A request id was reused for a different payload."""


def check_replay(request_id: str, stored_digest: str, digest: str, response: str) -> str:
    """The stored response of a seen request id, or RequestIdConflict if the payload differs."""
    if stored_digest != digest:
        raise RequestIdConflict(
            f"request_id {request_id!r} was already used for a different payload"
        )
    return response


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    running: RunningSigma
    config: ShapingConfig
    created_at: float
    updated_at: float


def check_record(rec: JobRecord) -> None:
    """What every store accepts on import (put), the same for all: a job id of the API's
    pattern, a finite bounded running state, finite timestamps. ShapingError names the
    field; nothing is stored."""
    if re.fullmatch(JOB_ID_PATTERN, rec.job_id) is None:
        raise ShapingError("job_id", f"must match {JOB_ID_PATTERN}")
    check_running(rec.running)
    for name in ("created_at", "updated_at"):
        v = getattr(rec, name)
        if not (math.isfinite(v) and 0 <= v <= TIMESTAMP_MAX):
            raise ShapingError(name, f"must be finite and in [0, {TIMESTAMP_MAX:g}], got {v}")


T = TypeVar("T")


@dataclass(frozen=True)
class Commit(Generic[T]):
    """What a transaction's compute step produces: the job's new running sigma, the text a
    replay of the request id gets back, and a value handed back to the caller."""

    running: RunningSigma
    stored: str
    value: T


# compute(record) -> Commit; runs inside the store's transaction, so it must be pure and fast.
Compute = Callable[[JobRecord], Commit[T]]


def payload_digest(raw: bytes | str) -> str:
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return hashlib.sha256(data).hexdigest()


class JobStore(Protocol):
    async def lookup(self, job_id: str, request_id: str, digest: str) -> str | None:
        """The stored response of a request id, None if unseen; RequestIdConflict if the
        id was used for another payload."""

    async def transact(
        self,
        job_id: str,
        request_id: str | None,
        digest: str,
        init_config: ShapingConfig,
        compute: Compute[T],
    ) -> Commit[T] | str:
        """Atomically: replay a seen request id, or run compute on the job's record
        (created with init_config if new), save the new state and the stored text.
        Returns compute's Commit, or the stored text of a seen request id."""

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def list_jobs(self) -> list[JobRecord]: ...

    async def put(self, record: JobRecord) -> None:
        """Create or overwrite a job (import / restore from a checkpoint); check_record
        first (ShapingError naming the field)."""

    async def delete(self, job_id: str) -> bool: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
