"""Issue 13: hostile clients on loopback. Auth runs before any work; a stalled upload is
dropped; job imports are validated the same way on both stores."""

from __future__ import annotations

import json
import math
import shutil
import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from hero_client.schema import JOB_COUNT_MAX, SIGMA_BAR_MAX
from tests.conftest import Server, start_server
from tests.test_replicas import group

pytestmark = pytest.mark.slow  # server processes

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Auth on, a small in-flight limit and no queue: any slot taken by a stranger shows."""
    s = start_server(
        tmp_path_factory.mktemp("guarded"),
        "--auth-tokens", TOKEN,
        "--verifier", "string",
        "--verifier-workers", "1",
        "--max-inflight-requests", "4",
        "--max-queued-requests", "0",
        "--queue-wait-s", "0",
        "--body-read-timeout-s", "2",
    )  # fmt: skip
    yield s
    s.stop()


def _stall(url: str, n: int, headers: str = "") -> list[socket.socket]:
    """n sockets that send POST /score_group headers (Content-Length: 1000) and 100 bytes
    of body, then nothing more."""
    port = int(url.rsplit(":", 1)[1])
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(
            b"POST /score_group HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + headers.encode()
            + b"Content-Length: 1000\r\n\r\n"
            + b'{"job_id": "'
            + b"x" * 88
        )
        socks.append(s)
    return socks


def _status(s: socket.socket) -> int:
    head = b""
    while b"\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1") else 0


def test_unauthenticated_stalled_uploads_take_no_slot(guarded: Server) -> None:
    """The issue's attack: 140 token-less sockets with a partial 1000-byte body. Before
    the fix (Admission -> BodyLimit -> Auth) each held an in-flight slot while its body
    was awaited and the token holder got 429; now each is 401 from its headers alone."""
    socks = _stall(guarded.url, 140)
    try:
        body = {"job_id": "auth-" + uuid.uuid4().hex[:8], **group(1)}
        r = httpx.post(guarded.url + "/score_group", json=body, headers=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        assert {_status(s) for s in socks[:10]} == {401}
    finally:
        for s in socks:
            s.close()
    m = httpx.get(guarded.url + "/metrics").text
    assert 'hero_refused_requests_total{reason="unauthorized"} 140.0' in m


def test_stalled_authenticated_upload_is_dropped(guarded: Server) -> None:
    """A token holder's stalled upload holds its slot only until body_read_timeout_s: then
    408 with the JSON error body, and the slot is free again."""
    socks = _stall(guarded.url, 4, f"Authorization: Bearer {TOKEN}\r\n")  # every slot
    try:
        answers = []
        for s in socks:
            data = b""
            while b"}" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            answers.append(data)
        for a in answers:
            assert a.startswith(b"HTTP/1.1 408"), a[:200]
            assert b'"error":"body_timeout"' in a
    finally:
        for s in socks:
            s.close()
    body = {"job_id": "auth-" + uuid.uuid4().hex[:8], **group(1)}
    r = httpx.post(guarded.url + "/score_group", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    assert (
        'hero_refused_requests_total{reason="body_timeout"} 4.0'
        in httpx.get(guarded.url + "/metrics").text
    )


# -- job import: validated the same way on both stores ------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "redis"])
def jobs_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"jobs-{request.param}")
    args: tuple[str, ...] = ("--verifier", "string", "--verifier-workers", "1")
    from tests.redis_util import RedisServer  # imported late: also a pytest plugin

    rs = None
    if request.param == "redis":
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not on PATH")
        rs = RedisServer(tmp / "redis").start()
        args += ("--state-url", rs.url)
    s = start_server(tmp, *args)
    yield s
    s.stop()
    if rs is not None:
        rs.stop()


def _export(url: str, **over: Any) -> dict[str, Any]:
    """A valid export of a fresh job (scored once), with fields overridden."""
    j = "imp-" + uuid.uuid4().hex[:8]
    r = httpx.post(url + "/score_group", json={"job_id": j, **group(1)}, timeout=60)
    assert r.status_code == 200, r.text
    return {**httpx.get(f"{url}/jobs/{j}").json(), **over}


def _put_raw(url: str, job_id: str, text: str) -> httpx.Response:
    return httpx.put(
        f"{url}/jobs/{job_id}", content=text, headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("sigma_bar", "NaN"),
        ("sigma_bar", "Infinity"),
        ("sigma_bar", "-Infinity"),
        ("sigma_bar", "-1.0"),
        ("sigma_bar", "1e308"),  # overflowed the cumulative sum on the next call
        ("count", "1000000000000000000000000000000"),
        ("count", "-1"),
        ("created_at", "NaN"),
        ("updated_at", "Infinity"),
    ],
)
def test_invalid_import_is_422_naming_the_field(
    jobs_server: Server, field: str, literal: str
) -> None:
    exp = _export(jobs_server.url)
    exp["config"]["sigma_mean"] = "cumulative"
    before = httpx.get(f"{jobs_server.url}/jobs/{exp['job_id']}").json()
    text = json.dumps({**exp, field: "@@"}).replace('"@@"', literal)
    r = _put_raw(jobs_server.url, exp["job_id"], text)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error" and r.json()["field"] == field
    assert httpx.get(f"{jobs_server.url}/jobs/{exp['job_id']}").json() == before  # untouched
    # and the job still scores
    body = {"job_id": exp["job_id"], **group(2)}
    assert httpx.post(jobs_server.url + "/score_group", json=body, timeout=60).status_code == 200


def test_sigma_bar_with_count_zero_is_refused(jobs_server: Server) -> None:
    exp = _export(jobs_server.url, count=0)
    r = httpx.put(f"{jobs_server.url}/jobs/{exp['job_id']}", json=exp)
    assert r.status_code == 422 and r.json()["field"] == "sigma_bar"


@pytest.mark.parametrize("bad", ["a\nb", 'a"b', "x" * 10_000, "a b", "-lead"])
def test_path_job_id_follows_the_pattern(jobs_server: Server, bad: str) -> None:
    url = jobs_server.url
    exp = _export(url, job_id=bad)
    path = f"{url}/jobs/{quote(bad, safe='')}"
    for r in (httpx.put(path, json=exp), httpx.get(path), httpx.delete(path)):
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "job_id"
    assert all(j["job_id"] != bad for j in httpx.get(url + "/jobs").json())


def test_every_export_puts_back_unchanged(jobs_server: Server) -> None:
    url = jobs_server.url
    for over in ({}, {"sigma_bar": None}, {"sigma_bar": None, "count": 0}):
        exp = _export(url, **over)
        j = exp["job_id"]
        assert httpx.put(f"{url}/jobs/{j}", json=exp).status_code == 200
        got = httpx.get(f"{url}/jobs/{j}").json()
        assert got == exp
        r = httpx.put(f"{url}/jobs/{j}", json=got)  # the export of the import, again
        assert r.status_code == 200 and r.json() == exp
    # sigma_bar null with count > 0 (what older versions exported after storing NaN):
    # the job has no running mean; the next call seeds it and restarts the count
    r = httpx.post(url + "/score_group", json={"job_id": j, **group(3)}, timeout=60).json()
    assert r["sigma_bar"] == r["sigma"]
    assert httpx.get(f"{url}/jobs/{j}").json()["count"] == 1
    exp = _export(url, sigma_bar=None, count=7)
    assert httpx.put(f"{url}/jobs/{exp['job_id']}", json=exp).status_code == 200
    assert httpx.get(f"{url}/jobs/{exp['job_id']}").json() == exp


def test_a_fold_that_would_overflow_is_refused_before_storing(jobs_server: Server) -> None:
    """The largest valid state: a call past the count bound is 422 and stores nothing;
    at the bounds the cumulative sum stays finite."""
    url = jobs_server.url
    exp = _export(url, sigma_bar=SIGMA_BAR_MAX, count=JOB_COUNT_MAX)
    exp["config"]["sigma_mean"] = "cumulative"
    j = exp["job_id"]
    assert httpx.put(f"{url}/jobs/{j}", json=exp).status_code == 200
    r = httpx.post(url + "/score_group", json={"job_id": j, **group(4)}, timeout=60)
    assert r.status_code == 422 and r.json()["field"] == "count", r.text
    assert httpx.get(f"{url}/jobs/{j}").json() == exp
    exp = {**exp, "count": JOB_COUNT_MAX - 1}
    assert httpx.put(f"{url}/jobs/{j}", json=exp).status_code == 200
    r = httpx.post(url + "/score_group", json={"job_id": j, **group(5)}, timeout=60)
    assert r.status_code == 200, r.text
    st = httpx.get(f"{url}/jobs/{j}").json()
    assert st["count"] == JOB_COUNT_MAX and math.isfinite(st["sigma_bar"])
