"""The remote RM backend against a real HTTP server on loopback (no vLLM needed).

`FakeRMServer` speaks vLLM's `/classify` and `/pooling` and TEI's `/predict`, backed by the
tiny transformers model itself (unbatched, score at the last token), and applies a sigmoid
unless told not to, as the real servers do. So these tests check the wire format (ids,
BOS, `use_activation`/`raw_scores`, `add_special_tokens`), parity with the `hf` backend,
retries, timeouts and error mapping in the default CI. The same client against a real
vLLM server: tests/test_rm_vllm.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from conftest import free_port, start_server
from tiny_models import cached_tiny_rm, math_lines
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hero_service.config import Settings
from hero_service.errors import BackendError, Overloaded
from hero_service.metrics import Metrics
from hero_service.rm import build_scorer
from hero_service.rm.base import RMInput
from hero_service.rm.hf import HFRewardModel
from hero_service.rm.remote import RemoteConfig, RemoteScorer
from hero_service.rm.tokenize import ChatTokenizer

TOL = 1e-4
MAX_LEN = 48  # small, so one test pair needs truncation


# --- a loopback server that speaks vLLM and TEI ------------------------------------


@dataclass
class Fault:
    status: int = 0  # answer with this HTTP status instead
    retry_after: str | None = None
    sleep: float = 0.0  # then answer normally
    drop: bool = False  # close the connection without answering
    garbage: bool = False  # 200 with a body that is not the protocol


class FakeRMServer:
    def __init__(self, path: str) -> None:
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=True
        ).eval()
        self.tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.faults: deque[Fault] = deque()
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.delay = 0.0
        self.inflight = 0
        self.max_inflight = 0
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def reset(self) -> None:
        deadline = time.monotonic() + 10
        while self.inflight and time.monotonic() < deadline:  # a past test's slow request
            time.sleep(0.02)
        self.faults.clear()
        self.bodies.clear()
        self.delay = 0.0
        self.max_inflight = 0

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def raw_score(self, ids: list[int]) -> float:
        with torch.inference_mode():
            hidden = self.model.model(input_ids=torch.tensor([ids])).last_hidden_state
            return float(self.model.score(hidden)[0, -1, 0])

    def token_scores(self, ids: list[int]) -> list[float]:
        with torch.inference_mode():
            hidden = self.model.model(input_ids=torch.tensor([ids])).last_hidden_state
            return [float(v) for v in self.model.score(hidden)[0, :, 0]]

    def _ids(self, x: Any, add_special_tokens: bool) -> list[int]:
        if isinstance(x, str):
            return list(self.tok(x, add_special_tokens=add_special_tokens)["input_ids"])
        if isinstance(x, list) and len(x) == 2 and all(isinstance(t, str) for t in x):
            return list(self.tok(x[0], x[1], add_special_tokens=add_special_tokens)["input_ids"])
        if isinstance(x, list) and all(isinstance(t, int) for t in x):
            return list(x)
        raise ValueError(f"bad input {x!r:.80}")

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path in ("/classify", "/pooling"):
            inputs = body["input"]
            if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
                inputs = [inputs]
            kinds = {type(x) for x in inputs}
            if len(kinds) != 1:
                return 400, {"error": "mixed input types"}
            task = body.get("task") or "classify"
            if path == "/pooling" and task not in ("classify", "token_classify"):
                return 400, {"error": f"task {task}"}
            if path == "/pooling" and task == "token_classify":  # per-token rows [[x], ...]
                rows = [
                    self.token_scores(self._ids(x, body.get("add_special_tokens", True)))
                    for x in inputs
                ]
                data = [
                    {"index": i, "object": "pooling", "data": [[v] for v in r]}
                    for i, r in enumerate(rows)
                ]
                return 200, {"object": "list", "data": data, "usage": {}}
            activate = body.get("use_activation", True) is not False  # vLLM: sigmoid default
            scores = []
            for x in inputs:
                s = self.raw_score(self._ids(x, body.get("add_special_tokens", True)))
                scores.append(1 / (1 + math.exp(-s)) if activate else s)
            if path == "/classify":
                data = [
                    {"index": i, "label": "LABEL_0", "probs": [s], "num_classes": 1}
                    for i, s in enumerate(scores)
                ]
            else:
                data = [
                    {"index": i, "object": "pooling", "data": [s]} for i, s in enumerate(scores)
                ]
            random.Random(len(data)).shuffle(data)  # clients must use "index"
            return 200, {"object": "list", "data": data, "usage": {}}
        if path == "/predict":
            inputs = body["inputs"]
            raw = body.get("raw_scores", False) is True
            out = []
            for x in inputs:  # TEI always adds the tokenizer's special tokens
                s = self.raw_score(self._ids(x, True))
                out.append([{"score": s if raw else 1 / (1 + math.exp(-s)), "label": "LABEL_0"}])
            return 200, out
        return 404, {"error": "not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the pooled client expects

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(n))
                with srv._lock:
                    srv.bodies.append((self.path, body))
                    fault = srv.faults.popleft() if srv.faults else Fault()
                    srv.inflight += 1
                    srv.max_inflight = max(srv.max_inflight, srv.inflight)
                try:
                    time.sleep(srv.delay + fault.sleep)
                    if fault.drop:
                        self.close_connection = True
                        return
                    if fault.status:
                        code, data = fault.status, {"error": "injected"}
                    elif fault.garbage:
                        code, data = 200, {"unexpected": True}
                    else:
                        code, data = srv.answer(self.path, body)
                finally:
                    with srv._lock:  # before answering: the client may reuse its slot at once
                        srv.inflight -= 1
                raw = json.dumps(data).encode()
                try:
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw)))
                    if fault.retry_after is not None:
                        self.send_header("retry-after", fault.retry_after)
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (timeout tests)

        return Handler


# --- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def rm_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-rm-remote")


@pytest.fixture(scope="module")
def chat_dir(rm_base: Path) -> str:
    return cached_tiny_rm(rm_base, "qwen2")


@pytest.fixture(scope="module")
def plain_dir(rm_base: Path) -> str:
    return cached_tiny_rm(rm_base, "llama", chat_template=False)


_SERVERS: dict[str, FakeRMServer] = {}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeRMServer]]:
    yield _SERVERS
    for s in _SERVERS.values():
        s.stop()
    _SERVERS.clear()


def fake(servers: dict[str, FakeRMServer], path: str) -> FakeRMServer:
    if path not in servers:
        servers[path] = FakeRMServer(path)
    srv = servers[path]
    srv.reset()
    return srv


@pytest.fixture
def chat_srv(servers: dict[str, FakeRMServer], chat_dir: str) -> FakeRMServer:
    return fake(servers, chat_dir)


def scorer_for(
    url: str, path: str | None, metrics: Metrics | None = None, **over: Any
) -> RemoteScorer:
    cfg = RemoteConfig(url=url, backoff_s=0.01, backoff_max_s=0.05, **over)
    tok = ChatTokenizer(path, MAX_LEN, cfg.truncation_side) if path else None
    return RemoteScorer(cfg, metrics or Metrics(), tok)


def pairs(n: int, seed: int = 1) -> list[RMInput]:
    rng = random.Random(seed)
    lines = math_lines(200, seed + 100)
    return [
        RMInput(rng.choice(lines).split("=")[0], " ".join(rng.sample(lines, rng.randint(0, 1))))
        for _ in range(n)
    ]


def special_pairs(tok: Any) -> list[RMInput]:
    """A response ending with the pad token, and one long enough to be truncated."""
    return [
        RMInput("Compute 3 + 4 = ?", " x = 7. \\boxed{7}" + tok.pad_token),
        RMInput("Compute 12 + 30", " ".join(math_lines(6, 7)) + " \\boxed{42}"),
    ]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def score_with(scorer: RemoteScorer, items: list[RMInput]) -> list[float]:
    scorer.start()
    try:
        return await scorer.score(items)
    finally:
        await scorer.close()


def error_count(m: Metrics, kind: str) -> float:
    v = m.registry.get_sample_value("hero_rm_errors_total", {"kind": kind})
    return v or 0.0


# --- the tokenization is hf.py's ---------------------------------------------------


@pytest.mark.parametrize("side", ["left", "right"])
def test_chat_tokenizer_is_hf_tokenization(chat_dir: str, plain_dir: str, side: str) -> None:
    for path in (chat_dir, plain_dir):
        hf = HFRewardModel(path, max_length=MAX_LEN, truncation_side=side)
        tok = ChatTokenizer(path, MAX_LEN, side)
        items = [*pairs(8), *special_pairs(hf.tokenizer)]
        for x in items:
            a, b = hf.prepare(x), tok.prepare(x)
            assert a.payload == b.payload and a.truncated == b.truncated
        assert any(tok.prepare(x).truncated for x in items)
        assert tok.max_length == hf.max_length
        assert isinstance(hf.chat, ChatTokenizer)  # held, not inherited
    assert not hasattr(tok, "forward")  # a tokenizer, not a model


# --- parity with hf over the wire ----------------------------------------------------


@pytest.mark.parametrize(
    ("api", "send"),
    [("vllm_classify", "ids"), ("vllm_classify", "text"), ("vllm_pooling", "ids"), ("tei", "ids")],
)
@pytest.mark.parametrize("which", ["chat", "plain"])
def test_parity_with_hf(
    servers: dict[str, FakeRMServer],
    chat_dir: str,
    plain_dir: str,
    api: str,
    send: str,
    which: str,
) -> None:
    path = chat_dir if which == "chat" else plain_dir
    srv = fake(servers, path)
    hf = HFRewardModel(path, max_length=MAX_LEN)
    pad_pair, long_pair = special_pairs(hf.tokenizer)
    items = [*pairs(10), pad_pair]
    if api != "tei":  # TEI re-tokenizes text: a truncated cut is not exact (see docs)
        items.append(long_pair)
    prepared = [hf.prepare(x) for x in items]
    assert api == "tei" or prepared[-1].truncated
    expected = hf.forward(prepared)

    got = run(score_with(scorer_for(srv.url, path, api=api, send=send, max_batch=5), items))
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, abs=TOL)

    bodies = [b for _, b in srv.bodies]
    assert len(bodies) == math.ceil(len(items) / 5)
    bos = hf.tokenizer.bos_token_id
    if api == "tei":
        assert all(b["raw_scores"] is True for b in bodies)
        texts = [t for b in bodies for t in b["inputs"]]
        assert not any(t.startswith(hf.tokenizer.bos_token) for t in texts)  # TEI adds it
        return
    assert all(b["use_activation"] is False and b["add_special_tokens"] is False for b in bodies)
    if api == "vllm_pooling":
        assert all(b["task"] == "classify" for b in bodies)
    sent = [x for b in bodies for x in b["input"]]  # requests run concurrently: any order
    if send == "ids":
        assert sorted(sent) == sorted(list(p.payload) for p in prepared)
        assert all(s[0] == bos and s.count(bos) == 1 for s in sent)  # one BOS, ours
    else:
        assert isinstance(sent[0], str) and sent[0].startswith(hf.tokenizer.bos_token)
        assert all(isinstance(s, str | list) for s in sent)


def test_pooling_token_classify_reads_the_last_token(chat_srv: FakeRMServer, chat_dir: str) -> None:
    """Token reward models (Qwen2ForRewardModel): /pooling token_classify, last row."""
    items = pairs(4)
    s = scorer_for(chat_srv.url, chat_dir, api="vllm_pooling", pooling_task="token_classify")
    got = run(score_with(s, items))
    assert chat_srv.bodies[0][1]["task"] == "token_classify"
    hf = HFRewardModel(chat_dir, max_length=MAX_LEN)
    assert got == pytest.approx(hf.forward([hf.prepare(x) for x in items]), abs=TOL)


def test_activation_default_would_be_a_sigmoid(chat_srv: FakeRMServer, chat_dir: str) -> None:
    """The fake server is strict: without use_activation=false the scores are squashed."""
    x = pairs(1)[0]
    raw = run(score_with(scorer_for(chat_srv.url, chat_dir), [x]))[0]
    ids = list(ChatTokenizer(chat_dir, MAX_LEN).prepare(x).payload)
    r = httpx.post(chat_srv.url + "/classify", json={"input": [ids]})
    squashed = r.json()["data"][0]["probs"][0]
    assert squashed == pytest.approx(1 / (1 + math.exp(-raw)), abs=1e-6)
    assert abs(squashed - raw) > 1e-3


def test_tei_pairs_without_local_tokenizer(chat_srv: FakeRMServer) -> None:
    items = pairs(3)
    got = run(score_with(scorer_for(chat_srv.url, None, api="tei"), items))
    assert chat_srv.bodies[0][1]["inputs"] == [[x.prompt, x.response] for x in items]
    for x, g in zip(items, got, strict=True):
        ids = list(chat_srv.tok(x.prompt, x.response)["input_ids"])
        assert g == pytest.approx(chat_srv.raw_score(ids), abs=TOL)


# --- retries, timeouts, error mapping ----------------------------------------------


@pytest.mark.slow  # faults
def test_503_then_success_is_retried(chat_srv: FakeRMServer, chat_dir: str) -> None:
    chat_srv.faults.extend([Fault(status=503), Fault(status=503, retry_after="0")])
    m = Metrics()
    s = scorer_for(chat_srv.url, chat_dir, m, retries=3)
    items = pairs(3)
    got = run(score_with(s, items))
    assert s.requests == 3 and s.retries == 2
    assert error_count(m, "remote_503") == 2
    chat_srv.reset()
    again = run(score_with(scorer_for(chat_srv.url, chat_dir), items))
    assert got == pytest.approx(again, abs=TOL)


@pytest.mark.slow  # faults
def test_dropped_connection_is_retried(chat_srv: FakeRMServer, chat_dir: str) -> None:
    chat_srv.faults.append(Fault(drop=True))
    s = scorer_for(chat_srv.url, chat_dir, retries=2)
    assert len(run(score_with(s, pairs(2)))) == 2
    assert s.retries == 1


@pytest.mark.slow  # faults
def test_429_exhausted_is_overloaded(chat_srv: FakeRMServer, chat_dir: str) -> None:
    chat_srv.faults.extend([Fault(status=429, retry_after="0.01")] * 3)
    s = scorer_for(chat_srv.url, chat_dir, retries=2)
    with pytest.raises(Overloaded) as e:
        run(score_with(s, pairs(1)))
    assert e.value.status == 429 and s.requests == 3


@pytest.mark.slow  # faults
def test_503_exhausted_is_backend_error(chat_srv: FakeRMServer, chat_dir: str) -> None:
    chat_srv.faults.extend([Fault(status=503)] * 2)
    s = scorer_for(chat_srv.url, chat_dir, retries=1)
    with pytest.raises(BackendError, match="after 2 attempts") as e:
        run(score_with(s, pairs(1)))
    assert e.value.status == 502


@pytest.mark.slow  # faults
def test_timeout_is_backend_error_not_retried(chat_srv: FakeRMServer, chat_dir: str) -> None:
    chat_srv.faults.append(Fault(sleep=1.5))
    m = Metrics()
    s = scorer_for(chat_srv.url, chat_dir, m, timeout_s=0.3, retries=3)
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="timed out"):
        run(score_with(s, pairs(1)))
    assert time.perf_counter() - t0 < 1.4
    assert s.requests == 1 and error_count(m, "remote_timeout") == 1


def test_connection_refused_is_backend_error() -> None:
    m = Metrics()
    s = scorer_for(f"http://127.0.0.1:{free_port()}", None, m, api="tei", retries=2)
    with pytest.raises(BackendError, match="unavailable after 3 attempts"):
        run(score_with(s, pairs(1)))
    assert error_count(m, "remote_connect") == 3


@pytest.mark.slow  # faults
@pytest.mark.parametrize("fault", [Fault(status=500), Fault(status=400), Fault(garbage=True)])
def test_other_failures_are_backend_errors(
    chat_srv: FakeRMServer, chat_dir: str, fault: Fault
) -> None:
    chat_srv.faults.append(fault)
    s = scorer_for(chat_srv.url, chat_dir, retries=3)
    with pytest.raises(BackendError):
        run(score_with(s, pairs(2)))
    assert s.requests == 1  # not retried


# --- pooling, concurrency bound, queue bound ---------------------------------------


def test_bounded_concurrency_and_chunking(chat_srv: FakeRMServer, chat_dir: str) -> None:
    chat_srv.delay = 0.05
    m = Metrics()
    s = scorer_for(chat_srv.url, chat_dir, m, max_concurrency=2, max_batch=3)

    async def go() -> list[list[float]]:
        s.start()
        try:
            return list(await asyncio.gather(*(s.score(pairs(4, seed=i)) for i in range(5))))
        finally:
            await s.close()

    out = run(go())
    assert [len(o) for o in out] == [4] * 5
    assert len(chat_srv.bodies) == 5 * 2  # 4 items per call, 3 per request -> 2 requests
    assert chat_srv.max_inflight <= 2
    assert m.registry.get_sample_value("hero_rm_batch_size_count") == 10


@pytest.mark.slow  # faults
def test_queue_bound_is_overloaded(chat_srv: FakeRMServer, chat_dir: str) -> None:
    chat_srv.delay = 0.2
    s = scorer_for(chat_srv.url, chat_dir, max_queue=4)

    async def go() -> None:
        s.start()
        try:
            first = asyncio.create_task(s.score(pairs(3)))
            await asyncio.sleep(0.05)
            with pytest.raises(Overloaded):
                await s.score(pairs(2))
            assert len(await first) == 3
        finally:
            await s.close()

    run(go())


# --- configuration and the service end to end ---------------------------------------


def test_build_scorer_and_config_errors(chat_dir: str, tmp_path: Path) -> None:
    s = build_scorer(
        Settings(rm_backend="remote", rm_remote_url="http://127.0.0.1:9", rm_model=chat_dir),
        Metrics(),
    )
    assert isinstance(s, RemoteScorer) and s.name == "remote:vllm_classify"
    assert s.tokenizer is not None and s.tokenizer.has_template
    with pytest.raises(ValueError, match="rm_remote_url"):
        build_scorer(Settings(rm_backend="remote", rm_model=chat_dir), Metrics())
    with pytest.raises(ValueError, match="tokenizer"):
        build_scorer(Settings(rm_backend="remote", rm_remote_url="http://x"), Metrics())
    with pytest.raises(ValueError, match="not an existing local directory"):
        build_scorer(
            Settings(
                rm_backend="remote", rm_remote_url="http://x", rm_tokenizer=str(tmp_path / "n")
            ),
            Metrics(),
        )
    tei = build_scorer(
        Settings(rm_backend="remote", rm_remote_url="http://x", rm_remote_api="tei"), Metrics()
    )
    assert isinstance(tei, RemoteScorer) and tei.tokenizer is None


@pytest.mark.slow  # a server process
def test_service_rm_score_through_remote(
    chat_srv: FakeRMServer, chat_dir: str, tmp_path: Path
) -> None:
    srv = start_server(
        tmp_path,
        "--rm-backend",
        "remote",
        "--rm-remote-url",
        chat_srv.url,
        "--rm-model",
        chat_dir,
        "--rm-max-length",
        str(MAX_LEN),
        "--verifier-workers",
        "1",
    )
    try:
        items = pairs(4)
        r = httpx.post(
            srv.url + "/rm_score",
            json={"prompt": items[0].prompt, "responses": [x.response for x in items]},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["backend"] == "remote:vllm_classify"
        hf = HFRewardModel(chat_dir, max_length=MAX_LEN)
        same_prompt = [RMInput(items[0].prompt, x.response) for x in items]
        expected = hf.forward([hf.prepare(x) for x in same_prompt])
        assert body["rm_scores"] == pytest.approx(expected, abs=TOL)
        assert body["n_tokens"] == [hf.prepare(x).n_tokens for x in same_prompt]
        assert body["max_length"] == MAX_LEN and body["truncation_side"] == "left"
        assert body["truncated"] == [hf.prepare(x).truncated for x in same_prompt]
        chat_srv.faults.extend([Fault(status=503)] * 10)
        r = httpx.post(srv.url + "/rm_score", json={"prompt": "p", "responses": ["r"]}, timeout=60)
        assert r.status_code == 502
        metrics = httpx.get(srv.url + "/metrics").text
        assert 'hero_rm_errors_total{kind="remote_503"}' in metrics
    finally:
        srv.stop()


def test_server_added_specials_are_stripped_for_tei() -> None:
    """A BERT-family tokenizer (TEI's use case): [CLS] .. [SEP] are left to the server."""
    from hero_service.rm.embedded import model_path
    from hero_service.rm.tokenize import _split_specials

    tok = ChatTokenizer(model_path(), 256)
    assert not tok.has_template and tok.bos_id is None
    p = tok.prepare(RMInput("Compute 3 + 4.", " So x = 7, the answer is 7."))
    text = tok.text_for_server_specials(p.payload)
    assert "[CLS]" not in text and "[SEP]" not in text
    assert list(tok.tokenizer(text)["input_ids"]) == list(p.payload)  # what TEI will see
    assert _split_specials([1], 1, 2) == ([1], [])
    assert _split_specials([2], 1, 2) == ([], [2])
    assert _split_specials([101, 102], None, None) == ([101], [102])
    assert _split_specials([], 1, 2) == ([], [])
