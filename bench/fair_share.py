"""Fair share of the verifier pool (issue 13): a small group's latency, unloaded and while
another request hogs the pool with many slow answers.

Starts its own `hero serve` on loopback (2 verifier workers, cascade verifier, verifier
cache off so every call reaches the pool), then:

1. unloaded: `--reps` sequential /score_group calls of a two-answer group on job
   "small" whose answers need Math-Verify (stage math_verify);
2. hog: one /verify call with `--hog-answers` distinct exponent towers
   (`\\boxed{800^{800^{800^{k}}}}`, each several seconds of a worker), and while it
   runs, the same `--reps` small calls.

Prints the latencies and the bound the issue sets: unloaded p50 + one verification
deadline. `--server-pythonpath` runs the server from another checkout (e.g. the code
before the fix) for a before/after comparison. Every loop is bounded.

    python bench/fair_share.py
    python bench/fair_share.py --server-pythonpath /path/to/old/service:/path/to/old/client
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from hero_service.tools import devserver

SMALL = {
    "prompt": "Expand (x+1)^2.",
    "reference": "x^2+2x+1",
    "responses": ["So it is \\boxed{(x+1)^2}", "So it is \\boxed{x^2+2x+2}"],
}


def start(args: argparse.Namespace, tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    port = devserver.free_port()
    cmd = [
        *devserver.hero_serve(port),
        "--state-path", os.path.join(tmp, "state.sqlite3"),
        "--log-level", "warning",
        "--torch-threads", "1",
        "--verifier", "cascade",
        "--verifier-workers", str(args.workers),
        "--verifier-deadline-s", str(args.deadline),
        "--verifier-cache-size", "0",
        "--max-inflight-requests", "0",
        "--request-deadline-s", str(args.hog_seconds),
    ]  # fmt: skip
    if args.max_per_request:
        cmd += ["--verifier-max-per-request", str(args.max_per_request)]
    env = {"PYTHONPATH": args.server_pythonpath} if args.server_pythonpath else None
    log = Path(tmp) / "server.log"
    server = devserver.start(cmd, port, log, env=env, timeout=180)
    return server.proc, server.url


def small_calls(url: str, n: int, tag: str, codes: list[int]) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        r = httpx.post(
            url + "/score_group",
            json={"job_id": f"small-{tag}-{i}", **SMALL},
            timeout=600,
        )
        out.append(time.perf_counter() - t)
        codes.append(r.status_code)  # before the fix: 503 deadline_exceeded behind the hog
        if r.status_code == 200:
            stages = r.json().get("verifier_stage")
            assert stages in (None, ["math_verify"] * 2), r.json()  # reached the pool
    return out


def inflight(url: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("hero_verifier_inflight "):
            return float(line.split()[1])
    return 0.0


def summary(xs: list[float]) -> dict[str, float]:
    return {
        "n": len(xs),
        "p50_s": round(statistics.median(xs), 3),
        "max_s": round(max(xs), 3),
        "mean_s": round(statistics.fmean(xs), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--deadline", type=float, default=10.0, help="verifier_deadline_s")
    ap.add_argument("--hog-answers", type=int, default=300)
    ap.add_argument("--hog-seconds", type=float, default=90.0, help="request_deadline_s")
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--max-per-request", type=int, default=0)
    ap.add_argument("--server-pythonpath", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start(args, tmp)
        try:
            codes: list[int] = []
            small_calls(url, 2, "warm", codes)
            unloaded = small_calls(url, args.reps, "unloaded", codes)
            assert codes == [200] * len(codes), codes
            hog = {
                "reference": "2",
                "responses": [
                    f"\\boxed{{800^{{800^{{800^{{{k}}}}}}}}}"
                    for k in range(1, args.hog_answers + 1)
                ],
            }
            hog_result: dict[str, Any] = {}

            def run_hog() -> None:
                t = time.perf_counter()
                try:
                    r = httpx.post(url + "/verify", json=hog, timeout=args.hog_seconds + 30)
                    hog_result["code"] = r.status_code
                except httpx.HTTPError as e:
                    hog_result["code"] = type(e).__name__
                hog_result["s"] = round(time.perf_counter() - t, 1)

            th = threading.Thread(target=run_hog)
            th.start()
            for _ in range(300):  # bounded: until the hog has filled the pool's queue
                if inflight(url) >= min(args.hog_answers, 2 * args.workers + 10):
                    break
                time.sleep(0.1)
            queued_at_start = inflight(url)
            loaded_codes: list[int] = []
            loaded = small_calls(url, args.reps, "hog", loaded_codes)
            hog_still_running = th.is_alive()
            th.join(args.hog_seconds + 60)
        finally:
            proc.terminate()
            proc.wait(60)
    u, lo = summary(unloaded), summary(loaded)
    out = {
        "config": {k: v for k, v in vars(args).items()},
        "unloaded": u,
        "while_hog_runs": {**lo, "codes": loaded_codes},
        "hog": {**hog_result, "verifications_in_flight_at_start": queued_at_start},
        "hog_still_running_after_small_calls": hog_still_running,
        "bound_s": round(u["p50_s"] + args.deadline, 3),
        "max_within_bound": lo["max_s"] <= u["p50_s"] + args.deadline,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
