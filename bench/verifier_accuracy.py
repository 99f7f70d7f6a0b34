"""Precision / recall / FPR of each verifier on the labelled pair set.

    python bench/verifier_accuracy.py [--data tests/data/verifier_pairs.jsonl] [--out docs/...]

Each pair's answer is wrapped as a model's final `\\boxed{...}` and sent through the same
RuleVerifier the service uses (extraction, guards, worker pool).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from hero_service.metrics import Metrics
from hero_service.verify.pool import VerifierPool
from hero_service.verify.rules import RuleVerifier

VERIFIERS = ["exact", "string", "math_verify", "cascade"]


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stats(rows: list[tuple[bool, int]]) -> dict[str, float]:
    tp = sum(1 for y, p in rows if y and p)
    fp = sum(1 for y, p in rows if not y and p)
    fn = sum(1 for y, p in rows if y and not p)
    tn = sum(1 for y, p in rows if not y and not p)
    return {
        "n": len(rows),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


async def evaluate(pairs: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    pool = VerifierPool(workers, 10.0, 500, 1536, 100_000)
    await pool.warm_up()
    out: dict[str, Any] = {}
    try:
        for name in VERIFIERS:
            rv = RuleVerifier(pool, Metrics(), cache_size=0)
            t0 = time.perf_counter()
            verdicts = await asyncio.gather(
                *(
                    rv.verify_group(
                        p["reference"], [f"So the answer is $\\boxed{{{p['answer']}}}$."], name
                    )
                    for p in pairs
                )
            )
            dt = time.perf_counter() - t0
            pv = zip(pairs, verdicts, strict=True)
            rows = [(bool(p["equivalent"]), v[0].label) for p, v in pv]
            by_cat: dict[str, list[tuple[bool, int]]] = defaultdict(list)
            hard = [r for r, p in zip(rows, pairs, strict=True) if p.get("hard")]
            errors = []
            for p, r, v in zip(pairs, rows, verdicts, strict=True):
                by_cat[p["category"]].append(r)
                if r[0] != bool(r[1]):
                    errors.append(
                        {
                            "id": p["id"],
                            "reference": p["reference"],
                            "answer": p["answer"],
                            "label": p["equivalent"],
                            "status": v[0].status,
                        }
                    )
            out[name] = {
                "all": stats(rows),
                "hard": stats(hard),
                "seconds": dt,
                "by_category": {c: stats(r) for c, r in sorted(by_cat.items())},
                "errors": errors,
            }
    finally:
        pool.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="tests/data/verifier_pairs.jsonl")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None, help="write full results (with errors) here")
    ap.add_argument("--show-errors", default=None, help="print the errors of this verifier")
    a = ap.parse_args()
    pairs = load(Path(a.data))
    res = asyncio.run(evaluate(pairs, a.workers))
    pos = sum(1 for p in pairs if p["equivalent"])
    print(f"{len(pairs)} pairs ({pos} equivalent, {len(pairs) - pos} not)\n")
    print("| verifier | precision | recall | FPR | hard recall | hard FPR | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name in VERIFIERS:
        s, h = res[name]["all"], res[name]["hard"]
        print(
            f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['fpr']:.3f} | "
            f"{h['recall']:.3f} | {h['fpr']:.3f} | {res[name]['seconds']:.1f} |"
        )
    if a.show_errors:
        for e in res[a.show_errors]["errors"]:
            print(json.dumps(e))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
