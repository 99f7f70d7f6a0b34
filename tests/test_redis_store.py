"""The Redis job store against a real redis-server: the SQLite store's contract, atomic
folding across two store instances ("replicas"), outages, lost replies, pruning."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from hero_client.schema import JOB_COUNT_MAX, SIGMA_BAR_MAX
from hero_service.config import Settings
from hero_service.errors import StateUnavailable
from hero_service.shaping import RunningSigma, ShapingConfig, ShapingError, fold_sigmas
from hero_service.state import (
    JobRecord,
    JobStore,
    RequestIdConflict,
    SQLiteJobStore,
    build_store,
    prune_jobs,
)
from hero_service.state import redis as redis_store
from hero_service.state.base import Commit
from hero_service.state.redis import RedisJobStore, redact

if TYPE_CHECKING:
    from tests.redis_util import RedisServer

pytest_plugins = ["tests.redis_util"]  # redis-server fixtures
pytestmark = [
    pytest.mark.slow,  # redis-server processes
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server"),
]
CUM = ShapingConfig(sigma_mean="cumulative")
EMA = ShapingConfig()


@pytest.fixture(scope="module")
def rserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    from tests.redis_util import RedisServer

    rs = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield rs
    rs.stop()


@pytest.fixture(params=["sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, rserver: RedisServer, tmp_path: Path
) -> AsyncIterator[JobStore]:
    s: JobStore
    if request.param == "sqlite":
        s = SQLiteJobStore(str(tmp_path / "s.db"))
    else:
        s = RedisJobStore(rserver.url, prefix=f"t{time.monotonic_ns()}:")
    yield s
    await s.close()


def folder(sigma: float, log: list[tuple[int, float]] | None = None) -> Any:
    """A compute() that folds one group's sigma and answers with the pre-call state."""

    def compute(rec: JobRecord) -> Commit[None]:
        new = fold_sigmas(rec.running, [sigma], rec.config)
        if log is not None:
            log.append((rec.running.count, sigma))
        body = {"pre_count": rec.running.count, "pre": rec.running.sigma_bar, "sigma": sigma}
        return Commit(new, json.dumps(body), None)

    return compute


async def transact(store: JobStore, *args: Any) -> tuple[str, bool]:
    """(stored text, replayed) of one transaction."""
    out = await store.transact(*args)
    return (out, True) if isinstance(out, str) else (out.stored, False)


# -- the contract both stores keep ---------------------------------------------------------
async def test_transact_replay_conflict(store: JobStore) -> None:
    body, replayed = await transact(store, "j", "r1", "d1", EMA, folder(0.5))
    assert not replayed and json.loads(body)["pre_count"] == 0
    again, replayed = await transact(store, "j", "r1", "d1", EMA, folder(9.0))
    assert replayed and again == body
    assert await store.lookup("j", "r1", "d1") == body
    assert await store.lookup("j", "nope", "d1") is None
    with pytest.raises(RequestIdConflict):
        await store.lookup("j", "r1", "other")
    with pytest.raises(RequestIdConflict):
        await transact(store, "j", "r1", "other", EMA, folder(1.0))
    await transact(store, "j", None, "d2", EMA, folder(0.25))
    rec = await store.get("j")
    assert rec is not None and rec.running.count == 2
    assert rec.running == fold_sigmas(RunningSigma(0.5, 1), [0.25], EMA)  # exact


async def test_put_get_list_delete(store: JobStore) -> None:
    rec = JobRecord("a:b.c-1", RunningSigma(0.1 + 0.2, 7), CUM, 1.5, 2.5)
    await store.put(rec)
    assert await store.get(rec.job_id) == rec  # floats round-trip exactly
    await store.put(JobRecord("b", RunningSigma(), EMA, 3.0, 3.0))
    assert [r.job_id for r in await store.list_jobs()] == ["a:b.c-1", "b"]
    await transact(store, "b", "r", "d", EMA, folder(1.0))
    assert await store.delete("b") is True
    assert await store.delete("b") is False
    assert await store.get("b") is None
    # a reset job forgets its request ids: the same id is new again
    _, replayed = await transact(store, "b", "r", "d", EMA, folder(1.0))
    assert not replayed


async def test_odd_ids_never_collide(store: JobStore) -> None:
    # ids the API never produces but an import or a request id may carry (lone
    # surrogates: Redis only; sqlite3 refuses to bind them)
    odd = "" if isinstance(store, SQLiteJobStore) else "\udcff"
    ids = ["a{b}", "a{b", "#61", "a", f"x{odd}"]
    for i, j in enumerate(ids):
        await transact(store, j, f"r{{}}{odd}{i}", "d", EMA, folder(0.1 * (i + 1)))
    recs = {r.job_id: r for r in await store.list_jobs()}
    assert sorted(recs) == sorted(ids)
    for i, j in enumerate(ids):
        assert recs[j].running == RunningSigma(0.1 * (i + 1), 1)
        _, replayed = await transact(store, j, f"r{{}}{odd}{i}", "d", EMA, folder(9.0))
        assert replayed
        assert await store.delete(j)
    assert await store.list_jobs() == []


