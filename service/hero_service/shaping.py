"""HERO reward shaping (arXiv 2510.07242, Eq. 3-5): pure functions, no I/O.

stratified normalization -> variance-aware weight -> r_final = w * r_hat, plus the
job's running mean of sigma and optional advantages that GRPO cannot cancel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, get_args

# The enumerations are the wire schema's (one source); the client never imports us.
from hero_client.schema import (
    JOB_COUNT_MAX,
    SIGMA_BAR_MAX,
    AdvantageMode,
    Collapse,
    PresetName,
    SigmaMean,
)


class ShapingError(ValueError):
    """Invalid shaping input or configuration; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ShapingConfig:
    alpha: float = 0.1
    beta: float = 0.1
    eps: float = 1e-6
    w_min: float = 0.5
    w_max: float = 2.0
    k: float = 5.0
    sigma_mean: SigmaMean = "ema"
    momentum: float = 0.9
    advantage: AdvantageMode = "none"

    def __post_init__(self) -> None:
        for f in ("alpha", "beta", "eps", "w_min", "w_max", "k", "momentum"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ShapingError(f, f"must be a finite number, got {v!r}")
        if self.alpha < 0 or self.beta < 0:
            raise ShapingError("alpha" if self.alpha < 0 else "beta", "must be >= 0")
        if self.alpha + self.beta >= 1:
            raise ShapingError(
                "alpha",
                f"alpha + beta must be < 1 so every correct rollout outranks every incorrect "
                f"one (got {self.alpha} + {self.beta})",
            )
        if self.eps <= 0:
            raise ShapingError("eps", "must be > 0")
        if self.w_min < 0:
            raise ShapingError("w_min", "must be >= 0")
        if self.w_min > self.w_max:
            raise ShapingError("w_min", f"must be <= w_max (got {self.w_min} > {self.w_max})")
        if self.k <= 0:
            raise ShapingError("k", "must be > 0")
        if not 0 <= self.momentum < 1:
            raise ShapingError("momentum", "must be in [0, 1)")
        if self.sigma_mean not in get_args(SigmaMean):
            raise ShapingError("sigma_mean", "must be 'ema' or 'cumulative'")
        if self.advantage not in get_args(AdvantageMode):
            raise ShapingError("advantage", "must be 'none', 'centered' or 'grpo'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, overrides: dict[str, Any]) -> ShapingConfig:
        """Apply overrides (a `preset` key first, then the explicit fields)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known - {"preset"}
        if unknown:
            raise ShapingError(sorted(unknown)[0], "unknown shaping parameter")
        base = self
        preset = overrides.get("preset")
        if preset is not None:
            if preset not in PRESETS:
                raise ShapingError("preset", f"unknown preset {preset!r}; one of {sorted(PRESETS)}")
            base = replace(
                PRESETS[preset],
                sigma_mean=self.sigma_mean,
                momentum=self.momentum,
                advantage=self.advantage,
            )
        vals = {k: v for k, v in overrides.items() if k != "preset" and v is not None}
        return replace(base, **vals)


PRESETS: dict[PresetName, ShapingConfig] = {  # a test ties the keys to PresetName
    # Paper main text (Sec. 3): w in [0.5, 2], k = 5; alpha = beta = 0.1 for mixed data.
    "paper_main": ShapingConfig(),
    # Paper appendix A.1: w in [0.4, 3], k = 6.
    "paper_appendix": ShapingConfig(w_min=0.4, w_max=3.0, k=6.0),
    # Easy-to-verify data: tight bands keep the verifier dominant.
    "easy_to_verify": ShapingConfig(alpha=0.05, beta=0.05),
    # Mixed / hard-to-verify data: wider incorrect band lets the RM rank failures.
    "mixed": ShapingConfig(alpha=0.2, beta=0.1),
}


@dataclass(frozen=True)
class RunningSigma:
    """A job's running mean of the group RM-score std."""

    sigma_bar: float | None = None
    count: int = 0


@dataclass(frozen=True)
class GroupShaping:
    normalized: list[float]
    weight: float
    sigma: float
    sigma_bar: float
    rewards: list[float]
    collapse: Collapse
    advantages: list[float] | None = field(default=None)


def check_scores(rm_scores: Sequence[float], labels: Sequence[int]) -> None:
    """Refuse what would otherwise propagate NaN/inf or misalign groups."""
    if len(rm_scores) == 0:
        raise ShapingError("rm_scores", "a group needs at least one rollout")
    if len(rm_scores) != len(labels):
        raise ShapingError("labels", f"length {len(labels)} != rm_scores length {len(rm_scores)}")
    for i, s in enumerate(rm_scores):
        if not math.isfinite(s):
            raise ShapingError(f"rm_scores[{i}]", f"reward model score is not finite ({s})")
        if abs(s) > SIGMA_BAR_MAX:
            # bounds every sigma, so no running mean can overflow (check_running)
            raise ShapingError(
                f"rm_scores[{i}]", f"reward model score {s} is beyond +-{SIGMA_BAR_MAX:g}"
            )
    for i, y in enumerate(labels):
        if y not in (0, 1):
            raise ShapingError(f"labels[{i}]", f"rule label must be 0 or 1, got {y!r}")


def population_std(xs: Sequence[float]) -> float:
    n = len(xs)
    mean = math.fsum(xs) / n
    var = math.fsum((x - mean) ** 2 for x in xs) / n
    return math.sqrt(var)


def stratified_normalize(
    rm_scores: Sequence[float], labels: Sequence[int], alpha: float, beta: float, eps: float
) -> list[float]:
    """Eq. 3: min-max normalise inside each verifier stratum, then map to its band."""
    out = [0.0] * len(rm_scores)
    for label in (0, 1):
        idx = [i for i, y in enumerate(labels) if y == label]
        if not idx:
            continue
        lo = min(rm_scores[i] for i in idx)
        hi = max(rm_scores[i] for i in idx)
        for i in idx:
            z = (rm_scores[i] - lo) / (hi - lo + eps)
            out[i] = -alpha + 2 * alpha * z if label == 0 else (1 - beta) + 2 * beta * z
    return out


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def variance_weight(sigma: float, sigma_bar: float, cfg: ShapingConfig) -> float:
    """Eq. 4: w = w_min + (w_max - w_min) * sigmoid(k * (sigma - sigma_bar))."""
    return cfg.w_min + (cfg.w_max - cfg.w_min) * _sigmoid(cfg.k * (sigma - sigma_bar))


def collapse_kind(labels: Sequence[int]) -> Collapse:
    if all(y == 1 for y in labels):
        return "all_correct"
    if all(y == 0 for y in labels):
        return "all_incorrect"
    return "mixed"


def compute_advantages(
    normalized: Sequence[float], weight: float, mode: AdvantageMode, eps: float
) -> list[float] | None:
    """Group-centred advantages of r_final with w applied after any std scaling.

    `grpo`: w * (r_hat - mean) / (std + eps), so GRPO's std division cannot cancel w.
    `centered`: r_final - mean(r_final) (Dr. GRPO / REINFORCE baseline style).
    """
    if mode == "none":
        return None
    mean = math.fsum(normalized) / len(normalized)
    centred = [x - mean for x in normalized]
    if mode == "centered":
        return [weight * c for c in centred]
    std = population_std(normalized)
    return [weight * c / (std + eps) for c in centred]


def check_running(state: RunningSigma) -> None:
    """A job's running state must stay finite and bounded: refuse (before anything is
    stored) what would make every later call on the job fail."""
    sb = state.sigma_bar
    if sb is not None and not (math.isfinite(sb) and 0 <= sb <= SIGMA_BAR_MAX):
        raise ShapingError("sigma_bar", f"must be finite and in [0, {SIGMA_BAR_MAX:g}], got {sb}")
    if not 0 <= state.count <= JOB_COUNT_MAX:
        raise ShapingError("count", f"must be in [0, {JOB_COUNT_MAX}], got {state.count}")
    if sb is not None and state.count == 0:
        raise ShapingError("sigma_bar", "must be null when count is 0")


def sigma_bar_for(state: RunningSigma, batch_sigmas: Sequence[float]) -> float:
    """The sigma_bar a call's groups are weighted with: the job's value before the
    call is folded in; for a job's first call, the call's own mean sigma."""
    if state.sigma_bar is None or state.count == 0:
        return math.fsum(batch_sigmas) / len(batch_sigmas)
    return state.sigma_bar


def fold_sigmas(
    state: RunningSigma, batch_sigmas: Sequence[float], cfg: ShapingConfig
) -> RunningSigma:
    """Fold one call's sigmas into the running mean, independent of their order.

    ema: one EMA step per call with the call's mean sigma, seeded by the first call.
    cumulative: the exact mean over all groups ever folded in.
    """
    n = len(batch_sigmas)
    if n == 0:
        return state
    batch_mean = math.fsum(batch_sigmas) / n
    if state.sigma_bar is None or state.count == 0:
        new = RunningSigma(batch_mean, n)
    elif cfg.sigma_mean == "cumulative":
        total = state.sigma_bar * state.count + math.fsum(batch_sigmas)
        new = RunningSigma(total / (state.count + n), state.count + n)
    else:
        m = cfg.momentum
        new = RunningSigma(m * state.sigma_bar + (1 - m) * batch_mean, state.count + n)
    check_running(new)  # bounded inputs keep it finite; refuse rather than store inf
    return new


def shape_group(
    rm_scores: Sequence[float], labels: Sequence[int], sigma_bar: float, cfg: ShapingConfig
) -> GroupShaping:
    check_scores(rm_scores, labels)
    if not math.isfinite(sigma_bar):
        raise ShapingError("sigma_bar", f"must be finite, got {sigma_bar}")
    normalized = stratified_normalize(rm_scores, labels, cfg.alpha, cfg.beta, cfg.eps)
    sigma = population_std(rm_scores)
    w = variance_weight(sigma, sigma_bar, cfg)
    return GroupShaping(
        normalized=normalized,
        weight=w,
        sigma=sigma,
        sigma_bar=sigma_bar,
        rewards=[w * r for r in normalized],
        collapse=collapse_kind(labels),
        advantages=compute_advantages(normalized, w, cfg.advantage, cfg.eps),
    )


def shape_batch(
    groups: Sequence[tuple[Sequence[float], Sequence[int]]],
    state: RunningSigma,
    cfg: ShapingConfig,
) -> tuple[list[GroupShaping], RunningSigma]:
    """Shape every group with the same pre-call sigma_bar, then fold them all in."""
    if not groups:
        raise ShapingError("groups", "at least one group is required")
    for gi, (scores, labels) in enumerate(groups):
        try:
            check_scores(scores, labels)
        except ShapingError as e:
            raise ShapingError(f"groups[{gi}].{e.field}", e.message) from None
    sigmas = [population_std(s) for s, _ in groups]
    bar = sigma_bar_for(state, sigmas)
    shaped = [shape_group(s, y, bar, cfg) for s, y in groups]
    return shaped, fold_sigmas(state, sigmas, cfg)
