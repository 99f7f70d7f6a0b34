"""Admission by bytes for the barrier routes (/score_sample, /get_reward).

A request there holds its text while its group fills (seconds to minutes), so counting
requests does not bound memory: 60 OpenRLHF batches of 40 x 190 KB hold 450 MB. Each
request reserves its body's size (Content-Length, else max_body_bytes) BEFORE the body
is read and releases it when it ends (answered, 499, cancelled); past
`barrier_max_pending_bytes` it gets 429 + Retry-After at once. One request alone is
always admitted, so a limit under max_body_bytes cannot lock a big request out.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Receive, Scope, Send

from hero_service.errors import error_response
from hero_service.metrics import Metrics

BARRIER_PATHS = frozenset({"/score_sample", "/v1/score_sample", "/get_reward"})


class PendingBytes:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        limit: int,
        max_body: int,
        read_timeout_s: float = 10.0,
        paths: frozenset[str] = BARRIER_PATHS,
    ) -> None:
        self.read_timeout_s = read_timeout_s
        self.app = app
        self.metrics = metrics
        self.limit = limit
        self.max_body = max_body
        self.paths = paths
        self.held = 0
        metrics.barrier_pending_bytes.set_function(lambda: self.held)
        metrics.barrier_pending_bytes_limit.set(limit)

    def _size(self, scope: Scope) -> int:
        cl = dict(scope["headers"]).get(b"content-length")
        if cl is not None and cl.isdigit():
            return min(int(cl), self.max_body)
        return self.max_body  # chunked: BodyLimit cuts it off at max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths or not self.limit:
            await self.app(scope, receive, send)
            return
        size = self._size(scope)
        if self.held > 0 and self.held + size > self.limit:
            self.metrics.rejected.labels("pending_bytes").inc()
            self.metrics.requests.labels(scope["path"], "429").inc()
            resp = error_response(
                "overloaded",
                f"{self.held} bytes of requests are waiting in the barrier; this one "
                f"({size} bytes) would pass the limit of {self.limit} (setting "
                "barrier_max_pending_bytes); retry after the Retry-After delay",
                headers={"Retry-After": "1"},
            )
            await _discard(receive, self.read_timeout_s)
            await resp(scope, receive, send)
            return
        self.held += size
        try:
            await self.app(scope, receive, send)
        finally:
            self.held -= size


async def _discard(receive: Receive, timeout_s: float) -> None:
    """Read the refused body chunk by chunk, keeping none of it, so the client reads a
    clean 429 instead of a reset connection."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s or None):
            while True:
                msg = await receive()
                if msg["type"] != "http.request" or not msg.get("more_body", False):
                    return
