"""Issue 13: hostile clients on loopback. Auth runs before any work; a stalled upload is
dropped; job imports are validated the same way on both stores."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, start_server
from tests.test_replicas import group

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
