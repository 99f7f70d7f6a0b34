"""SQLite job-state store: the default; survives restarts, safe across processes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from typing import Any

from hero_service.shaping import RunningSigma, ShapingConfig, check_running
from hero_service.state.base import Commit, Compute, JobRecord, T, check_record, check_replay

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    sigma_bar REAL,
    count INTEGER NOT NULL,
    config TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    job_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (job_id, request_id)
);
CREATE INDEX IF NOT EXISTS requests_created ON requests(created_at);
"""


def _record(row: tuple[Any, ...]) -> JobRecord:
    job_id, sigma_bar, count, config, created, updated = row
    return JobRecord(
        job_id=job_id,
        running=RunningSigma(sigma_bar, count),
        config=ShapingConfig(**json.loads(config)),
        created_at=created,
        updated_at=updated,
    )


class SQLiteJobStore:
    def __init__(self, path: str, idempotency_ttl_s: float = 7 * 86400.0) -> None:
        self._conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._ttl = idempotency_ttl_s
        self._writes = 0

    # -- sync helpers (run in a thread) --------------------------------------------------
    def _lookup(self, job_id: str, request_id: str, digest: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT digest, response FROM requests WHERE job_id=? AND request_id=?",
                (job_id, request_id),
            ).fetchone()
        return None if row is None else check_replay(request_id, row[0], digest, str(row[1]))

    def _transact(
        self,
        job_id: str,
        request_id: str | None,
        digest: str,
        init: ShapingConfig,
        compute: Compute[T],
    ) -> Commit[T] | str:
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                if request_id is not None:
                    row = c.execute(
                        "SELECT digest, response FROM requests WHERE job_id=? AND request_id=?",
                        (job_id, request_id),
                    ).fetchone()
                    if row is not None:
                        c.execute("ROLLBACK")
                        return check_replay(request_id, row[0], digest, str(row[1]))
                now = time.time()
                row = c.execute(
                    "SELECT job_id, sigma_bar, count, config, created_at, updated_at "
                    "FROM jobs WHERE job_id=?",
                    (job_id,),
                ).fetchone()
                rec = _record(row) if row else JobRecord(job_id, RunningSigma(), init, now, now)
                commit = compute(rec)
                running, response = commit.running, commit.stored
                check_running(running)  # never store a non-finite mean
                c.execute(
                    "INSERT INTO jobs VALUES (?,?,?,?,?,?) ON CONFLICT(job_id) DO UPDATE SET "
                    "sigma_bar=excluded.sigma_bar, count=excluded.count, "
                    "updated_at=excluded.updated_at",
                    (
                        job_id,
                        running.sigma_bar,
                        running.count,
                        json.dumps(rec.config.to_dict()),
                        rec.created_at,
                        now,
                    ),
                )
                if request_id is not None:
                    c.execute(
                        "INSERT INTO requests VALUES (?,?,?,?,?)",
                        (job_id, request_id, digest, response, now),
                    )
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
            self._writes += 1
            if self._writes % 1000 == 0:
                c.execute("DELETE FROM requests WHERE created_at < ?", (now - self._ttl,))
            return commit

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            return self._conn.execute(sql, args).rowcount

    # -- async API -----------------------------------------------------------------------
    async def lookup(self, job_id: str, request_id: str, digest: str) -> str | None:
        return await asyncio.to_thread(self._lookup, job_id, request_id, digest)

    async def transact(
        self,
        job_id: str,
        request_id: str | None,
        digest: str,
        init_config: ShapingConfig,
        compute: Compute[T],
    ) -> Commit[T] | str:
        return await asyncio.to_thread(
            self._transact, job_id, request_id, digest, init_config, compute
        )

    async def get(self, job_id: str) -> JobRecord | None:
        rows = await asyncio.to_thread(
            self._query,
            "SELECT job_id, sigma_bar, count, config, created_at, updated_at FROM jobs "
            "WHERE job_id=?",
            (job_id,),
        )
        return _record(rows[0]) if rows else None

    async def list_jobs(self) -> list[JobRecord]:
        rows = await asyncio.to_thread(
            self._query,
            "SELECT job_id, sigma_bar, count, config, created_at, updated_at FROM jobs "
            "ORDER BY job_id",
        )
        return [_record(r) for r in rows]

    async def put(self, record: JobRecord) -> None:
        check_record(record)
        await asyncio.to_thread(
            self._exec,
            "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?)",
            (
                record.job_id,
                record.running.sigma_bar,
                record.running.count,
                json.dumps(record.config.to_dict()),
                record.created_at,
                record.updated_at,
            ),
        )

    async def delete(self, job_id: str) -> bool:
        n = await asyncio.to_thread(self._exec, "DELETE FROM jobs WHERE job_id=?", (job_id,))
        await asyncio.to_thread(self._exec, "DELETE FROM requests WHERE job_id=?", (job_id,))
        return n > 0

    async def ping(self) -> bool:
        await asyncio.to_thread(self._query, "SELECT 1")
        return True

    async def close(self) -> None:
        with self._lock:
            self._conn.close()
