"""The RuleVerifier with real worker processes, for the verifier test modules: a module-scoped
`verifier` fixture (its own event loop and a 2-worker pool) and `verdict`/`label` helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from hero_service.metrics import Metrics
from hero_service.verify.pool import VerifierPool
from hero_service.verify.rules import RuleVerifier
from hero_service.verify.verdict import Verdict


@pytest.fixture(scope="module")
def verifier() -> Iterator[RuleVerifier]:
    loop = asyncio.new_event_loop()
    pool = VerifierPool(2, 10.0, 500, 1536, 10_000)
    loop.run_until_complete(pool.warm_up())
    rv = RuleVerifier(pool, Metrics(), cache_size=0)
    rv._test_loop = loop  # type: ignore[attr-defined]
    yield rv
    pool.close()
    loop.close()


def verdict(rv: RuleVerifier, ref: str, response: str) -> Verdict:
    """One response graded by the cascade, as the service grades it."""
    loop: asyncio.AbstractEventLoop = rv._test_loop  # type: ignore[attr-defined]
    return loop.run_until_complete(rv.verify_group(ref, [response], "cascade"))[0]


def label(rv: RuleVerifier, ref: str, response: str) -> int:
    return verdict(rv, ref, response).label
