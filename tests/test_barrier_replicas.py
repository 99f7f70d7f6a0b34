"""Per-sample groups across replicas (issue 12, defect 9): two `hero serve` replicas on one
private redis-server behind a round-robin TCP proxy (what a plain ClusterIP Service does),
every sample its own connection, one replica killed (-9) while its samples wait."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import Server, free_port, start_server

if TYPE_CHECKING:
    from tests.redis_util import RedisServer

pytest_plugins = ["tests.redis_util"]
pytestmark = [
    pytest.mark.slow,  # server and redis processes
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server"),
]
GROUPS, SIZE = 6, 4


class RoundRobinProxy:
    """A TCP proxy on loopback: each connection goes to the next backend in turn; a
    backend that refuses the connection is skipped (the Service drops a dead pod)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.port = free_port()
        self.turn = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        srv = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self.ready.set()
        self.loop.run_forever()
        srv.close()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for k in range(len(self.ports)):
            port = self.ports[(self.turn + k) % len(self.ports)]
            try:
                br, bw = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue
        else:
            w.close()
            return
        self.turn += 1

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        await asyncio.gather(pipe(r, bw), pipe(br, w))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def deployment(
    tmp_path: Path, make_redis: Callable[[], RedisServer]
) -> Iterator[tuple[RoundRobinProxy, list[Server], RedisServer]]:
    from tests.redis_util import REPLICA_ARGS  # a plugin module: imported once pytest has it

    rs = make_redis()
    args = (*REPLICA_ARGS, "--state-url", rs.url, "--barrier-deadline-s", "60")
    dirs = [tmp_path / f"r{i}" for i in range(2)]
    for d in dirs:
        d.mkdir()
    with ThreadPoolExecutor(2) as ex:
        servers = list(ex.map(lambda d: start_server(d, *args), dirs))
    proxy = RoundRobinProxy([int(s.url.rsplit(":", 1)[1]) for s in servers])
    yield proxy, servers, rs
    proxy.close()
    for s in servers:
        s.stop()


def sample(job: str, g: int, i: int) -> dict[str, Any]:
    return {
        "job_id": job,
        "group_id": f"uid-{g}",
        "group_size": SIZE,
        "sample_index": i,
        "prompt": f"Problem {g}: what is 1/2 + 1/4?",
        "reference": "3/4",
        "response": [f"\\boxed{{3/4}} in {g} steps", f"\\boxed{{{g}}}", "\\boxed{0.75}", "?"][i]
        + " ." * (g + i),
    }


def post_until_ok(url: str, body: dict[str, Any], tries: int = 20) -> dict[str, Any]:
    """The trainer's retry: same sample, new connection, on transport errors and 503."""
    for _ in range(tries):
        try:
            r = httpx.post(url + "/score_sample", json=body, timeout=90)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if r.status_code in (429, 503):
            time.sleep(0.2)
            continue
        assert r.status_code == 200, r.text
        return dict(r.json())
    raise AssertionError(f"no answer after {tries} tries")


def test_groups_across_replicas_survive_kill_9(
    deployment: tuple[RoundRobinProxy, list[Server], RedisServer],
) -> None:
    proxy, servers, rs = deployment
    url = f"http://127.0.0.1:{proxy.port}"
    job = "rep-" + uuid.uuid4().hex[:8]
    answers: dict[tuple[int, int], dict[str, Any]] = {}
    r = rs.client()
    with ThreadPoolExecutor(GROUPS * SIZE) as ex:
        first = {
            (g, i): ex.submit(post_until_ok, url, sample(job, g, i))
            for g in range(GROUPS)
            for i in (0, 1)
        }
        deadline = time.monotonic() + 20  # the first halves are waiting (in Redis)
        while sum(r.hlen(k) for k in r.scan_iter("hero:bar:*:s")) < GROUPS * 2:
            if time.monotonic() > deadline:
                break  # a server without the shared barrier: the checks below fail
            time.sleep(0.05)
        servers[0].proc.kill()  # kill -9 mid-group: its waiters' connections drop
        servers[0].proc.wait(10)
        rest = {
            (g, i): ex.submit(post_until_ok, url, sample(job, g, i))
            for g in range(GROUPS)
            for i in (2, 3)
        }
        for k, f in {**first, **rest}.items():
            answers[k] = f.result(timeout=120)
    live = servers[1].url
    for g in range(GROUPS):
        got = [answers[(g, i)] for i in range(SIZE)]
        assert all(a["partial"] is False and a["group_count"] == SIZE for a in got)
        assert len({a["sigma_bar"] for a in got}) == 1  # one scoring per group
    state = httpx.get(f"{live}/jobs/{job}").json()
    assert state["count"] == GROUPS  # every group folded exactly once
    for g in range(GROUPS):  # equal to /score_group with the same sigma_bar
        got = [answers[(g, i)] for i in range(SIZE)]
        fresh = f"{job}-replay-{g}"
        put = {**state, "job_id": fresh, "sigma_bar": got[0]["sigma_bar"], "count": 1}
        assert httpx.put(f"{live}/jobs/{fresh}", json=put).status_code == 200
        body = {
            "job_id": fresh,
            "prompt": sample(job, g, 0)["prompt"],
            "reference": "3/4",
            "responses": [sample(job, g, i)["response"] for i in range(SIZE)],
        }
        ref = httpx.post(f"{live}/score_group", json=body, timeout=60).json()
        for i in range(SIZE):
            assert abs(ref["rewards"][i] - got[i]["reward"]) <= 1e-5, (g, i)


