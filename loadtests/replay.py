"""Open-loop replay load generator for the HERO service (loopback only, bounded).

Groups arrive as a Poisson process at `--rate` groups/s whatever the server's answers
(open loop: a slow server builds a backlog instead of slowing the generator down, as
rollout workers do). Profiles:

  group     one POST /score_group per group (clients that hold the whole group:
            TRL, older verl batch managers, scripts)
  openrlhf  OpenRLHF >= 0.10: one POST /get_reward?job_id=..&group_size=N per rollout
            ({"query": [prompt + response], "prompts": [prompt], "labels": [reference]}),
            the N rollouts of a prompt sent as each generation finishes (spread over
            --spread seconds); the server's group barrier reassembles the group
  sample    verl-style per-sample calls: POST /score_sample with the group id (uid)

Bounded: no new arrivals after --duration seconds or --max-requests requests, then at most
--drain seconds for answers in flight; --max-inflight caps open requests (arrivals past it
are counted as `generator_overflow`, not sent). Refuses any target that is not loopback.

    python loadtests/replay.py --url http://127.0.0.1:8000 --profile openrlhf \\
        --rate 2 --duration 60 --group-size 8 --out results.json
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import random
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from hero_service.tools.synth import groups as synth_groups

PROFILES = ("group", "openrlhf", "sample")


def check_loopback(url: str) -> None:
    """Load tests only ever target this machine."""
    host = urlsplit(url).hostname or ""
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        raise SystemExit(f"replay: cannot resolve {host!r}") from None
    bad = [a for a in addrs if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    if not addrs or bad:
        raise SystemExit(f"replay: refusing non-loopback target {url} ({', '.join(bad)})")


def _loadavg() -> float:
    """The machine's 1-minute load average (shared machines make numbers noisy)."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return -1.0


@dataclass
class Result:
    profile: str
    rate: float
    group_size: int
    arrivals: int = 0  # groups started
    arrival_s: float = 0.0  # how long arrivals ran
    sent: int = 0
    ok: int = 0
    unfinished: int = 0  # sent, no answer when the drain ended
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # successful requests, seconds
    rollouts_ok: int = 0
    wall_s: float = 0.0
    generator_overflow: int = 0
    loadavg: list[float] = field(default_factory=list)  # 1-min load at start and end

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else None

        n_err = sum(self.errors.values()) + self.unfinished
        return {
            "profile": self.profile,
            "offered_groups_per_s": self.rate,
            "achieved_groups_per_s": round(self.arrivals / self.arrival_s, 2)
            if self.arrival_s
            else None,
            "group_size": self.group_size,
            "requests_sent": self.sent,
            "requests_ok": self.ok,
            "error_rate": round(n_err / self.sent, 4) if self.sent else None,
            "errors": self.errors,
            "unfinished": self.unfinished,
            "generator_overflow": self.generator_overflow,
            "throughput_req_per_s": round(self.ok / self.wall_s, 2) if self.wall_s else None,
            "throughput_rollouts_per_s": round(self.rollouts_ok / self.wall_s, 2)
            if self.wall_s
            else None,
            "latency_ms": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99)},
            "wall_s": round(self.wall_s, 1),
            "loadavg_1m_start_end": self.loadavg,
        }


