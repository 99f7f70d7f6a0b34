"""The FastAPI application: `create_app()` is the only factory; nothing runs at import."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI

from hero_service import __version__
from hero_service.barrier import Barrier
from hero_service.compat import router as compat_router
from hero_service.config import Settings
from hero_service.docs_ui import install_docs
from hero_service.http import install_http
from hero_service.metrics import Metrics
from hero_service.pipeline import Pipeline
from hero_service.rm import RMInput, RMScorer, build_scorer
from hero_service.routes import router
from hero_service.state import JobStore, build_store
from hero_service.verify.judge import Judge, JudgeConfig
from hero_service.verify.pool import VerifierPool
from hero_service.verify.rules import RuleVerifier

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
    components: dict[str, bool] = field(
        default_factory=lambda: {"state": False, "verifier_pool": False, "reward_model": False}
    )
    accepting: bool = True
    started_at: float = field(default_factory=time.time)

    @property
    def ready(self) -> bool:
        return self.accepting and all(self.components.values())


async def _probe_state(rt: Runtime, store: JobStore, interval_s: float = 5.0) -> None:
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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics(settings.metrics_max_jobs)
    metrics.rm_queue_capacity.set(settings.rm_max_queue)
    metrics.verifier_queue_capacity.set(settings.verifier_max_queue)
    rt = Runtime(settings=settings, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await build_store(settings)
        rt.store = store
        probe = asyncio.create_task(_probe_state(rt, store), name="state-probe")
        pool = VerifierPool(
            settings.verifier_workers,
            settings.verifier_deadline_s,
            settings.verifier_max_tasks,
            settings.verifier_memory_mb,
            settings.verifier_max_queue,
            max_per_owner=settings.verifier_max_per_request,
        )
        rt.pool = pool
        metrics.verifier_pool_size.set(settings.verifier_workers)
        metrics.verifier_queue.set_function(lambda: pool.inflight)
        # the judge is no readiness component: when it is down the rule verdicts stand
        judge = Judge(JudgeConfig.from_settings(settings), metrics) if settings.judge_url else None
        rt.verifier = RuleVerifier(
            pool,
            metrics,
            settings.verifier_cache_size,
            settings.verifier_inner_timeout_s,
            judge=judge,
        )
        scorer_task = asyncio.create_task(asyncio.to_thread(build_scorer, settings, metrics))
        await pool.warm_up()
        rt.components["verifier_pool"] = True
        scorer = await scorer_task
        scorer.start()
        await scorer.score([RMInput("warm-up", "warm-up")])  # first forward pass is slow
        rt.scorer = scorer
        rt.components["reward_model"] = True
        rt.pipeline = Pipeline(settings, metrics, rt.verifier, scorer, store)
        app.state.barrier = Barrier(settings, metrics, rt.pipeline)  # per-sample groups
        log.info("hero service ready (rm=%s, verifier=%s)", scorer.name, settings.verifier)
        try:
            yield
        finally:
            rt.accepting = False
            probe.cancel()
            await app.state.barrier.close()  # score open groups while the RM is up
            await scorer.close()
            await asyncio.to_thread(pool.close)
            if judge is not None:
                await judge.close()
            await store.close()

    app = FastAPI(
        title="HERO reward service",
        version=__version__,
        description="Hybrid rewards (rule verifier + reward model) for RL post-training.",
        lifespan=lifespan,
        docs_url=None,  # docs_ui.py serves /docs and /redoc from local files
        redoc_url=None,
    )
    app.state.rt = rt
    install_http(app, rt)
    install_docs(app)
    app.include_router(router)
    app.include_router(compat_router)

    return app
