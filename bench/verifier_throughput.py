"""Verifier throughput: the service's pool vs a sequential per-rollout Math-Verify loop.

    python bench/verifier_throughput.py [--groups 40] [--concurrency 8]

Realistic groups: 16 rollouts of ~1-3k characters, 2-4 distinct final answers, each
group with its own reference. Mix `bigmath` (the default when ../shared/data is present):
references drawn from the real Big-Math file, answers from bench/bigmath_pairs.py's
variants of each (equivalent forms and near misses) plus the reference itself. Mixes
`labelled` / `math`: tests/data/verifier_pairs.jsonl / MATH-like numbers. The baseline is
what verl's naive reward manager does: for each rollout in turn, Math-Verify's
`math_metric` over the whole response with the gold wrapped in \\boxed{} (verl's
math_verify.compute_score), in one process. Both run in the same invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bigmath_pairs

from hero_service.metrics import Metrics
from hero_service.verify.pool import VerifierPool
from hero_service.verify.rules import RuleVerifier

FILLER = (
    "Let us consider the quantity step by step. First we rewrite the expression, "
    "simplify the terms, and check the boundary cases carefully. "
)


def _numeric_group(rnd: random.Random) -> tuple[str, list[str]]:
    """A MATH/GSM8K-like reference: an integer or a fraction, with the usual variants."""
    if rnd.random() < 0.7:
        v = rnd.randint(2, 999)
        return str(v), [str(v), f"{v}.0", f"x = {v}", str(v + rnd.randint(1, 9)), str(v * 2)]
    a, b = rnd.randint(1, 20), rnd.randint(21, 40)
    return f"\\frac{{{a}}}{{{b}}}", [
        f"\\frac{{{a}}}{{{b}}}",
        f"{a}/{b}",
        f"\\dfrac{{{a}}}{{{b}}}",
        f"\\frac{{{b}}}{{{a}}}",
        str(a + b),
    ]


def _bigmath_candidates() -> dict[str, list[str]]:
    by_ref: dict[str, list[str]] = {}
    for p in bigmath_pairs.pairs():
        by_ref.setdefault(p.reference, [p.reference.strip()]).append(p.answer)
    return by_ref


def make_groups(n: int, seed: int = 0, mix: str = "labelled") -> list[tuple[str, list[str]]]:
    rnd = random.Random(seed)
    if mix == "bigmath":
        cands = _bigmath_candidates()
        refs_b = sorted(cands)
        rnd.shuffle(refs_b)
        out = []
        for i in range(n):
            ref = refs_b[i % len(refs_b)]
            answers = rnd.sample(cands[ref], min(rnd.randint(2, 4), len(cands[ref])))
            out.append((ref, _rollouts(rnd, answers)))
        return out
    pairs = [
        json.loads(x)
        for x in Path("tests/data/verifier_pairs.jsonl").read_text().split("\n")
        if x.strip()
    ]
    by_ref: dict[str, list[dict[str, object]]] = {}
    for p in pairs:
        if p["category"] != "multiple_choice":
            by_ref.setdefault(str(p["reference"]), []).append(p)
    refs = sorted(by_ref)
    rnd.shuffle(refs)
    groups = []
    for i in range(n):
        ref = refs[i % len(refs)]
        candidates = [str(p["answer"]) for p in by_ref[ref]] + [ref, f"{rnd.randint(2, 99)}"]
        if mix == "math" and rnd.random() < 0.7:
            ref, candidates = _numeric_group(rnd)
        k = rnd.randint(2, 4)
        answers = rnd.sample(candidates, min(k, len(candidates)))
        groups.append((ref, _rollouts(rnd, answers)))
    return groups


def _rollouts(rnd: random.Random, answers: list[str]) -> list[str]:
    responses = []
    for _ in range(16):
        body = FILLER * rnd.randint(8, 24)  # ~1-3k characters
        responses.append(
            f"{body}\nTherefore the final answer is $\\boxed{{{rnd.choice(answers)}}}$."
        )
    return responses


def sequential_baseline(groups: list[tuple[str, list[str]]]) -> tuple[float, list[list[int]]]:
    from math_verify.metric import math_metric
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

    metric = math_metric(
        gold_extraction_target=(LatexExtractionConfig(),),
        pred_extraction_target=(ExprExtractionConfig(), LatexExtractionConfig()),
    )
    labels = []
    t0 = time.perf_counter()
    for ref, responses in groups:
        row = []
        for r in responses:
            try:
                score, _ = metric(["\\boxed{" + ref + "}"], [r])
            except Exception:
                score = 0.0
            row.append(int(score > 0))
        labels.append(row)
    return time.perf_counter() - t0, labels


async def pool_run(
    groups: list[tuple[str, list[str]]], workers: int, concurrency: int, verifier: str
) -> tuple[float, list[float], list[list[int]]]:
    pool = VerifierPool(workers, 10.0, 1000, 1536, 100_000)
    await pool.warm_up()
    rv = RuleVerifier(pool, Metrics(), cache_size=100_000)
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []

    async def one(ref: str, responses: list[str]) -> list[int]:
        async with sem:
            t = time.perf_counter()
            v = await rv.verify_group(ref, responses, verifier)
            lat.append(time.perf_counter() - t)
            return [x.label for x in v]

    try:
        t0 = time.perf_counter()
        labels = await asyncio.gather(*(one(r, rs) for r, rs in groups))
        return time.perf_counter() - t0, lat, list(labels)
    finally:
        pool.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument(
        "--mix",
        choices=["bigmath", "labelled", "math"],
        default="bigmath" if bigmath_pairs.available() else "labelled",
        help="bigmath: real references from ../shared/data; labelled: references and answer "
        "variants from the labelled pair set (exotic "
        "formats, hard); math: 70%% MATH/GSM8K-like numeric references, 30%% labelled",
    )
    a = ap.parse_args()
    groups = make_groups(a.groups, mix=a.mix)
    chars = [len(r) for _, rs in groups for r in rs]
    print(
        f"{len(groups)} groups x 16 rollouts, {min(chars)}-{max(chars)} chars, "
        f"{statistics.mean(len(set(r.rsplit('boxed', 1)[1] for r in rs)) for _, rs in groups):.1f}"
        " distinct answers/group"
    )
    base_s, base_labels = sequential_baseline(groups)
    rows = [("sequential math_verify loop (verl naive)", base_s, None)]
    for verifier in ("math_verify", "cascade"):
        s, lat, labels = asyncio.run(pool_run(groups, a.workers, a.concurrency, verifier))
        rows.append((f"pool {verifier} ({a.workers} workers)", s, lat))
    print("\n| run | groups/s | speedup | p50 group s | p99 group s |")
    print("|---|---|---|---|---|")
    for name, s, lat in rows:
        gps = len(groups) / s
        p50 = p99 = "-"
        if lat:
            q = statistics.quantiles(lat, n=100)
            p50, p99 = f"{q[49]:.3f}", f"{q[98]:.3f}"
        print(f"| {name} | {gps:.2f} | {base_s / s:.1f}x | {p50} | {p99} |")
    agree = sum(
        a_ == b_
        for x, y in zip(base_labels, labels, strict=True)
        for a_, b_ in zip(x, y, strict=True)
    )
    print(f"\nlabel agreement (cascade vs baseline): {agree}/{16 * len(groups)}")


if __name__ == "__main__":
    main()
