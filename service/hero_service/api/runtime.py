"""What the routes and middleware share: settings, metrics and the parts the lifespan
builds (pipeline, verifier, scorer, store, pool, barrier), plus the state-store probe."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from hero_service.api.barrier import Barrier
from hero_service.config import Settings
from hero_service.errors import NotReady
from hero_service.metrics import Metrics
from hero_service.pipeline import Pipeline
from hero_service.rm import RMScorer
from hero_service.state import JobStore
from hero_service.verify.pool import VerifierPool
from hero_service.verify.rules import RuleVerifier

if TYPE_CHECKING:  # redis-py is an extra; the shared barrier is imported when used
    from hero_service.api.shared import SharedBarrier

log = logging.getLogger("hero_service")


@dataclass
class Runtime:
    """Everything the routes need, built by the lifespan."""

    settings: Settings
    metrics: Metrics
    pipeline: Pipeline | None = None
    verifier: RuleVerifier | None = None
    scorer: RMScorer | None = None
    store: JobStore | None = None
    pool: VerifierPool | None = None
    barrier: Barrier | None = None  # per-sample groups (/score_sample, /get_reward)
    shared: SharedBarrier | None = None  # /score_sample groups in Redis, across replicas
    components: dict[str, bool] = field(
        default_factory=lambda: {"state": False, "verifier_pool": False, "reward_model": False}
    )
    accepting: bool = True
    started_at: float = field(default_factory=time.time)

    @property
    def ready(self) -> bool:
        return self.accepting and all(self.components.values())


async def probe_state(rt: Runtime, store: JobStore, interval_s: float = 5.0) -> None:
    """Readiness waits for the state store's first successful ping. After that, an
    outage is answered per request (503 state_unavailable + Retry-After) and shown by
    hero_state_up, not by readiness: a shared store's outage would otherwise take every
    replica out of its Service at once and turn clear 503s into connection errors."""
    delay = 0.1
    up: bool | None = None
    while True:
        try:
            ok = await asyncio.wait_for(store.ping(), rt.settings.state_timeout_s * 2)
        except Exception as e:
            ok = False
            if up is not False:
                log.warning("job-state store unreachable: %s", e)
        if ok and up is False:
            log.warning("job-state store reachable again")
        up = ok
        rt.metrics.state_up.set(1 if ok else 0)
        if ok:
            rt.components["state"] = True
        await asyncio.sleep(interval_s if rt.components["state"] else delay)
        delay = min(delay * 2, 2.0)


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


def live_pipeline(request: Request) -> Pipeline:
    """The pipeline, or 503 not_ready while the service starts or shuts down."""
    rt = runtime(request)
    if rt.pipeline is None or not rt.ready:
        raise NotReady("service is starting or shutting down; retry shortly")
    return rt.pipeline


def live_barrier(request: Request) -> tuple[Pipeline, Barrier]:
    rt = runtime(request)
    if rt.pipeline is None or rt.barrier is None or not rt.ready:
        raise NotReady("service is starting or shutting down; retry shortly")
    return rt.pipeline, rt.barrier
