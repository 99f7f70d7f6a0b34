"""The group barrier (/score_sample) and OpenRLHF's /get_reward: in-process (`app`), and
against real server processes for disconnects, load and limits (slow)."""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hero_client import AsyncHeroClient
from hero_client.schema import GET_REWARD_LOG_KEYS, ScoreSampleResponse
from tests.conftest import Server, start_server
from tests.inproc import InProcess

RESPONSES = [
    "1/2 = 2/4, so the answer is \\boxed{\\frac{3}{4}}",
    "\\boxed{0.75}",
    "\\boxed{\\frac{1}{3}}",
    "\\boxed{0.75}",  # identical responses are legitimate samples, never merged
    "I am not sure.",
    "\\boxed{0.75}",
]
PROMPT, REF = "What is 1/2 + 1/4?", "\\frac{3}{4}"


def job() -> str:
    return "b-" + uuid.uuid4().hex[:12]


def sample(j: str, gid: str, i: int | None, resp: str, size: int, **kw: Any) -> dict[str, Any]:
    body = {"job_id": j, "group_id": gid, "group_size": size, "prompt": PROMPT}
    body.update(reference=REF, response=resp, **kw)
    if i is not None:
        body["sample_index"] = i
    return body


def _client(to: Server | InProcess, timeout: float = 60) -> httpx.AsyncClient:
    if isinstance(to, InProcess):
        return to.async_client(timeout=timeout)
    return httpx.AsyncClient(base_url=to.url, timeout=timeout)


async def post_all(
    to: Server | InProcess, bodies: list[dict[str, Any]], path: str = "/score_sample"
) -> list:
    async with _client(to, 120) as c:
        return list(await asyncio.gather(*(c.post(path, json=b) for b in bodies)))


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=30).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


# -- the barrier equals the whole group --------------------------------------------------
async def test_barrier_group_equals_whole_group(app: InProcess, http: httpx.Client) -> None:
    a, b = job(), job()
    n = len(RESPONSES)
    order = list(range(n))
    random.Random(1).shuffle(order)  # arrival order must not matter with sample_index
    bodies = [sample(a, "g1", i, RESPONSES[i], n, label=int(i in (0, 1, 3, 5))) for i in order]
    resps = await post_all(app, bodies)
    assert all(r.status_code == 200 for r in resps), [r.text for r in resps]
    got = {r.json()["sample_index"]: ScoreSampleResponse.model_validate(r.json()) for r in resps}
    whole = http.post(
        "/score_group",
        json={"job_id": b, "prompt": PROMPT, "reference": REF, "responses": RESPONSES},
    ).json()
    for i in range(n):
        s = got[i]
        assert s.position == i and s.group_count == n and not s.partial and not s.replayed
        assert s.reward == pytest.approx(whole["rewards"][i])
        assert s.rm_score == pytest.approx(whole["rm_scores"][i])
        assert s.verifier == whole["verifier"][i] and s.answer == whole["answers"][i]
        assert s.weight == pytest.approx(whole["weight"]) and s.collapse == whole["collapse"]
    assert http.get(f"/jobs/{a}").json()["count"] == 1  # scored once for six requests
    # trusted labels reach the verifier-confusion metric like a whole-group call
    pat = rf'hero_verifier_confusion_total{{[^}}]*"{a}"[^}}]*outcome="tp"}} 4.0'
    assert re.search(pat, http.get("/metrics").text)


# -- deadline, late samples, retries -----------------------------------------------------
async def test_deadline_partial_group_late_sample_and_replay(app: InProcess) -> None:
    j = job()
    bodies = [sample(j, "g", i, RESPONSES[i], 4, deadline_s=1.0) for i in (0, 2)]
    resps = await post_all(app, bodies)
    out = [ScoreSampleResponse.model_validate(r.json()) for r in resps]
    assert [o.partial for o in out] == [True, True]
    assert [o.group_count for o in out] == [2, 2] and [o.position for o in out] == [0, 1]
    assert out[0].sample_index == 0 and out[1].sample_index == 2
    async with app.async_client(timeout=60) as c:
        late = await c.post("/score_sample", json=sample(j, "g", 3, RESPONSES[3], 4))
        assert late.status_code == 409 and late.json()["field"] == "group_id"
        assert "already scored" in late.json()["message"] and "partial" in late.json()["message"]
        again = await c.post("/score_sample", json=bodies[1])  # a retry: same answer
        assert again.status_code == 200 and again.json()["replayed"] is True
        assert again.json()["reward"] == out[1].reward
        clash = await c.post("/score_sample", json={**bodies[1], "response": "other"})
        assert clash.status_code == 409 and clash.json()["field"] == "sample_index"
        assert (await c.get(f"/jobs/{j}")).json()["count"] == 1


