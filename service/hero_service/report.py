"""`hero report`: a self-contained HTML report (embedded PNGs) of a `hero score` output.

Sections: reward distributions (verifier-only vs RM-only vs HERO), collapse rates, the
share of groups with zero advantage under each reward, the variance-aware weights, and
verifier/RM disagreement (with the verifier's confusion matrix when lines carry labels),
and with labels the confusion split by deciding stage and the judge stage's own FPR.
The numbers come from `analyse` (pure); the figures from report_plots.py (matplotlib).
"""

from __future__ import annotations

import base64
import html
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hero_service.offline import OfflineError

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
    if not path.is_file():
        raise OfflineError(f"{path}: no such file")
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise OfflineError(f"{path}:{n}: not valid JSON ({e.msg})") from None
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


def _ratio(num: float, den: float) -> str:
    return f"{num / den:.1%}" if den else "n/a"


def headline(a: Analysis) -> list[tuple[str, str]]:
    c = a.collapse_totals()
    rows = [
        ("Groups / rollouts", f"{a.n_groups} / {a.n_rollouts}"),
        ("Jobs", str(len(a.jobs))),
        ("Verifier says correct", _ratio(sum(a.verifier), a.n_rollouts)),
        (
            "Collapsed groups (all correct + all incorrect)",
            _ratio(c["all_correct"] + c["all_incorrect"], a.n_groups),
        ),
        (
            "Zero advantage: verifier-only / HERO",
            f"{_ratio(a.zero_adv.get('verifier', 0), a.n_groups)} / "
            f"{_ratio(a.zero_adv.get('hero', 0), a.n_groups)}",
        ),
        (
            "Mean weight (min-max)",
            f"{np.mean(a.weight):.3f} ({min(a.weight):.3f}-{max(a.weight):.3f})",
        ),
        ("RM orders correct over incorrect (pairs in mixed groups)", _ratio(a.pair_won, a.pairs)),
        (
            "Disagreement: verified_low_rm / rejected_high_rm (per mixed-group rollout)",
            f"{_ratio(a.verified_low, a.mixed_rollouts)} / "
            f"{_ratio(a.rejected_high, a.mixed_rollouts)}",
        ),
    ]
    if a.confusion is not None:
        k = a.confusion
        rows += [
            (
                "Verifier FPR = fp/(fp+tn) (trusted labels)",
                f"{_ratio(k['fp'], k['fp'] + k['tn'])} ({k['fp']}/{k['fp'] + k['tn']})",
            ),
            (
                "Verifier recall = tp/(tp+fn)",
                f"{_ratio(k['tp'], k['tp'] + k['fn'])} ({k['tp']}/{k['tp'] + k['fn']})",
            ),
            ("Verifier precision = tp/(tp+fp)", _ratio(k["tp"], k["tp"] + k["fp"])),
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
                f"{_ratio(j['fp'], j['fp'] + j['tn'])} ({j['fp']}/{j['fp'] + j['tn']})",
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
        out.append((st, c, _ratio(c["tp"], c["tp"] + c["fp"]), _ratio(c["fp"], negatives)))
    return out


# -- HTML ---------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.meta{color:#666;font-size:.9rem}table{border-collapse:collapse;margin:1rem 0}
td,th{padding:.3rem .8rem;border-bottom:1px solid #eee;text-align:left}
td.num{font-variant-numeric:tabular-nums;text-align:right}
img{max-width:100%;height:auto;display:block;margin:.5rem 0}
p.note{color:#444;max-width:60rem}
"""

_SECTIONS = [
    (
        "rewards",
        "Reward distributions",
        "The same rollouts under three rewards. The verifier alone gives two values; the RM "
        "alone spreads scores but mixes correct and incorrect answers; HERO keeps the "
        "verifier's split (incorrect in [-alpha, alpha], correct in [1-beta, 1+beta], times "
        "the group's weight) and ranks rollouts inside each band by their RM score.",
    ),
    (
        "collapse",
        "Collapse rates",
        "Groups whose verifier labels are all equal. Plain GRPO learns nothing from them.",
    ),
    (
        "zero_advantage",
        "Zero advantage",
        "Groups whose rewards are all equal, so every GRPO advantage is zero. Under the "
        "verifier alone this is every collapsed group; HERO leaves only groups whose RM "
        "scores are equal too.",
    ),
    (
        "weights",
        "Variance-aware weights",
        "w = w_min + (w_max - w_min) * sigmoid(k * (sigma_u - sigma_bar)). Note that GRPO's "
        "division by the group std cancels a per-group constant w: use a trainer setting that "
        "keeps it (see the service docs on advantages).",
    ),
    (
        "disagreement",
        "Verifier / RM disagreement",
        "Left: the RM's rank of each rollout inside its (mixed) group; a good RM puts verifier-"
        "correct rollouts on the right. Right: the unlabelled proxy the service exports as "
        "hero_rm_verifier_disagreement_total: verifier-correct rollouts with the group's lowest "
        "RM score, verifier-incorrect ones with its highest.",
    ),
]


def render_html(a: Analysis, figs: dict[str, bytes], title: str) -> str:
    e = html.escape
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "".join(f"<tr><td>{e(k)}</td><td class=num>{e(v)}</td></tr>" for k, v in headline(a))
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1><div class=meta>{e(a.source)} &middot; generated {now}</div>",
        *(
            f"<div class=meta>Scored by: {e(who)}"
            + (f" ({n} of {a.n_groups} groups)" if len(a.scored_by) > 1 else "")
            + "</div>"
            for who, n in sorted(a.scored_by.items(), key=lambda kv: -kv[1])
        ),
        f"<h2>Summary</h2><table>{rows}</table>",
    ]
    if a.status:
        st = "".join(
            f"<tr><td>{e(k)}</td><td class=num>{v}</td><td class=num>{_ratio(v, a.n_rollouts)}"
            "</td></tr>"
            for k, v in sorted(a.status.items(), key=lambda kv: -kv[1])
        )
        parts.append(
            f"<h2>Verifier outcomes</h2><table><tr><th>status</th><th>rollouts</th>"
            f"<th>share</th></tr>{st}</table>"
        )
    for key, head, note in _SECTIONS:
        b64 = base64.b64encode(figs[key]).decode()
        parts.append(
            f"<h2>{e(head)}</h2><p class=note>{e(note)}</p>"
            f'<img alt="{e(head)}" src="data:image/png;base64,{b64}">'
        )
    if a.confusion is not None:
        k = a.confusion
        parts.append(
            "<h2>Verifier vs trusted labels</h2>"
            f"<p class=note>{a.labelled_groups} groups carried labels.</p><table>"
            "<tr><th></th><th>label 1</th><th>label 0</th></tr>"
            f"<tr><td>verifier 1</td><td class=num>tp {k['tp']}</td>"
            f"<td class=num>fp {k['fp']}</td></tr>"
            f"<tr><td>verifier 0</td><td class=num>fn {k['fn']}</td>"
            f"<td class=num>tn {k['tn']}</td></tr></table>"
        )
        body = "".join(
            f"<tr><td>{e(st)}</td>"
            + "".join(f"<td class=num>{c[x]}</td>" for x in ("tp", "fp", "tn", "fn"))
            + f"<td class=num>{prec}</td><td class=num>{share}</td></tr>"
            for st, c, prec, share in stage_rows(a)
        )
        parts.append(
            "<h2>Verifier stages vs trusted labels</h2><p class=note>Each rollout under the "
            "stage that decided it. The last column is the share of all wrong (label 0) "
            "rollouts that the stage accepted; over the stages it adds up to the verifier's "
            "FPR. Stage judge holds the answers the judge flipped to correct.</p><table>"
            "<tr><th>stage</th><th>tp</th><th>fp</th><th>tn</th><th>fn</th>"
            f"<th>precision</th><th>wrong answers accepted</th></tr>{body}</table>"
        )
    if a.judge:
        rows_j = "".join(
            f"<tr><td>{e(k)}</td><td class=num>{n}</td></tr>" for k, n in sorted(a.judge.items())
        )
        note = (
            "Rule-negative answers the judge stage (verifier cascade+judge) was asked about: "
            "true = flipped to correct; unavailable / timeout / error = the rule verdict stood."
        )
        parts.append(
            f"<h2>Judge stage</h2><p class=note>{e(note)}</p><table><tr><th>judge said</th>"
            f"<th>rollouts</th></tr>{rows_j}</table>"
        )
        if a.judge_confusion is not None:
            j = a.judge_confusion
            parts.append(
                "<p class=note>Against trusted labels, over the rollouts it ruled on: "
                f"FPR {_ratio(j['fp'], j['fp'] + j['tn'])} ({j['fp']}/{j['fp'] + j['tn']} "
                f"wrong answers flipped), recall {_ratio(j['tp'], j['tp'] + j['fn'])} "
                f"({j['tp']}/{j['tp'] + j['fn']} right answers recovered).</p>"
            )
    parts.append("</body></html>\n")
    return "".join(parts)


def build(scored: Path, output: Path, png_dir: Path | None = None, title: str = "") -> Analysis:
    a = analyse(load(scored), str(scored))
    from hero_service.report_plots import figures

    figs = figures(a)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_html(a, figs, title or "HERO reward report"), encoding="utf-8")
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        for name, data in figs.items():
            (png_dir / f"{name}.png").write_bytes(data)
    return a


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="HTML report (reward distributions, collapse, weights, disagreement)",
        description="Render a self-contained HTML report of a `hero score` output.",
    )
    p.add_argument("scored", type=Path, help="output of `hero score`")
    p.add_argument("-o", "--output", type=Path, default=None, help="default: SCORED.html")
    p.add_argument("--png-dir", type=Path, default=None, help="also write each figure as PNG")
    p.add_argument("--title", default="", help="report title")


def main(ns: Any) -> int:
    out = ns.output or ns.scored.with_suffix(".html")
    try:
        a = build(ns.scored, out, ns.png_dir, ns.title)
    except OfflineError as e:
        print(f"hero report: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({a.n_groups} groups, {a.n_rollouts} rollouts)", file=sys.stderr)
    return 0
