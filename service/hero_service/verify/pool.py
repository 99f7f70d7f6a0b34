"""A killable pool of verifier processes (pebble): deadline, kill, replace, recycle."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any

from pebble import ProcessExpired, ProcessPool

from hero_service.errors import Overloaded
from hero_service.verify import worker


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
    ) -> None:
        self.workers = workers
        self.deadline_s = deadline_s
        self.max_queue = max_queue
        self.inflight = 0
        # Tasks queue here, not inside pebble, so a task's deadline starts when it runs.
        self._slots = asyncio.Semaphore(workers)
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
        try:
            async with self._slots:
                return await self._run_now(fn, args)
        finally:
            self.inflight -= 1

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

    def close(self, timeout: float = 5.0) -> None:
        self._pool.stop()  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + timeout
        self._pool.join(max(0.0, deadline - time.monotonic()))
