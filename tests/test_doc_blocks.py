"""Every code block in README.md and docs/*.md is checked: python compiles, shell parses,
JSON parses, and the blocks a user would paste (they talk to localhost:8000) run against a
live server. Also: /docs and /redoc render from local files with the network blocked.

Markers, an HTML comment on the line before a block (invisible when rendered):
  <!-- doc-test: no-live (why) -->          a localhost block that cannot run here
  <!-- doc-test: expected-output (...) -->  a JSON block: the output of the live block above
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hero_service.tools.jsonl import read_rows
from tests.conftest import Server

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
MARK = re.compile(r"<!-- doc-test: ([\w-]+)\b.*-->")
LOCAL = re.compile(r"(?:localhost|127\.0\.0\.1):8000")
SHELLS = ("bash", "")  # unlabelled blocks are commands and env lines
CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    text: str
    mark: str | None
    expected: Block | None = None  # the expected-output block that follows, if any

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def live(self) -> bool:
        return (
            self.lang in ("python", "bash")
            and bool(LOCAL.search(self.text))
            and (self.mark != "no-live")
        )


def _blocks() -> list[Block]:
    out: list[Block] = []
    for md in DOCS:
        text = md.read_text()
        found: list[Block] = []
        for m in FENCE.finditer(text):
            prev = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            mark = MARK.fullmatch(prev)
            found.append(
                Block(
                    md,
                    text[: m.start()].count("\n") + 1,
                    m.group(1),
                    m.group(2),
                    mark.group(1) if mark else None,
                )
            )
        for i, b in enumerate(found):
            nxt = found[i + 1] if i + 1 < len(found) else None
            if b.live and nxt is not None and nxt.mark == "expected-output":
                b = Block(b.path, b.line, b.lang, b.text, b.mark, nxt)
            out.append(b)
    return out


BLOCKS = _blocks()


def _ids(kind: str) -> list[Any]:
    sel = {
        "python": [b for b in BLOCKS if b.lang == "python"],
        "shell": [b for b in BLOCKS if b.lang in SHELLS],
        "json": [b for b in BLOCKS if b.lang == "json"],
        "live": [b for b in BLOCKS if b.live],
    }[kind]
    return [pytest.param(b, id=b.id) for b in sel]


def test_every_block_is_checked() -> None:
    assert len(BLOCKS) > 20
    unknown = [b.id for b in BLOCKS if b.lang not in ("python", "json", *SHELLS)]
    assert not unknown, f"add a check for these blocks' language: {unknown}"
    marks = {b.mark for b in BLOCKS} - {None, "no-live", "expected-output"}
    assert not marks, f"unknown doc-test markers: {marks}"
    live = [b for b in BLOCKS if b.live]
    # the ones a new user pastes first: README's curl, the docs' curl and client snippets
    assert any(b.path.name == "README.md" and "/score_group" in b.text for b in live)
    assert any("/score_sample" in b.text and "/get_reward" in b.text for b in live)
    assert any(b.lang == "python" and "AsyncHeroClient" in b.text for b in live)
    expected = [b for b in BLOCKS if b.mark == "expected-output"]
    assert len(expected) == sum(b.expected is not None for b in BLOCKS)


@pytest.mark.parametrize("block", _ids("python"))
def test_python_block_compiles(block: Block) -> None:
    compile(block.text, block.id, "exec")


@pytest.mark.parametrize("block", _ids("shell"))
def test_shell_block_parses(block: Block) -> None:
    p = subprocess.run(["bash", "-n"], input=block.text, text=True, capture_output=True)
    assert p.returncode == 0, f"{block.id}: {p.stderr}"


@pytest.mark.parametrize("block", _ids("json"))
def test_json_block_parses(block: Block) -> None:
    try:
        json.loads(block.text)
    except json.JSONDecodeError:  # JSON Lines: one object per line
        for line in block.text.splitlines():
            json.loads(line)


def test_offline_input_example_is_a_valid_line(tmp_path: Path) -> None:
    (b,) = [b for b in BLOCKS if b.path.name == "offline.md" and b.lang == "json"]
    f = tmp_path / "rollouts.jsonl"
    f.write_text(b.text)
    assert len(list(read_rows(f, "offline"))) == 1


# -- live: the blocks a user pastes, against a real server ----------------------------------


def _json_docs(out: str) -> list[Any]:
    """Every JSON value printed one after another (several curl calls in one block)."""
    dec, docs, i = json.JSONDecoder(), [], 0
    while i < len(out):
        if out[i].isspace():
            i += 1
            continue
        doc, i = dec.raw_decode(out, i)
        docs.append(doc)
    return docs


def _close(actual: Any, shown: Any, where: str) -> None:
    """The docs show numbers rounded: equal to 2e-3; everything else exactly."""
    if isinstance(shown, dict):
        assert isinstance(actual, dict), where
        for k, v in shown.items():
            assert k in actual, f"{where}.{k} shown in the docs, missing in the answer"
            if k != "timings":  # machine-dependent
                _close(actual[k], v, f"{where}.{k}")
    elif isinstance(shown, list):
        assert isinstance(actual, list) and len(actual) == len(shown), where
        for i, (a, s) in enumerate(zip(actual, shown, strict=True)):
            _close(a, s, f"{where}[{i}]")
    elif isinstance(shown, float) or (isinstance(shown, int) and isinstance(actual, float)):
        assert actual == pytest.approx(shown, abs=2e-3), where
    else:
        assert actual == shown, where


def _partial_groups(server: Server) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    m = re.search(r'^hero_barrier_groups_total\{outcome="partial"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.slow  # a server process
@pytest.mark.parametrize("block", _ids("live"))
def test_live_block_runs(block: Block, server: Server, tmp_path: Path) -> None:
    code = LOCAL.sub(server.url.removeprefix("http://"), block.text)
    if block.lang == "bash":
        if shutil.which("curl") is None:
            pytest.skip("curl not installed")
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    else:
        script = tmp_path / "snippet.py"
        script.write_text(code)
        cmd = [sys.executable, str(script)]
    if block.expected is not None:  # the docs show the first group of a fresh job
        for job in set(re.findall(r'"job_id": "([^"]+)"', block.text)):
            httpx.delete(f"{server.url}/jobs/{job}", timeout=10)
    partial_before = _partial_groups(server)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, f"{block.id} failed:\n{p.stdout}\n{p.stderr}"
    # no call waited for a barrier deadline and came back with part of its group
    assert _partial_groups(server) == partial_before, f"{block.id}: a partial group"
    if block.lang == "bash":
        docs = _json_docs(p.stdout)
        assert docs, f"{block.id} printed nothing"
        errors = [d for d in docs if isinstance(d, dict) and "error" in d]
        assert not errors, f"{block.id}: {errors}"
        if block.expected is not None:
            assert len(docs) == 1
            _close(docs[0], json.loads(block.expected.text), block.expected.id)


# -- /docs and /redoc without internet ---------------------------------------------------------


def test_docs_pages_load_nothing_from_outside(http: httpx.Client) -> None:
    for page in ("/docs", "/redoc"):
        html = http.get(page).text
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
        assert urls, page
        for u in urls:
            assert u.startswith("/"), f"{page} loads {u}: not served by the app"
            assert http.get(u).status_code == 200, u


@pytest.mark.slow  # a server process
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
@pytest.mark.parametrize(
    ("page", "rendered"),
    [("/docs", "opblock-summary"), ("/redoc", "operation-type")],  # one per operation
)
def test_docs_page_renders_with_the_network_blocked(
    page: str, rendered: str, server: Server, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    p = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            # air-gapped: no name resolves but loopback, and any proxied request fails
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
            "--virtual-time-budget=20000",
            "--dump-dom",
            server.url + page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout
    ops = re.findall(rf'class="[^"]*\b{rendered}\b', dom)
    assert len(ops) > 5, f"{page} rendered no operations:\n{dom[:2000]}"
    assert "/score_group" in dom or "score_group" in dom
