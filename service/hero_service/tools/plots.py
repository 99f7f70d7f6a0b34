"""The report's figures (matplotlib, Agg backend, no pyplot state): PNG bytes each."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from hero_service.tools.analysis import KINDS, Analysis, ratio

CORRECT, INCORRECT, NEUTRAL = "#2a9d8f", "#e76f51", "#8d99ae"
COLLAPSE_COLORS = {"all_incorrect": INCORRECT, "mixed": NEUTRAL, "all_correct": CORRECT}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _counts(*axes: Any) -> None:
    """A y-axis of counts gets integer ticks (a few groups would show 0.5, 1.5, ...)."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _split_hist(ax: Any, values: list[float], labels: list[int], bins: Any) -> None:
    x = np.asarray(values, dtype=float)
    y = np.asarray(labels)
    ax.hist(
        [x[y == 0], x[y == 1]],
        bins=bins,
        stacked=True,
        color=[INCORRECT, CORRECT],
        label=["verifier: incorrect", "verifier: correct"],
        edgecolor="white",
        linewidth=0.3,
    )


def fig_rewards(a: Analysis) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.2), layout="constrained")
    ax0, ax1, ax2 = fig.subplots(1, 3)
    n1 = sum(a.verifier)
    ax0.bar(["0 (incorrect)", "1 (correct)"], [a.n_rollouts - n1, n1], color=[INCORRECT, CORRECT])
    ax0.set_title("Verifier only: $r_{rule} \\in \\{0, 1\\}$")
    ax0.set_ylabel("rollouts")
    _split_hist(ax1, a.rm, a.verifier, 40)
    ax1.set_title("RM only: raw $r_{RM}$")
    ax1.set_xlabel("RM score")
    _split_hist(ax2, a.hero, a.verifier, 60)
    ax2.set_title("HERO: $r_{final} = w \\cdot \\hat r$")
    ax2.set_xlabel("reward")
    ax1.legend(frameon=False, fontsize=9)
    for ax in (ax0, ax1, ax2):
        _style(ax)
    _counts(ax0, ax1, ax2)
    fig.suptitle("Reward distributions over all rollouts (colour = verifier label)")
    return _png(fig)


