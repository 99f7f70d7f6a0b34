"""Soak test with faults (issue 13; not run in CI; loopback only).

Starts a private redis-server (AOF, fsync always) and two `hero serve` replicas sharing
it, measures capacity, then offers mixed traffic at `--load` (0.7) of that capacity for
`--duration` seconds (Poisson arrivals):

* /score_group, labelled and unlabelled, request ids, retried like hero_client (same id,
  other replica, on 429/503/transport errors);
* per-sample barrier traffic: /score_sample, a group's samples sent concurrently to one
  replica (labelled and unlabelled), retried the same way;
* /get_reward (OpenRLHF batch of one group; no request id, so never retried).

Faults while it runs: a random verifier worker is SIGKILLed every `--worker-kill-every`
seconds (jittered); Redis is killed (-9) and restarted at 25% and stopped (SIGTERM) and
restarted at 55% of the run; replica 0 is killed with kill -9 at 75% and restarted.

Recorded: RSS of each server process and of its verifier workers over time; every
response's route, status and latency; 5xx by kind; for every job, the count of folded
groups against the acknowledged calls (lost / applied twice); p99 per route before,
during and after each fault. Every loop is bounded in count and time; the run stops by
itself. Writes a JSON report (`--out`) and prints a summary.

    python loadtests/soak.py --duration 180 --out /tmp/soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hero_client.retry import parse_retry_after
from hero_service.tools import devserver
from hero_service.tools.devserver import free_port

REF_POLY = "x^2+2x+1"
RETRYABLE = {429, 502, 503}


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(p.name))
    return out


def is_worker(pid: int) -> bool:
    """A verifier worker (spawned pebble process), not multiprocessing's tracker."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"spawn_main" in cmd


# -- processes --------------------------------------------------------------------------
@dataclass
class Redis:
    dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "",
        ]  # fmt: skip
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(200):  # up to ~20 s
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)


