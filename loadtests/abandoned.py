"""Memory bound of the barrier routes: 60 abandoned large /get_reward batches (issue 12).

Starts its own `hero serve` on loopback, then sends --batches OpenRLHF batches at once,
each --samples queries of --kb KB (whole groups of --group-size), from clients that give
up after --abandon-s seconds (a trainer's timeout). Samples the server's RSS (main
process; verifier workers are reported apart) before, during and after, and exits non-zero
if the peak grows past --bound-mb over the start, if memory is not back under the bound
after the clients are gone, if scoring goes on for clients that left (hero_rm_dropped and
job count), or if any answer is a 200 with zeros. Bounded in count and time; loopback only.

    python loadtests/abandoned.py                 # 60 x 40 x 190 KB, ~1-2 minutes on 2 cores
    python loadtests/abandoned.py --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from hero_service.tools import devserver


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children_rss_mb(pid: int) -> float:
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += rss_mb(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def batch(i: int, samples: int, kb: int, group_size: int) -> dict[str, Any]:
    prompts = [
        f"Problem {i}-{k // group_size}: what is {k // group_size} + 1?" for k in range(samples)
    ]
    filler = ("step " * (kb * 1024 // 5))[: kb * 1024 - 20]
    query = [p + filler + f" \\boxed{{{k % 3}}}" for k, p in enumerate(prompts)]
    labels = [str(k // group_size + 1) for k in range(samples)]
    return {"query": query, "prompts": prompts, "labels": labels}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hero-abandoned-"))
    port = devserver.free_port()
    cmd = devserver.hero_serve(
        port,
        "--state-path", str(tmp / "state.sqlite3"),
        "--log-level", "warning",
        "--torch-threads", "1",
        "--verifier-workers", "1",
    )  # fmt: skip
    if args.max_pending_mb >= 0:  # -1: leave the flag out (servers before issue 12)
        cmd += ["--barrier-max-pending-bytes", str(args.max_pending_mb * 1024 * 1024)]
    srv = devserver.start(cmd, port, tmp / "server.log", timeout=240)
    pid = srv.proc.pid
    job = f"abandoned-{int(time.time())}"
    url = f"/get_reward?job_id={job}&group_size={args.group_size}"
    codes: dict[str, int] = {}
    zeros = 0
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=60) as c:
            await asyncio.sleep(2.0)
            before = rss_mb(pid)
            bodies = [
                json.dumps(batch(i, args.samples, args.kb, args.group_size)).encode()
                for i in range(args.batches)
            ]
            samples: list[tuple[float, float, float]] = []
            stop = asyncio.Event()

            async def sampler() -> None:
                t0 = time.monotonic()
                while not stop.is_set() and time.monotonic() - t0 < 600:
                    m = (await c.get("/metrics")).text
                    held = metric(m, "hero_barrier_pending_bytes") / 2**20
                    samples.append((time.monotonic() - t0, rss_mb(pid), held))
                    await asyncio.sleep(0.25)

            async def one(body: bytes) -> None:
                nonlocal zeros
                headers = {"content-type": "application/json"}
                try:
                    r = await c.post(url, content=body, headers=headers, timeout=args.abandon_s)
                except httpx.TimeoutException:
                    codes["abandoned"] = codes.get("abandoned", 0) + 1
                    return
                except httpx.TransportError:
                    codes["transport_error"] = codes.get("transport_error", 0) + 1
                    return
                codes[str(r.status_code)] = codes.get(str(r.status_code), 0) + 1
                if r.status_code == 200 and r.json()["extra_logs"].get("hero_error", [0])[0]:
                    zeros += 1

            task = asyncio.create_task(sampler())
            t0 = time.monotonic()
            await asyncio.gather(*(one(b) for b in bodies))
            sent_s = time.monotonic() - t0
            del bodies
            # the clients are gone: the server must drop their work and its memory
            deadline = time.monotonic() + args.settle_s
            while time.monotonic() < deadline:
                m = (await c.get("/metrics")).text
                if metric(m, "hero_barrier_pending_bytes") == 0:
                    break
                await asyncio.sleep(0.25)
            settle_s = time.monotonic() - t0 - sent_s
            await asyncio.sleep(2.0)
            stop.set()
            await task
            m = (await c.get("/metrics")).text
            after = rss_mb(pid)
            jr = await c.get(f"/jobs/{job}")
            count = jr.json()["count"] if jr.status_code == 200 else 0
    finally:
        kids = children_rss_mb(pid)
        srv.stop()
    peak = max(s[1] for s in samples)
    return {
        "batches": args.batches,
        "samples": args.samples,
        "kb": args.kb,
        "max_pending_mb": args.max_pending_mb,
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_after_mb": round(after, 1),
        "verifier_workers_rss_mb": round(kids, 1),
        "peak_pending_mb": round(max(s[2] for s in samples), 1),
        "codes": codes,
        "fallback_200s": zeros,
        "groups_folded": count / args.group_size,
        "rm_dropped": metric(m, "hero_rm_dropped_total"),
        "send_s": round(sent_s, 1),
        "settle_s": round(settle_s, 1),
        "bound_mb": args.bound_mb,
        "timeline": [(round(t, 2), round(r, 1), round(h, 1)) for t, r, h in samples],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--kb", type=int, default=190)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--abandon-s", type=float, default=5.0)
    ap.add_argument("--settle-s", type=float, default=60.0)
    ap.add_argument("--max-pending-mb", type=int, default=64)
    ap.add_argument("--bound-mb", type=float, default=600.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    res = asyncio.run(run(args))
    shown = {k: v for k, v in res.items() if k != "timeline"}
    print(json.dumps(shown, indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    grow_peak = res["rss_peak_mb"] - res["rss_before_mb"]
    grow_after = res["rss_after_mb"] - res["rss_before_mb"]
    ok = grow_peak <= args.bound_mb and grow_after <= args.bound_mb and res["fallback_200s"] == 0
    ok = ok and "transport_error" not in res["codes"]
    print(
        f"peak growth {grow_peak:.0f} MB, after {grow_after:.0f} MB, bound {args.bound_mb:.0f} MB"
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