async def test_retry_joins_waiting_sample_and_duplicates_are_kept(
    app: InProcess, http: httpx.Client
) -> None:
    j = job()
    same = "\\boxed{0.75}"
    bodies = [
        sample(j, "g", None, same, 3, request_id="r1"),
        sample(j, "g", None, same, 3, request_id="r1"),  # a retry while waiting
        sample(j, "g", None, same, 3),  # identical text, another sample
        sample(j, "g", None, same, 3),
    ]
    resps = await post_all(app, bodies)
    out = [r.json() for r in resps]
    assert all(r.status_code == 200 for r in resps)
    assert {o["group_count"] for o in out} == {3}  # r1 counted once, duplicates kept
    assert out[0]["position"] == out[1]["position"] and out[0]["reward"] == out[1]["reward"]
    assert sorted({o["position"] for o in out}) == [0, 1, 2]
    assert http.get(f"/jobs/{j}").json()["count"] == 1


async def test_bad_samples_get_clear_errors(app: InProcess) -> None:
    j = job()
    async with app.async_client(timeout=60) as c:
        r = await c.post("/score_sample", json=sample(j, "g", 5, "x", 4))
        assert r.status_code == 422 and r.json()["field"] == "sample_index"
        r = await c.post("/score_sample", json=sample(j, "g", 0, "x", 5000))
        assert r.status_code == 422 and r.json()["field"] == "group_size"
        r = await c.post("/score_sample", json=sample(j, "g", 0, "x", 2, shaping={"k": -1}))
        assert r.status_code == 422 and r.json()["field"] == "shaping.k"
        first = asyncio.create_task(
            c.post("/score_sample", json=sample(j, "g2", 0, "x", 2, deadline_s=2))
        )
        await asyncio.sleep(0.3)
        r = await c.post("/score_sample", json=sample(j, "g2", 1, "y", 3))
        assert r.status_code == 409 and r.json()["field"] == "group_size"
        assert "group_size 2" in r.json()["message"]
        assert (await first).json()["partial"] is True


@pytest.mark.slow  # a real socket closed mid-request
def test_disconnected_anonymous_sample_is_withdrawn(server: Server) -> None:
    j = job()
    before = metric(server.url, 'hero_barrier_samples_total{outcome="withdrawn"}')
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/score_sample", json=sample(j, "g", None, "a", 2), timeout=1.0)
    for _ in range(100):  # the barrier notices the disconnect within its poll interval
        if metric(server.url, 'hero_barrier_samples_total{outcome="withdrawn"}') > before:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the abandoned sample was not withdrawn")
    resps = asyncio.run(post_all(server, [sample(j, "g", None, t, 2) for t in "bc"]))
    assert [r.json()["group_count"] for r in resps] == [2, 2]  # the retry did not count twice


