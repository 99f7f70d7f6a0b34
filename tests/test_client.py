"""hero_client against a real server, and through a fault-injecting proxy on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

import hero_client
from hero_client import (
    AsyncHeroClient,
    ConflictError,
    HeroClient,
    HeroConnectionError,
    InvalidArgumentError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServiceUnavailableError,
    UnprocessableError,
)
from hero_client.schema import JobState, ScoreGroupResponse
from tests.conftest import REPO, Server, free_port
from tests.inproc import InProcess

GROUP = {
    "prompt": "What is 1/2 + 1/4?",
    "reference": "\\frac{3}{4}",
    "responses": ["\\boxed{\\frac{3}{4}}", "\\boxed{0.75}", "\\boxed{\\frac{1}{3}}", "no idea"],
}
FAST = RetryPolicy(max_attempts=6, backoff_initial_s=0.01, backoff_max_s=0.05, jitter_s=0.01)


def job() -> str:
    return "c-" + uuid.uuid4().hex[:12]


# -- install alone ----------------------------------------------------------------------
BLOCKER = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "hero_service", "trl", "verl", "openrlhf",
                                  "transformers", "numpy", "accelerate"}:
            raise ImportError("blocked: " + name)
        return None
sys.meta_path.insert(0, _Block())
import httpx
import hero_client
import hero_client.adapters.trl, hero_client.adapters.verl, hero_client.adapters.openrlhf
from hero_client import HeroClient
def handler(request):
    return httpx.Response(200, json={"status": "ok", "version": "9"})
with HeroClient("http://x", transport=httpx.MockTransport(handler)) as c:
    assert c.health().version == "9"
print("OK", sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "hero_service"}))
"""


