"""`hero score`: local and --url give the server's results; resume; input errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hero_service.tools.jsonl import load_done, read_rows
from hero_service.tools.synth import groups
from tests.conftest import start_server

FAST = ("--verifier", "string", "--verifier-workers", "1", "--torch-threads", "1")
COMPARED = (
    "rewards",
    "verifier",
    "verifier_status",
    "rm_scores",
    "weight",
    "sigma_bar",
    "collapse",
)


def hero(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hero_service.tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def lines(p: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


def write(p: Path, rows: list[dict[str, Any]]) -> Path:
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("offline")
    rows = list(groups(12, group_size=4, seed=3))
    for r in rows[:3]:
        del r["group_id"]  # lines without a group id are keyed by line number
    rows[5]["job_id"] = "other-job"
    return write(d / "rollouts.jsonl", rows)


@pytest.fixture(scope="module")
def local_scored(rollouts: Path) -> Path:
    out = rollouts.with_name("local.jsonl")
    p = hero("score", str(rollouts), "-o", str(out), "--quiet", *FAST)
    assert p.returncode == 0, p.stderr
    assert "scored 12 groups" in p.stderr
    return out


def assert_same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x["job_id"], x["group_id"]) == (y["job_id"], y["group_id"])
        for k in COMPARED:
            assert x[k] == pytest.approx(y[k], rel=1e-6, abs=1e-9), (x["group_id"], k)


@pytest.mark.slow  # `hero score` subprocesses
def test_local_output_format(rollouts: Path, local_scored: Path) -> None:
    src, out = lines(rollouts), lines(local_scored)
    assert [o["group_id"] for o in out[:3]] == ["line-1", "line-2", "line-3"]
    assert out[5]["job_id"] == "other-job" and out[0]["job_id"] == "offline"
    for s, o in zip(src, out, strict=True):
        assert o["responses"] == s["responses"] and o["labels"] == s["labels"]
        assert len(o["rewards"]) == len(s["responses"])
        assert o["collapse"] in ("all_correct", "all_incorrect", "mixed")
        assert "timings" not in o and "replayed" not in o
    # the running sigma_bar evolves in file order: the first group of a job sees its own sigma
    assert out[0]["sigma_bar"] == pytest.approx(out[0]["sigma"])
    assert out[5]["sigma_bar"] == pytest.approx(out[5]["sigma"])


@pytest.mark.slow  # `hero score` subprocesses
def test_same_results_as_the_server(tmp_path: Path, rollouts: Path, local_scored: Path) -> None:
    srv = start_server(tmp_path, *FAST)
    try:
        out = tmp_path / "remote.jsonl"
        p = hero("score", str(rollouts), "-o", str(out), "--url", srv.url, "--quiet")
        assert p.returncode == 0, p.stderr
        assert_same(lines(out), lines(local_scored))
        # the server's job state is what the local run left in its state file
        import httpx

        state = httpx.get(f"{srv.url}/jobs/offline", timeout=10).json()
        assert state["count"] == 11
        # a second run against the same server resumes: nothing left to score
        again = hero("score", str(rollouts), "-o", str(out), "--url", srv.url, "--quiet")
        assert again.returncode == 0 and "skipped 12" in again.stderr
    finally:
        srv.stop()


@pytest.mark.slow  # `hero score` subprocesses
def test_resume_after_a_crash(tmp_path: Path, rollouts: Path, local_scored: Path) -> None:
    # a run that died after 5 groups, mid-way through writing the 6th line
    out = tmp_path / "partial.jsonl"
    full = local_scored.read_text().splitlines(keepends=True)
    out.write_text("".join(full[:5]) + full[5][:40])
    state = local_scored.with_name(local_scored.name + ".state.sqlite3")
    assert state.is_file()
    # its state file saw all 12 groups (the crash came after scoring): replays, no refold
    import shutil

    shutil.copy(state, tmp_path / "partial.jsonl.state.sqlite3")
    p = hero("score", str(rollouts), "-o", str(out), "--quiet", *FAST)
    assert p.returncode == 0, p.stderr
    assert "skipped 5" in p.stderr and "scored 7" in p.stderr
    assert_same(lines(out), lines(local_scored))


@pytest.mark.slow  # `hero score` subprocesses
def test_resume_refuses_a_changed_input(tmp_path: Path, rollouts: Path, local_scored: Path) -> None:
    rows = lines(rollouts)
    rows[1]["responses"][0] = "changed \\boxed{1}"
    changed = write(tmp_path / "changed.jsonl", rows)
    out = tmp_path / "out.jsonl"
    out.write_text(local_scored.read_text())
    p = hero("score", str(changed), "-o", str(out), "--quiet", *FAST)
    assert p.returncode == 1
    assert "changed.jsonl:2:" in p.stderr and "--overwrite" in p.stderr


@pytest.mark.slow  # `hero score` subprocesses
def test_input_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"reference": "1", "responses": ["\\\\boxed{1}"]}\n{"responses": ["x"]}\n')
    with pytest.raises(Exception, match=r"bad.jsonl:2: missing field 'reference'"):
        list(read_rows(bad, "j"))
    bad.write_text("{not json\n")
    with pytest.raises(Exception, match=r"bad.jsonl:1: not valid JSON"):
        list(read_rows(bad, "j"))
    p = hero("score", str(bad), "-o", str(tmp_path / "o.jsonl"), "--url", "http://127.0.0.1:9")
    assert p.returncode == 1 and "bad.jsonl:1" in p.stderr


def test_load_done_cuts_a_torn_line(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text('{"job_id": "j", "group_id": "a", "input_digest": "d"}\n{"job_id": "j", "gr')
    assert load_done(out) == {("j", "a"): "d"}
    assert out.read_text().endswith("}\n")