def fig_collapse(a: Analysis) -> bytes:
    from matplotlib.figure import Figure

    rows = [("all jobs", a.collapse_totals())]
    top = sorted(a.jobs.items(), key=lambda kv: -sum(kv[1].values()))[:12]
    if len(a.jobs) > 1:
        rows += top
    fig = Figure(figsize=(10, 1.2 + 0.45 * len(rows)), layout="constrained")
    ax = fig.subplots()
    names = [name for name, _ in rows][::-1]
    left = np.zeros(len(rows))
    for kind in KINDS:
        share = np.array([c.get(kind, 0) / max(1, sum(c.values())) for _, c in rows][::-1])
        ax.barh(names, share, left=left, color=COLLAPSE_COLORS[kind], label=kind.replace("_", " "))
        for i, (s, x0) in enumerate(zip(share, left, strict=True)):
            if s >= 0.06:
                ax.text(
                    x0 + s / 2,
                    i,
                    f"{s:.0%}",
                    ha="center",
                    va="center",
                    color="white",
                    fontsize=9,
                    fontweight="bold",
                )
        left += share
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter("{x:.0%}")
    ax.set_xlabel("share of groups")
    ax.legend(ncol=3, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def fig_zero_advantage(a: Analysis) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    kinds = [
        ("verifier-only", "verifier", INCORRECT),
        ("RM-only", "rm", NEUTRAL),
        ("HERO", "hero", CORRECT),
    ]
    vals = [a.zero_adv.get(k, 0) / a.n_groups for _, k, _ in kinds]
    bars = ax.bar([n for n, _, _ in kinds], vals, color=[c for _, _, c in kinds], width=0.55)
    ax.bar_label(bars, labels=[f"{v:.1%}" for v in vals], padding=3)
    ax.set_ylim(0, max(0.05, max(vals) * 1.25))
    ax.yaxis.set_major_formatter("{x:.0%}")
    ax.set_ylabel("groups with all-equal rewards")
    ax.set_title("Groups that give GRPO zero advantage")
    _style(ax)
    return _png(fig)


def fig_weights(a: Analysis) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    ax0.hist(a.weight, bins=30, color=NEUTRAL, edgecolor="white", linewidth=0.3)
    ax0.axvline(
        float(np.mean(a.weight)),
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"mean {np.mean(a.weight):.2f}",
    )
    ax0.set_xlabel("weight w")
    ax0.set_ylabel("groups")
    _counts(ax0)
    ax0.set_title("Variance-aware weight per group")
    ax0.legend(frameon=False)
    gap, w = np.asarray(a.sigma_gap), np.asarray(a.weight)
    kinds = np.asarray(a.group_collapse)
    for kind in KINDS:
        m = kinds == kind
        if m.any():
            ax1.scatter(
                gap[m],
                w[m],
                s=10,
                alpha=0.6,
                color=COLLAPSE_COLORS[kind],
                label=kind.replace("_", " "),
            )
    ax1.axvline(0, color="black", linewidth=0.6, alpha=0.5)
    ax1.set_xlabel("$\\sigma_u - \\bar\\sigma$ (group RM spread minus the job's running mean)")
    ax1.set_ylabel("weight w")
    ax1.set_title("Weight follows the sigmoid of the spread gap")
    ax1.legend(frameon=False, fontsize=9, markerscale=2)
    for ax in (ax0, ax1):
        _style(ax)
    return _png(fig)


def fig_disagreement(a: Analysis) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    x = np.arange(3)
    for off, vals, color, name in (
        (-0.2, a.pct_incorrect, INCORRECT, "verifier: incorrect"),
        (0.2, a.pct_correct, CORRECT, "verifier: correct"),
    ):
        p = np.asarray(vals, dtype=float)
        n = max(1, len(p))
        share = [(p < 1 / 3).sum() / n, ((p >= 1 / 3) & (p <= 2 / 3)).sum() / n]
        share.append((p > 2 / 3).sum() / n)
        bars = ax0.bar(x + off, share, width=0.4, color=color, label=name)
        ax0.bar_label(bars, labels=[f"{v:.0%}" for v in share], padding=2, fontsize=9)
    ax0.set_xticks(x, ["lowest third", "middle third", "highest third"])
    ax0.yaxis.set_major_formatter("{x:.0%}")
    ax0.set_xlabel("the rollout's RM-score rank inside its group")
    ax0.set_ylabel("share of rollouts")
    ax0.set_title("Where the RM ranks each rollout (mixed groups)")
    ax0.legend(frameon=False, fontsize=9)

    names = [
        "verified_low_rm\n(verifier 1, RM lowest)",
        "rejected_high_rm\n(verifier 0, RM highest)",
    ]
    total = [a.verified_low, a.rejected_high]
    flagged = ax1.bar(names, total, color=[CORRECT, INCORRECT], width=0.5, label="flagged")
    rate = [ratio(t, a.mixed_rollouts) for t in total]
    ax1.bar_label(
        flagged, labels=[f"{t} ({r})" for t, r in zip(total, rate, strict=True)], padding=3
    )
    if a.confusion is not None:
        wrong = [a.verified_low_wrong, a.rejected_high_wrong]
        err = ax1.bar(
            names,
            wrong,
            color="none",
            edgecolor="black",
            hatch="///",
            linewidth=0.8,
            width=0.5,
            label="of which the trusted label says the verifier erred",
        )
        ax1.bar_label(
            err,
            labels=[str(w) if w else "" for w in wrong],
            label_type="center",
            fontsize=9,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
        )
        ax1.legend(frameon=False, fontsize=9, loc="upper right")
    ax1.set_ylim(0, max(1, max(total)) * 1.3)
    ax1.set_ylabel("rollouts")
    _counts(ax1)
    ax1.set_title("Disagreement proxy (share of mixed-group rollouts)")
    for ax in (ax0, ax1):
        _style(ax)
    return _png(fig)


def figures(a: Analysis) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    return {
        "rewards": fig_rewards(a),
        "collapse": fig_collapse(a),
        "zero_advantage": fig_zero_advantage(a),
        "weights": fig_weights(a),
        "disagreement": fig_disagreement(a),
    }