@dataclass
class Replica:
    tmp: Path
    args: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    server: devserver.ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        state = str(self.tmp / f"unused-{self.port}.sqlite3")
        cmd = devserver.hero_serve(self.port, "--state-path", state, *self.args)
        self.server = devserver.spawn(cmd, self.port, self.tmp / f"replica-{self.port}.log")
        self.proc = self.server.proc

    def wait_ready(self, timeout: float = 240) -> None:
        assert self.server is not None
        self.server.wait_ready(timeout=timeout)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            workers = children(self.proc.pid)
            self.proc.kill()
            self.proc.wait(30)
            for w in workers:  # pebble workers die with their parent's pipe; make sure
                with contextlib.suppress(OSError):
                    os.kill(w, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill9()


# -- traffic ----------------------------------------------------------------------------
@dataclass
class Rec:
    t: float  # seconds since the load started
    route: str
    code: int  # 0 = transport error
    lat: float
    kind: str = ""  # error kind of non-2xx answers


@dataclass
class State:
    t0: float
    urls: list[str]
    recs: list[Rec] = field(default_factory=list)
    # job -> request ids acknowledged (score_group) / group ids acknowledged (barrier)
    acked: dict[str, set[str]] = field(default_factory=dict)
    gave_up: dict[str, dict[str, Any]] = field(default_factory=dict)  # rid -> retry info
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # sg rid -> body
    gr_acked: dict[str, int] = field(default_factory=dict)  # get_reward folds acked
    gr_unknown: dict[str, int] = field(default_factory=dict)  # outcome unknown
    skipped: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.t0


def responses(rng: random.Random, n: int) -> list[str]:
    """Half plain answers (settled in the server), half polynomials (Math-Verify in a
    worker; random coefficients defeat the cache)."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(f"Work... so \\boxed{{{rng.choice(['(x+1)^2', 'x^2+2x+1', '7'])}}}")
        else:
            k = rng.randint(2, 10_000)
            out.append(f"Expanding gives \\boxed{{(x+{k})^2 - {k * k - 1} - {2 * k - 2}x}}")
    return out


async def post(
    st: State,
    c: httpx.AsyncClient,
    route: str,
    path: str,
    body: dict[str, Any],
    retry: bool,
    budget_s: float = 180.0,
    prefer: int | None = None,
) -> httpx.Response | None:
    """POST, retrying the same body on another replica (bounded by budget_s)."""
    deadline = time.monotonic() + budget_s
    k = prefer if prefer is not None else random.randrange(len(st.urls))
    while True:
        url = st.urls[k % len(st.urls)]
        k += 1
        t = time.monotonic()
        try:
            r = await c.post(url + path, json=body, timeout=150)
            kind = ""
            if r.status_code >= 400:
                try:
                    kind = str(r.json().get("error", ""))
                except ValueError:
                    kind = "not_json"
            st.recs.append(Rec(t - st.t0, route, r.status_code, time.monotonic() - t, kind))
            if r.status_code < 400 or not retry or r.status_code not in RETRYABLE:
                return r
            after = parse_retry_after(r)
            wait = 1.0 if after is None else after
        except httpx.HTTPError as e:
            st.recs.append(Rec(t - st.t0, route, 0, time.monotonic() - t, type(e).__name__))
            if not retry:
                return None
            wait = 0.3
        if time.monotonic() + wait > deadline:
            return None
        await asyncio.sleep(wait * random.uniform(0.5, 1.0))


async def op_score_group(st: State, c: httpx.AsyncClient, rng: random.Random, job: str) -> None:
    rid = uuid.uuid4().hex
    resp = responses(rng, 4)
    body: dict[str, Any] = {
        "job_id": job,
        "request_id": rid,
        "prompt": "Expand (x+1)^2.",
        "reference": REF_POLY,
        "responses": resp,
    }
    if rng.random() < 0.5:
        body["labels"] = [1 if "7" not in r else 0 for r in resp]
    r = await post(st, c, "/score_group", "/score_group", body, retry=True)
    st.bodies[rid] = body
    if r is not None and r.status_code == 200:
        st.acked.setdefault(job, set()).add(rid)
    else:
        st.gave_up[rid] = {"kind": "sg", "job": job, "body": body}


async def op_samples(st: State, c: httpx.AsyncClient, rng: random.Random, job: str) -> None:
    gid = uuid.uuid4().hex
    resp = responses(rng, 4)
    labelled = rng.random() < 0.5
    bodies = []
    for i, text in enumerate(resp):
        b: dict[str, Any] = {
            "job_id": job,
            "group_id": gid,
            "group_size": len(resp),
            "prompt": "Expand (x+1)^2.",
            "reference": REF_POLY,
            "response": text,
            "sample_index": i,
            "request_id": f"{gid}-{i}",
        }
        if labelled:
            b["label"] = 0 if "7" in text else 1
        bodies.append(b)
    prefer = rng.randrange(len(st.urls))  # one group, one replica (the barrier is local)
    for _ in range(3):  # bounded: re-send the whole group on the other replica
        rs = await asyncio.gather(
            *(post(st, c, "/score_sample", "/score_sample", b, True, 90, prefer) for b in bodies)
        )
        if all(r is not None and r.status_code == 200 for r in rs):
            st.acked.setdefault(job, set()).add(gid)
            return
        if any(r is not None and r.status_code == 409 for r in rs):
            break  # scored before (e.g. by the killed replica) with other samples
        prefer += 1
    st.gave_up[gid] = {"kind": "ss", "job": job, "bodies": bodies}


async def op_get_reward(st: State, c: httpx.AsyncClient, rng: random.Random, job: str) -> None:
    resp = responses(rng, 4)
    body = {
        "query": [f"Expand (x+1)^2. {r}" for r in resp],
        "prompts": ["Expand (x+1)^2."] * 4,
        "labels": [REF_POLY] * 4,
    }
    r = await post(st, c, "/get_reward", f"/get_reward?job_id={job}&group_size=4", body, False)
    if r is not None and r.status_code == 200 and not any(r.json()["extra_logs"]["hero_error"]):
        st.gr_acked[job] = st.gr_acked.get(job, 0) + 1
    elif r is None or r.status_code >= 500 or r.status_code == 200:
        st.gr_unknown[job] = st.gr_unknown.get(job, 0) + 1  # may or may not have folded


MIX = (("sg", 0.5), ("ss", 0.2), ("gr", 0.3))


async def one_op(st: State, c: httpx.AsyncClient, rng: random.Random, prefix: str) -> None:
    x, acc, kind = rng.random(), 0.0, MIX[-1][0]
    for k, w in MIX:
        acc += w
        if x < acc:
            kind = k
            break
    job = f"{prefix}-{kind}-{rng.randrange(3)}"
    if kind == "sg":
        await op_score_group(st, c, rng, job)
    elif kind == "ss":
        await op_samples(st, c, rng, job)
    else:
        await op_get_reward(st, c, rng, job)


async def capacity(st: State, c: httpx.AsyncClient, seconds: float, conc: int) -> float:
    """Closed loop of the same mix at `conc` ops in flight: completed ops per second."""
    rng = random.Random(1)
    done = 0
    warm = time.monotonic() + min(10.0, seconds / 3)  # the first calls are not counted

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < end:
            await one_op(st, c, rng, "cap")
            if time.monotonic() >= warm:
                done += 1

    end = time.monotonic() + seconds + min(10.0, seconds / 3)
    await asyncio.gather(*(worker() for _ in range(conc)))
    return done / (time.monotonic() - warm)


# -- faults and sampling ----------------------------------------------------------------
async def sample_rss(st: State, reps: list[Replica], out: list[dict[str, Any]], stop: Any) -> None:
    while not stop.is_set():
        row: dict[str, Any] = {"t": round(st.now(), 1)}
        for i, r in enumerate(reps):
            if r.proc is None or r.proc.poll() is not None:
                continue
            ws = [p for p in children(r.proc.pid) if is_worker(p)]
            row[f"r{i}_server_mb"] = round(rss_mb(r.proc.pid), 1)
            row[f"r{i}_workers_mb"] = round(sum(rss_mb(p) for p in ws), 1)
            row[f"r{i}_workers"] = len(ws)
        out.append(row)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 10)


async def faults(
    st: State, args: argparse.Namespace, reps: list[Replica], redis: Redis, stop: Any
) -> None:
    rng = random.Random(args.seed + 1)
    d = args.duration
    plan = [
        (0.25 * d, "redis_kill9_restart"),
        (0.55 * d, "redis_sigterm_restart"),
        (0.75 * d, "replica_kill9_restart"),
    ]
    next_worker = rng.uniform(0.3, 1.0) * args.worker_kill_every
    loop = asyncio.get_running_loop()
    while not stop.is_set() and st.now() < d:
        t = st.now()
        if plan and t >= plan[0][0]:
            _, name = plan.pop(0)
            ev: dict[str, Any] = {"fault": name, "t": round(t, 1)}
            if name.startswith("redis"):
                sig = signal.SIGKILL if "kill9" in name else signal.SIGTERM
                await loop.run_in_executor(None, redis.stop, sig)
                await asyncio.sleep(args.redis_down_s)
                await loop.run_in_executor(None, redis.start)
            else:
                await loop.run_in_executor(None, reps[0].kill9)
                await asyncio.sleep(2)
                reps[0].start()
                await loop.run_in_executor(None, reps[0].wait_ready)
            ev["recovered_t"] = round(st.now(), 1)
            st.faults.append(ev)
            print(f"[{st.now():7.1f}s] {name}: recovered", flush=True)
            continue
        if args.worker_kill_every > 0 and t >= next_worker:
            alive = [r for r in reps if r.proc is not None and r.proc.poll() is None]
            ws = [p for r in alive for p in children(r.proc.pid) if is_worker(p)]  # type: ignore[union-attr]
            if ws:
                pid = rng.choice(ws)
                try:
                    os.kill(pid, signal.SIGKILL)
                    st.faults.append(
                        {"fault": "worker_kill9", "t": round(t, 1), "recovered_t": round(t, 1)}
                    )
                except OSError:
                    pass
            next_worker = t + rng.uniform(0.5, 1.5) * args.worker_kill_every
        await asyncio.sleep(0.5)


# -- report -----------------------------------------------------------------------------
def p99(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(0.99 * len(s)))], 3)


def window(recs: list[Rec], a: float, b: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for route in ("/score_group", "/score_sample", "/get_reward"):
        ok = [r.lat for r in recs if r.route == route and a <= r.t < b and r.code == 200]
        out[route] = {"n": len(ok), "p99_s": p99(ok)}
    return out


async def final_check(st: State, c: httpx.AsyncClient) -> dict[str, Any]:
    """Finish what gave up (same ids), then compare each job's count with the calls."""
    for rid, g in list(st.gave_up.items()):
        if g["kind"] == "sg":
            r = await post(st, c, "/score_group", "/score_group", g["body"], True, 120)
            if r is not None and r.status_code == 200:
                st.acked.setdefault(g["job"], set()).add(rid)
                del st.gave_up[rid]
        else:
            rs = await asyncio.gather(
                *(
                    post(st, c, "/score_sample", "/score_sample", b, True, 90, 1)
                    for b in g["bodies"]
                )
            )
            if all(r is not None and r.status_code == 200 for r in rs):
                st.acked.setdefault(g["job"], set()).add(rid)
                del st.gave_up[rid]
    jobs: dict[str, Any] = {}
    lost = twice = 0
    for job in sorted(set(st.acked) | set(st.gr_acked) | set(st.gr_unknown)):
        r = await c.get(f"{st.urls[-1]}/jobs/{job}", timeout=30)
        count = r.json()["count"] if r.status_code == 200 else 0
        if "-gr-" in job:
            lo = st.gr_acked.get(job, 0)
            hi = lo + st.gr_unknown.get(job, 0)
        else:
            lo = hi = len(st.acked.get(job, set()))
            hi += sum(1 for g in st.gave_up.values() if g["job"] == job)  # 409: scored once
        lost += max(0, lo - count)
        twice += max(0, count - hi)
        jobs[job] = {"count": count, "acked": lo, "max_expected": hi}
    # every acknowledged score_group id replays (it is stored), on either replica
    sample = [rid for j, ids in st.acked.items() if "-sg-" in j for rid in ids]
    random.Random(7).shuffle(sample)
    not_replayed = 0
    for i, rid in enumerate(sample[:200]):
        r = await c.post(f"{st.urls[i % 2]}/score_group", json=st.bodies[rid], timeout=60)
        not_replayed += not (r.status_code == 200 and r.json()["replayed"])
    return {
        "jobs": jobs,
        "lost": lost,
        "applied_twice": twice,
        "unfinished": len(st.gave_up),
        "replay_checked": min(200, len(sample)),
        "replay_missing": not_replayed,
    }


async def run(args: argparse.Namespace, reps: list[Replica], redis: Redis) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as c:
        st = State(time.monotonic(), [r.url for r in reps])
        cap = args.capacity or await capacity(st, c, args.capacity_seconds, args.capacity_conc)
        rate = args.load * cap
        print(f"capacity {cap:.2f} ops/s; offering {rate:.2f} ops/s for {args.duration}s")
        st.recs.clear()
        st.acked.clear()
        st.gave_up.clear()
        st.gr_acked.clear()
        st.gr_unknown.clear()
        st.bodies.clear()
        st.t0 = time.monotonic()
        stop = asyncio.Event()
        rss: list[dict[str, Any]] = []
        bg = [
            asyncio.create_task(sample_rss(st, reps, rss, stop)),
            asyncio.create_task(faults(st, args, reps, redis, stop)),
        ]
        rng = random.Random(args.seed)
        prefix = f"soak{uuid.uuid4().hex[:6]}"
        tasks: set[asyncio.Task[None]] = set()
        t = 0.0
        while True:  # bounded by duration
            t += rng.expovariate(rate)
            if t >= args.duration:
                break
            delay = t - st.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= args.max_ops_in_flight:
                st.skipped += 1
                continue
            task = asyncio.create_task(one_op(st, c, random.Random(rng.random()), prefix))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=300)
        stop.set()
        await asyncio.gather(*bg, return_exceptions=True)
        for r in reps:  # the restarted replica must be up for the checks
            if r.proc is not None and r.proc.poll() is None:
                await asyncio.get_running_loop().run_in_executor(None, r.wait_ready)
        check = await final_check(st, c)
    return summarize(st, args, cap, rate, rss, check)


