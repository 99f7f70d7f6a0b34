"""The numbers of a `hero score` output (pure): collapse rates, zero-advantage shares,
weights, RM/verifier disagreement, pairwise accuracy; `headline` rows for the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hero_service.tools.jsonl import OfflineError, read_jsonl

KINDS = ("all_incorrect", "mixed", "all_correct")
_FLAT = 1e-9  # a group whose rewards spread less than this gets zero advantage
_NEEDED = ("verifier", "rm_scores", "rewards", "weight", "sigma", "sigma_bar", "collapse")


def disagreement_flags(verifier: list[int], scores: list[float]) -> tuple[list[bool], list[bool]]:
    """The service's unlabelled proxy (docs/observability.md), per rollout: in a mixed group,
    (verifier-correct at the group's lowest RM score, verifier-incorrect at its highest)."""
    if len(set(verifier)) < 2:
        return [False] * len(verifier), [False] * len(verifier)
    lo, hi = min(scores), max(scores)
    low = [v == 1 and s == lo for v, s in zip(verifier, scores, strict=True)]
    high = [v == 0 and s == hi for v, s in zip(verifier, scores, strict=True)]
    return low, high


def _percentiles(scores: list[float]) -> list[float]:
    """Each score's position inside its group, 0 = lowest, 1 = highest (ties averaged)."""
    a = np.asarray(scores, dtype=float)
    if len(a) < 2:
        return [0.5] * len(a)
    ranks = np.array([(a < x).sum() + ((a == x).sum() - 1) / 2 for x in a])
    return list(ranks / (len(a) - 1))


def _pairwise_accuracy(verifier: list[int], scores: list[float]) -> tuple[float, int]:
    """(correct-over-incorrect pairs the RM orders right, ties half; number of pairs)."""
    good = [s for v, s in zip(verifier, scores, strict=True) if v == 1]
    bad = [s for v, s in zip(verifier, scores, strict=True) if v == 0]
    won = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
    return float(won), len(good) * len(bad)


@dataclass
class Analysis:
    source: str
    n_groups: int = 0
    n_rollouts: int = 0
    jobs: dict[str, dict[str, int]] = field(default_factory=dict)  # job -> collapse -> n
    verifier: list[int] = field(default_factory=list)
    rm: list[float] = field(default_factory=list)
    hero: list[float] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    zero_adv: dict[str, int] = field(default_factory=dict)  # reward kind -> groups
    weight: list[float] = field(default_factory=list)
    sigma_gap: list[float] = field(default_factory=list)  # sigma - sigma_bar per group
    group_collapse: list[str] = field(default_factory=list)
    pct_correct: list[float] = field(default_factory=list)  # mixed groups only
    pct_incorrect: list[float] = field(default_factory=list)
    mixed_rollouts: int = 0
    verified_low: int = 0
    rejected_high: int = 0
    verified_low_wrong: int = 0  # ... of which the trusted label says the verifier erred
    rejected_high_wrong: int = 0
    pair_won: float = 0.0
    pairs: int = 0
    confusion: dict[str, int] | None = None
    labelled_groups: int = 0
    scored_by: dict[str, int] = field(default_factory=dict)  # scorer_text(...) -> groups
    # with labels: stage -> tp/fp/tn/fn by the stage that decided (verifier_stage)
    stage_confusion: dict[str, dict[str, int]] | None = None
    judge: dict[str, int] = field(default_factory=dict)  # judge outcome -> rollouts
    # with labels, over the rollouts the judge ruled on: its True/False vs the label
    judge_confusion: dict[str, int] | None = None

    def collapse_totals(self) -> dict[str, int]:
        return {k: sum(j.get(k, 0) for j in self.jobs.values()) for k in KINDS}


def load(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, rec in read_jsonl(path):
        missing = [k for k in _NEEDED if k not in rec]
        if missing:
            raise OfflineError(
                f"{path}:{n}: missing {', '.join(missing)}: not a `hero score` output?"
            )
        out.append(rec)
    if not out:
        raise OfflineError(f"{path}: no scored groups")
    return out


def analyse(records: list[dict[str, Any]], source: str = "") -> Analysis:
    a = Analysis(source=source)
    conf = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    by_stage: dict[str, dict[str, int]] = {}
    jconf = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for rec in records:
        v, sc, rw = rec["verifier"], rec["rm_scores"], rec["rewards"]
        a.n_groups += 1
        a.n_rollouts += len(v)
        who = scorer_text(rec.get("scored_by"))
        a.scored_by[who] = a.scored_by.get(who, 0) + 1
        job = a.jobs.setdefault(str(rec.get("job_id", "offline")), {})
        job[rec["collapse"]] = job.get(rec["collapse"], 0) + 1
        a.verifier += v
        a.rm += sc
        a.hero += rw
        for s in rec.get("verifier_status", []):
            a.status[s] = a.status.get(s, 0) + 1
        stages = rec.get("verifier_stage") or [None] * len(v)
        judged = rec.get("judge") or [None] * len(v)
        for j in judged:
            if j is not None:
                a.judge[j] = a.judge.get(j, 0) + 1
        for kind, vals in (("verifier", v), ("rm", sc), ("hero", rw)):
            if max(vals) - min(vals) <= _FLAT:
                a.zero_adv[kind] = a.zero_adv.get(kind, 0) + 1
        a.weight.append(rec["weight"])
        a.sigma_gap.append(rec["sigma"] - rec["sigma_bar"])
        a.group_collapse.append(rec["collapse"])
        low, high = disagreement_flags(v, sc)
        a.verified_low += sum(low)
        a.rejected_high += sum(high)
        if rec["collapse"] == "mixed":
            a.mixed_rollouts += len(v)
            for x, p in zip(v, _percentiles(sc), strict=True):
                (a.pct_correct if x == 1 else a.pct_incorrect).append(p)
            won, n = _pairwise_accuracy(v, sc)
            a.pair_won += won
            a.pairs += n
        labels = rec.get("labels")
        if labels is not None:
            a.labelled_groups += 1
            for x, y, lo, hi, st, j in zip(v, labels, low, high, stages, judged, strict=True):
                kind = ("tp" if y else "fp") if x else ("fn" if y else "tn")
                conf[kind] += 1
                cell = by_stage.setdefault(st or "none", {"tp": 0, "fp": 0, "tn": 0, "fn": 0})
                cell[kind] += 1
                if j in ("true", "false"):
                    jconf[("tp" if y else "fp") if j == "true" else ("fn" if y else "tn")] += 1
                a.verified_low_wrong += int(lo and not y)
                a.rejected_high_wrong += int(hi and bool(y))
    a.confusion = conf if a.labelled_groups else None
    a.stage_confusion = by_stage if a.labelled_groups else None
    a.judge_confusion = jconf if a.labelled_groups and sum(jconf.values()) else None
    return a


def scorer_text(s: Any) -> str:
    """One line naming what scored a group (`scored_by`, written by `hero score`)."""
    if not isinstance(s, dict):
        return "not recorded (an output of an older hero score)"
    text = (
        f"RM {s.get('rm_backend')} ({s.get('rm_model') or 'no model name'}), "
        f"preset {s.get('shaping_preset')}, verifier {s.get('verifier')}"
    )
    if s.get("judge"):
        text += f" (judge {s['judge']})"
    over = s.get("shaping_overrides")
    if over:
        text += ", overrides " + ", ".join(f"{k}={v}" for k, v in sorted(over.items()))
    return text


def ratio(num: float, den: float) -> str:
    return f"{num / den:.1%}" if den else "n/a"


def headline(a: Analysis) -> list[tuple[str, str]]:
    c = a.collapse_totals()
    rows = [
        ("Groups / rollouts", f"{a.n_groups} / {a.n_rollouts}"),
        ("Jobs", str(len(a.jobs))),
        ("Verifier says correct", ratio(sum(a.verifier), a.n_rollouts)),
        (
            "Collapsed groups (all correct + all incorrect)",
            ratio(c["all_correct"] + c["all_incorrect"], a.n_groups),
        ),
        (
            "Zero advantage: verifier-only / HERO",
            f"{ratio(a.zero_adv.get('verifier', 0), a.n_groups)} / "
            f"{ratio(a.zero_adv.get('hero', 0), a.n_groups)}",
        ),
        (
            "Mean weight (min-max)",
            f"{np.mean(a.weight):.3f} ({min(a.weight):.3f}-{max(a.weight):.3f})",
        ),
        ("RM orders correct over incorrect (pairs in mixed groups)", ratio(a.pair_won, a.pairs)),
        (
            "Disagreement: verified_low_rm / rejected_high_rm (per mixed-group rollout)",
            f"{ratio(a.verified_low, a.mixed_rollouts)} / "
            f"{ratio(a.rejected_high, a.mixed_rollouts)}",
        ),
    ]
    if a.confusion is not None:
        k = a.confusion
        rows += [
            (
                "Verifier FPR = fp/(fp+tn) (trusted labels)",
                f"{ratio(k['fp'], k['fp'] + k['tn'])} ({k['fp']}/{k['fp'] + k['tn']})",
            ),
            (
                "Verifier recall = tp/(tp+fn)",
                f"{ratio(k['tp'], k['tp'] + k['fn'])} ({k['tp']}/{k['tp'] + k['fn']})",
            ),
            ("Verifier precision = tp/(tp+fp)", ratio(k["tp"], k["tp"] + k["fp"])),
        ]
    if a.judge:
        asked = sum(a.judge.values())
        rows.append(
            (
                "Judge: reviewed / flipped / not answered (rollouts)",
                f"{asked} / {a.judge.get('true', 0)} / "
                f"{asked - a.judge.get('true', 0) - a.judge.get('false', 0)}",
            )
        )
    if a.judge_confusion is not None:
        j = a.judge_confusion
        rows.append(
            (
                "Judge FPR = fp/(fp+tn) on the rule-negatives it ruled on",
                f"{ratio(j['fp'], j['fp'] + j['tn'])} ({j['fp']}/{j['fp'] + j['tn']})",
            )
        )
    return rows


def stage_rows(a: Analysis) -> list[tuple[str, dict[str, int], str, str]]:
    """(stage, tp/fp/tn/fn, precision, wrong answers it accepted / all wrong answers): the
    last column over the stages adds up to the verifier's FPR."""
    if a.stage_confusion is None:
        return []
    negatives = sum(c["fp"] + c["tn"] for c in a.stage_confusion.values())
    out = []
    for st, c in sorted(a.stage_confusion.items(), key=lambda kv: -sum(kv[1].values())):
        out.append((st, c, ratio(c["tp"], c["tp"] + c["fp"]), ratio(c["fp"], negatives)))
    return out


# -- HTML ---------------------------------------------------------------------------------