@pytest.mark.parametrize(
    ("field", "rec"),
    [
        ("sigma_bar", JobRecord("j", RunningSigma(math.nan, 1), EMA, 1.0, 1.0)),
        ("sigma_bar", JobRecord("j", RunningSigma(math.inf, 1), EMA, 1.0, 1.0)),
        ("sigma_bar", JobRecord("j", RunningSigma(1e308, 1), CUM, 1.0, 1.0)),
        ("sigma_bar", JobRecord("j", RunningSigma(1.0, 0), EMA, 1.0, 1.0)),
        ("count", JobRecord("j", RunningSigma(1.0, 10**30), EMA, 1.0, 1.0)),
        ("created_at", JobRecord("j", RunningSigma(1.0, 1), EMA, math.nan, 1.0)),
        ("updated_at", JobRecord("j", RunningSigma(1.0, 1), EMA, 1.0, -math.inf)),
        ("job_id", JobRecord("a\nb", RunningSigma(1.0, 1), EMA, 1.0, 1.0)),
        ("job_id", JobRecord("x" * 10_000, RunningSigma(1.0, 1), EMA, 1.0, 1.0)),
    ],
)
async def test_put_refuses_invalid_state_on_both_stores(
    store: JobStore, field: str, rec: JobRecord
) -> None:
    with pytest.raises(ShapingError) as e:
        await store.put(rec)
    assert e.value.field == field
    assert await store.list_jobs() == []


async def test_a_fold_past_the_bounds_is_never_stored(store: JobStore) -> None:
    top = JobRecord("j", RunningSigma(SIGMA_BAR_MAX, JOB_COUNT_MAX), CUM, 1.0, 1.0)
    await store.put(top)
    with pytest.raises(ShapingError) as e:
        await store.transact("j", "r", "d", CUM, folder(1.0))
    assert e.value.field == "count"
    assert await store.get("j") == top
    with pytest.raises(ShapingError):  # a compute that returns a non-finite mean
        await store.transact(
            "j", "r2", "d", CUM, lambda rec: Commit(RunningSigma(math.inf, 1), "{}", None)
        )
    assert await store.get("j") == top
    await store.put(JobRecord("j", RunningSigma(SIGMA_BAR_MAX, JOB_COUNT_MAX - 1), CUM, 1.0, 1.0))
    _, replayed = await transact(store, "j", "r", "d", CUM, folder(SIGMA_BAR_MAX))
    assert not replayed  # the refused call left no request record
    got = await store.get("j")
    assert got is not None and got.running == RunningSigma(SIGMA_BAR_MAX, JOB_COUNT_MAX)


async def test_prune_old_jobs(store: JobStore) -> None:
    now = time.time()
    await store.put(JobRecord("old", RunningSigma(1.0, 1), EMA, now - 90_000, now - 90_000))
    await store.put(JobRecord("new", RunningSigma(1.0, 1), EMA, now, now))
    assert await prune_jobs(store, 86_400, dry_run=True) == ["old"]
    assert await store.get("old") is not None
    assert await prune_jobs(store, 86_400) == ["old"]
    assert [r.job_id for r in await store.list_jobs()] == ["new"]


# -- Redis: replicas, commit order, outages ---------------------------------------------------
async def test_two_instances_fold_atomically_in_commit_order(rserver: RedisServer) -> None:
    prefix = f"c{time.monotonic_ns()}:"
    a, b = RedisJobStore(rserver.url, prefix=prefix), RedisJobStore(rserver.url, prefix=prefix)
    sigmas = [0.01 * (i + 1) + 1e-9 * i * i for i in range(120)]
    for cfg, job in ((CUM, "cum"), (EMA, "ema")):
        log: list[tuple[int, float]] = []
        calls = [
            transact(a if i % 2 else b, job, f"r{i}", f"d{i}", cfg, folder(s, log))
            for i, s in enumerate(sigmas)
        ]
        bodies = [json.loads(x) for x, _ in await asyncio.gather(*calls)]
        rec = await a.get(job)
        assert rec is not None and rec.running.count == len(sigmas)  # none lost, none twice
        # each call saw a distinct pre-call count: they were applied one at a time
        order = sorted(bodies, key=lambda x: x["pre_count"])
        assert [x["pre_count"] for x in order] == list(range(len(sigmas)))
        # replaying the commit order in one process gives exactly the stored state
        state = RunningSigma()
        for x in order:
            assert x["pre"] == state.sigma_bar
            state = fold_sigmas(state, [x["sigma"]], cfg)
        assert rec.running == state
        if cfg is CUM:  # cumulative: the plain mean, whatever the order
            assert rec.running.sigma_bar == pytest.approx(math.fsum(sigmas) / len(sigmas))
    assert a.conflicts + b.conflicts > 0  # the two instances did race
    await a.close()
    await b.close()


