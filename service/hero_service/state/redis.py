"""Redis job-state store: several replicas serve one job with one consistent state.

Semantics are those of the SQLite store. `transact` is an optimistic transaction
(WATCH the job and the request id, read, compute in Python, MULTI/EXEC, retry on a
conflict), so the running sigma of a job is updated atomically and calls are folded in
one at a time, in commit order, whichever replica serves them.

Keys (every key of a job carries the job id as a hash tag, `{job}`; an id with braces
is hex-encoded, see _tag, so keys never collide):

    <p>jobs                  zset   job_id -> updated_at (listing, pruning)
    <p>{job}:job             hash   sigma_bar, count, config, created_at, updated_at
    <p>{job}:reqs            zset   request_id -> created_at (reset / trim)
    <p>{job}:req:<id>        string "<sha256 hex>:<response json>", TTL = idempotency TTL
    <p>{job}:txn:<uuid>      string commit marker of an anonymous call, short TTL

An acknowledged call is one whose EXEC returned: with Redis persistence set to
`appendonly yes` + `appendfsync always` (deploy/), it survives a Redis restart or crash.
Any Redis failure becomes StateUnavailable (HTTP 503 + Retry-After); connections are
re-established by themselves when Redis comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError, WatchError
from redis.retry import Retry

from hero_service.errors import StateUnavailable
from hero_service.shaping import RunningSigma, ShapingConfig, check_running
from hero_service.state.base import Commit, Compute, JobRecord, check_record, check_replay

T = TypeVar("T")

_ANON_TTL_S = 600  # an anonymous call's commit marker only has to outlive its retries
_TRIM_EVERY = 64  # trim a job's request-id index every N commits (amortised)
_DELETE_CHUNK = 1000


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _tag(job_id: str) -> str:
    """The job id as a key's hash tag. API job ids never contain braces; an imported id
    that does (or starts with '#') is hex-encoded, so two jobs never share a key."""
    if "{" in job_id or "}" in job_id or job_id.startswith("#"):
        return "#" + job_id.encode("utf-8", "surrogatepass").hex()
    return job_id


def _encode(rec: JobRecord) -> dict[Any, Any]:
    return {
        "sigma_bar": "" if rec.running.sigma_bar is None else repr(rec.running.sigma_bar),
        "count": str(rec.running.count),
        "config": json.dumps(rec.config.to_dict(), sort_keys=True),
        "created_at": repr(rec.created_at),
        "updated_at": repr(rec.updated_at),
    }


def _decode(job_id: str, h: Mapping[Any, Any]) -> JobRecord:
    sb = float(h["sigma_bar"]) if h.get("sigma_bar") else None
    if sb is not None and not math.isfinite(sb):
        sb = None  # a NaN an older version stored: no running mean, as SQLite reads it
    return JobRecord(
        job_id=job_id,
        running=RunningSigma(sb, int(h["count"])),
        config=ShapingConfig(**json.loads(h["config"])),
        created_at=float(h["created_at"]),
        updated_at=float(h["updated_at"]),
    )


class RedisJobStore:
    def __init__(
        self,
        url: str,
        idempotency_ttl_s: float = 7 * 86400.0,
        *,
        prefix: str = "hero:",
        timeout_s: float = 2.0,
        contention_budget_s: float = 10.0,
        max_connections: int = 256,
    ) -> None:
        self.url = url
        self._where = redact(url)
        self._ttl = max(1, math.ceil(idempotency_ttl_s))
        self._p = prefix
        self._budget = contention_budget_s
        self._r: Redis = Redis.from_url(
            url,
            decode_responses=True,
            encoding_errors="surrogatepass",  # any str the API accepts round-trips
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            health_check_interval=15,
            max_connections=max_connections,
            # Reads retry a few times over a blip; a transaction that loses its
            # connection while WATCHing surfaces as WatchError and is re-run by us.
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2),
        )
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._commits = 0
        self.conflicts = 0  # optimistic-transaction retries (observability, tests)

    # -- keys ----------------------------------------------------------------------------
    def _job(self, job_id: str) -> str:
        return f"{self._p}{{{_tag(job_id)}}}:job"

    def _reqs(self, job_id: str) -> str:
        return f"{self._p}{{{_tag(job_id)}}}:reqs"

    def _req(self, job_id: str, request_id: str) -> str:
        return f"{self._p}{{{_tag(job_id)}}}:req:{request_id}"

    def _txn(self, job_id: str, token: str) -> str:
        return f"{self._p}{{{_tag(job_id)}}}:txn:{token}"

    @property
    def _index(self) -> str:
        return f"{self._p}jobs"

    # -- plumbing --------------------------------------------------------------------------
    async def _guard(self, aw: Awaitable[T]) -> T:
        try:
            return await aw
        except RedisError as e:
            raise StateUnavailable(
                f"job-state store (Redis at {self._where}) is unavailable: "
                f"{type(e).__name__}: {str(e)[:200]}; retry shortly"
            ) from None

    @contextlib.asynccontextmanager
    async def _job_lock(self, job_id: str) -> AsyncIterator[None]:
        """Serialise one job's transactions inside this process, so optimistic retries
        only happen between replicas. The lock table holds only jobs in use."""
        lock, n = self._locks.get(job_id, (asyncio.Lock(), 0))
        self._locks[job_id] = (lock, n + 1)
        try:
            async with lock:
                yield
        finally:
            lock, n = self._locks[job_id]
            if n <= 1:
                del self._locks[job_id]
            else:
                self._locks[job_id] = (lock, n - 1)

    @staticmethod
    def _split(stored: Any, request_id: str, digest: str) -> str:
        got, _, response = str(stored).partition(":")
        return check_replay(request_id, got, digest, response)

    # -- API -------------------------------------------------------------------------------
    async def lookup(self, job_id: str, request_id: str, digest: str) -> str | None:
        stored = await self._guard(self._r.get(self._req(job_id, request_id)))
        return None if stored is None else self._split(stored, request_id, digest)

    async def transact(
        self,
        job_id: str,
        request_id: str | None,
        digest: str,
        init_config: ShapingConfig,
        compute: Compute[T],
    ) -> Commit[T] | str:
        async with self._job_lock(job_id):
            return await self._guard(
                self._transact(job_id, request_id, digest, init_config, compute)
            )

    async def _transact(
        self,
        job_id: str,
        request_id: str | None,
        digest: str,
        init: ShapingConfig,
        compute: Compute[T],
    ) -> Commit[T] | str:
        jk, ik = self._job(job_id), self._reqs(job_id)
        # An anonymous call still gets a private marker, so that a retry after a lost
        # EXEC reply can tell whether its own attempt committed (never folds in twice).
        rk = (
            self._req(job_id, request_id)
            if request_id is not None
            else self._txn(job_id, uuid.uuid4().hex)
        )
        sent: Commit[T] | None = None  # the last attempt sent to EXEC
        deadline = time.monotonic() + self._budget
        attempt = 0
        while True:
            async with self._r.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(jk, rk)
                    stored = await pipe.get(rk)
                    if stored is not None:
                        if request_id is None:
                            assert sent is not None
                            return sent  # our own attempt committed
                        response = self._split(stored, request_id, digest)
                        # our own commit whose reply was lost is not a replay
                        return sent if sent is not None and response == sent.stored else response
                    raw = await pipe.hgetall(jk)
                    now = time.time()
                    rec = (
                        _decode(job_id, raw)
                        if raw
                        else JobRecord(job_id, RunningSigma(), init, now, now)
                    )
                    commit = compute(rec)
                    running, response = commit.running, commit.stored
                    check_running(running)  # never store a non-finite mean
                    new = JobRecord(job_id, running, rec.config, rec.created_at, now)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(jk, mapping=_encode(new))
                    pipe.zadd(self._index, {job_id: now})
                    if request_id is not None:
                        pipe.set(rk, f"{digest}:{response}", ex=self._ttl)
                        pipe.zadd(ik, {request_id: now})
                        if self._commits % _TRIM_EVERY == 0:
                            pipe.zremrangebyscore(ik, "-inf", now - self._ttl)
                    else:
                        pipe.set(rk, "1", ex=_ANON_TTL_S)
                    sent = commit
                    await pipe.execute()
                    self._commits += 1
                    return commit
                except WatchError:
                    # another replica committed to this job (or the connection dropped
                    # while watching): re-read and recompute
                    self.conflicts += 1
            attempt += 1
            if time.monotonic() > deadline:
                raise StateUnavailable(
                    f"job {job_id!r}: state update kept conflicting for {self._budget:.0f}s "
                    "(too many replicas writing one job?); retry shortly"
                )
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self._guard(self._r.hgetall(self._job(job_id)))
        return _decode(job_id, raw) if raw else None

    async def list_jobs(self) -> list[JobRecord]:
        async def run() -> list[JobRecord]:
            ids: list[Any] = await self._r.zrange(self._index, 0, -1)
            out: list[JobRecord] = []
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                async with self._r.pipeline(transaction=False) as pipe:
                    for j in chunk:
                        pipe.hgetall(self._job(j))
                    rows: list[dict[str, str]] = await pipe.execute()
                out += [_decode(j, h) for j, h in zip(chunk, rows, strict=True) if h]
            return sorted(out, key=lambda r: r.job_id)

        return await self._guard(run())

    async def put(self, record: JobRecord) -> None:
        check_record(record)
        jk = self._job(record.job_id)

        async def run() -> None:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.delete(jk)
                pipe.hset(jk, mapping=_encode(record))
                pipe.zadd(self._index, {record.job_id: record.updated_at})
                await pipe.execute()

        async with self._job_lock(record.job_id):
            await self._guard(run())

    async def delete(self, job_id: str) -> bool:
        jk, ik = self._job(job_id), self._reqs(job_id)

        async def run() -> bool:
            # Forget the remembered request ids chunk by chunk, then the job itself
            # and what is left of its index in one transaction.
            while True:
                ids: list[Any] = await self._r.zrange(ik, 0, _DELETE_CHUNK - 1)
                if len(ids) < _DELETE_CHUNK:
                    break
                async with self._r.pipeline(transaction=True) as pipe:
                    pipe.unlink(*(self._req(job_id, i) for i in ids))
                    pipe.zrem(ik, *ids)
                    await pipe.execute()
            async with self._r.pipeline(transaction=True) as pipe:
                if ids:
                    pipe.unlink(*(self._req(job_id, i) for i in ids))
                pipe.unlink(ik)
                pipe.zrem(self._index, job_id)
                pipe.unlink(jk)
                res: list[Any] = await pipe.execute()
            return bool(res[-1])

        async with self._job_lock(job_id):
            return await self._guard(run())

    async def ping(self) -> bool:
        return bool(await self._guard(self._r.ping()))

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._r.aclose()
