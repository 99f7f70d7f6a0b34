"""The way in of every request, as plain ASGI middleware (Starlette's BaseHTTPMiddleware
costs a task and a stream per request on the hot path), in this order:
auth (headers only) -> admission -> body limit and read timeout -> request metrics.

Admission: bounded in-flight scoring work and a per-request deadline, right after auth
(an unauthenticated request never reaches it) and before the body is read, so an
overloaded replica refuses a request before
it reads or parses the body: the refusal is cheap (429 + Retry-After, well under a
millisecond of server time) and memory stays bounded by (max_inflight_requests +
max_queued_requests) x max_body_bytes plus what the stage queues hold. A short FIFO
queue (queue_wait_s) absorbs bursts at moderate load; under overload the queue is full
or its wait runs out and the excess is refused, so accepted latency stays near the
latency at max_inflight_requests concurrency instead of growing with the backlog.
Admitted requests then meet the stage limits (verifier queue, RM queue), which also bound
the per-sample barrier routes: those hold a request while its group fills, so they are not
counted here.

The deadline cancels an admitted request that has not answered within
request_deadline_s and answers 503 `deadline_exceeded` (retryable: a scoring call that
had already committed its state replays from the idempotency store on retry). A client
that disconnects before its answer cancels its request the same way (nothing is sent;
counted as hero_client_gone_total and code 499), so abandoned work leaves the queues."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hero_service.api import docs_ui
from hero_service.api.pending import PendingBytes
from hero_service.errors import error_response
from hero_service.metrics import Metrics

if TYPE_CHECKING:
    from hero_service.api.runtime import Runtime


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413 before anything parses them, and drop an
    upload that stalls past `read_timeout_s` with 408 (it would hold an admission slot)."""

    def __init__(
        self, app: ASGIApp, limit: int, metrics: Metrics, read_timeout_s: float = 0.0
    ) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        cl = headers.get(b"content-length")
        if cl is not None and cl.isdigit() and int(cl) > self.limit:
            await self._reject(scope, receive, send, int(cl))
            return
        chunks: list[bytes] = []
        total = 0
        timeout = asyncio.timeout(self.read_timeout_s or None)
        try:
            async with timeout:
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        return
                    chunk = msg.get("body", b"")
                    total += len(chunk)
                    if total > self.limit:
                        await self._reject(scope, receive, send, total)
                        return
                    chunks.append(chunk)
                    if not msg.get("more_body", False):
                        break
        except TimeoutError:
            if not timeout.expired():
                raise
            self.metrics.refused.labels("body_timeout").inc()
            resp = error_response(
                "body_timeout",
                f"request body not received within {self.read_timeout_s:g}s ({total} bytes "
                "arrived; setting body_read_timeout_s)",
            )
            await resp(scope, receive, send)
            return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        resp = error_response(
            "payload_too_large",
            f"request body is {'at least ' if size else ''}{size} bytes, over the limit of "
            f"{self.limit} (setting max_body_bytes / HERO_MAX_BODY_BYTES)",
        )
        await resp(scope, receive, send)


class Auth:
    """Bearer auth, outermost: a request without a valid token is answered 401 from its
    headers alone, before it can take an admission slot, have its body read, or cause
    any verifier or RM work (docs/reliability.md, "Auth")."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, tokens: list[bytes], open_paths: frozenset[str]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tokens = tokens
        self.open_paths = open_paths

    def _authorized(self, scope: Scope) -> bool:
        got = b""
        for k, v in scope["headers"]:
            if k == b"authorization":
                got = v
                break
        scheme, _, token = got.decode("latin-1").partition(" ")
        # Compare SHA-256 digests so the comparison time depends on neither the token's
        # length nor which token matches (every token is compared).
        given = hashlib.sha256(token.strip().encode()).digest()
        matched = 0
        for t in self.tokens:
            matched |= hmac.compare_digest(given, t)
        return scheme.lower() == "bearer" and bool(matched)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.tokens
            or scope["path"] in self.open_paths
            or self._authorized(scope)
        ):
            await self.app(scope, receive, send)
            return
        self.metrics.refused.labels("unauthorized").inc()
        # The body is never read: the server closes the connection after the answer.
        resp = error_response(
            "unauthorized",
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await resp(scope, receive, send)


class RequestMetrics:
    """Per-route request metrics, as plain ASGI (Starlette's BaseHTTPMiddleware costs a
    task and a stream per request on the hot path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # what the client sees if the app fails before starting a response

        async def send_status(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, send_status)
        except asyncio.CancelledError:
            status = 499  # nginx's "client closed request": nobody got an answer
            raise
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(name, str(status)).inc()
            self.metrics.request_duration.labels(name).observe(time.perf_counter() - t0)


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


def install_http(app: FastAPI, rt: Runtime) -> None:
    settings = rt.settings
    tokens = [hashlib.sha256(t.encode()).digest() for t in settings.bearer_tokens()]
    open_paths = docs_ui.open_paths(frozenset(settings.auth_open_paths))

    # add_middleware wraps: the last added runs first. Order of a request:
    # Auth (headers) -> Admission (slot) -> PendingBytes (bytes) -> BodyLimit (read) -> metrics.
    app.add_middleware(RequestMetrics, metrics=rt.metrics)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        metrics=rt.metrics,
        read_timeout_s=settings.body_read_timeout_s,
    )
    app.add_middleware(
        PendingBytes,
        metrics=rt.metrics,
        limit=settings.barrier_max_pending_bytes,
        max_body=settings.max_body_bytes,
        read_timeout_s=settings.body_read_timeout_s,
    )
    app.add_middleware(
        Admission,
        metrics=rt.metrics,
        max_inflight=settings.max_inflight_requests,
        deadline_s=settings.request_deadline_s,
        max_queued=settings.max_queued_requests,
        queue_wait_s=settings.queue_wait_s,
    )
    app.add_middleware(Auth, metrics=rt.metrics, tokens=tokens, open_paths=open_paths)
