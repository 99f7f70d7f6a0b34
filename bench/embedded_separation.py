"""How well the embedded demo scorer separates correct from incorrect answers.

    python bench/embedded_separation.py

For every reference in tests/data/verifier_pairs.jsonl, each labelled answer becomes a
response ending in `\\boxed{answer}`; the scorer sees (prompt, response, reference). Reports
ROC-AUC of score vs the equivalence label overall, and within-reference pairwise accuracy
(P[score(correct) > score(incorrect)]), the quantity HERO's in-band ordering relies on.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from hero_service.rm.base import RMInput
from hero_service.rm.embedded import EmbeddedScorer


def auc(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg)) if pos and neg else float("nan")


def main() -> None:
    pairs = [
        json.loads(x)
        for x in Path("tests/data/verifier_pairs.jsonl").read_text().split("\n")
        if x.strip()
    ]
    scorer = EmbeddedScorer()
    prompt = "Solve the problem and put the final answer in \\boxed{}."
    items = [
        RMInput(
            prompt,
            f"Working through the steps carefully, the result is \\boxed{{{p['answer']}}}.",
            p["reference"],
        )
        for p in pairs
    ]
    scores: list[float] = []
    for i in range(0, len(items), 32):
        scores += scorer.forward([scorer.prepare(x) for x in items[i : i + 32]])
    pos = [s for s, p in zip(scores, pairs, strict=True) if p["equivalent"]]
    neg = [s for s, p in zip(scores, pairs, strict=True) if not p["equivalent"]]
    by_ref: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for s, p in zip(scores, pairs, strict=True):
        by_ref[p["reference"]][0 if p["equivalent"] else 1].append(s)
    wins = total = 0.0
    for good, bad in by_ref.values():
        for g in good:
            for b in bad:
                wins += (g > b) + 0.5 * (g == b)
                total += 1
    print(
        f"{len(pairs)} answers; mean score correct {sum(pos) / len(pos):.3f}, "
        f"incorrect {sum(neg) / len(neg):.3f}"
    )
    print(f"ROC-AUC (all pairs): {auc(pos, neg):.3f}")
    print(f"within-reference pairwise accuracy: {wins / total:.3f} over {int(total)} pairs")


if __name__ == "__main__":
    main()