def summarize(
    st: State,
    args: argparse.Namespace,
    cap: float,
    rate: float,
    rss: list[dict[str, Any]],
    check: dict[str, Any],
) -> dict[str, Any]:
    recs = st.recs
    codes: dict[str, dict[str, int]] = {}
    for r in recs:
        key = str(r.code) + (f" {r.kind}" if r.kind else "")
        codes.setdefault(r.route, {})
        codes[r.route][key] = codes[r.route].get(key, 0) + 1
    documented = {"state_unavailable", "not_ready"}
    fivexx = [r for r in recs if r.code >= 500]
    undocumented = [r for r in fivexx if r.kind not in documented]
    w = max(20.0, min(60.0, args.duration / 10))
    fault_windows = []
    for f in st.faults:
        if f["fault"] == "worker_kill9":
            continue
        a, b = f["t"], f["recovered_t"]
        fault_windows.append(
            {
                **f,
                "before": window(recs, a - w, a),
                "during": window(recs, a, max(b, a + 5)),
                "after": window(recs, max(b, a + 5), max(b, a + 5) + w),
            }
        )
    kills = [f["t"] for f in st.faults if f["fault"] == "worker_kill9"]
    wk = {
        "kills": len(kills),
        "before_10s": _merge(recs, [(t - 10, t) for t in kills]),
        "during_0_10s": _merge(recs, [(t, t + 10) for t in kills]),
        "after_10_30s": _merge(recs, [(t + 10, t + 30) for t in kills]),
    }
    first = {k: v for k, v in rss[0].items()} if rss else {}
    last = {k: v for k, v in rss[-1].items()} if rss else {}
    peak = {k: max(r.get(k, 0) for r in rss) for k in first if k != "t"}
    return {
        "args": vars(args),
        "capacity_ops_s": round(cap, 2),
        "offered_ops_s": round(rate, 2),
        "requests": len(recs),
        "skipped_ops": st.skipped,
        "codes": codes,
        "5xx_total": len(fivexx),
        "5xx_undocumented": len(undocumented),
        "5xx_undocumented_kinds": sorted({r.kind for r in undocumented}),
        "transport_errors": sum(1 for r in recs if r.code == 0),
        "overall": window(recs, 0, args.duration + 600),
        "timeline": timeline(recs, args.duration),
        "faults": fault_windows,
        "worker_kills": wk,
        "rss_first": first,
        "rss_last": last,
        "rss_peak": peak,
        "rss": rss,
        "state": check,
    }


