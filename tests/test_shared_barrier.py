"""The Redis-shared barrier in-process, on a private redis-server: a group whose every
waiter leaves while it is being scored has its scoring cancelled and its keys dropped.
The pipeline is a stand-in that never finishes (an injected fault: no user runs it)."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from hero_service.api.groups import ClientGone, SampleIn
from hero_service.config import Settings
from hero_service.metrics import Metrics

if TYPE_CHECKING:
    from tests.redis_util import RedisServer

pytest_plugins = ["tests.redis_util"]
pytestmark = [
    pytest.mark.slow,  # a redis-server process
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server"),
]


class NeverEnding:
    """Scoring that hangs until cancelled (an RM stuck on a long batch)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def score(self, *args: Any) -> Any:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def test_scoring_is_cancelled_when_every_waiter_leaves(
    make_redis: Callable[[], RedisServer],
) -> None:
    from hero_service.api.shared import SharedBarrier

    rs = make_redis()
    settings = Settings(state_url=rs.url, barrier_deadline_s=120)
    metrics = Metrics()
    pipeline = NeverEnding()
    bar = SharedBarrier(settings, metrics, pipeline)  # type: ignore[arg-type]
    job = "sc-" + uuid.uuid4().hex[:8]
    loop = asyncio.get_running_loop()
    gone: list[asyncio.Future[object]] = [loop.create_future() for _ in range(2)]

    def sample(i: int) -> SampleIn:
        return SampleIn(job, "g", "g", False, 2, "p", "1", f"\\boxed{{{i}}}", sample_index=i)

    waiters = [asyncio.create_task(bar.submit(sample(i), gone[i])) for i in range(2)]
    await asyncio.wait_for(pipeline.started.wait(), 30)  # the group is full: being scored
    r = rs.client()
    assert r.get(next(k for k in r.keys(f"*{job}*") if k.endswith(":w"))) == "2"
    assert (bar.open_groups, bar.pending_samples) == (1, 2)  # this replica's gauges
    for g in gone:  # both clients disconnect
        g.set_result(None)
    for w in waiters:
        with pytest.raises(ClientGone):
            await asyncio.wait_for(w, 30)
    await asyncio.wait_for(pipeline.cancelled.wait(), 30)  # the watcher cancels it
    assert (bar.open_groups, bar.pending_samples) == (0, 0)
    for _ in range(100):  # bounded: the scorer deletes the keys right after the cancel
        if not r.keys(f"*{job}*"):
            break
        await asyncio.sleep(0.05)
    assert r.keys(f"*{job}*") == []
    abandoned = metrics.barrier_groups.labels("abandoned")
    for _ in range(100):  # (the sync client above blocked the loop: let the scorer finish)
        if abandoned._value.get() == 1:
            break
        await asyncio.sleep(0.05)
    assert abandoned._value.get() == 1
    await bar.close()


async def test_scoring_goes_on_while_one_waiter_remains(
    make_redis: Callable[[], RedisServer],
) -> None:
    from hero_service.api.shared import SharedBarrier

    rs = make_redis()
    pipeline = NeverEnding()
    bar = SharedBarrier(Settings(state_url=rs.url), Metrics(), pipeline)  # type: ignore[arg-type]
    job = "sc-" + uuid.uuid4().hex[:8]
    loop = asyncio.get_running_loop()
    gone: list[asyncio.Future[object]] = [loop.create_future() for _ in range(2)]

    def sample(i: int) -> SampleIn:
        return SampleIn(job, "g", "g", False, 2, "p", "1", f"\\boxed{{{i}}}", sample_index=i)

    waiters = [asyncio.create_task(bar.submit(sample(i), gone[i])) for i in range(2)]
    await asyncio.wait_for(pipeline.started.wait(), 30)
    gone[0].set_result(None)
    with pytest.raises(ClientGone):
        await asyncio.wait_for(waiters[0], 30)
    await asyncio.sleep(2.0)  # four watch periods
    assert not pipeline.cancelled.is_set() and not waiters[1].done()
    gone[1].set_result(None)
    with pytest.raises(ClientGone):
        await asyncio.wait_for(waiters[1], 30)
    await asyncio.wait_for(pipeline.cancelled.wait(), 30)
    await bar.close()