@pytest.mark.slow  # subprocesses
def test_client_imports_without_torch_or_server(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "client")}
    out = subprocess.run(
        [sys.executable, "-c", BLOCKER], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().strip() == "OK []"


@pytest.mark.slow  # subprocesses
def test_client_wheel_builds_alone(tmp_path: Path) -> None:
    """`pip install ./client` needs nothing of the server: the wheel holds hero_client
    only and depends on httpx, pydantic and tenacity only."""
    src = tmp_path / "client"  # a copy: setuptools leaves build/ beside the sources
    shutil.copytree(
        REPO / "client", src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    out = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"),
            *("-w", str(tmp_path), str(src)),
        ],
        capture_output=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    (wheel,) = tmp_path.glob("hero_client-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = next(z.read(n).decode() for n in names if n.endswith("METADATA"))
    assert all(n.startswith(("hero_client/", "hero_client-")) for n in names), names
    assert "hero_client/adapters/trl.py" in names and "hero_client/py.typed" in names
    reqs = sorted(
        line.split(":", 1)[1].split()[0].split(">")[0].split("<")[0].split("=")[0].strip()
        for line in meta.splitlines()
        if line.startswith("Requires-Dist:")
    )
    assert reqs == ["httpx", "pydantic", "tenacity"]


# -- against a real server ----------------------------------------------------------------
def test_sync_client_every_endpoint(app: InProcess) -> None:
    with app.hero() as c:
        assert c.health().status == "ok"
        assert c.ready().ready is True
        j = job()
        r = c.score_group(j, **GROUP, labels=[1, 1, 0, 0])
        assert isinstance(r, ScoreGroupResponse) and r.request_id  # generated client-side
        assert r.verifier == [1, 1, 0, 0] and r.replayed is False
        again = c.score_group(j, **GROUP, labels=[1, 1, 0, 0], request_id=r.request_id)
        assert again.replayed is True and again.rewards == r.rewards
        b = c.score_batch(j, [{**GROUP, "group_id": "a"}, {**GROUP, "group_id": "b"}])
        assert [g.group_id for g in b.groups] == ["a", "b"]
        with pytest.raises(ConflictError) as ec:  # same id, other payload
            c.score_group(j, reference="1", responses=["x"], request_id=r.request_id)
        assert ec.value.field == "request_id"
        st = c.get_job(j)
        assert isinstance(st, JobState) and st.count == 3
        assert any(x.job_id == j for x in c.list_jobs())
        assert c.verify("3", ["\\boxed{3}", "\\boxed{4}"]).verifier == [1, 0]
        assert len(c.rm_score(["a", "b"], prompt="p").rm_scores) == 2
        assert c.reset_job(j) is True and c.reset_job(j) is False
        with pytest.raises(NotFoundError):
            c.get_job(j)
        assert c.import_job(st).count == 3 and c.get_job(j).sigma_bar == st.sigma_bar
        assert "hero_barrier_open_groups" in c.metrics()
        with pytest.raises(UnprocessableError) as ei:
            c.score_group(j, **{**GROUP, "labels": None}, shaping={"alpha": 0.6, "beta": 0.6})
        assert ei.value.status_code == 422 and ei.value.field == "shaping.alpha"
        with pytest.raises(InvalidArgumentError):
            c.score_group(j, reference="1", responses=[])  # caught before sending


async def test_async_client_sample_and_get_reward(app: InProcess) -> None:
    async with app.async_hero() as c:
        j = job()
        outs = await asyncio.gather(
            *(
                c.score_sample(
                    j,
                    group_id="g",
                    group_size=3,
                    prompt="1+2?",
                    reference="3",
                    response=f"\\boxed{{{x}}}",
                    sample_index=i,
                    verifier="string",
                )
                for i, x in enumerate([3, 4, 3])
            )
        )
        assert [o.sample_index for o in outs] == [0, 1, 2]
        assert [o.verifier for o in outs] == [1, 0, 1]
        assert {o.group_count for o in outs} == {3} and not any(o.partial for o in outs)
        whole = await c.get_reward(
            ["P \\boxed{3}", "P \\boxed{4}"], ["P", "P"], ["3", "3"], job_id=j, group_size=2
        )
        assert whole.scores == [1.0, 0.0] and whole.extra_logs["hero_group_count"] == [2.0, 2.0]
        assert (await c.get_job(j)).count == 2


# -- retries: MockTransport ----------------------------------------------------------------
def test_retry_after_is_honoured_and_budget_is_bounded() -> None:
    calls: list[str | None] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content).get("request_id"))
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "3"}, json={"error": "overloaded"})
        if len(calls) == 2:
            raise httpx.ConnectError("refused")
        body = {**GROUP, "group_id": None, "job_id": "j", "request_id": calls[-1]}
        body.update(
            rewards=[0.0] * 4,
            verifier=[0] * 4,
            verifier_status=["incorrect"] * 4,
            answers=[None] * 4,
            rm_scores=[0.0] * 4,
            normalized=[0.0] * 4,
            weight=1.0,
            sigma=0.0,
            sigma_bar=0.0,
            collapse="all_incorrect",
        )
        return httpx.Response(200, json=body)

    with HeroClient(
        "http://x", transport=httpx.MockTransport(handler), retry=FAST, sleep=sleeps.append
    ) as c:
        r = c.score_group("j", **GROUP)
    assert len(calls) == 3 and len(set(calls)) == 1 and calls[0]  # one id for every try
    assert r.request_id == calls[0]
    assert sleeps[0] >= 3.0 and sleeps[1] < 1.0  # Retry-After, then plain backoff

    def always_503(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "not_ready", "message": "starting"})

    with (
        HeroClient(
            "http://x", transport=httpx.MockTransport(always_503), retry=FAST, sleep=lambda s: None
        ) as c,
        pytest.raises(ServiceUnavailableError) as ei,
    ):
        c.score_group("j", **GROUP)
    assert ei.value.attempts == FAST.max_attempts and ei.value.message == "starting"

    with (
        HeroClient(f"http://127.0.0.1:{free_port()}", retry=FAST, sleep=lambda s: None) as c,
        pytest.raises(HeroConnectionError) as ec,
    ):
        c.health()
    assert ec.value.attempts == FAST.max_attempts
    assert issubclass(RateLimitError, hero_client.HeroAPIError)


# -- retries: a real server behind a proxy that drops connections and answers 429/503 -------
Fault = (
    str  # "ok" | "reset" (close before forwarding) | "drop" (forward, lose answer) | "429" | "503"
)