def timeline(recs: list[Rec], duration: float, step: float = 60.0) -> list[dict[str, Any]]:
    """Per `step` seconds: answers, 200s/s, p50 and p99 of the 200s over all routes."""
    out = []
    a = 0.0
    while a < duration:  # bounded by duration / step
        lat = sorted(r.lat for r in recs if a <= r.t < a + step and r.code == 200)
        out.append(
            {
                "t": a,
                "answers": sum(1 for r in recs if a <= r.t < a + step),
                "ok_per_s": round(len(lat) / step, 2),
                "p50_s": round(lat[len(lat) // 2], 3) if lat else None,
                "p99_s": p99(lat),
            }
        )
        a += step
    return out


def _merge(recs: list[Rec], spans: list[tuple[float, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for route in ("/score_group", "/score_sample", "/get_reward"):
        ok = [
            r.lat
            for r in recs
            if r.route == route and r.code == 200 and any(a <= r.t < b for a, b in spans)
        ]
        out[route] = {"n": len(ok), "p99_s": p99(ok)}
    return out


def _p(w: dict[str, Any], route: str) -> str:
    x = w[route]["p99_s"]
    return "-" if x is None else f"{x:.2f}"


def render(rep: dict[str, Any]) -> str:
    """The report's tables as markdown (docs/reliability.md)."""
    routes = ("/score_group", "/score_sample", "/get_reward")
    lines = [
        f"capacity {rep['capacity_ops_s']} ops/s, offered {rep['offered_ops_s']} ops/s, "
        f"{rep['requests']} answers, {rep['skipped_ops']} ops skipped by the generator",
        "",
        "| route | answers by code |",
        "|---|---|",
    ]
    for route, codes in rep["codes"].items():
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(codes.items()))
        lines.append(f"| `{route}` | {shown} |")
    lines += [
        "",
        "| fault | at | recovered | p99 before (group / sample / get_reward) | during | after |",
        "|---|---|---|---|---|---|",
    ]
    for f in rep["faults"]:
        cells = [" / ".join(_p(f[w], r) for r in routes) for w in ("before", "during", "after")]
        row = f"| {f['fault']} | {f['t']} s | {f['recovered_t']} s | " + " | ".join(cells)
        lines.append(row + " |")
    wk = rep["worker_kills"]
    cells = [
        " / ".join(_p(wk[w], r) for r in routes)
        for w in ("before_10s", "during_0_10s", "after_10_30s")
    ]
    lines.append(f"| worker_kill9 x{wk['kills']} | - | - | " + " | ".join(cells) + " |")
    lines += ["", "| minute | answers | 200/s | p50 | p99 |", "|---|---|---|---|---|"]
    for row in rep["timeline"]:
        lines.append(
            f"| {int(row['t'] // 60)} | {row['answers']} | {row['ok_per_s']} | "
            f"{row['p50_s']} | {row['p99_s']} |"
        )
    keys = [k for k in rep["rss_first"] if k != "t"]
    lines += ["", "| RSS (MiB) | first | peak | last |", "|---|---|---|---|"]
    for k in keys:
        lines.append(
            f"| {k} | {rep['rss_first'][k]} | {rep['rss_peak'][k]} | {rep['rss_last'].get(k)} |"
        )
    stt = rep["state"]
    lines += [
        "",
        f"5xx: {rep['5xx_total']} (undocumented: {rep['5xx_undocumented']}); transport errors: "
        f"{rep['transport_errors']}; acknowledged updates lost: {stt['lost']}, applied twice: "
        f"{stt['applied_twice']}; unfinished calls: {stt['unfinished']}; acknowledged ids "
        f"checked for replay: {stt['replay_checked']} (missing: {stt['replay_missing']})",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--render", default="", help="print a report's tables as markdown, exit")
    ap.add_argument("--duration", type=float, default=1800, help="seconds of loaded run")
    ap.add_argument("--load", type=float, default=0.7, help="fraction of measured capacity")
    ap.add_argument("--capacity", type=float, default=0, help="ops/s (skip measuring)")
    ap.add_argument("--capacity-seconds", type=float, default=30)
    ap.add_argument("--capacity-conc", type=int, default=8)
    ap.add_argument("--worker-kill-every", type=float, default=60, help="0 = never")
    ap.add_argument("--redis-down-s", type=float, default=3)
    ap.add_argument("--verifier-workers", type=int, default=1)
    ap.add_argument("--max-ops-in-flight", type=int, default=200)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--workdir", default="", help="keep logs here (default: a temp dir)")
    ap.add_argument("--out", default="soak-result.json")
    args = ap.parse_args()
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return 0
    if shutil.which("redis-server") is None:
        print("redis-server is not on PATH", file=sys.stderr)
        return 2
    tmp = Path(args.workdir or tempfile.mkdtemp(prefix="hero-soak-"))
    tmp.mkdir(parents=True, exist_ok=True)
    redis = Redis(tmp / "redis")
    redis.start()
    common = [
        "--state-url", redis.url, "--verifier", "cascade",
        "--verifier-workers", str(args.verifier_workers), "--torch-threads", "1",
        "--log-level", "warning", "--barrier-deadline-s", "30",
    ]  # fmt: skip
    reps = [Replica(tmp, common), Replica(tmp, common)]
    try:
        for r in reps:
            r.start()
        for r in reps:
            r.wait_ready()
        report = asyncio.run(run(args, reps, redis))
    finally:
        for r in reps:
            r.stop()
        redis.stop()
    Path(args.out).write_text(json.dumps(report, indent=1))
    brief = {k: v for k, v in report.items() if k not in ("rss", "args")}
    print(json.dumps(brief, indent=1))
    print(f"logs in {tmp}; report in {args.out}")
    ok = report["5xx_undocumented"] == 0 and not report["state"]["lost"]
    return 0 if ok and not report["state"]["applied_twice"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
