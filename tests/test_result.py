"""The canonical result: Pipeline.score returns it and the store keeps it; each edge
builds its own answer from it. Replays of answers stored in the old per-route shapes
(kept up to idempotency_ttl_s, 7 days) still work. In-process, real verifier and RM."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from hero_client.schema import GroupIn, ScoreBatchRequest, ScoreGroupRequest
from hero_service.result import Scored
from hero_service.state import JobRecord, payload_digest
from hero_service.state.base import Commit
from tests.inproc import InProcess

GROUP = {
    "prompt": "What is 1/2 + 1/4?",
    "reference": "\\frac{3}{4}",
    "responses": ["\\boxed{\\frac{3}{4}}", "\\boxed{0.75}", "\\boxed{\\frac{1}{3}}", "no idea"],
}


def job() -> str:
    return "r-" + uuid.uuid4().hex[:12]


def test_pipeline_returns_and_stores_one_result(app: InProcess) -> None:
    p = app.rt.pipeline
    assert p is not None
    j, groups = job(), [GroupIn(**GROUP), GroupIn(**{**GROUP, "responses": ["\\boxed{3/4}"]})]
    first = app.call(p.score(j, groups, "rid", "digest", None, None))
    assert isinstance(first, Scored) and not first.replayed
    assert [g.verifier for g in first.groups] == [[1, 1, 0, 0], [1]]
    assert all(g.sigma_bar == first.sigma_bar for g in first.groups)
    again = app.call(p.score(j, groups, "rid", "digest", None, None))
    assert again.replayed and again.groups == first.groups and again.sigma_bar == first.sigma_bar
    assert again.timings == first.timings  # the stored result, not a new scoring
    assert Scored.from_stored(first.stored()).groups == first.groups


def test_identical_responses_are_scored_once_and_rewarded_alike(app: InProcess) -> None:
    """One RM forward per distinct (prompt, response, reference) in a call: batched scores
    carry float noise from their batch mates, which min-max normalisation inside a stratum
    would turn into different rewards for the same text (seen in verl's reward loop)."""
    p = app.rt.pipeline
    assert p is not None
    reg = app.rt.metrics.registry

    def forwarded() -> float:
        return reg.get_sample_value("hero_rm_batch_size_sum") or 0.0

    texts = ["\\boxed{7}", "So \\boxed{8}", "\\boxed{7}", "\\boxed{7}", "So \\boxed{8}"]
    g = GroupIn(prompt="What is 3 + 4?", reference="7", responses=texts)
    before = forwarded()
    out = app.call(p.score(job(), [g, g], None, "digest", None, None))
    assert forwarded() - before == 2  # two distinct texts, in two groups, ten rollouts
    for res in out.groups:
        assert res.verifier == [1, 0, 1, 1, 0]
        assert res.rewards[0] == res.rewards[2] == res.rewards[3]
        assert res.rewards[1] == res.rewards[4]
    assert out.groups[0].rewards == out.groups[1].rewards


def _seed(app: InProcess, job_id: str, request_id: str, digest: str, stored: str) -> None:
    """Store an answer for (job, request id) as an older release would have."""
    store = app.rt.store
    assert store is not None

    def keep(rec: JobRecord) -> Commit[None]:
        return Commit(rec.running, stored, None)

    cfg = app.rt.settings.default_shaping()
    out = app.call(store.transact(job_id, request_id, digest, cfg, keep))
    assert isinstance(out, Commit)


def _without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def test_old_score_group_answer_replays(app: InProcess, http: httpx.Client) -> None:
    fresh = http.post("/score_group", json={"job_id": job(), **GROUP}).json()
    j = job()
    req = ScoreGroupRequest(job_id=j, request_id="old-1", **GROUP)
    # what /score_group stored before the canonical result: its own answer, replayed False
    old = {**fresh, "job_id": j, "request_id": "old-1", "replayed": False}
    _seed(app, j, "old-1", payload_digest(req.model_dump_json()), json.dumps(old))
    r = http.post("/score_group", json={"job_id": j, "request_id": "old-1", **GROUP})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["replayed"] is True
    assert _without(got, "replayed") == _without(old, "replayed")
    assert "group_id" not in got


def test_old_score_batch_answer_replays(app: InProcess, http: httpx.Client) -> None:
    body = {"groups": [GROUP, {**GROUP, "responses": ["\\boxed{3/4}"]}]}
    fresh = http.post("/score_batch", json={"job_id": job(), **body}).json()
    j = job()
    req = ScoreBatchRequest(job_id=j, request_id="old-2", **body)
    old = {**fresh, "job_id": j, "request_id": "old-2", "replayed": False}
    _seed(app, j, "old-2", payload_digest(req.model_dump_json()), json.dumps(old))
    got = http.post("/score_batch", json={"job_id": j, "request_id": "old-2", **body}).json()
    assert got["replayed"] is True
    assert _without(got, "replayed") == _without(old, "replayed")


def test_old_barrier_answer_reads_as_the_result(app: InProcess, http: httpx.Client) -> None:
    """The barrier stored a ScoreGroupResponse with its group id and request id."""
    fresh = http.post("/score_group", json={"job_id": job(), **GROUP}).json()
    old = {**fresh, "group_id": "g7", "job_id": "j", "request_id": "barrier:g7"}
    s = Scored.from_stored(json.dumps(old))
    assert s.replayed and len(s.groups) == 1
    g = s.groups[0]
    assert g.group_id == "g7" and g.rewards == fresh["rewards"] and g.collapse == fresh["collapse"]
    assert s.sigma_bar == fresh["sigma_bar"] and s.timings.total_s == fresh["timings"]["total_s"]


@pytest.mark.parametrize("path", ["/score_group", "/score_batch"])
def test_new_replays_equal_the_first_answer(http: httpx.Client, path: str) -> None:
    body: dict[str, Any] = {"job_id": job(), "request_id": "same"}
    body |= {"groups": [GROUP]} if path == "/score_batch" else GROUP
    first = http.post(path, json=body).json()
    again = http.post(path, json=body).json()
    assert first["replayed"] is False and again["replayed"] is True
    assert _without(first, "replayed") == _without(again, "replayed")
