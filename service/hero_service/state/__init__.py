"""Per-job state stores (SQLite by default)."""

from __future__ import annotations

from hero_service.config import Settings
from hero_service.state.base import JobRecord, JobStore, RequestIdConflict, payload_digest
from hero_service.state.sqlite import SQLiteJobStore


async def build_store(settings: Settings) -> JobStore:
    """The configured job-state store."""
    return SQLiteJobStore(settings.state_path, settings.idempotency_ttl_s)


__all__ = [
    "JobRecord",
    "JobStore",
    "RequestIdConflict",
    "SQLiteJobStore",
    "build_store",
    "payload_digest",
]
