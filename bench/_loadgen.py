"""A lean HTTP/1.1 load generator for the throughput benches (loopback only).

On a 2-core machine the load generator shares the CPU with the server it measures, so
its own cost per request is part of every figure. httpx spends about a millisecond of
CPU per call; this one writes pre-encoded requests on keep-alive connections and parses
only the status line and Content-Length, which keeps the generator's share small (the
bench reports it: `client_cpu_ms_per_req`). Every loop is bounded by the body count and
by `timeout_s`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    wall_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    client_cpu_s: float = 0.0


def encode(host: str, path: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    return head + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length, close = -1, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
        elif name == b"transfer-encoding":
            raise ConnectionError("chunked responses are not supported by this generator")
    body = await reader.readexactly(length) if length >= 0 else await reader.read()
    return status, body, close or length < 0


async def run(
    url: str, path: str, bodies: list[dict[str, Any]], concurrency: int, timeout_s: float = 600
) -> LoadResult:
    """POST every body once, `concurrency` connections in flight; a non-200 is an error."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [encode(f"{host}:{port}", path, b) for b in bodies]  # encoded before timing
    res = LoadResult(0.0)
    nxt = 0
    deadline = time.monotonic() + timeout_s

    async def worker() -> None:
        nonlocal nxt
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while nxt < len(requests) and time.monotonic() < deadline:
                req = requests[nxt]
                nxt += 1
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                t = time.perf_counter()
                writer.write(req)
                status, body, close = await _read_response(reader)
                res.latencies_s.append(time.perf_counter() - t)
                if status != 200:
                    if not res.errors:
                        res.first_error = f"HTTP {status} {body[:300]!r}"
                    res.errors += 1
                if close:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))), timeout=timeout_s + 30
    )
    res.wall_s = time.perf_counter() - t0
    res.client_cpu_s = time.process_time() - cpu0
    return res
