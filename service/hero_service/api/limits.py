"""Admission control: bounded in-flight scoring work and a per-request deadline.

A pure ASGI middleware, right after auth (http.py: an unauthenticated request never
reaches it) and before the body is read, so an overloaded replica refuses a request before
it reads or parses the body: the refusal is cheap (429 + Retry-After, well under a
millisecond of server time) and memory stays bounded by (max_inflight_requests +
max_queued_requests) x max_body_bytes plus what the stage queues hold. A short FIFO
queue (queue_wait_s) absorbs bursts at moderate load; under overload the queue is full
or its wait runs out and the excess is refused, so accepted latency stays near the
latency at max_inflight_requests concurrency instead of growing with the
backlog. Admitted requests then meet the stage
limits (verifier queue, RM queue), which also bound the per-sample barrier routes: those
hold a request while its group fills, so they are not counted here.

The deadline cancels an admitted request that has not answered within
request_deadline_s and answers 503 `deadline_exceeded` (retryable: a scoring call that
had already committed its state replays from the idempotency store on retry). A client
that disconnects before its answer cancels its request the same way (nothing is sent;
counted as hero_client_gone_total and code 499), so abandoned work leaves the queues.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hero_service.errors import error_response
from hero_service.metrics import Metrics

# Routes whose work is bounded here. Barrier routes (/score_sample, /get_reward) wait for
# other samples by design and are bounded by the barrier's own limits instead.
LIMITED_PATHS = frozenset(
    {"/score_group", "/v1/score_group", "/score_batch", "/v1/score_batch", "/verify", "/rm_score"}
)
_DRAIN_MAX = 64 * 1024  # read (and drop) small bodies of refused requests: keeps keep-alive


class Admission:
    """At most `max_inflight` scoring requests run at once; up to `max_queued` more wait
    (FIFO) at most `queue_wait_s` for a slot; everything beyond gets 429 at once. A slot
    is freed when the response's last byte is sent."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_inflight: int,
        deadline_s: float,
        max_queued: int = 0,
        queue_wait_s: float = 0.0,
        paths: frozenset[str] = LIMITED_PATHS,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_inflight = max_inflight
        self.deadline_s = deadline_s
        self.max_queued = max_queued if queue_wait_s > 0 else 0
        self.queue_wait_s = queue_wait_s
        self.paths = paths
        self.inflight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        metrics.inflight_limit.set(max_inflight)
        metrics.inflight_requests.set_function(lambda: self.inflight)
        metrics.admission_queue.set_function(lambda: len(self._waiters))

    async def _acquire(self) -> bool:
        if self.inflight < self.max_inflight and not self._waiters:
            self.inflight += 1
            return True
        if len(self._waiters) >= self.max_queued:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait({fut}, timeout=self.queue_wait_s)
        except asyncio.CancelledError:  # the client went away while queued
            if fut.done() and not fut.cancelled():
                self._release()  # a slot was handed over: pass it on
            fut.cancel()
            raise
        if fut.done():
            return True  # _release handed its slot to us (inflight unchanged)
        fut.cancel()  # _release skips it from now on
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)
        return False

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # hand the slot over
                return
        self.inflight -= 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if not self.max_inflight:
            await self._run(scope, receive, send, lambda: None)
            return
        if not await self._acquire():
            await self._reject(scope, receive, send)
            return
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release()

        try:
            await self._run(scope, receive, send, release)
        finally:
            release()

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.rejected.labels("admission").inc()
        self.metrics.requests.labels(scope["path"], "429").inc()
        await _drain(scope, receive)
        resp = error_response(
            "overloaded",
            f"server is at its limit of {self.max_inflight} scoring requests in flight "
            "(setting max_inflight_requests); retry after the Retry-After delay",
            headers={"Retry-After": "1"},
        )
        await resp(scope, receive, send)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, on_done: Callable[[], None]
    ) -> None:
        started = False
        body_read = asyncio.Event()
        gone = False
        me = asyncio.current_task()
        assert me is not None

        async def receive_tracking() -> Message:
            msg = await receive()
            if msg["type"] != "http.request" or not msg.get("more_body", False):
                body_read.set()
            return msg

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                on_done()  # the client has its answer: free the slot now

        async def watch_client() -> None:
            """Once the body is read, the next message is http.disconnect: a client that
            went away (a trainer's timeout) cancels its work, and its queued RM inputs
            and verifications are dropped instead of computed for nobody."""
            nonlocal gone
            await body_read.wait()
            msg = await receive()
            if msg["type"] == "http.disconnect" and not started:
                gone = True
                me.cancel()

        watcher = asyncio.ensure_future(watch_client())
        path = scope["path"]
        timeout = asyncio.timeout(self.deadline_s or None)
        try:
            async with timeout:
                await self.app(scope, receive_tracking, send_tracking)
        except TimeoutError:
            if not timeout.expired():
                raise
            self.metrics.deadline_exceeded.labels(path).inc()
            self.metrics.requests.labels(path, "503").inc()
            if not started:
                resp = error_response(
                    "deadline_exceeded",
                    f"request did not finish within {self.deadline_s:g}s (setting "
                    "request_deadline_s); retry with the same request_id",
                    headers={"Retry-After": "1"},
                )
                await resp(scope, receive, send)
        except asyncio.CancelledError:
            if not gone or me.uncancel() > 0:
                raise  # a shutdown, not the client: keep cancelling
            self.metrics.client_gone.labels(path).inc()
        finally:
            watcher.cancel()


async def _drain(scope: Scope, receive: Receive) -> None:
    """Consume a small request body so the connection can be kept alive."""
    if scope["method"] not in ("POST", "PUT", "PATCH"):
        return
    cl = dict(scope["headers"]).get(b"content-length")
    if cl is None or not cl.isdigit() or int(cl) > _DRAIN_MAX:
        return
    while True:
        msg = await receive()
        if msg["type"] != "http.request" or not msg.get("more_body", False):
            return
