"""`hero report`: the numbers, and a real render from a generated rollout file that opens
in headless Chromium without console errors (skipped where Chromium is not installed)."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hero_service.tools.analysis import analyse, disagreement_flags, headline
from hero_service.tools.synth import main as synth_main

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)


def rec(verifier: list[int], rm: list[float], rewards: list[float], **kw: Any) -> dict[str, Any]:
    kinds = {0: "all_incorrect", 1: "all_correct"}
    collapse = kinds[verifier[0]] if len(set(verifier)) == 1 else "mixed"
    return {
        "job_id": kw.pop("job_id", "j"),
        "verifier": verifier,
        "verifier_status": ["correct" if v else "incorrect" for v in verifier],
        "rm_scores": rm,
        "rewards": rewards,
        "weight": kw.pop("weight", 1.0),
        "sigma": kw.pop("sigma", 0.5),
        "sigma_bar": kw.pop("sigma_bar", 0.5),
        "collapse": collapse,
        **kw,
    }


def test_analyse_counts() -> None:
    records = [
        # mixed; r0 verifier-correct at the RM minimum, r1 verifier-incorrect at the maximum
        rec([1, 0, 1], [0.1, 0.9, 0.5], [0.9, 0.05, 1.0], labels=[0, 0, 1]),
        rec([1, 1], [0.3, 0.3], [1.0, 1.0], labels=[1, 1]),  # collapsed, flat RM: flat HERO
        rec([0, 0], [0.2, 0.4], [-0.1, 0.1], job_id="k"),  # collapsed, RM spread: HERO spread
    ]
    a = analyse(records)
    assert (a.n_groups, a.n_rollouts) == (3, 7)
    assert a.jobs == {"j": {"mixed": 1, "all_correct": 1}, "k": {"all_incorrect": 1}}
    assert a.zero_adv == {"verifier": 2, "rm": 1, "hero": 1}
    assert (a.verified_low, a.rejected_high, a.mixed_rollouts) == (1, 1, 3)
    assert (a.verified_low_wrong, a.rejected_high_wrong) == (1, 0)  # r0 was a false positive
    assert a.confusion == {"tp": 3, "fp": 1, "tn": 1, "fn": 0}
    assert a.labelled_groups == 2
    assert (a.pair_won, a.pairs) == (0.0, 2)  # both correct rollouts score under r1
    rows = dict(headline(a))
    assert rows["Verifier FPR = fp/(fp+tn) (trusted labels)"] == "50.0% (1/2)"
    assert rows["Collapsed groups (all correct + all incorrect)"] == "66.7%"


def test_disagreement_flags_match_the_service_rule() -> None:
    """The same cases as tests/test_metrics.py::test_disagreement_rule."""
    cases = [
        ([1, 0, 1, 0], [0.1, 0.9, 0.5, 0.9], 1, 2),
        ([1, 0, 0], [0.8, 0.2, 0.3], 0, 0),
        ([1, 1], [0.0, 1.0], 0, 0),
        ([0, 0, 1], [2.0, -1.0, -1.0], 1, 1),
    ]
    for v, s, low, high in cases:
        lo, hi = disagreement_flags(v, s)
        assert (sum(lo), sum(hi)) == (low, high)


def hero(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hero_service.tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("report")
    rollouts = d / "rollouts.jsonl"
    synth_main(["-o", str(rollouts), "--groups", "40", "--group-size", "6", "--seed", "7"])
    scored = d / "scored.jsonl"
    fast = ("--verifier", "string", "--verifier-workers", "1", "--torch-threads", "1")
    p = hero("score", str(rollouts), "-o", str(scored), "--quiet", *fast)
    assert p.returncode == 0, p.stderr
    out = d / "report.html"
    p = hero("report", str(scored), "-o", str(out), "--png-dir", str(d / "png"))
    assert p.returncode == 0, p.stderr
    assert "40 groups" in p.stderr
    return out


@pytest.mark.slow  # `hero score` and `hero report` subprocesses
def test_report_is_self_contained(report: Path) -> None:
    from PIL import Image

    text = report.read_text()
    assert "<script" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 5
    for b64 in images:
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.verify()
        assert img.size[0] >= 700
    for section in ("Reward distributions", "Collapse rates", "Zero advantage",
                    "Variance-aware weights", "Verifier / RM disagreement",
                    "Verifier vs trusted labels", "Verifier FPR"):  # fmt: skip
        assert section in text
    pngs = sorted(p.name for p in (report.parent / "png").iterdir())
    assert pngs == [
        "collapse.png",
        "disagreement.png",
        "rewards.png",
        "weights.png",
        "zero_advantage.png",
    ]


@pytest.mark.slow  # `hero score` and `hero report` subprocesses
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_report_opens_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    assert CHROMIUM is not None
    shot = tmp_path / "shot.png"
    p = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    console = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, console
    img = Image.open(shot).convert("L")
    assert img.size == (1280, 2000)
    lo, hi = img.getextrema()
    assert hi - lo > 100  # not a blank page
