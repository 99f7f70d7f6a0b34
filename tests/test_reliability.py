"""Faults under load with real processes: kill -9 of a replica, Redis killed and
restarted, graceful SIGTERM, overload; plus the admission middleware and auth in-process.
Timing is measured by loadtests/overload.py (docs/reliability.md), not asserted here."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import signal
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from hero_service.api.app import create_app
from hero_service.api.middleware import Admission
from hero_service.config import Settings
from hero_service.metrics import Metrics
from tests.conftest import start_server
from tests.test_metrics import scrape, val
from tests.test_replicas import group

if TYPE_CHECKING:
    from tests.redis_util import Cluster

pytest_plugins = ["tests.redis_util"]
needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


class Log:
    """What the clients saw: status codes and error kinds (thread-safe appends)."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.errors: list[tuple[int, str, str | None]] = []
        self.acked = 0
        self.lock = threading.Lock()


def post_until_ok(urls: list[str], body: dict[str, Any], log: Log, budget_s: float = 90) -> Any:
    """Retry the SAME request id over the replicas on 429/503/transport errors."""
    deadline = time.monotonic() + budget_s
    k = 0
    while time.monotonic() < deadline:
        url = urls[k % len(urls)]
        k += 1
        try:
            r = httpx.post(url + "/score_group", json=body, timeout=30)
        except httpx.TransportError:
            with log.lock:
                log.codes.append(-1)
            time.sleep(0.05)
            continue
        with log.lock:
            log.codes.append(r.status_code)
            if r.status_code == 200:
                log.acked += 1
                return r.json()
            log.errors.append((r.status_code, r.json()["error"], r.headers.get("retry-after")))
        assert r.status_code in (429, 503), r.text
        time.sleep(min(0.05 * 2 ** min(k, 5), 1.0))
    raise AssertionError(f"no 200 within {budget_s}s: {log.errors[-5:]}")


def run_load(
    urls: list[str], job: str, n_clients: int, per_client: int, log: Log
) -> tuple[ThreadPoolExecutor, list[Any]]:
    ex = ThreadPoolExecutor(n_clients)

    def client(ci: int) -> list[Any]:
        out = []
        for k in range(per_client):
            i = ci * per_client + k
            body = {"job_id": job, "request_id": f"c{ci}-{k}", **group(i)}
            body["shaping"] = {"sigma_mean": "cumulative"}
            out.append(post_until_ok(urls if i % 2 else urls[::-1], body, log))
        return out

    return ex, [ex.submit(client, ci) for ci in range(n_clients)]


