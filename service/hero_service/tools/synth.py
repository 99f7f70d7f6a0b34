"""Synthetic GRPO rollouts in the offline JSONL format (docs/offline.md).

    python -m hero_service.tools.synth -o rollouts.jsonl --groups 200 --group-size 8

Each line is one group: arithmetic prompts, a reference answer, `group_size` responses
and trusted `labels` (1 = the final answer really is right). Per prompt, a difficulty
drawn from a Beta distribution sets how many rollouts are right, so a realistic share of
groups collapse (all right or all wrong). Responses mix plain right/wrong answers with
cases that stress a verifier: equivalent forms (`\\frac{84}{2}` for 42), no final answer,
two different boxed answers, and a few "right number, wrong work" rollouts that a
trusted grader labels 0 (the verifier's false positives). Deterministic for a seed.
Also used by loadtests/ to build request bodies.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from typing import Any

_OPS = ("+", "-", "*")


def _problem(rng: random.Random) -> tuple[str, int]:
    a, b, c = rng.randint(2, 60), rng.randint(2, 30), rng.randint(2, 12)
    op1, op2 = rng.choice(_OPS), rng.choice(_OPS)
    expr = f"{a} {op1} {b} {op2} {c}"
    return f"Compute ${expr}$. Put the final answer in \\boxed{{}}.", _value(a, op1, b, op2, c)


def _apply(x: int, op: str, y: int) -> int:
    return x + y if op == "+" else x - y if op == "-" else x * y


def _value(a: int, op1: str, b: int, op2: str, c: int) -> int:
    """a op1 b op2 c with `*` binding tighter (no eval anywhere in the service)."""
    if op2 == "*" and op1 != "*":
        return _apply(a, op1, b * c)
    return _apply(_apply(a, op1, b), op2, c)


def _work(rng: random.Random, prompt: str, length: int) -> str:
    expr = prompt.split("$")[1]
    steps = [
        f"We need to evaluate {expr}.",
        "Multiplication binds tighter than addition and subtraction, so do it first.",
        "Then go from left to right.",
        "Let me double-check each step.",
        "Writing the intermediate results down carefully.",
    ]
    return " ".join(steps[: max(1, min(length, len(steps)))] + rng.sample(steps, k=1))


def _wrong(rng: random.Random, value: int) -> int:
    delta = rng.choice((-10, -2, -1, 1, 2, 3, 10))
    return value + delta


def response(rng: random.Random, prompt: str, value: int, correct: bool) -> tuple[str, int]:
    """One rollout and its trusted label."""
    work = _work(rng, prompt, rng.randint(1, 5))
    u = rng.random()
    if correct:
        if u < 0.12:
            return f"{work} So the result is \\boxed{{\\frac{{{2 * value}}}{{2}}}}.", 1
        if u < 0.20:
            return f"{work} The answer is {value}.", 1  # no box: extraction may miss it
        return f"{work} Therefore the answer is \\boxed{{{value}}}.", 1
    if u < 0.08:
        return f"{work} I am not sure how to finish this.", 0
    if u < 0.13:
        return f"{work} It is \\boxed{{{value}}} or maybe \\boxed{{{_wrong(rng, value)}}}.", 0
    if u < 0.18:  # right number by luck, wrong reasoning: a trusted grader says 0
        return f"I guessed without computing anything. \\boxed{{{value}}}", 0
    return f"{work} Therefore the answer is \\boxed{{{_wrong(rng, value)}}}.", 0


def groups(
    n_groups: int,
    group_size: int = 8,
    seed: int = 0,
    job_id: str | None = None,
    labels: bool = True,
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for i in range(n_groups):
        prompt, value = _problem(rng)
        p_right = rng.betavariate(0.6, 0.6)  # U-shaped: many easy and many hard prompts
        rows = [response(rng, prompt, value, rng.random() < p_right) for _ in range(group_size)]
        g: dict[str, Any] = {"group_id": f"g{i:06d}", "prompt": prompt, "reference": str(value)}
        if job_id is not None:
            g["job_id"] = job_id
        g["responses"] = [r for r, _ in rows]
        if labels:
            g["labels"] = [y for _, y in rows]
        yield g


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hero_service.tools.synth", description="Write synthetic rollouts (JSONL)."
    )
    ap.add_argument("-o", "--output", default="-", help="output file ('-' = stdout)")
    ap.add_argument("--groups", type=int, default=200, help="number of groups (lines)")
    ap.add_argument("--group-size", type=int, default=8, help="responses per group")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--job-id", default=None, help="job_id on every line (default: none)")
    ap.add_argument("--no-labels", action="store_true", help="omit trusted labels")
    ns = ap.parse_args(argv)
    out = sys.stdout if ns.output == "-" else open(ns.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for g in groups(ns.groups, ns.group_size, ns.seed, ns.job_id, not ns.no_labels):
            out.write(json.dumps(g) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
