"""Issue 13: one request cannot take the whole verifier pool. A real pool with real
worker processes; a hog request with many slow verifications against a small one.
Assertions are on the dispatch order, never on elapsed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from typing import Any

import pytest

from hero_service.verify.pool import SHARED, VerifierPool, owned_by, verify_owner

pytestmark = pytest.mark.slow  # load: hogs saturating real worker processes


def slow(tag: str, seconds: float) -> str:
    """Runs in a worker: a verification that takes `seconds`."""
    time.sleep(seconds)
    return tag


class Recorder:
    """Wraps the pool's dispatch: who got each worker, in order, and the most workers
    one owner held at once."""

    def __init__(self, pool: VerifierPool, monkeypatch: pytest.MonkeyPatch) -> None:
        self.order: list[tuple[Hashable, Any]] = []
        self.peak: dict[Hashable, int] = {}
        run_now = pool._run_now

        async def recording(fn: Any, args: tuple[Any, ...]) -> tuple[str, Any]:
            owner = verify_owner.get()
            self.order.append((owner, args[0]))
            held = pool._running.get(owner, 0)
            self.peak[owner] = max(self.peak.get(owner, 0), held)
            return await run_now(fn, args)

        monkeypatch.setattr(pool, "_run_now", recording)


async def _hog_then_small(pool: VerifierPool, rec: Recorder, hog_n: int) -> tuple[int, int]:
    """Start a hog (hog_n slow tasks), wait until it fills the pool and queues, then a
    small request (2 quick tasks). Returns (hog tasks started before the small request,
    hog tasks still queued then)."""

    async def hog() -> list[tuple[str, Any]]:
        with owned_by("hog"):
            return await asyncio.gather(*(pool.run(slow, f"h{i}", 0.4) for i in range(hog_n)))

    async def small() -> list[tuple[str, Any]]:
        with owned_by("small"):
            return await asyncio.gather(*(pool.run(slow, f"s{i}", 0.0) for i in range(2)))

    hog_task = asyncio.create_task(hog())
    for _ in range(500):  # bounded: until the hog has queued work behind its workers
        if pool.waiting().get("hog", 0) >= hog_n // 2:
            break
        await asyncio.sleep(0.01)
    started, queued = len(rec.order), pool.waiting().get("hog", 0)
    assert queued >= hog_n // 2
    assert [r for _, r in await small()] == ["s0", "s1"]
    assert all(k == "ok" for k, _ in await hog_task)
    return started, queued


def _positions(rec: Recorder, owner: str) -> list[int]:
    return [i for i, (o, _) in enumerate(rec.order) if o == owner]


def _drained(pool: VerifierPool) -> bool:
    return pool._free == pool.workers and not pool._queues and not pool._running


async def test_small_request_goes_before_the_hogs_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Round-robin: the small request's first task takes the next free worker, its
    second the one after the hog's next turn; the hog's queue (FIFO before the fix)
    waits."""
    pool = VerifierPool(2, 30.0, 500, 1024, 10_000)
    await pool.warm_up()
    try:
        rec = Recorder(pool, monkeypatch)
        started, queued = await _hog_then_small(pool, rec, 16)
        small = _positions(rec, "small")
        # hog tasks dispatched before the small request's last one: at most one more
        # than had started (round-robin: small, hog, small; +1 if a worker freed while
        # the small request's tasks were being created); FIFO: started + queued
        hog_first = small[-1] - 1
        assert hog_first <= started + 2, rec.order
        assert queued >= 8 and started + queued > started + 2
        assert rec.peak["hog"] == 2  # alone, the hog may use every worker (no cap)
        assert _drained(pool)
    finally:
        pool.close()


async def test_cap_keeps_a_worker_for_others(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = VerifierPool(2, 30.0, 500, 1024, 10_000, max_per_owner=1)
    await pool.warm_up()
    try:
        rec = Recorder(pool, monkeypatch)
        started, _ = await _hog_then_small(pool, rec, 8)
        assert rec.peak["hog"] == 1  # never more than its cap
        small = _positions(rec, "small")
        assert small[-1] - 1 <= started + 1, rec.order  # the worker the hog may not take
        assert _drained(pool)
    finally:
        pool.close()


async def test_cancelled_waiters_leave_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that goes away (client gone) withdraws its queued verifications; the
    pool's books balance and other owners are served."""
    pool = VerifierPool(1, 30.0, 500, 1024, 10_000)
    await pool.warm_up()
    try:
        with owned_by("gone"):
            tasks = [asyncio.create_task(pool.run(slow, f"g{i}", 0.3)) for i in range(5)]
        for _ in range(500):
            if pool.waiting().get("gone", 0) == 4:
                break
            await asyncio.sleep(0.01)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert "gone" not in pool.waiting()
        assert verify_owner.get() == SHARED  # the default owner outside owned_by
        assert await pool.run(slow, "x", 0.0) == ("ok", "x")
        assert _drained(pool) and not pool._served
    finally:
        pool.close()