def wait_acked(log: Log, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while log.acked < n:
        assert time.monotonic() < deadline, "load did not make progress"
        time.sleep(0.02)


def check_exactly_once(url: str, job: str, answers: list[Any], total: int) -> None:
    """No acknowledged update lost, none applied twice."""
    st = httpx.get(f"{url}/jobs/{job}").json()
    sigmas = [a["sigma"] for a in answers]
    assert len(answers) == total and st["count"] == total
    assert st["sigma_bar"] == pytest.approx(math.fsum(sigmas) / total, rel=1e-12)


@needs_redis
@pytest.mark.slow  # faults with server processes
def test_kill_9_replica_under_load(cluster: Cluster) -> None:
    job, log = "k9-" + uuid.uuid4().hex[:8], Log()
    urls = cluster.urls
    ex, futs = run_load(urls, job, 8, 10, log)
    wait_acked(log, 20)
    cluster.servers[0].proc.kill()  # SIGKILL mid-load; clients fail over to replica 1
    cluster.servers[0].proc.wait(10)
    wait_acked(log, 40)
    cluster.restart(0)  # a fresh process on a new port joins the same Redis state
    answers = [a for f in futs for a in f.result()]
    ex.shutdown()
    assert 500 not in log.codes and -1 in log.codes  # the kill did cut requests off
    check_exactly_once(cluster.urls[0], job, answers, 80)
    # the restarted replica answers a retry of an acknowledged call from memory
    body = {"job_id": job, "request_id": "c0-0", **group(0)}
    body["shaping"] = {"sigma_mean": "cumulative"}
    again = httpx.post(cluster.urls[0] + "/score_group", json=body, timeout=30).json()
    assert again["replayed"] is True


@needs_redis
@pytest.mark.slow  # faults with server processes
def test_redis_killed_and_restarted_under_load(cluster: Cluster) -> None:
    job, log = "rk-" + uuid.uuid4().hex[:8], Log()
    ex, futs = run_load(cluster.urls, job, 8, 10, log)
    wait_acked(log, 20)
    cluster.redis.kill()  # SIGKILL: only what AOF (appendfsync always) holds survives
    time.sleep(2.0)
    cluster.redis.start()  # same port, same dir; the replicas reconnect by themselves
    answers = [a for f in futs for a in f.result()]
    ex.shutdown()
    # documented behaviour: 503 state_unavailable with Retry-After, never a 500 or a hang
    assert 500 not in log.codes and -1 not in log.codes
    outage = [e for e in log.errors if e[1] == "state_unavailable"]
    assert outage and all(code == 503 and ra == "2" for code, _, ra in outage)
    check_exactly_once(cluster.urls[1], job, answers, 80)
    for u in cluster.urls:  # recovered without a restart of the service
        assert httpx.get(u + "/ready").status_code == 200
        assert "hero_state_errors_total" in httpx.get(u + "/metrics").text


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("small")
    s = start_server(
        tmp,
        "--verifier", "string",
        "--verifier-workers", "1",
        "--max-inflight-requests", "3",
        "--max-queued-requests", "3",
        "--queue-wait-s", "0.1",
        "--shutdown-drain-s", "1.5",
    )  # fmt: skip
    yield s, tmp
    s.stop(signal.SIGKILL)


@pytest.mark.slow  # faults with server processes
def test_overload_gets_fast_429_then_recovers(small_server: Any) -> None:
    s, _ = small_server
    body = {"job_id": "ov-" + uuid.uuid4().hex[:8], **group(3)}

    def one(_: int) -> httpx.Response:
        return httpx.post(s.url + "/score_group", json=body, timeout=60)

    with ThreadPoolExecutor(24) as ex:
        rs = list(ex.map(one, range(48)))
    codes = [r.status_code for r in rs]
    assert set(codes) == {200, 429}, codes
    for r in rs:
        if r.status_code == 429:
            assert r.headers["retry-after"] == "1" and r.json()["error"] == "overloaded"
            assert "max_inflight_requests" in r.json()["message"]
    assert all(one(0).status_code == 200 for _ in range(3))  # load gone: all accepted
    assert 'hero_overload_rejections_total{stage="admission"}' in httpx.get(s.url + "/metrics").text


@pytest.mark.slow  # faults with server processes
def test_sigterm_drains_then_finishes_in_flight(small_server: Any) -> None:
    s, tmp = small_server
    job = "gs-" + uuid.uuid4().hex[:8]
    big = {**group(5), "responses": [f"step {i}: \\boxed{{{i}}} " * 20 for i in range(32)]}

    def call(i: int) -> httpx.Response:
        return httpx.post(
            s.url + "/score_group", json={"job_id": job, "request_id": f"g{i}", **big}, timeout=60
        )

    with ThreadPoolExecutor(2) as ex:
        futs = [ex.submit(call, i) for i in range(2)]
        deadline = time.monotonic() + 10
        while "hero_inflight_requests 2.0" not in httpx.get(s.url + "/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        ready = httpx.get(s.url + "/ready")
        assert ready.status_code == 503  # readiness goes false first
        refused = httpx.post(s.url + "/score_group", json={"job_id": job, **group(1)})
        assert refused.status_code == 503 and refused.json()["error"] == "not_ready"
        done = [f.result() for f in futs]
    assert [r.status_code for r in done] == [200, 200]  # in-flight work finished
    s.proc.wait(30)  # then it exits by itself
    db = sqlite3.connect(tmp / "state.sqlite3")
    (count,) = db.execute("SELECT count FROM jobs WHERE job_id=?", (job,)).fetchone()
    assert count == 2  # every acknowledged update is on disk


# -- in-process: the admission middleware and auth ---------------------------------------
def _slow_app(delay: float) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def test_admission_limit_and_deadline() -> None:
    adm = Admission(_slow_app(0.3), Metrics(), max_inflight=2, deadline_s=5.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(adm), base_url="http://t") as c:
        rs = await asyncio.gather(*(c.post("/score_group", json={}) for _ in range(5)))
        assert sorted(r.status_code for r in rs) == [200, 200, 429, 429, 429]
        assert (await c.get("/jobs")).status_code == 200  # unlimited route
        assert adm.inflight == 0
    # a short queue absorbs a burst; past its length or its wait, 429
    adm = Admission(_slow_app(0.2), Metrics(), 1, 5.0, max_queued=1, queue_wait_s=1.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(adm), base_url="http://t") as c:
        rs = await asyncio.gather(*(c.post("/score_group", json={}) for _ in range(3)))
        assert sorted(r.status_code for r in rs) == [200, 200, 429]
    adm = Admission(_slow_app(0.5), Metrics(), 1, 5.0, max_queued=4, queue_wait_s=0.05)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(adm), base_url="http://t") as c:
        rs = await asyncio.gather(*(c.post("/score_group", json={}) for _ in range(3)))
        assert sorted(r.status_code for r in rs) == [200, 429, 429]  # waits ran out
        assert adm.inflight == 0 and not adm._waiters
    adm = Admission(_slow_app(5.0), Metrics(), max_inflight=0, deadline_s=0.05)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(adm), base_url="http://t") as c:
        r = await c.post("/verify", json={})
        assert r.status_code == 503 and r.json()["error"] == "deadline_exceeded"
        assert r.headers["retry-after"] == "1"


