"""Overload benchmark: does a replica shed load fast and keep accepted latency flat?

Starts its own `hero serve` on loopback (or targets --url), then:
  1. unloaded: one client, sequential calls -> p50/p99 latency;
  2. capacity: closed loop at 4x the in-flight limit -> accepted calls per second;
  3. overload: open loop (Poisson arrivals) at --factor x capacity for --seconds;
  4. recovery: one caller again (all accepted, latency back), then an open loop at
     half the capacity (reported: how much of a bursty moderate load is accepted).
Reports 429 latency, accepted p99 vs unloaded p99, server RSS (with children), and exits
non-zero when an acceptance bound fails (accepted p99 > 2x unloaded p99, any 5xx or
transport error, slow 429s, no recovery). Loopback only; bounded in count and time.

    python loadtests/overload.py --max-inflight 4           # ~2 minutes on 2 cores
    python loadtests/overload.py --json results.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hero_service.tools import devserver

try:
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

GROUP = {
    "prompt": "What is 1/2 + 1/4?",
    "reference": "3/4",
    "responses": [
        "1/2 = 2/4, so 2/4 + 1/4 = 3/4. The answer is \\boxed{3/4}.",
        "Adding gives 0.75, so \\boxed{0.75}",
        "1/2 + 1/4 = 2/6 = \\boxed{1/3}",
        "I am not sure.",
    ],
}


@dataclass
class Phase:
    name: str
    lat: dict[int, list[float]] = field(default_factory=dict)  # status -> latencies
    transport_errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    offered: int = 0

    def add(self, code: int, dt: float) -> None:
        self.lat.setdefault(code, []).append(dt)

    def n(self, code: int) -> int:
        return len(self.lat.get(code, []))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.offered,
            "seconds": round(self.elapsed, 2),
            "codes": {str(k): len(v) for k, v in sorted(self.lat.items())},
            "transport_errors": self.transport_errors,
        }
        if self.error_kinds:
            out["transport_error_kinds"] = self.error_kinds
        for code, xs in sorted(self.lat.items()):
            out[f"p50_{code}_ms"] = round(pct(xs, 50) * 1e3, 1)
            out[f"p99_{code}_ms"] = round(pct(xs, 99) * 1e3, 1)
        if self.elapsed:
            out["accepted_per_s"] = round(self.n(200) / self.elapsed, 1)
        return out


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def start_server(args: argparse.Namespace, tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    port = devserver.free_port()
    cmd = [
        *devserver.hero_serve(port),
        "--state-path", os.path.join(tmp, "state.sqlite3"),
        "--verifier", "string",
        "--verifier-workers", "1",
        "--torch-threads", "1",
        "--log-level", "warning",
        "--max-inflight-requests", str(args.max_inflight),
        "--max-queued-requests", str(args.max_queued),
        "--queue-wait-s", str(args.queue_wait),
        *args.server_arg,
    ]  # fmt: skip
    try:
        server = devserver.start(cmd, port, Path(tmp) / "server.log", timeout=300)
    except RuntimeError as e:
        sys.exit(f"{e}\n(see {tmp}/server.log)")
    return server.proc, server.url


class RSS:
    """Peak resident memory of the server and its children (verifier workers)."""

    def __init__(self, pid: int | None) -> None:
        self.proc = psutil.Process(pid) if (psutil and pid) else None
        self.peak = 0.0

    def now_mb(self) -> float:
        if self.proc is None:
            return float("nan")
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
        except psutil.Error:
            return float("nan")

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            v = self.now_mb()
            if v == v:
                self.peak = max(self.peak, v)
            await asyncio.sleep(0.2)


class Conns:
    """A tiny keep-alive HTTP/1.1 client on raw asyncio streams: the load generator
    shares the machine with the server, so it must cost far less CPU than httpx."""

    def __init__(self, url: str, limit: int = 1024) -> None:
        hostport = url.split("//", 1)[1].rstrip("/")
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        # (reader, writer, last used); uvicorn closes keep-alive connections idle for 5 s
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.sem = asyncio.Semaphore(limit)

    def request(self, body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode()
        head = (
            f"POST /score_group HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        return head.encode() + data

    async def post(self, raw: bytes) -> int:
        async with self.sem:
            while self.idle and time.monotonic() - self.idle[-1][2] > 2.0:
                self.idle.pop()[1].close()  # stale: the server may have closed it
            if self.idle:
                r, w, _ = self.idle.pop()
            else:
                r, w = await asyncio.open_connection(self.host, self.port)
            try:
                w.write(raw)
                await w.drain()
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 60)
                lines = head.decode("latin-1").split("\r\n")
                code = int(lines[0].split()[1])
                hdrs = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
                await r.readexactly(int(hdrs.get("content-length", "0")))
            except BaseException:
                w.close()
                raise
            if hdrs.get("connection", "").lower() == "close":
                w.close()
            else:
                self.idle.append((r, w, time.monotonic()))
            return code

    def close(self) -> None:
        for _, w, _ in self.idle:
            w.close()


async def call(c: Conns, ph: Phase, i: int) -> None:
    raw = c.request({"job_id": "overload", "request_id": f"{ph.name}-{i}", **GROUP})
    t = time.perf_counter()
    try:
        code = await c.post(raw)
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as e:
        ph.transport_errors += 1
        ph.error_kinds[type(e).__name__] = ph.error_kinds.get(type(e).__name__, 0) + 1
        return
    ph.add(code, time.perf_counter() - t)


async def closed_loop(c: Conns, ph: Phase, workers: int, n: int) -> None:
    ph.offered = n
    it = iter(range(n))

    async def w() -> None:
        for i in it:
            await call(c, ph, i)

    t0 = time.perf_counter()
    await asyncio.gather(*(w() for _ in range(workers)))
    ph.elapsed = time.perf_counter() - t0


async def open_loop(c: Conns, ph: Phase, rate: float, seconds: float) -> None:
    """Poisson arrivals at `rate`/s for `seconds`, never more than rate*seconds*1.5."""
    rng = random.Random(7)
    tasks: list[asyncio.Task[None]] = []
    t0 = time.perf_counter()
    nxt = t0
    limit = int(rate * seconds * 1.5) + 1
    while len(tasks) < limit:
        nxt += rng.expovariate(rate)
        if nxt - t0 > seconds:
            break
        await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
        tasks.append(asyncio.create_task(call(c, ph, len(tasks))))
    await asyncio.gather(*tasks)
    ph.offered = len(tasks)
    ph.elapsed = time.perf_counter() - t0


async def main(args: argparse.Namespace) -> int:
    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.url:
            url = args.url
        else:
            proc, url = start_server(args, tmp)
        try:
            return await run(args, url, proc.pid if proc else None)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(60)


async def run(args: argparse.Namespace, url: str, pid: int | None) -> int:
    rss = RSS(pid)
    c = Conns(url)
    try:
        await closed_loop(c, Phase("warm"), 2, 40)
        idle_mb = rss.now_mb()
        unloaded = Phase("unloaded")
        await closed_loop(c, unloaded, 1, args.unloaded_n)
        # capacity: exactly max_inflight callers keep the replica full without a 429
        cap = Phase("capacity")
        await closed_loop(c, cap, max(1, args.max_inflight), args.capacity_n)
        capacity = cap.n(200) / cap.elapsed
        stop = asyncio.Event()
        watcher = asyncio.create_task(rss.watch(stop))
        over = Phase("overload")
        await open_loop(c, over, args.factor * capacity, args.seconds)
        stop.set()
        await watcher
        after_mb = rss.now_mb()
        await asyncio.sleep(1.0)
        rec = Phase("recovery")  # the load is gone: one caller again
        await closed_loop(c, rec, 1, args.unloaded_n // 2)
        half = Phase("half_load")  # and bursty traffic at half the capacity
        await open_loop(c, half, 0.5 * capacity, args.seconds / 2)
    finally:
        c.close()

    u99 = pct(unloaded.lat.get(200, []), 99)
    a99 = pct(over.lat.get(200, []), 99)
    r99 = pct(rec.lat.get(200, []), 99)
    rej99 = pct(over.lat.get(429, []), 99)
    result = {
        "config": {
            "max_inflight_requests": args.max_inflight,
            "max_queued_requests": args.max_queued,
            "queue_wait_s": args.queue_wait,
            "factor": args.factor,
            "seconds": args.seconds,
            "cpus": os.cpu_count(),
        },
        "capacity_per_s": round(capacity, 1),
        "unloaded": unloaded.summary(),
        "capacity": cap.summary(),
        "overload": over.summary(),
        "recovery": rec.summary(),
        "half_load": half.summary(),
        "accepted_p99_over_unloaded_p99": round(a99 / u99, 2),
        "rss_mb": {
            "idle": round(idle_mb),
            "peak_overload": round(rss.peak),
            "after": round(after_mb),
        },
    }
    checks = {
        "accepted p99 <= 2x unloaded p99": a99 <= 2 * u99,
        "overload answered 429": over.n(429) > 0,
        "429 p99 <= queue_wait + 50 ms": rej99 <= args.queue_wait + 0.05,
        "no 5xx / transport errors": all(
            k < 500 for ph in (over, rec, half, unloaded) for k in ph.lat
        )
        and over.transport_errors + rec.transport_errors + half.transport_errors == 0,
        "memory bounded: peak RSS <= idle + 100 MiB": rss.peak <= idle_mb + 100,
        "recovery: all accepted": rec.n(200) == rec.offered,
        "recovery p99 <= 2x unloaded p99": r99 <= 2 * u99,
    }
    result["checks"] = checks
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default="", help="target a running server (loopback) instead")
    ap.add_argument("--max-inflight", type=int, default=1, help="server max_inflight_requests")
    ap.add_argument("--max-queued", type=int, default=4, help="server max_queued_requests")
    ap.add_argument("--queue-wait", type=float, default=0.15, help="server queue_wait_s")
    ap.add_argument("--factor", type=float, default=10.0, help="overload = factor x capacity")
    ap.add_argument("--seconds", type=float, default=20.0, help="overload duration")
    ap.add_argument("--unloaded-n", type=int, default=200)
    ap.add_argument("--capacity-n", type=int, default=200)
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--server-arg", action="append", default=[], help="extra `hero serve` flag")
    ns = ap.parse_args()
    if ns.url and not ns.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        sys.exit("loopback targets only")
    raise SystemExit(asyncio.run(main(ns)))