class Replay:
    def __init__(self, ns: argparse.Namespace) -> None:
        self.ns = ns
        self.res = Result(ns.profile, ns.rate, ns.group_size)
        self.inflight = 0
        self.job = f"{ns.job_prefix}-{ns.profile}-{uuid.uuid4().hex[:6]}"
        self.pool = list(synth_groups(ns.pool, ns.group_size, seed=ns.seed))
        self.tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _request(self, c: httpx.AsyncClient, path: str, body: dict[str, Any], n: int) -> None:
        if self.inflight >= self.ns.max_inflight:
            self.res.generator_overflow += 1
            return
        self.inflight += 1
        self.res.sent += 1
        t0 = time.perf_counter()
        # a request cancelled at the end of the drain stays counted as `unfinished`
        try:
            r = await c.post(path, json=body)
            if r.status_code == 200:
                self.res.ok += 1
                self.res.rollouts_ok += n
                self.res.latencies.append(time.perf_counter() - t0)
            else:
                self.res.error(str(r.status_code))
        except httpx.TimeoutException:
            self.res.error("timeout")
        except httpx.TransportError as e:
            self.res.error(type(e).__name__)
        finally:
            self.inflight -= 1

    async def _group(self, c: httpx.AsyncClient, k: int, rng: random.Random) -> None:
        g = self.pool[k % len(self.pool)]
        prompt = f"{g['prompt']} (request {k})"  # every arrival is a distinct prompt
        ref, responses = g["reference"], g["responses"]
        p = self.ns.profile
        if p == "group":
            body = {"job_id": self.job, "prompt": prompt, "reference": ref, "responses": responses}
            await self._request(c, "/score_group", body, len(responses))
            return
        sends = []
        for i, resp in enumerate(responses):
            delay = rng.uniform(0, self.ns.spread)
            if p == "openrlhf":
                path = f"/get_reward?job_id={self.job}&group_size={len(responses)}"
                body = {"query": [prompt + resp], "prompts": [prompt], "labels": [ref]}
            else:
                path = "/score_sample"
                body = {
                    "job_id": self.job,
                    "group_id": f"uid-{k}",
                    "group_size": len(responses),
                    "sample_index": i,
                    "prompt": prompt,
                    "reference": ref,
                    "response": resp,
                }
            sends.append(self._later(delay, c, path, body))
        await asyncio.gather(*sends)

    async def _later(self, delay: float, c: httpx.AsyncClient, path: str, body: Any) -> None:
        await asyncio.sleep(delay)
        await self._request(c, path, body, 1)

    async def run(self) -> Result:
        ns = self.ns
        rng = random.Random(ns.seed)
        limits = httpx.Limits(max_connections=ns.max_inflight, max_keepalive_connections=64)
        per_group = 1 if ns.profile == "group" else ns.group_size
        self.res.loadavg.append(_loadavg())
        async with httpx.AsyncClient(base_url=ns.url, timeout=ns.timeout, limits=limits) as c:
            t0 = time.perf_counter()
            next_at, k = t0, 0
            while True:
                now = time.perf_counter()
                if now - t0 >= ns.duration or (k + 1) * per_group > ns.max_requests:
                    break
                if now < next_at:
                    await asyncio.sleep(next_at - now)
                self._spawn(self._group(c, k, rng))
                k += 1
                next_at += rng.expovariate(ns.rate)
            self.res.arrivals = k
            self.res.arrival_s = time.perf_counter() - t0
            if self.tasks:
                await asyncio.wait(set(self.tasks), timeout=ns.drain)
            self.res.unfinished = self.inflight  # still waiting for an answer
            for t in list(self.tasks):
                t.cancel()
            if self.tasks:
                await asyncio.wait(set(self.tasks), timeout=5)
            self.res.wall_s = time.perf_counter() - t0
        self.res.loadavg.append(_loadavg())
        return self.res


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000", help="loopback only")
    ap.add_argument("--profile", choices=PROFILES, default="group")
    ap.add_argument("--rate", type=float, default=1.0, help="group arrivals per second")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals (max 600)")
    ap.add_argument("--max-requests", type=int, default=5000, help="hard cap on requests")
    ap.add_argument("--drain", type=float, default=60.0, help="seconds to wait for stragglers")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--spread", type=float, default=2.0, help="per-sample send spread (s)")
    ap.add_argument("--max-inflight", type=int, default=512)
    ap.add_argument("--timeout", type=float, default=180.0, help="per request (OpenRLHF: 180)")
    ap.add_argument("--pool", type=int, default=500, help="distinct synthetic groups")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--job-prefix", default="load")
    ap.add_argument("--out", default=None, help="append the JSON summary to this file")
    ns = ap.parse_args(argv)
    if not 0 < ns.duration <= 600 or ns.rate <= 0 or ns.max_requests < 1:
        ap.error("need 0 < --duration <= 600, --rate > 0 and --max-requests >= 1")
    return ns


def main(argv: list[str] | None = None) -> int:
    ns = parse(argv)
    check_loopback(ns.url)
    res = asyncio.run(Replay(ns).run())
    out = res.summary()
    print(json.dumps(out, indent=2))
    if ns.out:
        with open(ns.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(out) + "\n")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
