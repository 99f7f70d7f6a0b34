"""Running the app under uvicorn with a graceful SIGTERM sequence.

1. SIGTERM (or SIGINT): readiness goes false at once (/ready answers 503, new scoring
   calls get 503 not_ready, which clients retry elsewhere); requests in flight go on.
   The group barrier closes at once: samples waiting for their group get 503 not_ready
   (JSON, Retry-After) and those groups are not folded into their jobs.
2. After shutdown_drain_s (time for a load balancer / Kubernetes to drop the endpoint),
   uvicorn closes the listener and waits up to shutdown_grace_s for in-flight requests.
3. The lifespan closes the RM batcher, the verifier pool and the state store: every
   acknowledged update was already committed before its response was sent, so closing
   flushes nothing that could be lost.
A second signal skips the drain; uvicorn's own handling then applies.
"""

from __future__ import annotations

import logging
import math
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from hero_service.config import Settings

log = logging.getLogger("hero_service")


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_s = drain_s
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        rt = getattr(self._app.state, "rt", None)
        if rt is not None:
            rt.accepting = False  # readiness false before anything else
            if rt.barrier is not None:
                rt.barrier.shut_soon()  # waiters get 503 now; their groups are not folded
            if rt.shared is not None:
                rt.shared.shut()  # a flag: its waiters answer 503 at their next poll
        if self._drain_until is None and self._drain_s > 0:
            self._drain_until = time.monotonic() + self._drain_s
            self._captured_signals.append(sig)
            log.warning("signal %s: not ready; draining for %.1fs", sig, self._drain_s)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


def run(app: FastAPI, settings: Settings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
    )
    GracefulServer(config, app, settings.shutdown_drain_s).run()
