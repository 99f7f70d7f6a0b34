"""The group barrier under faults and limits, against real server processes (slow):
SIGTERM while samples wait, byte-bounded admission, cancellation and /get_reward overload."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_server

PROMPT, REF = "What is 1/2 + 1/4?", "\\frac{3}{4}"
RESPONSES = ["\\boxed{\\frac{3}{4}}", "\\boxed{0.5}", "\\boxed{0.75}", "no idea"]


def sample(j: str, gid: str, i: int, size: int = 4) -> dict[str, Any]:
    return {
        "job_id": j,
        "group_id": gid,
        "group_size": size,
        "sample_index": i,
        "prompt": PROMPT,
        "reference": REF,
        "response": RESPONSES[i],
    }


def gauge(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def wait_for(cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def job_count(db: Path, job: str) -> int:
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT count FROM jobs WHERE job_id=?", (job,)).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow  # server processes and a signal
def test_sigterm_answers_waiters_503_and_does_not_fold(tmp_path: Path) -> None:
    args = ("--verifier", "string", "--verifier-workers", "1", "--shutdown-drain-s", "1")
    s = start_server(tmp_path, *args)
    j = "st-" + uuid.uuid4().hex[:8]
    try:
        with ThreadPoolExecutor(2) as ex:
            futs = [
                ex.submit(httpx.post, s.url + "/score_sample", json=sample(j, "g", i), timeout=60)
                for i in (0, 1)
            ]
            wait_for(lambda: gauge(s.url, "hero_barrier_pending_samples") == 2)
            s.proc.terminate()
            waiters = [f.result() for f in futs]
        for r in waiters:  # answered at once, as JSON, retryable
            assert r.status_code == 503, r.text
            body = r.json()
            assert set(body) >= {"error", "message", "field"} and body["error"] == "not_ready"
            assert int(r.headers["retry-after"]) >= 1
        s.proc.wait(30)
    finally:
        s.stop()
    assert job_count(tmp_path / "state.sqlite3", j) == 0  # nobody received it: not folded

    s = start_server(tmp_path, *args)  # the restart: the retry is scored normally
    try:
        with ThreadPoolExecutor(4) as ex:
            rs = list(
                ex.map(
                    lambda i: httpx.post(
                        s.url + "/score_sample", json=sample(j, "g", i), timeout=60
                    ),
                    range(4),
                )
            )
        assert [r.status_code for r in rs] == [200] * 4, [r.text for r in rs]
        assert all(r.json()["partial"] is False and r.json()["group_count"] == 4 for r in rs)
        assert httpx.get(s.url + f"/jobs/{j}").json()["count"] == 1
    finally:
        s.stop()


# -- limits: bytes, group size, overload, abandoned groups -------------------------------
@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("limited"),
        "--verifier", "string",
        "--verifier-workers", "1",
        "--barrier-max-pending-bytes", "300000",
        "--max-group-size", "8",
        "--rm-max-queue", "4",
    )  # fmt: skip
    yield s
    s.stop()


def get_reward(n: int, text: str = "\\boxed{1}") -> dict[str, Any]:
    return {"query": ["p" + text] * n, "prompts": ["p"] * n, "labels": ["1"] * n}


@pytest.mark.slow  # its own server process
async def test_pending_bytes_limit_is_429(limited: Server) -> None:
    j = "pb-" + uuid.uuid4().hex[:8]
    big = "\\boxed{1} " + "x" * 150_000
    async with httpx.AsyncClient(base_url=limited.url, timeout=60) as c:
        first = asyncio.create_task(
            c.post("/score_sample", json={**sample(j, "a", 0, 2), "response": big})
        )
        await asyncio.to_thread(
            wait_for, lambda: gauge(limited.url, "hero_barrier_pending_samples") == 1
        )
        for path, body in (
            ("/score_sample", {**sample(j, "b", 0, 2), "response": big}),
            (f"/get_reward?job_id={j}&group_size=2", get_reward(2, big)),
        ):
            r = await c.post(path, json=body)
            assert r.status_code == 429, r.text
            assert r.json()["error"] == "overloaded" and r.json()["field"] is None
            assert "barrier_max_pending_bytes" in r.json()["message"]
            assert int(r.headers["retry-after"]) >= 1
        done = await c.post("/score_sample", json=sample(j, "a", 1, 2))  # small: fits
        assert done.status_code == 200 and (await first).status_code == 200
    assert gauge(limited.url, "hero_barrier_pending_bytes") == 0


@pytest.mark.slow  # its own server process
def test_get_reward_group_size_limit_without_group_size(limited: Server) -> None:
    r = httpx.post(limited.url + "/get_reward", json=get_reward(9), timeout=60)
    assert r.status_code == 422 and r.json()["field"] == "group_size", r.text
    assert "max_group_size" in r.json()["message"]


@pytest.mark.slow  # its own server process
def test_get_reward_overload_is_retryable_not_zeros(limited: Server) -> None:
    # one whole group of 8 distinct responses > rm_max_queue 4: the RM queue refuses it
    # (identical responses would share one forward pass and fit)
    body = get_reward(8)
    body["query"] = [f"p\\boxed{{1}} (try {i})" for i in range(8)]
    r = httpx.post(limited.url + "/get_reward", json=body, timeout=60)
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "overloaded" and int(r.headers["retry-after"]) >= 1


@pytest.mark.slow  # its own server process, a client that gives up
def test_abandoned_group_is_dropped_not_folded(limited: Server) -> None:
    j = "ab-" + uuid.uuid4().hex[:8]
    body = {**sample(j, "g", 0, 2), "deadline_s": 120}
    with pytest.raises(httpx.ReadTimeout):  # the trainer's timeout: nobody waits any more
        httpx.post(limited.url + "/score_sample", json=body, timeout=1.0)
    wait_for(lambda: gauge(limited.url, "hero_barrier_pending_samples") == 0, 20)
    assert gauge(limited.url, "hero_barrier_open_groups") == 0  # long before its deadline
    assert gauge(limited.url, "hero_barrier_pending_bytes") == 0
    r = httpx.get(limited.url + f"/jobs/{j}")
    assert r.status_code == 404 or r.json()["count"] == 0
    # the retry forms the group again and it is scored once
    with ThreadPoolExecutor(2) as ex:
        rs = list(
            ex.map(
                lambda i: httpx.post(
                    limited.url + "/score_sample", json=sample(j, "g", i, 2), timeout=60
                ),
                range(2),
            )
        )
    assert [x.status_code for x in rs] == [200, 200]
    assert httpx.get(limited.url + f"/jobs/{j}").json()["count"] == 1


# -- in-process: the byte admission of the barrier routes ------------------------------
async def test_pending_bytes_admits_by_bytes_and_releases() -> None:
    from starlette.types import Receive, Scope, Send

    from hero_service.api.pending import PendingBytes
    from hero_service.metrics import Metrics

    release = asyncio.Event()

    async def held(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()  # a sample waiting for its group
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    mw = PendingBytes(held, Metrics(), limit=1000, max_body=4096)
    transport = httpx.ASGITransport(mw)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        first = asyncio.create_task(c.post("/score_sample", content=b"x" * 600))
        for _ in range(100):  # bounded: until the first request holds its bytes
            if mw.held:
                break
            await asyncio.sleep(0.01)
        assert mw.held == 600
        r = await c.post("/get_reward", content=b"y" * 600)  # 1200 > 1000
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "barrier_max_pending_bytes" in r.json()["message"]
        release.set()
        assert (await first).status_code == 200
    assert mw.held == 0
