"""Per-job state stores (SQLite by default)."""

from hero_service.state.base import JobRecord, JobStore, RequestIdConflict, payload_digest
from hero_service.state.sqlite import SQLiteJobStore

__all__ = ["JobRecord", "JobStore", "RequestIdConflict", "SQLiteJobStore", "payload_digest"]
