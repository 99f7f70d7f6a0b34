"""Adversarial corpus timing: every hostile input must finish within deadline + 1 s.

    python bench/verifier_adversarial.py [--deadline 10]

Runs tests/data/adversarial.jsonl through the service's RuleVerifier (math_verify and
cascade), one input at a time, and reports the slowest input, the statuses, files created by
injection strings (must be none) and the parent's memory growth.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import glob
import json
import resource
import time
from pathlib import Path

from hero_service.metrics import Metrics
from hero_service.verify.pool import VerifierPool
from hero_service.verify.rules import RuleVerifier


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


async def run(deadline: float) -> None:
    cases = [json.loads(x) for x in Path("tests/data/adversarial.jsonl").read_text().splitlines()]
    pool = VerifierPool(2, deadline, 200, 1536, 10_000)
    await pool.warm_up()
    rss0 = rss_mb()
    try:
        for verifier in ("math_verify", "cascade"):
            rv = RuleVerifier(pool, Metrics(), cache_size=0)
            worst = (0.0, "")
            statuses: collections.Counter[str] = collections.Counter()
            correct = 0
            for c in cases:
                t = time.perf_counter()
                v = (await rv.verify_group(c["reference"], [c["response"]], verifier))[0]
                dt = time.perf_counter() - t
                worst = max(worst, (dt, c["id"]))
                statuses[v.status] += 1
                correct += v.label
            print(
                f"{verifier}: {len(cases)} inputs, labelled correct: {correct}, "
                f"slowest {worst[0]:.2f}s ({worst[1]}), deadline {deadline}s, "
                f"statuses {dict(statuses)}"
            )
        ok = await rv.verify_group("\\frac{1}{2}", ["\\boxed{0.5}"], "math_verify")
        print(
            f"pool still serving: {ok[0].status}; workers alive {pool.alive_workers()}/2; "
            f"restarts {pool.restarts}"
        )
    finally:
        pool.close()
    print(
        f"injection files created: {len(glob.glob('/tmp/hero_pwned_*'))}; "
        f"parent RSS {rss0:.0f} -> {rss_mb():.0f} MB"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deadline", type=float, default=10.0)
    asyncio.run(run(ap.parse_args().deadline))


if __name__ == "__main__":
    main()
