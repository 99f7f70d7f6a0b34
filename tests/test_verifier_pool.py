"""The sandboxed verifier pool with real worker processes: hostile inputs, kills, hangs."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import signal
import time
from pathlib import Path

import pytest

from hero_service.metrics import Metrics
from hero_service.verify import worker
from hero_service.verify.pool import VerifierPool
from hero_service.verify.rules import RuleVerifier
from tests.faults import crash_task, worker_pids

DATA = Path(__file__).parent / "data"
ADVERSARIAL = [json.loads(x) for x in (DATA / "adversarial.jsonl").read_text().splitlines() if x]


async def _pool(deadline: float = 3.0, workers: int = 2) -> VerifierPool:
    pool = VerifierPool(workers, deadline, 200, 1024, 10_000)
    await pool.warm_up()
    return pool


async def _wait_full(pool: VerifierPool, n: int) -> int:
    for _ in range(200):
        await pool.run(worker.ping)
        if pool.alive_workers() == n:
            break
        await asyncio.sleep(0.05)
    return pool.alive_workers()


def test_corpus_is_big_enough() -> None:
    assert len(ADVERSARIAL) >= 40
    assert len({a["kind"] for a in ADVERSARIAL}) >= 10


@pytest.mark.slow  # hostile inputs that kill workers (faults)
async def test_adversarial_corpus_never_correct_and_pool_survives() -> None:
    for f in glob.glob("/tmp/hero_pwned_*"):
        os.remove(f)
    pool = await _pool()
    try:
        rv = RuleVerifier(pool, Metrics(), cache_size=0, inner_timeout_s=2)
        for verifier in ("cascade", "math_verify"):
            for case in ADVERSARIAL:
                v = await asyncio.wait_for(
                    rv.verify_group(case["reference"], [case["response"]], verifier), 60
                )
                assert v[0].label == 0, (verifier, case["id"], v[0])
                assert v[0].status in ("incorrect", "rejected", "timeout", "error", "no_answer")
        assert glob.glob("/tmp/hero_pwned_*") == []
        # and the pool still grades ordinary answers correctly afterwards
        ok = await rv.verify_group("\\frac{1}{2}", ["\\boxed{0.5}", "\\boxed{2}"], "math_verify")
        assert [x.label for x in ok] == [1, 0]
        assert await _wait_full(pool, 2) == 2
    finally:
        pool.close()


@pytest.mark.slow  # faults
async def test_hang_is_killed_at_the_deadline_and_replaced() -> None:
    pool = await _pool(deadline=1.0)
    try:
        before = set(worker_pids(pool))
        kind, _ = await pool.run(crash_task, "hang")
        assert kind == "timeout"
        assert await _wait_full(pool, 2) == 2
        assert set(worker_pids(pool)) != before
        assert await pool.run(worker.ping) == ("ok", pytest.approx(0, abs=10**9))
    finally:
        pool.close()


@pytest.mark.slow  # faults
async def test_worker_killed_mid_task_gives_error_and_pool_refills() -> None:
    pool = await _pool(deadline=30.0)
    try:
        task = asyncio.create_task(pool.run(crash_task, "hang"))
        await asyncio.sleep(0.5)
        busy = [p for p in worker_pids(pool) if _cpu_busy(p)]
        assert busy, "no worker is running the task"
        os.kill(busy[0], signal.SIGKILL)
        kind, msg = await asyncio.wait_for(task, 20)
        assert kind == "error" and "died" in msg
        assert await _wait_full(pool, 2) == 2
    finally:
        pool.close()


@pytest.mark.slow  # faults
async def test_self_sigkill_and_memory_bomb_are_errors() -> None:
    pool = await _pool(deadline=10.0)
    try:
        assert (await pool.run(crash_task, "sigkill"))[0] == "error"
        assert (await pool.run(crash_task, "memory"))[0] == "error"
        assert (await pool.run(crash_task, "raise"))[0] == "error"
        assert await _wait_full(pool, 2) == 2
    finally:
        pool.close()


@pytest.mark.slow  # faults
async def test_killed_worker_inside_a_group_marks_only_that_rollout() -> None:
    pool = await _pool(deadline=1.0)
    try:
        rv = RuleVerifier(pool, Metrics(), cache_size=0, inner_timeout_s=1)
        tower = "\\boxed{\\dfrac{5^{(5^{(5^{(5^5)})}-4)}-5}{16}}"
        v = await rv.verify_group(
            "3", ["\\boxed{3}", tower, "\\boxed{4}", "no answer"], "math_verify"
        )
        assert [x.label for x in v] == [1, 0, 0, 0]
        assert [x.status for x in v] == ["correct", "rejected", "incorrect", "no_answer"]
    finally:
        pool.close()


def _cpu_busy(pid: int) -> bool:
    def ticks() -> int:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])

    try:
        a = ticks()
        time.sleep(0.2)
        return ticks() > a
    except (FileNotFoundError, ProcessLookupError):
        return False


async def test_distinct_answers_verified_once_and_cached() -> None:
    pool = await _pool()
    try:
        m = Metrics()
        rv = RuleVerifier(pool, m, cache_size=100)
        group = ["\\boxed{\\frac{2}{4}}"] * 8 + ["\\boxed{0.25}"] * 8
        v = await rv.verify_group("\\frac{1}{2}", group, "math_verify")
        assert [x.label for x in v] == [1] * 8 + [0] * 8
        assert m.verifier_cache.labels("miss")._value.get() == 2
        await rv.verify_group("\\frac{1}{2}", group, "math_verify")
        assert m.verifier_cache.labels("hit")._value.get() == 2
    finally:
        pool.close()


def test_reward_hacking_guards() -> None:
    async def go() -> list[str]:
        pool = await _pool()
        try:
            rv = RuleVerifier(pool, Metrics(), cache_size=0)
            cases = [
                ("2", "\\boxed{1} or \\boxed{2} or \\boxed{3}"),
                ("7", "\\boxed{\\pm 7}"),
                ("5\\text{ m}", "\\boxed{5\\text{ cm}}"),
                ("B", "\\boxed{A, B, C, D}"),
            ]
            out = []
            for ref, resp in cases:
                out.append((await rv.verify_group(ref, [resp], "cascade"))[0].status)
            return out
        finally:
            pool.close()

    assert asyncio.run(go()) == ["rejected", "incorrect", "incorrect", "rejected"]