async def test_commit_with_lost_reply_is_not_applied_twice(
    rserver: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = RedisJobStore(rserver.url, prefix=f"l{time.monotonic_ns()}:")
    real = Pipeline.execute
    lost = {"n": 0}

    async def execute_then_lose_reply(self: Pipeline, raise_on_error: bool = True) -> Any:
        out = await real(self, raise_on_error)
        if self.is_transaction and lost["n"] < 2 and len(out) > 1:
            lost["n"] += 1
            raise WatchError("A ConnectionError occurred while watching one or more keys")
        return out

    monkeypatch.setattr(Pipeline, "execute", execute_then_lose_reply)
    body, replayed = await transact(s, "j", "r1", "d", EMA, folder(0.5))
    assert not replayed and json.loads(body)["pre_count"] == 0
    body, replayed = await transact(s, "j", None, "d", EMA, folder(0.7))  # anonymous call
    assert not replayed and json.loads(body)["pre_count"] == 1
    assert lost["n"] == 2
    rec = await s.get("j")
    assert rec is not None and rec.running.count == 2
    await s.close()


async def test_a_stored_nan_reads_as_no_running_mean(rserver: RedisServer) -> None:
    """A NaN written by an older version reads as SQLite reads its NULL: no running mean
    (the next call seeds it), never a value that fails every later call."""
    prefix = f"n{time.monotonic_ns()}:"
    s = RedisJobStore(rserver.url, prefix=prefix)
    try:
        await s.put(JobRecord("j", RunningSigma(1.0, 3), EMA, 1.0, 1.0))
        rserver.client().hset(f"{prefix}{{j}}:job", "sigma_bar", "nan")
        rec = await s.get("j")
        assert rec is not None and rec.running == RunningSigma(None, 3)
        await s.transact("j", "r", "d", EMA, folder(0.5))
        assert (await s.get("j")).running == RunningSigma(0.5, 1)  # type: ignore[union-attr]
    finally:
        await s.close()


async def test_idempotency_keys_expire(rserver: RedisServer) -> None:
    prefix = f"x{time.monotonic_ns()}:"
    s = RedisJobStore(rserver.url, idempotency_ttl_s=3600, prefix=prefix)
    await transact(s, "j", "r1", "d", EMA, folder(0.5))
    ttl = rserver.client().ttl(f"{prefix}{{j}}:req:r1")
    assert 3590 <= ttl <= 3600
    assert rserver.client().ttl(f"{prefix}{{j}}:job") == -1  # job state never expires
    await s.close()


async def test_delete_forgets_many_request_ids(
    rserver: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_store, "_DELETE_CHUNK", 3)
    prefix = f"d{time.monotonic_ns()}:"
    s = RedisJobStore(rserver.url, prefix=prefix)
    for i in range(10):
        await transact(s, "j", f"r{i}", "d", EMA, folder(0.5))
    assert await s.delete("j")
    assert rserver.client().keys(f"{prefix}*") == []
    await s.close()


async def test_outage_is_state_unavailable_then_recovers(
    make_redis: Callable[[], RedisServer],
) -> None:
    rs = make_redis()
    s = RedisJobStore(rs.url, timeout_s=0.5)
    await transact(s, "j", "r1", "d", CUM, folder(0.5))
    rs.kill()  # SIGKILL: only the fsynced AOF survives
    t0 = time.monotonic()
    with pytest.raises(StateUnavailable, match=r"Redis at redis://127\.0\.0\.1"):
        await transact(s, "j", "r2", "d", CUM, folder(0.25))
    with pytest.raises(StateUnavailable):
        await s.get("j")
    assert time.monotonic() - t0 < 10  # fails fast, never hangs
    rs.start()  # same port and dir: the same client reconnects by itself
    rec = await s.get("j")
    assert rec is not None and rec.running == RunningSigma(0.5, 1)
    await transact(s, "j", "r2", "d", CUM, folder(0.25))
    rec = await s.get("j")
    assert rec is not None and rec.running == RunningSigma(0.375, 2)
    await s.close()


async def test_build_store_by_url(rserver: RedisServer, tmp_path: Path) -> None:
    s = await build_store(Settings(state_url=rserver.url))
    assert isinstance(s, RedisJobStore) and await s.ping()
    await s.close()
    s2 = await build_store(Settings(state_path=str(tmp_path / "x.db")))
    assert isinstance(s2, SQLiteJobStore)
    await s2.close()
    with pytest.raises(ValueError, match="state_url"):
        Settings(state_url="postgres://x")
    assert redact("redis://u:secret@h:1/0") == "redis://u:***@h:1/0"


async def test_prune_jobs_command(rserver: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    from hero_service.tools.cli import main

    prefix = f"p{time.monotonic_ns()}:"
    s = RedisJobStore(rserver.url, prefix=prefix)
    now = time.time()
    await s.put(JobRecord("stale", RunningSigma(1.0, 1), EMA, now - 40 * 86400, now - 40 * 86400))
    await s.put(JobRecord("fresh", RunningSigma(1.0, 1), EMA, now, now))
    flags = ["--state-url", rserver.url, "--redis-key-prefix", prefix]
    assert await asyncio.to_thread(main, ["prune-jobs", "--older-than", "30d", *flags]) == 0
    assert capsys.readouterr().out.split() == ["stale"]
    assert [r.job_id for r in await s.list_jobs()] == ["fresh"]
    await s.close()
