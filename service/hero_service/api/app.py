"""The FastAPI application: `create_app()` is the only factory; nothing runs at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hero_service import __version__
from hero_service.api.barrier import Barrier
from hero_service.api.docs_ui import install_docs
from hero_service.api.handlers import install_handlers
from hero_service.api.middleware import install_http
from hero_service.api.openrlhf import router as openrlhf_router
from hero_service.api.routes import router
from hero_service.api.runtime import Runtime, probe_state
from hero_service.api.samples import router as samples_router
from hero_service.config import Settings
from hero_service.metrics import Metrics
from hero_service.pipeline import Pipeline
from hero_service.rm import RMInput, build_scorer
from hero_service.state import build_store
from hero_service.verify.judge import Judge, JudgeConfig
from hero_service.verify.pool import VerifierPool
from hero_service.verify.rules import RuleVerifier

log = logging.getLogger("hero_service")


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
        probe = asyncio.create_task(probe_state(rt, store), name="state-probe")
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
        barrier = rt.barrier = Barrier(settings, metrics, rt.pipeline)  # per-sample groups
        if settings.barrier_shared and settings.state_url.startswith(("redis://", "rediss://")):
            # redis-py is an extra: imported only when a Redis barrier is configured
            from hero_service.api.shared import SharedBarrier

            shared = rt.shared = SharedBarrier(settings, metrics, rt.pipeline)
            # the gauges count this replica's waiting samples, in either barrier
            metrics.barrier_open_groups.set_function(
                lambda: barrier.open_groups + shared.open_groups
            )
            metrics.barrier_pending_samples.set_function(
                lambda: barrier.pending_samples + shared.pending_samples
            )
        log.info("hero service ready (rm=%s, verifier=%s)", scorer.name, settings.verifier)
        try:
            yield
        finally:
            rt.accepting = False
            probe.cancel()
            await barrier.close()  # open groups fail (503); groups being scored finish
            if rt.shared is not None:
                await rt.shared.close()
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
    install_handlers(app, metrics)
    install_docs(app)
    app.include_router(router)
    app.include_router(samples_router)
    app.include_router(openrlhf_router)

    return app
