"""The group barrier under faults and limits, against real server processes (slow):
SIGTERM while samples wait, byte-bounded admission, cancellation and /get_reward overload."""

from __future__ import annotations

import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import start_server

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