def test_bearer_auth(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# rotated 2026-01\nfrom-file\n")
    app = create_app(Settings(auth_tokens="a,b", auth_tokens_file=str(f), state_path=":memory:"))
    c = TestClient(app)  # no lifespan: routes behind auth answer 503 not_ready
    assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200
    assert c.get("/jobs").status_code == 401
    assert c.get("/jobs", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/jobs", headers={"Authorization": "Basic a"}).status_code == 401
    for t in ("a", "b", "from-file"):
        r = c.get("/jobs", headers={"Authorization": f"Bearer {t}"})
        assert r.status_code == 503, r.text  # past auth
    r = c.post("/score_group", content=json.dumps({}), headers={"content-type": "x"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    locked = TestClient(create_app(Settings(auth_tokens="a", auth_open_paths="/health")))
    assert locked.get("/metrics").status_code == 401
    assert locked.get("/health").status_code == 200


async def test_readiness_waits_for_the_first_state_ping() -> None:
    from hero_service.api.runtime import Runtime, probe_state
    from hero_service.errors import StateUnavailable

    class FlakyStore:
        calls = 0

        async def ping(self) -> bool:
            self.calls += 1
            if self.calls < 3:
                raise StateUnavailable("Redis is still starting")
            return True

    rt = Runtime(settings=Settings(state_path=":memory:"), metrics=Metrics())
    store = FlakyStore()
    probe = asyncio.create_task(probe_state(rt, store, interval_s=60))  # type: ignore[arg-type]
    try:
        for _ in range(100):
            if rt.components["state"]:
                break
            await asyncio.sleep(0.05)
        # ready, and only after the first successful (third) ping: never while the store
        # was unreachable (wait_for runs ping in its own task, so `calls` can read 3 a
        # moment before readiness flips; the converse would be the bug)
        assert rt.components["state"] and store.calls == 3
    finally:
        probe.cancel()


@pytest.mark.slow  # faults with server processes
def test_client_gone_cancels_its_work(tmp_path: Path) -> None:
    """Trainers time out and retry: a request whose client disconnected is cancelled and
    its queued RM inputs are dropped before their forward pass, not computed for nobody."""
    srv = start_server(tmp_path, "--rm-max-batch-size", "1", "--verifier-workers", "1")
    try:
        long = " ".join(f"step {i}: {i} + {i} = {2 * i}." for i in range(80))
        body = {"prompt": "Sum it up.", "responses": [f"{long} ({k})" for k in range(8)]}
        n = 16  # 128 long batch-1 forward passes queued: many seconds of work

        def abandon(_: int) -> str:
            try:
                httpx.post(srv.url + "/rm_score", json=body, timeout=0.5)
                return "answered"
            except httpx.TimeoutException:
                return "gone"

        with ThreadPoolExecutor(n) as ex:
            outcomes = list(ex.map(abandon, range(n)))
        gone = outcomes.count("gone")
        assert gone >= n // 2, outcomes
        m: dict[Any, float] = {}
        for _ in range(300):  # bounded: up to ~30 s for the server to notice
            m = scrape(srv.url)
            if val(m, "hero_client_gone_total", route="/rm_score") >= gone:
                break
            time.sleep(0.1)
        assert val(m, "hero_client_gone_total", route="/rm_score") == gone
        assert val(m, "hero_requests_total", route="/rm_score", code="499") == gone
        assert val(m, "hero_rm_dropped_total") > 0
        # far fewer forward passes than the 128 sequences that were asked for
        assert val(m, "hero_rm_batch_size_count") < 8 * n / 2
        r = httpx.post(srv.url + "/rm_score", json={"responses": ["x = 3"]}, timeout=60)
        assert r.status_code == 200 and len(r.json()["rm_scores"]) == 1

        # A scoring call abandoned by its client, then retried with the same request_id:
        # the group is folded into the job exactly once.
        call = {
            "job_id": "gone-then-retried",
            "request_id": "r-1",
            "prompt": "Sum it up.",
            "reference": "42",
            "responses": [f"{long} so \\boxed{{{40 + k}}}" for k in range(8)],
        }
        with pytest.raises(httpx.TimeoutException):
            httpx.post(srv.url + "/score_group", json=call, timeout=0.3)
        r = httpx.post(srv.url + "/score_group", json=call, timeout=120)
        assert r.status_code == 200, r.text
        again = httpx.post(srv.url + "/score_group", json=call, timeout=120)
        assert again.json()["replayed"] is True
        assert again.json()["rewards"] == r.json()["rewards"]
        job = httpx.get(srv.url + "/jobs/gone-then-retried", timeout=30).json()
        assert job["count"] == 1
        m = scrape(srv.url)
        assert val(m, "hero_client_gone_total", route="/score_group") <= 1
    finally:
        srv.stop()
