"""Precision / recall / FPR of each verifier on the labelled pair set, per split.

    python bench/verifier_accuracy.py [--verifiers math_verify,cascade] [--json out.json]

The labelled set is the hand-written tests/data/verifier_pairs.jsonl plus the pairs that
bench/bigmath_pairs.py builds on the real Big-Math references in ../shared/data (read in
place; skipped with a note when the file is absent). Each pair's id fixes its split: 30%
of pairs are the frozen `test` split, never looked at while rules are written. Each answer
is wrapped as a model's final `\\boxed{...}` and sent through the RuleVerifier the service
uses (extraction, guards, semantic stages, worker pool). Reported per split, per category
and, for the cascade, per deciding stage.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bigmath_pairs

from hero_service.metrics import Metrics
from hero_service.verify.pool import VerifierPool
from hero_service.verify.rules import RuleVerifier

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
HAND = DATA / "verifier_pairs.jsonl"
# Whole model-style responses, written blind to the verifier's rules by annotators who saw
# only the shared file's questions and references (referred to by line number).
MODEL = sorted(DATA.glob("model_answers_*.jsonl"))


def model_rows() -> list[dict[str, Any]]:
    refs = dict(bigmath_pairs.references())
    rows = []
    for path in MODEL:
        for x in path.read_text(encoding="utf-8").splitlines():
            if not x.strip():
                continue
            r = json.loads(x)
            rows.append(
                {
                    "id": r["id"],
                    "line": r["line"],
                    "category": f"model/{path.stem[-1]}/"
                    + ("equivalent" if r["equivalent"] else "near_miss"),
                    "family": r["family"],
                    "reference": refs[r["line"]],
                    "response": r["response"],
                    "answer": None,
                    "equivalent": bool(r["equivalent"]),
                    "source": "model",
                }
            )
    return rows


def split_of(pair_id: str) -> str:
    h = int(hashlib.sha1(pair_id.encode()).hexdigest()[:8], 16)
    return "test" if h % 10 < 3 else "dev"


def load() -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in HAND.read_text().splitlines() if x.strip()]
    for r in rows:
        r["source"] = "hand"
    for p in bigmath_pairs.pairs():
        rows.append(
            {
                "id": p.id,
                "line": p.line,
                "category": "bigmath/" + p.category,
                "reference": p.reference,
                "answer": p.answer,
                "equivalent": p.equivalent,
                "source": "bigmath",
            }
        )
    if bigmath_pairs.available():
        rows += model_rows()
    for r in rows:
        r["split"] = split_of(r["id"])
    return rows


def response(p: dict[str, Any]) -> str:
    """A model response: written whole (model answers), or the answer as a final box."""
    if p.get("response"):
        return str(p["response"])
    return f"So the answer is $\\boxed{{{p['answer']}}}$."


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


async def evaluate(
    pairs: list[dict[str, Any]], verifiers: list[str], workers: int
) -> dict[str, Any]:
    pool = VerifierPool(workers, 10.0, 500, 1536, 100_000)
    await pool.warm_up()
    out: dict[str, Any] = {}
    try:
        for name in verifiers:
            rv = RuleVerifier(pool, Metrics(), cache_size=0)
            t0 = time.perf_counter()
            verdicts = await asyncio.gather(
                *(rv.verify_group(p["reference"], [response(p)], name) for p in pairs)
            )
            dt = time.perf_counter() - t0
            res: dict[str, Any] = {"seconds": dt, "errors": []}
            groups: dict[str, dict[str, list[tuple[bool, int]]]] = defaultdict(
                lambda: defaultdict(list)
            )
            for p, v in zip(pairs, verdicts, strict=True):
                row = (bool(p["equivalent"]), v[0].label)
                for split in (p["split"], "all"):
                    groups[split]["all"].append(row)
                    groups[split]["source/" + p["source"]].append(row)
                    groups[split]["category/" + p["category"]].append(row)
                    groups[split]["stage/" + str(getattr(v[0], "stage", None))].append(row)
                if row[0] != bool(row[1]):
                    res["errors"].append(
                        {
                            k: p.get(k)
                            for k in ("id", "split", "line", "reference", "answer", "response")
                        }
                        | {
                            "label": p["equivalent"],
                            "status": v[0].status,
                            "stage": getattr(v[0], "stage", None),
                        }
                    )
            res["splits"] = {
                s: {k: stats(r) for k, r in sorted(g.items())} for s, g in groups.items()
            }
            out[name] = res
    finally:
        pool.close()
    return out


def table(res: dict[str, Any], verifiers: list[str], split: str, prefix: str) -> None:
    keys = sorted(
        {k for n in verifiers for k in res[n]["splits"].get(split, {}) if k.startswith(prefix)}
    )
    print(f"\n### {split}: {prefix or 'all'}\n")
    print("| group | n | " + " | ".join(f"{n} recall | {n} FPR" for n in verifiers) + " |")
    print("|---|---|" + "---|---|" * len(verifiers))
    for k in keys:
        cells = []
        n = 0
        for name in verifiers:
            s = res[name]["splits"][split].get(k)
            if s is None:
                cells.append("- | -")
                continue
            n = int(s["n"])
            cells.append(f"{s['recall']:.3f} | {s['fpr']:.4f}")
        print(f"| {k} | {n} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--verifiers", default="exact,string,math_verify,cascade")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--split", default="dev,test", help="splits to print")
    ap.add_argument("--json", default=None, help="write full results (with errors) here")
    ap.add_argument("--show-errors", default=None, help="print this verifier's dev errors")
    a = ap.parse_args()
    verifiers = a.verifiers.split(",")
    pairs = load()
    if not bigmath_pairs.available():
        print(f"note: {bigmath_pairs.DATA} is absent: hand-written pairs only")
    pos = sum(1 for p in pairs if p["equivalent"])
    near = len(pairs) - pos
    on_shared = sum(1 for p in pairs if p["source"] == "bigmath")
    print(f"{len(pairs)} pairs ({pos} equivalent, {near} near misses; {on_shared} on shared refs)")
    res = asyncio.run(evaluate(pairs, verifiers, a.workers))
    for split in a.split.split(","):
        print(f"\n## split {split}\n")
        print("| verifier | n | precision | recall | FPR | FP | time (s) |")
        print("|---|---|---|---|---|---|---|")
        for name in verifiers:
            s = res[name]["splits"][split]["all"]
            print(
                f"| {name} | {s['n']} | {s['precision']:.3f} | {s['recall']:.3f} | "
                f"{s['fpr']:.4f} | {s['fp']} | {res[name]['seconds']:.1f} |"
            )
        table(res, verifiers, split, "source/")
        table(res, verifiers, split, "category/")
        if "cascade" in verifiers:
            table(res, ["cascade"], split, "stage/")
    if a.show_errors:
        for e in res[a.show_errors]["errors"]:
            if e["split"] == "dev":
                print(json.dumps(e, ensure_ascii=False))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
