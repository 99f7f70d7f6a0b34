"""Two `hero serve` replicas sharing one real Redis, 16 concurrent clients on one job.

The definition that holds across replicas: every acknowledged call is folded into the
job's running sigma exactly once, atomically, one call at a time in commit order; each
call is weighted with the sigma_bar committed just before it. So the final state equals
what one process computes by applying the same calls in the same commit order. With
sigma_mean=cumulative the order does not matter (the mean of all sigmas); with the EMA
it does, and the commit order is recovered from the answers (each answer carries the
sigma_bar it was weighted with, i.e. the state its commit followed).
"""

from __future__ import annotations

import math
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from hero_service.shaping import RunningSigma, ShapingConfig, fold_sigmas

if TYPE_CHECKING:
    from tests.redis_util import Cluster

pytest_plugins = ["tests.redis_util"]  # the shared `cluster` fixture
pytestmark = [
    pytest.mark.slow,  # server and redis processes
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server"),
]

CLIENTS, PER_CLIENT = 16, 6


def group(i: int) -> dict[str, Any]:
    """Distinct responses per call, so every call has its own sigma."""
    return {
        "prompt": f"Problem {i}: what is 1/2 + 1/4?",
        "reference": "3/4",
        "responses": [
            f"\\boxed{{3/4}} after {i} steps",
            f"\\boxed{{{i}}}",
            "x" * (1 + i % 13) + " \\boxed{0.75}",
            f"I think it is {i * 7 % 11}.",
        ],
    }


def post_until_ok(
    urls: list[str], path: str, body: dict[str, Any], seen: list[int], tries: int = 60
) -> dict[str, Any]:
    """A client that retries the SAME request id across replicas on 429/503/connection
    errors (as hero_client does), bounded in tries."""
    for k in range(tries):
        url = urls[k % len(urls)]
        try:
            r = httpx.post(url + path, json=body, timeout=30)
        except httpx.TransportError:
            seen.append(-1)
            continue
        seen.append(r.status_code)
        if r.status_code == 200:
            out: dict[str, Any] = r.json()
            return out
        assert r.status_code in (429, 503), r.text
        time.sleep(min(0.05 * 2 ** min(k, 5), 1.0))
    raise AssertionError(f"no 200 after {tries} tries: {seen[-10:]}")


def hammer(c: Cluster, job: str, shaping: dict[str, Any]) -> list[dict[str, Any]]:
    """16 clients, each sending PER_CLIENT calls, alternating replicas."""
    seen: list[int] = []

    def client(ci: int) -> list[dict[str, Any]]:
        out = []
        for k in range(PER_CLIENT):
            i = ci * PER_CLIENT + k
            urls = c.urls if i % 2 else c.urls[::-1]
            body = {"job_id": job, "request_id": f"c{ci}-{k}", "shaping": shaping, **group(i)}
            out.append(post_until_ok(urls, "/score_group", body, seen))
        return out

    with ThreadPoolExecutor(CLIENTS) as ex:
        results = [x for xs in ex.map(client, range(CLIENTS)) for x in xs]
    assert 500 not in seen
    return results


def commit_order(answers: list[dict[str, Any]], cfg: ShapingConfig) -> list[dict[str, Any]]:
    """Recover the commit order: the first call was weighted with its own sigma, each
    later one with the state the previous commit left. Exactly one answer fits each step."""
    left = list(answers)
    state = RunningSigma()
    order = []
    while left:
        if state.sigma_bar is None:
            fits = [a for a in left if a["sigma_bar"] == a["sigma"]]
        else:
            fits = [a for a in left if a["sigma_bar"] == state.sigma_bar]
        assert len(fits) == 1, f"step {len(order)}: {len(fits)} answers fit"
        order.append(fits[0])
        left.remove(fits[0])
        state = fold_sigmas(state, [fits[0]["sigma"]], cfg)
    return order


def final_state(c: Cluster, job: str) -> dict[str, Any]:
    states = [httpx.get(f"{u}/jobs/{job}").json() for u in c.urls]
    assert states[0] == states[1]  # both replicas read the same state
    return states[0]


def test_cumulative_mean_is_exact_across_replicas(cluster: Cluster) -> None:
    job = "cum-" + uuid.uuid4().hex[:8]
    answers = hammer(cluster, job, {"sigma_mean": "cumulative"})
    st = final_state(cluster, job)
    sigmas = [a["sigma"] for a in answers]
    assert st["count"] == CLIENTS * PER_CLIENT == len(set(sigmas))
    # order-independent: the mean of every acknowledged call's sigma, once each
    assert st["sigma_bar"] == pytest.approx(math.fsum(sigmas) / len(sigmas), rel=1e-12)
    # and exactly what one process computes applying them in commit order
    cfg = ShapingConfig(sigma_mean="cumulative")
    state = RunningSigma()
    for a in commit_order(answers, cfg):
        state = fold_sigmas(state, [a["sigma"]], cfg)
    assert (st["sigma_bar"], st["count"]) == (state.sigma_bar, state.count)


def test_ema_equals_one_process_replaying_commit_order(cluster: Cluster) -> None:
    job = "ema-" + uuid.uuid4().hex[:8]
    answers = hammer(cluster, job, {})
    st = final_state(cluster, job)
    cfg = ShapingConfig()
    order = commit_order(answers, cfg)  # every answer appears once in one chain
    state = RunningSigma()
    for a in order:
        assert a["sigma_bar"] == (a["sigma"] if state.sigma_bar is None else state.sigma_bar)
        state = fold_sigmas(state, [a["sigma"]], cfg)
    assert st["count"] == len(answers) == CLIENTS * PER_CLIENT
    assert st["sigma_bar"] == state.sigma_bar  # bit for bit


def test_retry_on_the_other_replica_replays(cluster: Cluster) -> None:
    job = "rep-" + uuid.uuid4().hex[:8]
    body = {"job_id": job, "request_id": "once", **group(1)}
    a = httpx.post(cluster.urls[0] + "/score_group", json=body, timeout=30).json()
    b = httpx.post(cluster.urls[1] + "/score_group", json=body, timeout=30).json()
    assert b["replayed"] is True and b["rewards"] == a["rewards"]
    assert final_state(cluster, job)["count"] == 1