class FaultProxy:
    """HTTP/1.1 proxy on loopback; `plan(key, attempt)` picks each request's fault. The key
    is the JSON body's request_id (None: always forwarded)."""

    def __init__(self, upstream: str, plan: Callable[[str, int], Fault]) -> None:
        self.upstream = upstream
        self.plan = plan
        self.attempts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._up = httpx.AsyncClient(base_url=self.upstream, timeout=120)
        srv = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self._ready.set()
        async with srv:
            await self._stop.wait()
        await self._up.aclose()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = dict(h.split(": ", 1) for h in lines[1:] if h)
            length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
            body = await reader.readexactly(length) if length else b""
            key = None
            with contextlib.suppress(ValueError, AttributeError):
                key = json.loads(body).get("request_id")
            fault: Fault = "ok"
            if key is not None:
                self.attempts[key] += 1
                fault = self.plan(key, self.attempts[key])
            self.faults[fault] += 1
            if fault == "reset":
                writer.transport.abort()
                return
            if fault in ("429", "503"):
                msg = json.dumps({"error": "injected", "message": f"injected {fault}"}).encode()
                await self._reply(writer, int(fault), msg, {"Retry-After": "1"})
                return
            resp = await self._up.request(
                method,
                target,
                content=body,
                headers={"content-type": "application/json"} if body else None,
            )
            if fault == "drop":  # the server did the work; the client never hears of it
                writer.transport.abort()
                return
            extra = {k: v for k, v in resp.headers.items() if k.lower() == "retry-after"}
            await self._reply(writer, resp.status_code, resp.content, extra)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.transport.abort()

    @staticmethod
    async def _reply(
        writer: asyncio.StreamWriter, status: int, body: bytes, extra: dict[str, str]
    ) -> None:
        hdrs = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        hdrs.update(extra, Connection="close")
        head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        writer.close()


FAULTS: list[Fault] = ["drop", "429", "reset", "503"]


def two_faults(key: str, attempt: int) -> Fault:
    """Every logical call fails twice (kinds vary by call), then goes through."""
    if attempt > 2:
        return "ok"
    i = int(key[-4:], 16) if all(ch in "0123456789abcdef" for ch in key[-4:]) else len(key)
    return FAULTS[(i + attempt) % len(FAULTS)]


@pytest.fixture
def proxy(server: Server) -> Iterator[FaultProxy]:
    with FaultProxy(server.url, two_faults) as p:
        yield p


@pytest.mark.slow  # faults, a server process
def test_sync_client_survives_faults_without_double_counting(proxy: FaultProxy) -> None:
    j = job()
    n = 12
    with HeroClient(proxy.url, retry=FAST, sleep=lambda s: None) as c:
        outs = [c.score_group(j, **GROUP) for _ in range(n)]
        # any transient fault within the budget is invisible; every call was one group
        assert len({o.request_id for o in outs}) == n
        assert c.get_job(j).count == n  # no sigma folded twice
    assert set(proxy.faults) == {"ok", *FAULTS} and proxy.faults["drop"] > 0
    # a call whose first answer was dropped was replayed, not scored again
    assert any(o.replayed for o in outs)
    assert all(proxy.attempts[o.request_id or ""] == 3 for o in outs)


@pytest.mark.slow  # faults, a server process
async def test_async_barrier_survives_faults_without_double_counting(proxy: FaultProxy) -> None:
    j = job()
    groups, size = 6, 3
    async with AsyncHeroClient(proxy.url, retry=FAST) as c:

        async def one(g: int, i: int) -> tuple[int, int, float, int]:
            r = await c.score_sample(
                j,
                group_id=f"g{g}",
                group_size=size,
                prompt=f"q{g}",
                reference=str(g),
                response=f"\\boxed{{{g if i else g + 1}}}",
                verifier="string",
                deadline_s=120,
            )
            return g, r.position, r.reward, r.group_count

        outs = await asyncio.gather(*(one(g, i) for g in range(groups) for i in range(size)))
        assert (await c.get_job(j)).count == groups
    assert {o[3] for o in outs} == {size}  # nothing withdrawn, nothing counted twice
    by_group: dict[int, set[int]] = {}
    for g, pos, _, _ in outs:
        by_group.setdefault(g, set()).add(pos)
    assert all(v == set(range(size)) for v in by_group.values())
    assert proxy.faults["drop"] > 0
