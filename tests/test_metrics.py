"""Exact /metrics values after a known set of requests, against a real `hero serve`.

Uses the cheap `string` verifier so every label below is known in advance:
`\\boxed{x}` matches reference `x`, a response with no answer is `no_answer`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server, start_server

JOB_A, JOB_B, JOB_C = "metrics-a", "metrics-b", "metrics-c"

# job A: groups with trusted labels (verifier label, trusted label) per rollout
MIXED = {
    "reference": "4",
    "responses": ["\\boxed{4}", "\\boxed{5}", "I give up.", "so \\boxed{4}"],
    "labels": [1, 0, 0, 0],  # verifier 1,0,0,1 -> tp, tn, tn, fp
}
ALL_CORRECT = {
    "reference": "7",
    "responses": ["\\boxed{7}", "The answer is \\boxed{7}."],
    "labels": [1, 1],  # tp, tp
}
ALL_INCORRECT = {
    "reference": "3",
    "responses": ["\\boxed{2}", "\\boxed{1}", "\\boxed{0}"],
    "labels": [0, 1, 0],  # tn, fn, tn
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("metrics"), "--verifier", "string", "--metrics-max-jobs", "2"
    )
    yield s
    s.stop()


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url + "/metrics", timeout=30).text
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= ls)


def disagreement(body: dict[str, Any]) -> tuple[int, int]:
    """The documented proxy rule, recomputed from a response (mixed groups only)."""
    if body["collapse"] != "mixed":
        return 0, 0
    sc, v = body["rm_scores"], body["verifier"]
    lo, hi = min(sc), max(sc)
    low = sum(1 for x, y in zip(v, sc, strict=True) if x == 1 and y == lo)
    high = sum(1 for x, y in zip(v, sc, strict=True) if x == 0 and y == hi)
    return low, high


@pytest.mark.slow  # its own server process
def test_exact_counters(srv: Server) -> None:
    before = scrape(srv.url)
    assert val(before, "hero_groups_total") == 0
    assert val(before, "hero_job_label_cap") == 2
    assert val(before, "hero_rm_queue_capacity") == 4096

    bodies: list[dict[str, Any]] = []
    with httpx.Client(base_url=srv.url, timeout=60) as c:

        def post(path: str, body: dict[str, Any], code: int = 200) -> dict[str, Any]:
            r = c.post(path, json=body)
            assert r.status_code == code, r.text
            out: dict[str, Any] = r.json()
            return out

        a = [
            post("/score_group", {"job_id": JOB_A, "request_id": "a1", **MIXED}),
            post("/score_group", {"job_id": JOB_A, **ALL_CORRECT}),
            post("/score_group", {"job_id": JOB_A, **ALL_INCORRECT}),
        ]
        bodies += a
        # a retried request is answered from the idempotency store: counts nothing twice
        again = post("/score_group", {"job_id": JOB_A, "request_id": "a1", **MIXED})
        assert again["replayed"] is True
        # job B: no labels -> no confusion counts; one group + a batch of two
        b1 = post("/score_group", {"job_id": JOB_B, "reference": "10", "responses": ["\\boxed{9}"]})
        batch = post(
            "/score_batch",
            {
                "job_id": JOB_B,
                "groups": [
                    {"reference": "2", "responses": ["\\boxed{2}", "\\boxed{3}", "nothing"]},
                    {"reference": "5", "responses": ["\\boxed{5}"]},
                ],
            },
        )
        bodies += [b1, *batch["groups"]]
        # job C: over the cap of 2 job labels -> reported as job_id="other"
        c1 = post("/score_group", {"job_id": JOB_C, **ALL_CORRECT, "labels": [1, 0]})
        bodies.append(c1)
        # a 422 is counted by route and code and scores nothing
        post("/score_group", {"job_id": JOB_A, **MIXED, "labels": [1]}, code=422)

    assert [b["collapse"] for b in a] == ["mixed", "all_correct", "all_incorrect"]
    assert a[0]["verifier_status"] == ["correct", "incorrect", "no_answer", "correct"]
    assert [g["collapse"] for g in batch["groups"]] == ["mixed", "all_correct"]

    m = scrape(srv.url)

    # groups by collapse kind, per job (C folded into "other")
    assert val(m, "hero_groups_total", job_id=JOB_A, collapse="mixed") == 1
    assert val(m, "hero_groups_total", job_id=JOB_A, collapse="all_correct") == 1
    assert val(m, "hero_groups_total", job_id=JOB_A, collapse="all_incorrect") == 1
    assert val(m, "hero_groups_total", job_id=JOB_B, collapse="all_incorrect") == 1
    assert val(m, "hero_groups_total", job_id=JOB_B, collapse="mixed") == 1
    assert val(m, "hero_groups_total", job_id=JOB_B, collapse="all_correct") == 1
    assert val(m, "hero_groups_total", job_id="other", collapse="all_correct") == 1
    assert val(m, "hero_groups_total", job_id=JOB_C) == 0
    assert val(m, "hero_groups_total") == 7
    assert val(m, "hero_job_label_overflow_total") == 1
    assert val(m, "hero_rollouts_total", job_id=JOB_A) == 9
    assert val(m, "hero_rollouts_total", job_id=JOB_B) == 5
    assert val(m, "hero_rollouts_total", job_id="other") == 2

    # confusion matrix from trusted labels -> FPR and recall
    conf = {
        k: val(m, "hero_verifier_confusion_total", job_id=JOB_A, outcome=k)
        for k in ("tp", "fp", "tn", "fn")
    }
    assert conf == {"tp": 3, "fp": 1, "tn": 4, "fn": 1}
    assert conf["fp"] / (conf["fp"] + conf["tn"]) == pytest.approx(0.2)  # FPR
    assert conf["tp"] / (conf["tp"] + conf["fn"]) == pytest.approx(0.75)  # recall
    assert val(m, "hero_verifier_confusion_total", job_id=JOB_B) == 0  # no labels sent
    other = {
        k: val(m, "hero_verifier_confusion_total", job_id="other", outcome=k) for k in ("tp", "fp")
    }
    assert other == {"tp": 1, "fp": 1}

    # verifier outcomes by verifier and status (the replay and the 422 verify nothing)
    st = {
        s: val(m, "hero_verifier_outcomes_total", verifier="string", status=s)
        for s in ("correct", "incorrect", "no_answer", "timeout", "error", "rejected")
    }
    assert st == {
        "correct": 8,
        "incorrect": 6,
        "no_answer": 2,
        "timeout": 0,
        "error": 0,
        "rejected": 0,
    }
    assert sum(st.values()) == val(m, "hero_rollouts_total")

    # disagreement proxy: the documented rule, recomputed from the responses
    low = sum(disagreement(b)[0] for b in bodies[:3])
    high = sum(disagreement(b)[1] for b in bodies[:3])
    assert (
        val(m, "hero_rm_verifier_disagreement_total", job_id=JOB_A, kind="verified_low_rm") == low
    )
    assert (
        val(m, "hero_rm_verifier_disagreement_total", job_id=JOB_A, kind="rejected_high_rm") == high
    )

    # weights: one observation per group; sigma_bar matches the job's state
    assert val(m, "hero_weight_count", job_id=JOB_A) == 3
    assert val(m, "hero_weight_sum", job_id=JOB_A) == pytest.approx(sum(b["weight"] for b in a))
    for j in (JOB_A, JOB_B):
        state = httpx.get(f"{srv.url}/jobs/{j}", timeout=10).json()
        assert val(m, "hero_sigma_bar", job_id=j) == pytest.approx(state["sigma_bar"])

    # requests by route and code, the replay, RM batches
    assert val(m, "hero_requests_total", route="/score_group", code="200") == 6
    assert val(m, "hero_requests_total", route="/score_group", code="422") == 1
    assert val(m, "hero_requests_total", route="/score_batch", code="200") == 1
    assert val(m, "hero_request_duration_seconds_count", route="/score_group") == 7
    assert val(m, "hero_idempotent_replays_total") == 1

    # every scored rollout went through the RM once (deltas: start-up warms the RM up)
    def delta(name: str) -> float:
        return val(m, name) - val(before, name)

    assert delta("hero_rm_batch_size_sum") == 16
    assert delta("hero_rm_batch_size_count") >= 1
    assert delta("hero_rm_inference_duration_seconds_count") == delta("hero_rm_batch_size_count")
    assert delta("hero_rm_queue_duration_seconds_count") == 16
    # verification: distinct (reference, answer) pairs per group are verified once
    misses = val(m, "hero_verifier_cache_total", result="miss")
    assert misses == val(m, "hero_verifier_duration_seconds_count", verifier="string")
    # (cache internals belong to the verifier: at most one lookup per distinct answer/group)
    assert misses + val(m, "hero_verifier_cache_total", result="hit") <= 11
    assert val(m, "hero_overload_rejections_total") == 0


@pytest.mark.slow  # its own server process
def test_metric_names_follow_conventions(srv: Server) -> None:
    text = httpx.get(srv.url + "/metrics", timeout=30).text
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith("hero_"):
            continue
        if fam.type == "counter":
            assert any(s.name.endswith("_total") for s in fam.samples) or not fam.samples
        if fam.type == "histogram" and "duration" in fam.name:
            assert fam.name.endswith("_seconds"), fam.name
        labels = {k for s in fam.samples for k in s.labels}
        assert not labels & {"job", "request_id", "group_id", "prompt"}, fam.name


def test_job_label_cap() -> None:
    """The cap is a setting: every job gets its own label up to it."""
    from hero_service.metrics import Metrics

    m = Metrics(max_job_labels=3)
    assert [m.job_label(f"j{i}") for i in range(5)] == ["j0", "j1", "j2", "other", "other"]
    assert m.job_label("j1") == "j1"
    assert m.registry.get_sample_value("hero_job_label_overflow_total") == 2


def test_disagreement_rule() -> None:
    """Mixed groups only: verifier-correct at the group's min RM score is verified_low_rm,
    verifier-incorrect at the max is rejected_high_rm; ties count every tied rollout."""
    from types import SimpleNamespace

    from hero_client.schema import GroupIn
    from hero_service.metrics import Metrics
    from hero_service.pipeline import Pipeline
    from hero_service.shaping import RunningSigma, ShapingConfig, shape_batch
    from hero_service.verify.verdict import Verdict

    m = Metrics()
    groups = [  # (verifier labels, RM scores)
        ([1, 0, 1, 0], [0.1, 0.9, 0.5, 0.9]),  # low: r0; high: r1, r3 (tie)
        ([1, 0, 0], [0.8, 0.2, 0.3]),  # agreement: nothing
        ([1, 1], [0.0, 1.0]),  # collapsed: never counted
        ([0, 0, 1], [2.0, -1.0, -1.0]),  # low: r2; high: r0
    ]
    shaped, state = shape_batch([(s, y) for y, s in groups], RunningSigma(), ShapingConfig())
    verdicts = [[Verdict(x, "correct" if x else "incorrect", None) for x in y] for y, _ in groups]
    gin = [GroupIn(reference="1", responses=["r"] * len(y)) for y, _ in groups]
    Pipeline._observe(
        SimpleNamespace(metrics=m),  # type: ignore[arg-type]
        "j",
        gin,
        verdicts,
        [s for _, s in groups],
        shaped,
        state,
    )

    def got(kind: str) -> float | None:
        return m.registry.get_sample_value(
            "hero_rm_verifier_disagreement_total", {"job_id": "j", "kind": kind}
        )

    assert got("verified_low_rm") == 2
    assert got("rejected_high_rm") == 3
