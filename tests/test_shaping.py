"""The HERO shaping core: worked examples computed by hand, then properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hero_service.shaping import (
    PRESETS,
    RunningSigma,
    ShapingConfig,
    ShapingError,
    compute_advantages,
    fold_sigmas,
    population_std,
    shape_batch,
    shape_group,
    sigma_bar_for,
    stratified_normalize,
)

CFG = ShapingConfig()  # alpha = beta = 0.1, eps 1e-6, w in [0.5, 2], k 5, EMA 0.9

# (rm scores, labels, sigma_bar, expected r_hat, expected w, expected r_final), by hand:
#  1. strata {1,2} and {3,4}: z = 0 and 1/(1+1e-6); sigma_bar = sigma -> w = midpoint 1.25
#  2. all correct, sigma 2.5 vs bar 2.0: w = 0.5 + 1.5 * sigmoid(2.5) = 1.8862128
#  3. one rollout: z = 0 -> -alpha; sigma 0 vs bar 1: w = 0.5 + 1.5 * sigmoid(-5)
WORKED = [
    (
        [1.0, 2.0, 3.0, 4.0],
        [0, 0, 1, 1],
        math.sqrt(1.25),
        [-0.1, -0.1 + 0.2 / 1.000001, 0.9, 0.9 + 0.2 / 1.000001],
        1.25,
        [-0.125, 1.25 * (-0.1 + 0.2 / 1.000001), 1.125, 1.25 * (0.9 + 0.2 / 1.000001)],
    ),
    (
        [0.0, 5.0],
        [1, 1],
        2.0,
        [0.9, 0.9 + 0.2 * 5 / 5.000001],
        1.8862128,
        [0.9 * 1.8862128, 1.8862128 * (0.9 + 0.2 * 5 / 5.000001)],
    ),
    ([3.0], [0], 1.0, [-0.1], 0.5100394, [-0.05100394]),
    (
        [2.0, 2.0, 7.0],
        [1, 0, 0],
        2.0,
        [0.9, -0.1, -0.1 + 0.2 * 5 / 5.000001],
        0.5 + 1.5 / (1 + math.exp(-5 * (math.sqrt(50 / 9) - 2.0))),
        None,
    ),
]


@pytest.mark.parametrize("rm,labels,bar,r_hat,w,final", WORKED)
def test_worked_examples(rm, labels, bar, r_hat, w, final):
    out = shape_group(rm, labels, bar, CFG)
    assert out.normalized == pytest.approx(r_hat, abs=1e-7)
    assert out.weight == pytest.approx(w, abs=1e-6)
    assert out.sigma == pytest.approx(population_std(rm))
    if final is not None:
        assert out.rewards == pytest.approx(final, abs=1e-6)
    assert out.rewards == pytest.approx([out.weight * x for x in out.normalized])


def test_first_group_of_a_job_gets_the_midpoint_weight():
    shaped, state = shape_batch([([1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1])], RunningSigma(), CFG)
    assert shaped[0].sigma_bar == pytest.approx(math.sqrt(1.25))
    assert shaped[0].weight == pytest.approx(1.25)
    assert state == RunningSigma(pytest.approx(math.sqrt(1.25)), 1)


def test_ema_and_cumulative_folds_by_hand():
    st0 = RunningSigma(1.0, 4)
    assert fold_sigmas(st0, [2.0, 4.0], CFG) == RunningSigma(pytest.approx(1.2), 6)
    cum = ShapingConfig(sigma_mean="cumulative")
    assert fold_sigmas(st0, [2.0, 4.0], cum) == RunningSigma(pytest.approx(10 / 6), 6)
    assert sigma_bar_for(st0, [9.0]) == 1.0  # the value before the call is folded in


def test_advantages_by_hand():
    r_hat = stratified_normalize([0.0, 1.0], [0, 0], 0.1, 0.1, 1e-6)
    assert compute_advantages(r_hat, 1.25, "none", 1e-6) is None
    assert compute_advantages(r_hat, 1.25, "centered", 1e-6) == pytest.approx(
        [-0.125, 0.125], abs=1e-6
    )
    # GRPO's std division would cancel w; here w is applied after it.
    assert compute_advantages(r_hat, 1.25, "grpo", 1e-6) == pytest.approx([-1.25, 1.25], 1e-4)
    assert compute_advantages(r_hat, 0.5, "grpo", 1e-6) == pytest.approx([-0.5, 0.5], 1e-4)


def test_presets():
    assert PRESETS["paper_main"] == ShapingConfig()
    assert (PRESETS["paper_appendix"].w_min, PRESETS["paper_appendix"].w_max) == (0.4, 3.0)
    assert PRESETS["paper_appendix"].k == 6.0
    assert PRESETS["easy_to_verify"].alpha == PRESETS["easy_to_verify"].beta == 0.05
    cfg = ShapingConfig().with_overrides({"preset": "paper_appendix", "alpha": 0.2})
    assert (cfg.alpha, cfg.w_max) == (0.2, 3.0)


def test_enumerations_come_from_the_schema() -> None:
    """Preset names, modes and verifier names are spelled once, in the wire schema."""
    from typing import get_args

    from hero_client import schema
    from hero_service.config import Settings

    assert list(PRESETS) == list(get_args(schema.PresetName))
    fields = Settings.model_fields
    assert fields["shaping_preset"].annotation is schema.PresetName
    assert fields["sigma_mean"].annotation is schema.SigmaMean
    assert fields["advantage"].annotation is schema.AdvantageMode
    assert fields["verifier"].annotation is schema.VerifierName
    for mode in get_args(schema.SigmaMean):
        assert ShapingConfig(sigma_mean=mode).sigma_mean == mode
    for adv in get_args(schema.AdvantageMode):
        assert ShapingConfig(advantage=adv).advantage == adv


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"alpha": 0.5, "beta": 0.5}, "alpha"),
        ({"w_min": 3.0, "w_max": 2.0}, "w_min"),
        ({"k": 0.0}, "k"),
        ({"k": -1.0}, "k"),
        ({"alpha": float("nan")}, "alpha"),
        ({"w_max": float("inf")}, "w_max"),
        ({"eps": 0.0}, "eps"),
        ({"momentum": 1.0}, "momentum"),
        ({"beta": -0.1}, "beta"),
    ],
)
def test_config_validation(kwargs, field):
    with pytest.raises(ShapingError) as e:
        ShapingConfig(**kwargs)
    assert e.value.field == field


def test_unknown_override_is_named():
    with pytest.raises(ShapingError) as e:
        ShapingConfig().with_overrides({"gamma": 1.0})
    assert e.value.field == "gamma"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scores_are_refused(bad):
    with pytest.raises(ShapingError) as e:
        shape_group([1.0, bad], [0, 1], 1.0, CFG)
    assert e.value.field == "rm_scores[1]"
    with pytest.raises(ShapingError) as e:
        shape_batch([([1.0], [1]), ([bad, 0.0], [0, 0])], RunningSigma(), CFG)
    assert e.value.field == "groups[1].rm_scores[0]"


def test_length_mismatch_and_empty_refused():
    with pytest.raises(ShapingError):
        shape_group([1.0, 2.0], [1], 1.0, CFG)
    with pytest.raises(ShapingError):
        shape_group([], [], 1.0, CFG)


# ---- properties ----------------------------------------------------------------------
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
group = st.integers(1, 24).flatmap(
    lambda n: st.tuples(
        st.lists(finite, min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)
configs = st.builds(
    ShapingConfig,
    alpha=st.floats(0.0, 0.45),
    beta=st.floats(0.0, 0.45),
    w_min=st.floats(0.0, 1.0),
    w_max=st.floats(1.0, 4.0),
    k=st.floats(0.1, 20.0),
)


@settings(max_examples=300, deadline=None)
@given(group, st.floats(0, 1e6), configs)
def test_correct_outranks_incorrect_and_bands_hold(g, bar, cfg):
    rm, labels = g
    out = shape_group(rm, labels, bar, cfg)
    for r, y in zip(out.normalized, labels, strict=True):
        if y:
            assert 1 - cfg.beta - 1e-9 <= r <= 1 + cfg.beta + 1e-9
        else:
            assert -cfg.alpha - 1e-9 <= r <= cfg.alpha + 1e-9
    good = [r for r, y in zip(out.rewards, labels, strict=True) if y]
    bad = [r for r, y in zip(out.rewards, labels, strict=True) if not y]
    if good and bad and out.weight > 0:
        assert min(good) > max(bad)
    assert cfg.w_min - 1e-12 <= out.weight <= cfg.w_max + 1e-12
    assert all(math.isfinite(x) for x in out.rewards)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=2, max_size=16, unique=True), st.integers(0, 1))
def test_collapsed_groups_keep_distinct_rewards(rm, y):
    out = shape_group(rm, [y] * len(rm), 1.0, CFG)
    assert out.collapse == ("all_correct" if y else "all_incorrect")
    # distinct RM scores -> distinct rewards whenever they differ by more than eps-level
    pairs = [(a, b) for i, a in enumerate(rm) for b in rm[i + 1 :]]
    span = max(rm) - min(rm)
    for a, b in pairs:
        if abs(a - b) > 1e-6 * max(1.0, span):
            ra = out.rewards[rm.index(a)]
            rb = out.rewards[rm.index(b)]
            assert ra != rb
            assert (ra < rb) == (a < b)  # order preserved inside a stratum


@settings(max_examples=150, deadline=None)
@given(
    st.lists(group, min_size=1, max_size=6),
    st.randoms(use_true_random=False),
    st.one_of(st.none(), st.floats(0, 100)),
    st.sampled_from(["ema", "cumulative"]),
)
def test_batch_result_independent_of_group_order(groups, rnd, bar, mean):
    cfg = ShapingConfig(sigma_mean=mean)
    state = RunningSigma() if bar is None else RunningSigma(bar, 7)
    a, sa = shape_batch(groups, state, cfg)
    order = list(range(len(groups)))
    rnd.shuffle(order)
    b, sb = shape_batch([groups[i] for i in order], state, cfg)
    for j, i in enumerate(order):
        assert b[j].rewards == pytest.approx(a[i].rewards)
        assert b[j].weight == pytest.approx(a[i].weight)
    assert sb.count == sa.count
    assert sb.sigma_bar == pytest.approx(sa.sigma_bar)


@settings(max_examples=100, deadline=None)
@given(group, st.sampled_from(["centered", "grpo"]))
def test_advantages_are_centred_and_keep_weight(g, mode):
    rm, labels = g
    out = shape_group(rm, labels, 0.0, ShapingConfig(advantage=mode))
    assert out.advantages is not None
    assert abs(math.fsum(out.advantages)) <= 1e-6 * max(1.0, len(rm) * out.weight * 1e6)


def test_scores_and_running_mean_stay_bounded() -> None:
    """Issue 13: an RM score past SIGMA_BAR_MAX is refused (its std could overflow the
    running sum); at the bounds a cumulative fold stays finite; past them it is refused."""
    from hero_client.schema import JOB_COUNT_MAX, SIGMA_BAR_MAX
    from hero_service.shaping import RunningSigma, ShapingError, check_running, fold_sigmas

    cum = ShapingConfig(sigma_mean="cumulative")
    with pytest.raises(ShapingError) as e:
        shape_batch([([0.0, 1e200], [0, 1])], RunningSigma(), cum)
    assert e.value.field == "groups[0].rm_scores[1]"
    top = RunningSigma(SIGMA_BAR_MAX, JOB_COUNT_MAX - 1)
    assert fold_sigmas(top, [SIGMA_BAR_MAX], cum) == RunningSigma(SIGMA_BAR_MAX, JOB_COUNT_MAX)
    with pytest.raises(ShapingError) as e:
        fold_sigmas(RunningSigma(1.0, JOB_COUNT_MAX), [1.0], cum)
    assert e.value.field == "count"
    for bad in (RunningSigma(math.nan, 1), RunningSigma(1.0, 0), RunningSigma(2e150, 1)):
        with pytest.raises(ShapingError):
            check_running(bad)
    check_running(RunningSigma(None, 5))  # no mean (e.g. lost): the next call seeds it
