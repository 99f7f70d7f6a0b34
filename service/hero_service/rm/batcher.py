"""Dynamic batching in front of an in-process backend.

One asyncio task owns the queue. It takes what is waiting (length-sorted, up to a
token budget that counts padding and a max batch size), runs the forward pass on a
single worker thread, and meanwhile new requests pile up for the next batch: no timer,
it only "waits" while a batch runs. Cancelled requests are dropped before the forward.
The queue is bounded: a full queue raises Overloaded (429).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hero_service.errors import BackendError, Overloaded
from hero_service.metrics import Metrics
from hero_service.rm.base import Backend, Prepared, RMInput, RMResult


@dataclass(order=True)
class _Item:
    n_tokens: int
    seq: int
    prepared: Prepared = field(compare=False)
    future: asyncio.Future[float] = field(compare=False)
    enqueued: float = field(compare=False)


class DynamicBatcher:
    def __init__(
        self,
        backend: Backend,
        metrics: Metrics,
        max_batch_size: int = 32,
        max_batch_tokens: int = 16384,
        max_queue: int = 4096,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_queue = max_queue
        self._pending: list[_Item] = []
        self._wake = asyncio.Event()
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        # One thread runs forward passes; another tokenizes so the loop never blocks.
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="rm-forward")
        self._prep_thread = ThreadPoolExecutor(1, thread_name_prefix="rm-prepare")
        self.batches = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="rm-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for it in self._pending:
            if not it.future.done():
                it.future.set_exception(BackendError("reward model shut down"))
        self._pending.clear()
        self._model_thread.shutdown(wait=True)
        self._prep_thread.shutdown(wait=False)

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def truncation(self) -> tuple[int | None, str | None]:
        return self.backend.max_length, self.backend.truncation_side

    async def score(self, items: list[RMInput]) -> list[float]:
        """Score items; their forward passes are shared with every concurrent caller."""
        return [r.score for r in await self.score_details(items)]

    async def score_details(self, items: list[RMInput]) -> list[RMResult]:
        if not items:
            return []
        if self._task is None:
            raise BackendError("reward model batcher is not running")
        if len(self._pending) + len(items) > self.max_queue:
            self.metrics.rejected.labels("rm").inc()
            raise Overloaded("rm", f"reward-model queue is full ({self.max_queue} sequences)")
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(
            self._prep_thread, lambda: [self.backend.prepare(x) for x in items]
        )
        futures: list[asyncio.Future[float]] = []
        now = time.perf_counter()
        for p in prepared:
            if p.truncated:
                self.metrics.rm_truncated.inc()
            fut: asyncio.Future[float] = loop.create_future()
            self._seq += 1
            self._pending.append(_Item(p.n_tokens, self._seq, p, fut, now))
            futures.append(fut)
        self.metrics.rm_queue_depth.set(len(self._pending))
        self._wake.set()
        try:
            scores = await asyncio.gather(*futures)
        except BaseException:
            for f in futures:
                f.cancel()  # dropped from the queue before its forward pass
            raise
        return [RMResult(x, p.n_tokens, p.truncated) for x, p in zip(scores, prepared, strict=True)]

    def _take_batch(self) -> list[_Item]:
        live = [it for it in self._pending if not it.future.done()]
        if len(live) < len(self._pending):
            self.metrics.rm_dropped.inc(len(self._pending) - len(live))
        live.sort()  # by length: neighbours pad little
        batch: list[_Item] = []
        longest = 0
        for it in live:
            longest_if = max(longest, it.n_tokens)
            if batch and (
                len(batch) >= self.max_batch_size
                or longest_if * (len(batch) + 1) > self.max_batch_tokens
            ):
                break
            batch.append(it)
            longest = longest_if
        taken = {id(it) for it in batch}
        self._pending = [it for it in live if id(it) not in taken]
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            batch = self._take_batch()
            self.metrics.rm_queue_depth.set(len(self._pending))
            if not batch:
                continue
            assert len(batch) <= self.max_batch_size, "batch over max size"
            prepared = [it.prepared for it in batch]
            padded = self.backend.padded_tokens(prepared)
            real = sum(p.n_tokens for p in prepared)
            start = time.perf_counter()
            for it in batch:
                self.metrics.rm_queue_duration.observe(start - it.enqueued)
            try:
                scores = await loop.run_in_executor(
                    self._model_thread, self.backend.forward, prepared
                )
                if len(scores) != len(batch):
                    raise BackendError(
                        f"backend returned {len(scores)} scores for {len(batch)} inputs"
                    )
            except Exception as e:
                kind = "oom" if "out of memory" in str(e).lower() else "forward"
                self.metrics.rm_errors.labels(kind).inc()
                err = (
                    e
                    if isinstance(e, BackendError)
                    else BackendError(
                        f"reward model forward failed: {type(e).__name__}: {str(e)[:300]}"
                    )
                )
                for it in batch:
                    if not it.future.done():
                        it.future.set_exception(err)
                continue
            self.batches += 1
            self.metrics.rm_inference_duration.observe(time.perf_counter() - start)
            self.metrics.rm_batch_size.observe(len(batch))
            self.metrics.rm_batch_tokens.observe(padded)
            self.metrics.rm_padding_ratio.observe(1.0 - real / padded if padded else 0.0)
            for it, s in zip(batch, scores, strict=True):
                if it.future.done():
                    continue
                if not math.isfinite(s):
                    self.metrics.rm_errors.labels("non_finite").inc()
                    it.future.set_exception(
                        BackendError(f"reward model returned a non-finite score ({s})")
                    )
                else:
                    it.future.set_result(float(s))
