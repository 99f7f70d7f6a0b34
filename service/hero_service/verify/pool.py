"""A killable pool of verifier processes (pebble): deadline, kill, replace, recycle,
and a fair share of the workers between the requests that use them.

Fair share: every verification belongs to an *owner* (the scoring request that asked
for it, read from the `verify_owner` context variable; asyncio tasks inherit it, so
RuleVerifier's signatures do not carry it). Waiting verifications queue per owner, and a
freed worker goes to the owners in round-robin order, so a request that brings hundreds
of slow answers holds at most the workers it already has: another request's next
verification starts as soon as one worker frees, i.e. within one verification deadline.
An optional cap (`max_per_owner`) also bounds how many workers one owner may hold at
once, which keeps workers free for newcomers at the price of idle workers when one
request is alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import TimeoutError as FuturesTimeout
from contextvars import ContextVar
from typing import Any

from pebble import ProcessExpired, ProcessPool

from hero_service.errors import Overloaded
from hero_service.verify import worker

SHARED = "shared"
# Who a verification is for; set per scoring request (`owned_by`), default one shared owner.
verify_owner: ContextVar[Hashable] = ContextVar("verify_owner", default=SHARED)
_owner_ids = itertools.count(1)


@contextlib.contextmanager
def owned_by(owner: Hashable | None = None) -> Iterator[Hashable]:
    """Run the block's verifications (and those of tasks it starts) as one owner; a
    fresh, unique owner by default (one per request)."""
    who = owner if owner is not None else f"req-{next(_owner_ids)}"
    token = verify_owner.set(who)
    try:
        yield who
    finally:
        verify_owner.reset(token)


class VerifierPool:
    """Runs worker functions under an outer wall-clock deadline.

    pebble kills (SIGTERM, then SIGKILL) and replaces a worker whose task overruns
    `deadline_s`, replaces a worker that dies, and recycles workers after `max_tasks`.
    """

    def __init__(
        self,
        workers: int,
        deadline_s: float,
        max_tasks: int,
        memory_mb: int,
        max_queue: int,
        cpu_s: int = 3600,
        max_files: int = 256,
        max_per_owner: int = 0,
    ) -> None:
        self.workers = workers
        self.deadline_s = deadline_s
        self.max_queue = max_queue
        self.max_per_owner = max_per_owner or workers  # 0: no cap beyond the pool
        self.inflight = 0
        # Tasks queue here, not inside pebble, so a task's deadline starts when it runs:
        # one FIFO per owner, served round-robin; `_running` counts each owner's workers.
        self._free = workers
        self._queues: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()
        self._running: dict[Hashable, int] = {}
        self._served: dict[Hashable, int] = {}  # owner -> turn it was last served
        self._turns = itertools.count()
        self._args = (workers, max_tasks, (memory_mb, cpu_s, max_files))
        self._pool = self._new_pool()
        self.restarts = 0

    def _new_pool(self) -> ProcessPool:
        workers, max_tasks, initargs = self._args
        return ProcessPool(
            max_workers=workers,
            max_tasks=max_tasks,
            initializer=worker.init_worker,
            initargs=initargs,
            context=multiprocessing.get_context("spawn"),
        )

    def _schedule(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            return self._pool.schedule(fn, args=args, timeout=self.deadline_s)
        except RuntimeError:
            # pebble marks the whole pool broken when, e.g., workers fail to start;
            # replace it rather than failing every later verification.
            self.restarts += 1
            old, self._pool = self._pool, self._new_pool()
            old.stop()  # type: ignore[no-untyped-call]
            return self._pool.schedule(fn, args=args, timeout=self.deadline_s)

    async def warm_up(self) -> None:
        """Start every worker (imports take seconds) before the service says ready."""
        await asyncio.gather(*(self.run(worker.ping) for _ in range(self.workers * 2)))

    async def run(self, fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
        """('ok', result) | ('timeout', None) | ('error', message). Never raises except
        Overloaded when the queue is full."""
        if self.inflight >= self.max_queue:
            raise Overloaded("verifier", f"verifier queue is full ({self.max_queue} in flight)")
        self.inflight += 1
        owner = verify_owner.get()
        try:
            await self._acquire(owner)
            try:
                return await self._run_now(fn, args)
            finally:
                self._release(owner)
        finally:
            self.inflight -= 1

    async def _acquire(self, owner: Hashable) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(owner, deque()).append(fut)
        self._dispatch()
        try:
            await fut
        except asyncio.CancelledError:  # the caller went away while queued
            if fut.done() and not fut.cancelled():
                self._release(owner)  # a worker was handed over: pass it on
            else:
                q = self._queues.get(owner)
                if q is not None:
                    with contextlib.suppress(ValueError):
                        q.remove(fut)
                    if not q:
                        del self._queues[owner]
                        if owner not in self._running:
                            self._served.pop(owner, None)
            raise

    def _release(self, owner: Hashable) -> None:
        self._free += 1
        n = self._running[owner] - 1
        if n:
            self._running[owner] = n
        else:
            del self._running[owner]
            if owner not in self._queues:
                self._served.pop(owner, None)  # forget owners that are done
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free workers to waiting owners, one at a time, each time to the owner
        served least recently (never-served owners first, in arrival order), skipping
        owners at their cap: round-robin, and a newcomer is next."""
        while self._free:
            ready = [o for o in self._queues if self._running.get(o, 0) < self.max_per_owner]
            if not ready:
                return  # nobody waiting, or every waiting owner is at its cap
            owner = min(ready, key=lambda o: self._served.get(o, -1))
            q = self._queues[owner]
            fut = q.popleft()
            if not q:
                del self._queues[owner]
            if fut.done():
                continue  # cancelled a moment ago; its task has not run its cleanup yet
            self._free -= 1
            self._running[owner] = self._running.get(owner, 0) + 1
            self._served[owner] = next(self._turns)
            fut.set_result(None)

    def waiting(self) -> dict[Hashable, int]:
        """Verifications waiting for a worker, per owner."""
        return {o: len(q) for o, q in self._queues.items()}

    async def _run_now(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
        try:
            fut = self._schedule(fn, args)
        except RuntimeError as e:
            return "error", f"verifier pool unavailable: {e}"
        try:
            # pebble kills at the deadline; the outer wait is a last-resort guard. Shielded:
            # a cancelled caller (client gone, request deadline) must not kill a worker
            # mid-task (a respawn re-imports sympy); a task still queued is dropped.
            result = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(fut)), self.deadline_s + 5
            )
        except asyncio.CancelledError:
            if not fut.running():
                fut.cancel()
            raise
        except (FuturesTimeout, TimeoutError):
            fut.cancel()
            return "timeout", None
        except ProcessExpired as e:
            return "error", f"worker died ({e})"
        except MemoryError:
            return "error", "worker out of memory"
        except Exception as e:  # an exception raised inside the worker
            return "error", f"{type(e).__name__}: {str(e)[:200]}"
        return "ok", result

    def procs(self) -> list[Any]:
        """The worker processes (pebble keeps no public list; its manager holds them)."""
        mgr = getattr(self._pool, "_pool_manager", None)
        wm = getattr(mgr, "worker_manager", None)
        return list(getattr(wm, "workers", {}).values())

    def alive_workers(self) -> int:
        return sum(1 for p in self.procs() if p.is_alive())

    def close(self, timeout: float = 5.0) -> None:
        self._pool.stop()  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + timeout
        self._pool.join(max(0.0, deadline - time.monotonic()))
