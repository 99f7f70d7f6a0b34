"""/score_group and friends, end to end against a real server process."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.conftest import Server, start_server

GROUP = {
    "prompt": "What is 1/2 + 1/4?",
    "reference": "\\frac{3}{4}",
    "responses": [
        "1/2 = 2/4, so 2/4 + 1/4 = 3/4. The answer is \\boxed{\\frac{3}{4}}.",
        "Adding gives 0.75, so \\boxed{0.75}",
        "1/2 + 1/4 = 2/6 = \\boxed{\\frac{1}{3}}",
        "I am not sure.",
    ],
}


def job() -> str:
    return "t-" + uuid.uuid4().hex[:12]


def test_score_group_end_to_end(http: httpx.Client) -> None:
    r = http.post("/score_group", json={"job_id": job(), **GROUP, "labels": [1, 1, 0, 0]})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["verifier"] == [1, 1, 0, 0]
    assert b["verifier_status"] == ["correct", "correct", "incorrect", "no_answer"]
    assert b["collapse"] == "mixed"
    assert len(b["rm_scores"]) == 4
    # first group of a job: sigma_bar is its own sigma, weight is the midpoint
    assert b["sigma_bar"] == pytest.approx(b["sigma"])
    assert b["weight"] == pytest.approx(1.25)
    assert min(b["rewards"][:2]) > max(b["rewards"][2:])
    for r_, n in zip(b["rewards"], b["normalized"], strict=True):
        assert r_ == pytest.approx(b["weight"] * n)
    assert set(b["timings"]) >= {"verify_s", "rm_s", "shaping_s", "total_s"}
    assert b["advantages"] is None


def test_sigma_bar_evolves_and_idempotency(http: httpx.Client) -> None:
    j = job()
    first = http.post("/score_group", json={"job_id": j, **GROUP, "request_id": "a"}).json()
    g2 = {**GROUP, "responses": [*GROUP["responses"][:2], "\\boxed{7}"]}
    second = http.post("/score_group", json={"job_id": j, **g2, "request_id": "b"}).json()
    assert second["sigma_bar"] == pytest.approx(first["sigma"])
    state = http.get(f"/jobs/{j}").json()
    assert state["count"] == 2
    expect = 0.9 * first["sigma"] + 0.1 * second["sigma"]
    assert state["sigma_bar"] == pytest.approx(expect)
    # a retry with the same request id replays the stored answer and folds nothing in
    again = http.post("/score_group", json={"job_id": j, **g2, "request_id": "b"})
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["rewards"] == second["rewards"]
    assert http.get(f"/jobs/{j}").json() == state
    # the same id with another payload is a conflict, not a silent replay
    clash = http.post("/score_group", json={"job_id": j, **GROUP, "request_id": "b"})
    assert clash.status_code == 409
    assert clash.json()["field"] == "request_id"


def test_score_batch_shares_sigma_bar(http: httpx.Client) -> None:
    j = job()
    g1 = {**GROUP, "group_id": "p1"}
    g2 = {**GROUP, "responses": ["\\boxed{3/4}", "\\boxed{2}"], "group_id": "p2"}
    r = http.post("/score_batch", json={"job_id": j, "groups": [g1, g2]})
    assert r.status_code == 200, r.text
    b = r.json()
    assert [g["group_id"] for g in b["groups"]] == ["p1", "p2"]
    sig = [g["sigma"] for g in b["groups"]]
    assert b["sigma_bar"] == pytest.approx(sum(sig) / 2)
    assert all(g["sigma_bar"] == b["sigma_bar"] for g in b["groups"])
    assert http.get(f"/jobs/{j}").json()["count"] == 2


def test_advantages_and_shaping_overrides(http: httpx.Client) -> None:
    body = {"job_id": job(), **GROUP, "shaping": {"preset": "paper_appendix", "advantage": "grpo"}}
    b = http.post("/score_group", json=body).json()
    assert b["weight"] == pytest.approx(0.4 + 2.6 * 0.5)
    assert sum(b["advantages"]) == pytest.approx(0.0, abs=1e-6)


def test_job_export_import_reset(http: httpx.Client) -> None:
    j = job()
    http.post("/score_group", json={"job_id": j, **GROUP})
    exported = http.get(f"/jobs/{j}").json()
    assert http.delete(f"/jobs/{j}").status_code == 200
    assert http.get(f"/jobs/{j}").status_code == 404
    assert http.put(f"/jobs/{j}", json=exported).status_code == 200
    assert http.get(f"/jobs/{j}").json()["sigma_bar"] == exported["sigma_bar"]
    assert any(x["job_id"] == j for x in http.get("/jobs").json())


def test_debug_endpoints(http: httpx.Client) -> None:
    v = http.post("/verify", json={"reference": "3", "responses": ["\\boxed{3}", "\\boxed{4}"]})
    assert v.json()["verifier"] == [1, 0]
    s = http.post("/rm_score", json={"prompt": "p", "responses": ["a", "b"]})
    assert s.status_code == 200 and len(s.json()["rm_scores"]) == 2
    long = "filler " * 400 + "so the answer is \\boxed{3}"
    d = http.post("/rm_score", json={"prompt": "p", "responses": ["x = 3", long]}).json()
    # what the RM read is reported: the embedded scorer keeps the last 256 word pieces
    assert d["max_length"] == 256 and d["truncation_side"] == "left"
    assert d["truncated"] == [False, True]
    assert d["n_tokens"][1] == 256 and 0 < d["n_tokens"][0] < 256


def test_health_ready_metrics(http: httpx.Client) -> None:
    assert http.get("/health").json()["status"] == "ok"
    assert http.get("/ready").json()["ready"] is True
    m = http.get("/metrics").text
    assert "hero_groups_total" in m and "hero_verifier_outcomes_total" in m


BAD = [
    ({**GROUP, "responses": []}, 422, "responses"),
    ({**GROUP, "labels": [1, 0]}, 422, "labels"),
    ({k: v for k, v in GROUP.items() if k != "reference"}, 422, "reference"),
    ({**GROUP, "reference": "   "}, 422, "reference"),
    ({**GROUP, "responses": "abc"}, 422, "responses"),
    ({**GROUP, "responses": [1, 2]}, 422, "responses[0]"),
    ({**GROUP, "labels": [1, 0, 2, 0]}, 422, "labels"),
    ({**GROUP, "shaping": {"gamma": 1}}, 422, "shaping.gamma"),
    ({**GROUP, "shaping": {"alpha": 0.6, "beta": 0.6}}, 422, "shaping.alpha"),
    ({**GROUP, "shaping": {"k": -1}}, 422, "shaping.k"),
    ({**GROUP, "verifier": "magic"}, 422, "verifier"),
    ({**GROUP, "extra": 1}, 422, "extra"),
    ({**GROUP, "responses": ["x" * 300_000]}, 422, "responses[0]"),
]


@pytest.mark.parametrize("body,code,field", BAD)
def test_bad_input_names_the_field(http: httpx.Client, body: dict, code: int, field: str) -> None:
    r = http.post("/score_group", json={"job_id": job(), **body})
    assert r.status_code == code, r.text
    assert r.json()["field"] == field, r.json()
    assert field.split("[")[0].split(".")[-1] in r.json()["message"]


def test_bad_job_id(http: httpx.Client) -> None:
    r = http.post("/score_group", json={"job_id": "a b/../c", **GROUP})
    assert r.status_code == 422 and r.json()["field"] == "job_id"


def test_ten_megabyte_response_is_413(http: httpx.Client) -> None:
    body = {"job_id": job(), **GROUP, "responses": ["9" * (10 * 1024 * 1024)]}
    r = http.post("/score_group", json=body)
    assert r.status_code == 413
    assert "max_body_bytes" in r.json()["message"]


def test_non_utf8_and_non_json_bodies(http: httpx.Client) -> None:
    raw = json.dumps({"job_id": job(), **GROUP}).encode().replace(b"I am", b"I \xff\xfe am")
    r = http.post("/score_group", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"] in ("validation_error", "bad_request")
    r = http.post(
        "/score_group", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "JSON" in r.json()["message"]
    r = http.post("/score_group", json=[1, 2])
    assert r.status_code == 422
    # a lone surrogate is valid JSON but not text
    raw = json.dumps({"job_id": job(), **GROUP, "responses": ["ok \udcff"]})
    r = http.post("/score_group", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "responses[0]"


def test_running_mean_params_fixed_per_job(http: httpx.Client) -> None:
    j = job()
    assert http.post("/score_group", json={"job_id": j, **GROUP}).status_code == 200
    r = http.post("/score_group", json={"job_id": j, **GROUP, "shaping": {"momentum": 0.5}})
    assert r.status_code == 409 and r.json()["field"] == "shaping.momentum"


@pytest.mark.slow  # restarts a server process
def test_state_survives_restart(tmp_path) -> None:
    s: Server = start_server(tmp_path)
    try:
        b = httpx.post(
            s.url + "/score_group",
            json={"job_id": "persist", **GROUP, "request_id": "r1"},
            timeout=60,
        ).json()
    finally:
        s.stop()
    s2 = start_server(tmp_path)
    try:
        st = httpx.get(s2.url + "/jobs/persist").json()
        assert st["sigma_bar"] == pytest.approx(b["sigma"]) and st["count"] == 1
        again = httpx.post(
            s2.url + "/score_group",
            json={"job_id": "persist", **GROUP, "request_id": "r1"},
            timeout=60,
        )
        assert again.json()["replayed"] is True
        assert httpx.get(s2.url + "/jobs/persist").json()["count"] == 1
    finally:
        s2.stop()