# -- 1000 interleaved groups from 32 concurrent clients ---------------------------------
@pytest.mark.slow  # load
async def test_thousand_interleaved_groups_from_32_clients(server: Server) -> None:
    j = job()
    rng = random.Random(7)
    sizes = [2 + g % 2 for g in range(1000)]  # small groups: 2 or 3 samples
    # Interleave groups inside windows of at most 32 samples (one per client), so every
    # client can hold a sample while its group fills up: no group waits on a queue.
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    window: list[tuple[int, int]] = []
    for g, size in enumerate(sizes):
        if len(window) + size > 32:
            rng.shuffle(window)
            for item in window:
                queue.put_nowait(item)
            window = []
        window.extend((g, i) for i in range(size))
    rng.shuffle(window)
    for item in window:
        queue.put_nowait(item)
    results: dict[tuple[int, int], ScoreSampleResponse] = {}
    seen: list[tuple[int, int]] = []

    async def worker() -> None:
        async with AsyncHeroClient(server.url, timeout=120) as c:
            while not queue.empty():
                g, i = queue.get_nowait()
                ans = g if i % 2 == 0 else g + 1
                r = await c.score_sample(
                    j,
                    group_id=f"g{g}",
                    group_size=sizes[g],
                    prompt=f"problem {g}",
                    reference=str(g),
                    response=f"group {g} sample {i}: \\boxed{{{ans}}}",
                    sample_index=i,
                    verifier="string",
                    deadline_s=300,
                )
                seen.append((g, i))
                results[(g, i)] = r

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(32))), timeout=900)
    assert len(seen) == len(set(seen)) == sum(sizes)  # nothing lost, nothing twice
    for (g, i), r in results.items():
        assert r.group_id == f"g{g}" and r.sample_index == i and r.position == i
        assert r.answer == str(g if i % 2 == 0 else g + 1)  # its own sample, not crossed
        assert r.verifier == int(i % 2 == 0) and r.group_count == sizes[g] and not r.partial
    for g, size in enumerate(sizes):  # one scoring per group: same group stats for all
        assert len({results[(g, i)].sigma for i in range(size)}) == 1
    async with AsyncHeroClient(server.url) as c:
        assert (await c.get_job(j)).count == 1000


# -- limits -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("small"),
        "--barrier-max-open-groups",
        "2",
        "--barrier-deadline-s",
        "2",
        "--max-group-size",
        "8",
    )
    yield s
    s.stop()


@pytest.mark.slow  # its own server process
async def test_open_group_limit_is_429(small_server: Server) -> None:
    j = job()
    async with httpx.AsyncClient(base_url=small_server.url, timeout=60) as c:
        waiting = [
            asyncio.create_task(c.post("/score_sample", json=sample(j, g, 0, "x", 2)))
            for g in ("a", "b")
        ]
        await asyncio.sleep(0.5)
        r = await c.post("/score_sample", json=sample(j, "c", 0, "x", 2))
        assert r.status_code == 429 and "barrier_max_open_groups" in r.json()["message"]
        assert int(r.headers["retry-after"]) >= 1
        # joining an open group is still fine, and completes it
        done = await c.post("/score_sample", json=sample(j, "a", 1, "y", 2))
        assert done.status_code == 200 and done.json()["partial"] is False
        assert [(await w).status_code for w in waiting] == [200, 200]
        r = await c.post("/score_sample", json=sample(j, "c", 0, "x", 9))
        assert r.status_code == 422 and "max_group_size" in r.json()["message"]


# -- OpenRLHF /get_reward -------------------------------------------------------------------
def _check_openrlhf_shape(body: dict[str, Any], n: int) -> None:
    """What OpenRLHF does with the answer: rewards/scores per sample, and
    torch.tensor([value]) on every extra_logs entry (so numbers only)."""
    assert len(body["rewards"]) == len(body["scores"]) == n
    assert set(body["extra_logs"]) == set(GET_REWARD_LOG_KEYS)
    for v in body["extra_logs"].values():
        assert len(v) == n and all(isinstance(x, (int, float)) for x in v)


def test_get_reward_batch_groups_by_prompt(http: httpx.Client) -> None:
    j = job()
    p1, p2 = "<|user|>What is 2+2?<|assistant|>", "<|user|>What is 3+3?<|assistant|>"
    r1 = ["so \\boxed{4}", "\\boxed{5}", "\\boxed{4}"]
    r2 = ["\\boxed{6}", "\\boxed{7}", "maybe \\boxed{6}"]
    # OpenRLHF <= 0.9 sends prompt-major batches; interleave to check grouping by prompt
    query = [p1 + r1[0], p2 + r2[0], p1 + r1[1], p2 + r2[1], p1 + r1[2], p2 + r2[2]]
    prompts = [p1, p2] * 3
    labels = ["4", "6"] * 3
    r = http.post(
        f"/get_reward?job_id={j}", json={"query": query, "prompts": prompts, "labels": labels}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    _check_openrlhf_shape(body, 6)
    assert body["scores"] == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]  # verifier labels
    assert body["extra_logs"]["hero_group_count"] == [3.0] * 6
    assert body["extra_logs"]["hero_error"] == [0.0] * 6
    assert http.get(f"/jobs/{j}").json()["count"] == 2
    k = job()
    g = http.post(
        "/score_batch",
        json={
            "job_id": k,
            "groups": [
                {"prompt": p1, "reference": "4", "responses": r1},
                {"prompt": p2, "reference": "6", "responses": r2},
            ],
        },
    ).json()["groups"]
    want = [g[0]["rewards"][0], g[1]["rewards"][0], g[0]["rewards"][1]]
    want += [g[1]["rewards"][1], g[0]["rewards"][2], g[1]["rewards"][2]]
    assert body["rewards"] == pytest.approx(want)


