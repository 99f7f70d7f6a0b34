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
from hero_service.config import Settings
from hero_service.http import install_http
from hero_service.metrics import Metrics
from hero_service.pipeline import Pipeline
from hero_service.rm import RMScorer, build_scorer
from hero_service.routes import router
from hero_service.state import JobStore, build_store
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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    rt = Runtime(settings=settings, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await build_store(settings)
        rt.store = store
        rt.components["state"] = True
        pool = VerifierPool(
            settings.verifier_workers,
            settings.verifier_deadline_s,
            settings.verifier_max_tasks,
            settings.verifier_memory_mb,
            settings.verifier_max_queue,
        )
        rt.pool = pool
        metrics.verifier_pool_size.set(settings.verifier_workers)
        metrics.verifier_queue.set_function(lambda: pool.inflight)
        rt.verifier = RuleVerifier(
            pool, metrics, settings.verifier_cache_size, settings.verifier_inner_timeout_s
        )
        scorer_task = asyncio.create_task(asyncio.to_thread(build_scorer, settings, metrics))
        await pool.warm_up()
        rt.components["verifier_pool"] = True
        scorer = await scorer_task
        scorer.start()
        rt.scorer = scorer
        rt.components["reward_model"] = True
        rt.pipeline = Pipeline(settings, metrics, rt.verifier, scorer, store)
        log.info("hero service ready (rm=%s, verifier=%s)", scorer.name, settings.verifier)
        try:
            yield
        finally:
            rt.accepting = False
            await scorer.close()
            await asyncio.to_thread(pool.close)
            await store.close()

    app = FastAPI(
        title="HERO reward service",
        version=__version__,
        description="Hybrid rewards (rule verifier + reward model) for RL post-training.",
        lifespan=lifespan,
    )
    app.state.rt = rt
    install_http(app, rt)
    app.include_router(router)

    return app