def test_sigterm_with_shared_barrier_answers_503_and_loses_nothing(
    deployment: tuple[RoundRobinProxy, list[Server], RedisServer],
) -> None:
    _, servers, _ = deployment
    job = "rst-" + uuid.uuid4().hex[:8]
    a, b = servers[0].url, servers[1].url
    with ThreadPoolExecutor(2) as ex:
        waiting = [
            ex.submit(httpx.post, a + "/score_sample", json=sample(job, 0, i), timeout=60)
            for i in (0, 1)
        ]
        time.sleep(1.0)  # both recorded; SIGTERM the replica they wait on
        servers[0].proc.terminate()
        for f in waiting:
            r = f.result()
            assert r.status_code == 503 and r.json()["error"] == "not_ready", r.text
            assert set(r.json()) >= {"error", "message", "field"} and r.headers["retry-after"]
    # the retries (same sample_index) and the rest of the group on the other replica
    with ThreadPoolExecutor(SIZE) as ex:
        got = list(ex.map(lambda i: post_until_ok(b, sample(job, 0, i)), range(SIZE)))
    assert all(x["partial"] is False and x["group_count"] == SIZE for x in got)
    assert httpx.get(f"{b}/jobs/{job}").json()["count"] == 1  # folded once


def test_one_sample_get_reward_groups_across_replicas(
    deployment: tuple[RoundRobinProxy, list[Server], RedisServer],
) -> None:
    proxy, servers, _ = deployment
    url = f"http://127.0.0.1:{proxy.port}/get_reward"
    job = "rgr-" + uuid.uuid4().hex[:8]

    def one(k: int) -> dict[str, Any]:  # OpenRLHF >= 0.10: one rollout per request
        g, i = divmod(k, SIZE)
        prompt = f"Problem {g}: 2 + {g} = ?"
        body = {"query": [prompt + f" \\boxed{{{2 + g + i % 2}}}"], "prompts": [prompt]}
        body["labels"] = [str(2 + g)]
        r = httpx.post(url, params={"job_id": job, "group_size": SIZE}, json=body, timeout=90)
        assert r.status_code == 200, r.text
        return dict(r.json())

    for step in (1, 2):  # the same prompts again (the next step): new groups
        with ThreadPoolExecutor(GROUPS * SIZE) as ex:
            got = list(ex.map(one, range(GROUPS * SIZE)))
        for x in got:
            logs = x["extra_logs"]
            assert logs["hero_error"] == [0.0] and logs["hero_partial"] == [0.0]
            assert logs["hero_group_count"] == [float(SIZE)]
        state = httpx.get(f"{servers[0].url}/jobs/{job}").json()
        assert state["count"] == GROUPS * step  # each group scored once, as a whole


def test_shared_group_abandoned_by_every_client_is_dropped_not_folded(
    deployment: tuple[RoundRobinProxy, list[Server], RedisServer],
) -> None:
    """Two samples of a group wait on two replicas; both clients give up (the trainer's
    timeout): the group's samples leave Redis long before its deadline, nothing is folded,
    and the retry of the whole group is scored once."""
    _, servers, rs = deployment
    job = "rab-" + uuid.uuid4().hex[:8]

    def give_up(k: int) -> None:
        body = {**sample(job, 0, k), "deadline_s": 120}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(servers[k].url + "/score_sample", json=body, timeout=1.5)

    with ThreadPoolExecutor(2) as ex:
        list(ex.map(give_up, range(2)))
    r = rs.client()
    for _ in range(100):  # bounded: 20 s, against a 120 s deadline
        if not r.keys(f"*{job}*"):
            break
        time.sleep(0.2)
    assert r.keys(f"*{job}*") == []
    got = httpx.get(f"{servers[0].url}/jobs/{job}")
    assert got.status_code == 404 or got.json()["count"] == 0
    with ThreadPoolExecutor(SIZE) as ex:
        done = list(
            ex.map(lambda i: post_until_ok(servers[i % 2].url, sample(job, 0, i)), range(SIZE))
        )
    assert all(x["partial"] is False and x["group_count"] == SIZE for x in done)
    assert httpx.get(f"{servers[1].url}/jobs/{job}").json()["count"] == 1