async def test_get_reward_single_samples_use_the_barrier(app: InProcess) -> None:
    j = job()
    prompt = "<|user|>What is 2+2? The answer is not \\boxed{5}.<|assistant|>"
    resps = ["\\boxed{4}", "\\boxed{5}", "\\boxed{4}", "no"]
    bodies = [{"query": [prompt + t], "prompts": [prompt], "labels": [4]} for t in resps]
    async with app.async_client(timeout=60) as c:
        url = f"/get_reward?job_id={j}&group_size=4"
        out = await asyncio.gather(*(c.post(url, json=b) for b in bodies))
        got = [o.json() for o in out]
        for b in got:
            _check_openrlhf_shape(b, 1)
            assert b["extra_logs"]["hero_group_count"] == [4.0]
        # the prompt (which has its own \boxed{5}) was cut off: only the response is graded
        assert [b["scores"][0] for b in got] == [1.0, 0.0, 1.0, 0.0]
        assert [b["extra_logs"]["hero_prompt_mismatch"][0] for b in got] == [0.0] * 4
        assert (await c.get(f"/jobs/{j}")).json()["count"] == 1
        # the same prompt again (next step or epoch) opens a new group, never "late"
        url2 = f"/get_reward?job_id={j}&group_size=2&deadline_s=1"
        again = (await c.post(url2, json=bodies[0])).json()
        assert again["extra_logs"]["hero_partial"] == [1.0]
        assert again["extra_logs"]["hero_group_count"] == [1.0]
        # a multi-URL setup sends empty lists to the other servers: 200, empty lists
        empty = await c.post(url, json={"query": [], "prompts": [], "labels": []})
        assert empty.status_code == 200
        assert empty.json() == {"rewards": [], "scores": [], "extra_logs": {}}
        # a query that does not start with its prompt is graded whole, and flagged
        odd = (
            await c.post(
                f"/get_reward?job_id={j}",
                json={
                    "query": ["\\boxed{4}", "\\boxed{3}"],
                    "prompts": ["zzz", "zzz"],
                    "labels": ["4", "4"],
                },
            )
        ).json()
        assert odd["extra_logs"]["hero_prompt_mismatch"] == [1.0, 1.0]
        assert odd["scores"] == [1.0, 0.0]


def test_get_reward_rejects_what_would_train_on_garbage(http: httpx.Client) -> None:
    one = {"query": ["p \\boxed{4}"], "prompts": ["p"], "labels": ["4"]}
    r = http.post("/get_reward", json=one)
    assert r.status_code == 422 and r.json()["field"] == "group_size"
    assert "group_size=" in r.json()["message"]
    r = http.post("/get_reward?group_size=2", json={**one, "labels": [""]})
    assert r.status_code == 422 and r.json()["field"] == "labels[0]"
    r = http.post("/get_reward?group_size=2", json={**one, "labels": ["4", "5"]})
    assert r.status_code == 422 and r.json()["field"] == "labels"
    r = http.post("/get_reward?group_size=2", json={"query": ["x"], "prompts": ["x"]})
    assert r.status_code == 422 and r.json()["field"] == "labels"
    r = http.post("/get_reward?group_size=0", json=one)
    assert r.status_code == 422 and r.json()["field"] == "group_size"


def test_client_get_reward_matches_openrlhf_request(app: InProcess) -> None:
    """The sync client sends exactly OpenRLHF's body; answers parse as the typed model."""
    with app.hero() as c:
        r = c.get_reward(["P \\boxed{1}", "P \\boxed{2}"], ["P", "P"], ["1", "1"], job_id=job())
    assert r.rewards[0] > r.rewards[1] and r.scores == [1.0, 0.0]
