"""loadtests/replay.py: a tiny bounded run of each profile against the test server, and the
loopback-only guard. (The measured runs are in docs/loadtests.md.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import Server

pytestmark = pytest.mark.slow  # load against a server process

REPO = Path(__file__).resolve().parent.parent


def replay() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hero_replay", REPO / "loadtests" / "replay.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["hero_replay"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("profile", ["group", "openrlhf", "sample"])
def test_replay_profiles(server: Server, profile: str) -> None:
    import asyncio

    r = replay()
    ns = r.parse(
        ["--url", server.url, "--profile", profile, "--rate", "4", "--duration", "1",
         "--max-requests", "8", "--group-size", "4", "--spread", "0.2", "--drain", "60"]
    )  # fmt: skip
    res = asyncio.run(r.Replay(ns).run())
    s = res.summary()
    assert s["requests_sent"] >= 1
    assert s["requests_sent"] <= 8
    assert s["errors"] == {}, s
    assert s["requests_ok"] == s["requests_sent"]
    assert s["latency_ms"]["p50"] is not None
    expect = 4 if profile == "group" else 1
    assert s["throughput_rollouts_per_s"] == pytest.approx(
        expect * s["throughput_req_per_s"], rel=0.02
    )


def test_replay_refuses_non_loopback() -> None:
    r = replay()
    r.check_loopback("http://127.0.0.1:8000")
    r.check_loopback("http://localhost:8000")
    for url in ("http://10.1.2.3:8000", "http://192.168.0.1", "http://8.8.8.8"):
        with pytest.raises(SystemExit, match="non-loopback"):
            r.check_loopback(url)
