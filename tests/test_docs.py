"""Docs that must stay true: the README config table and quick start."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _gen():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen", ROOT / "docs" / "gen_config_table.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_config_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert _gen().render_readme(readme) == readme, "run: python docs/gen_config_table.py --write"


def test_readme_quick_start_matches_ci() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q" in readme and "python -m pytest -q" in ci
    venv = "python3 -m venv .venv && . .venv/bin/activate"
    assert venv in readme and venv in ci
    assert "pip install torch==2.13.0" in readme and "pip install -q torch==2.13.0" in ci
    assert "-e ./client -e '.[dev,redis]'" in readme and "-e ./client -e '.[dev,redis]'" in ci


def test_every_metric_is_in_the_observability_table() -> None:
    from hero_service.metrics import Metrics

    doc = (ROOT / "docs" / "observability.md").read_text()
    names = {fam.name for fam in Metrics().registry.collect()}
    assert len(names) > 20
    missing = sorted(n for n in names if f"`{n}" not in doc)
    assert not missing, f"add to docs/observability.md's metrics table: {missing}"
