"""The service without its optional extras: `redis`, `vllm`, `trl`, `locust` are blocked in a
fresh interpreter, and the app, the CLI and every default-path module still import and build.
(A module-level `import redis` once broke every venv without the extra.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

EXTRAS = ("redis", "vllm", "trl", "accelerate", "datasets", "locust")

_BLOCK = f"""
import importlib.machinery, sys
# Hide the extras from the path finder, as if they were not installed: importlib.util.find_spec
# answers None (how transformers probes for accelerate) and an import raises
# ModuleNotFoundError.
_find = importlib.machinery.PathFinder.find_spec
def _hidden(cls, name, path=None, target=None):
    if name.split(".")[0] in {EXTRAS!r}:
        return None
    return _find(name, path, target)
importlib.machinery.PathFinder.find_spec = classmethod(_hidden)
"""


def _run(body: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    code = _BLOCK + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_the_block_works() -> None:
    r = _run("import redis")
    assert r.returncode != 0 and "No module named 'redis'" in r.stderr


def test_app_and_cli_import_without_extras() -> None:
    r = _run(
        """
        from hero_service.api.app import create_app
        from hero_service.config import Settings
        from hero_service.tools import cli
        app = create_app(Settings(state_path=":memory:"))
        paths = set(app.openapi()["paths"])
        assert "/score_group" in paths and "/score_sample" in paths, paths
        print("ok")
        """
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "ok"


@pytest.mark.slow
def test_one_group_scored_without_extras() -> None:
    """The quick start's path end to end (lifespan: pool, embedded scorer, SQLite state)."""
    r = _run(
        """
        from fastapi.testclient import TestClient
        from hero_service.api.app import create_app
        from hero_service.config import Settings
        app = create_app(Settings(state_path=":memory:", verifier_workers=1, torch_threads=1))
        with TestClient(app) as c:
            body = {"job_id": "x", "prompt": "1+1?", "reference": "2",
                    "responses": ["\\\\boxed{2}", "\\\\boxed{3}"]}
            r = c.post("/score_group", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["verifier"] == [1, 0], r.text
        print("ok")
        """,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "ok"
