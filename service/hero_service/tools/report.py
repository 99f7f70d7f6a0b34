"""`hero report`: a self-contained HTML report (embedded PNGs) of a `hero score` output.

Sections: reward distributions (verifier-only vs RM-only vs HERO), collapse rates, the
share of groups with zero advantage under each reward, the variance-aware weights, and
verifier/RM disagreement (with the verifier's confusion matrix when lines carry labels),
and with labels the confusion split by deciding stage and the judge stage's own FPR.
The numbers come from analysis.py (pure); the figures from plots.py (matplotlib).
"""

from __future__ import annotations

import base64
import html
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hero_service.tools.analysis import Analysis, analyse, headline, load, ratio, stage_rows
from hero_service.tools.jsonl import OfflineError
from hero_service.tools.plots import figures

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
            f"<tr><td>{e(k)}</td><td class=num>{v}</td><td class=num>{ratio(v, a.n_rollouts)}"
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
                f"FPR {ratio(j['fp'], j['fp'] + j['tn'])} ({j['fp']}/{j['fp'] + j['tn']} "
                f"wrong answers flipped), recall {ratio(j['tp'], j['tp'] + j['fn'])} "
                f"({j['tp']}/{j['tp'] + j['fn']} right answers recovered).</p>"
            )
    parts.append("</body></html>\n")
    return "".join(parts)


def build(scored: Path, output: Path, png_dir: Path | None = None, title: str = "") -> Analysis:
    a = analyse(load(scored), str(scored))
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
