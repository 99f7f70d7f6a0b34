"""Per-job state stores: SQLite by default, Redis when several replicas share a job."""

from __future__ import annotations

import time

from hero_service.config import Settings
from hero_service.state.base import JobRecord, JobStore, RequestIdConflict, payload_digest
from hero_service.state.sqlite import SQLiteJobStore

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


async def build_store(settings: Settings) -> JobStore:
    """The configured job-state store: `state_url` redis://... selects Redis; empty or
    sqlite:///PATH selects SQLite (`state_path` when the URL is empty). No I/O here:
    the app pings the store before it reports ready."""
    url = settings.state_url
    if url.startswith(REDIS_SCHEMES):
        try:
            from hero_service.state.redis import RedisJobStore
        except ImportError as e:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "state_url is a Redis URL but redis-py is not installed: "
                "pip install 'hero-service[redis]'"
            ) from e
        return RedisJobStore(
            url,
            settings.idempotency_ttl_s,
            prefix=settings.redis_key_prefix,
            timeout_s=settings.state_timeout_s,
        )
    path = url.removeprefix("sqlite://") if url else settings.state_path
    return SQLiteJobStore(path, settings.idempotency_ttl_s)


async def prune_jobs(store: JobStore, older_than_s: float, dry_run: bool = False) -> list[str]:
    """Delete jobs not updated for `older_than_s` seconds (with their request ids).
    Returns the ids of the pruned (or, with dry_run, prunable) jobs."""
    cutoff = time.time() - older_than_s
    old = [r.job_id for r in await store.list_jobs() if r.updated_at < cutoff]
    if not dry_run:
        for job_id in old:
            await store.delete(job_id)
    return old


__all__ = [
    "REDIS_SCHEMES",
    "JobRecord",
    "JobStore",
    "RequestIdConflict",
    "SQLiteJobStore",
    "build_store",
    "payload_digest",
    "prune_jobs",
]
