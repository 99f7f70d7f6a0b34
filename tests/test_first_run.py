"""A new user's first hour (issue 15): errors that name the cause, `hero serve --help`,
a taken port, GET /config, `hero score` checking its input before start-up, the report
header and its count axes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest

from hero_client.schema import ServiceConfig
from hero_service.config import Settings
from hero_service.tools.synth import groups
from tests.conftest import Server
from tests.inproc import InProcess

EMBEDDED = {
    "rm_backend": "embedded",
    "rm_model": "all-MiniLM-L6-v2",
    "verifier": "cascade",
    "shaping_preset": "paper_main",
}
GROUP = {"job_id": "first-run", "prompt": "1+1?", "reference": "2", "responses": ["\\boxed{2}"]}


def hero(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hero_service.tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "400"},
    )


def write_rows(p: Path, rows: list[dict[str, Any]]) -> Path:
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


# -- errors that name the cause -------------------------------------------------------------


@pytest.mark.parametrize("ctype", [None, "application/x-www-form-urlencoded", "text/plain"])
@pytest.mark.parametrize("path", ["/score_group", "/get_reward?job_id=j&group_size=1"])
def test_a_body_without_the_json_content_type_is_415(
    http: httpx.Client, ctype: str | None, path: str
) -> None:
    headers = {} if ctype is None else {"content-type": ctype}
    r = http.post(path, content=json.dumps(GROUP), headers=headers)
    assert r.status_code == 415, r.text
    body = r.json()
    assert body["error"] == "unsupported_media_type" and body["field"] is None
    assert body["message"].startswith("expected Content-Type: application/json")


def test_the_json_content_type_with_a_charset_is_accepted(http: httpx.Client) -> None:
    r = http.post(
        "/score_group",
        content=json.dumps(GROUP),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200, r.text


def test_a_json_syntax_error_names_its_line_and_column(http: httpx.Client) -> None:
    body = '{\n  "job_id": "x",\n  "prompt": "p" "reference": "2",\n  "responses": ["2"]\n}'
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(body)
    r = http.post("/score_group", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    err = r.json()
    assert set(err) >= {"error", "message", "field"} and err["error"] == "validation_error"
    assert f"at line {want.value.lineno} column {want.value.colno}" in err["message"]
    assert want.value.msg in err["message"]


def test_a_json_array_or_empty_body_says_what_is_expected(http: httpx.Client) -> None:
    r = http.post("/score_group", json=[GROUP])
    assert r.status_code == 422
    assert r.json()["message"] == "request body must be a JSON object"
    r = http.post("/score_group", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["message"] == "request body is empty: expected a JSON object"


# -- GET /config and offline docs assets ----------------------------------------------------


def test_config_names_the_rm_verifier_and_preset(http: httpx.Client, app: InProcess) -> None:
    r = http.get("/config")
    assert r.status_code == 200
    cfg = ServiceConfig.model_validate(r.json())
    assert cfg.model_dump(include=set(EMBEDDED)) == EMBEDDED
    assert cfg.shaping.w_min == 0.5 and cfg.shaping.w_max == 2.0  # paper_main
    with app.hero() as c:
        assert c.config() == cfg
    assert "/config" in http.get("/openapi.json").json()["paths"]


async def test_docs_and_their_assets_are_open_when_auth_is_on() -> None:
    from hero_service.api.app import create_app

    app = create_app(Settings(auth_tokens=["s3cret"], state_path=":memory:"))
    # no lifespan: these routes need no model; auth runs in the middleware either way
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        for open_path in ("/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js"):
            assert (await c.get(open_path)).status_code == 200, open_path
        assert (await c.get("/config")).status_code == 401
        assert (await c.get("/docs/assets/x.js")).status_code == 401


# -- hero serve ------------------------------------------------------------------------------


@pytest.mark.slow  # `hero` subprocesses
def test_serve_help_shows_every_default_and_choice() -> None:
    from hero_service.tools.flags import default_text as _default_text

    p = hero("serve", "--help", timeout=60)
    assert p.returncode == 0, p.stderr
    out = " ".join(p.stdout.split())  # argparse wraps lines
    assert "PydanticUndefined" not in out
    for name, f in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        assert flag in out
        assert f"[env HERO_{name.upper()}; default {_default_text(f)}" in out, name
    assert "default /health,/ready,/metrics,/docs,/redoc,/openapi.json" in out
    assert "default empty" in out  # auth_tokens
    for name in ("verifier", "shaping_preset", "rm_backend", "sigma_mean", "advantage"):
        values = get_args(Settings.model_fields[name].annotation)
        assert len(values) > 1
        assert "one of " + ", ".join(values) in out, name
    bad = hero("serve", "--verifier", "sympy", timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'sympy'" in bad.stderr


@pytest.mark.slow  # `hero` subprocesses
def test_serve_fails_fast_when_the_port_is_taken(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = hero("serve", "--port", str(port), "--state-path", str(state), timeout=120)
    assert p.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in p.stderr and "--port" in p.stderr
    assert not state.exists()  # the lifespan (state store, verifier pool, RM) never started


# -- hero score and hero report ----------------------------------------------------------------


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("first-run")
    src = write_rows(d / "in.jsonl", list(groups(3, group_size=4, seed=3)))
    out = d / "out.jsonl"
    p = hero(
        "score", str(src), "-o", str(out), "--quiet", "--verifier-workers", "1",
        "--torch-threads", "1",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return out, p.stderr


@pytest.mark.slow  # `hero` subprocesses
def test_score_prints_no_dependency_noise(local_run: tuple[Path, str]) -> None:
    _, stderr = local_run
    assert "deprecated" not in stderr.lower()
    assert "Loading weights" not in stderr
    assert stderr.strip().startswith("scored 3 groups"), stderr


@pytest.mark.slow  # `hero` subprocesses
def test_score_records_what_scored_each_group(local_run: tuple[Path, str]) -> None:
    out, _ = local_run
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["scored_by"] for r in rows] == [EMBEDDED] * 3


@pytest.mark.slow  # `hero` subprocesses
def test_score_local_records_its_shaping_flags(tmp_path: Path) -> None:
    src = write_rows(tmp_path / "in.jsonl", list(groups(1, group_size=2, seed=5)))
    out = tmp_path / "out.jsonl"
    p = hero(
        "score", str(src), "-o", str(out), "--quiet", "--verifier", "string",
        "--verifier-workers", "1", "--torch-threads", "1", "--w-max", "3",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["scored_by"] == {
        **EMBEDDED,
        "verifier": "string",
        "shaping_overrides": {"w_max": 3.0},
    }


@pytest.mark.slow  # `hero` subprocesses
def test_score_checks_the_input_before_start_up(tmp_path: Path) -> None:
    rows = list(groups(3, group_size=2, seed=1))
    src = write_rows(tmp_path / "in.jsonl", rows)
    with src.open("a") as f:
        f.write('{"reference": "1", "responses": "not a list"}\n')
    out = tmp_path / "out.jsonl"
    p = hero("score", str(src), "-o", str(out), "--quiet", timeout=120)
    assert p.returncode == 1
    assert "in.jsonl:4: field 'responses' must be a list" in p.stderr
    assert not out.with_name(out.name + ".state.sqlite3").exists()  # no start-up


@pytest.mark.slow  # `hero` subprocesses
def test_score_skips_start_up_when_nothing_is_left(server: Server, tmp_path: Path) -> None:
    src = write_rows(tmp_path / "in.jsonl", list(groups(2, group_size=2, seed=2)))
    out = tmp_path / "out.jsonl"
    first = hero("score", str(src), "-o", str(out), "--url", server.url, "--quiet")
    assert first.returncode == 0, first.stderr
    # --url mode records the server's /config, with this run's per-request overrides
    again = hero("score", str(src), "-o", str(out), "--quiet", timeout=120)  # local mode
    assert again.returncode == 0, again.stderr
    assert "nothing left to score: skipped 2" in again.stderr
    assert not out.with_name(out.name + ".state.sqlite3").exists()  # no start-up
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0]["scored_by"] == EMBEDDED


@pytest.mark.slow  # `hero` subprocesses
def test_score_with_url_records_the_overrides(server: Server, tmp_path: Path) -> None:
    src = write_rows(tmp_path / "in.jsonl", list(groups(1, group_size=2, seed=4)))
    out = tmp_path / "out.jsonl"
    p = hero(
        "score", str(src), "-o", str(out), "--url", server.url, "--quiet", "--job-id", "ovr",
        "--verifier", "string", "--shaping-preset", "mixed", "--alpha", "0.15",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["scored_by"] == {
        **EMBEDDED,
        "verifier": "string",
        "shaping_preset": "mixed",
        "shaping_overrides": {"alpha": 0.15},
    }


@pytest.mark.slow  # `hero` subprocesses
def test_report_header_names_the_scorer(local_run: tuple[Path, str], tmp_path: Path) -> None:
    from hero_service.tools.report import build

    out, _ = local_run
    html = tmp_path / "r.html"
    build(out, html)
    text = html.read_text()
    assert "Scored by: RM embedded (all-MiniLM-L6-v2), preset paper_main, verifier cascade" in text
    # an output of an older hero score says so instead of guessing
    old = tmp_path / "old.jsonl"
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    write_rows(old, [{k: v for k, v in r.items() if k != "scored_by"} for r in rows])
    build(old, html)
    assert "Scored by: not recorded" in html.read_text()


def test_report_count_axes_have_integer_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    from hero_service.tools import plots as report_plots
    from hero_service.tools.analysis import analyse

    recs = []
    for i in range(3):  # few groups: a default axis would tick at 0.5, 1.5, ...
        recs.append(
            {
                "verifier": [1, 0, 1, 0],
                "rm_scores": [1.0 + i, 2.0, 0.5, 3.0 - i],
                "rewards": [1.1, 0.1, 0.9, -0.1],
                "weight": 0.8 + 0.3 * i,
                "sigma": 1.0 + i,
                "sigma_bar": 1.5,
                "collapse": "mixed",
            }
        )
    figs: list[Any] = []
    monkeypatch.setattr(report_plots, "_png", lambda fig: figs.append(fig) or b"")
    a = analyse(recs)
    report_plots.figures(a)
    by_label = {}
    for fig in figs:
        for ax in fig.axes:
            by_label.setdefault(ax.get_ylabel(), []).append(ax)
    counted = [ax for label in ("groups", "rollouts") for ax in by_label.get(label, [])]
    assert len(counted) >= 3  # weights histogram, rewards, disagreement
    assert by_label["groups"]  # the weight histogram
    for ax in counted:
        ticks = ax.get_yticks()
        assert all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)
