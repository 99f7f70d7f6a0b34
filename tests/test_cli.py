"""`hero serve` flags and env vars cover every setting; bad config fails fast and clearly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hero_service.config import Settings

pytestmark = pytest.mark.slow  # `hero` subprocesses


def _hero(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hero_service.tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_every_setting_has_a_flag() -> None:
    out = _hero("serve", "--help").stdout
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in out, name
        assert f"HERO_{name.upper()}" in out, name


def test_bad_flag_value_is_a_clear_error() -> None:
    r = _hero("serve", "--alpha", "0.7", "--beta", "0.5")
    assert r.returncode == 2
    assert "alpha" in r.stderr and "< 1" in r.stderr


def test_bad_env_value_is_a_clear_error() -> None:
    r = _hero("serve", env={"HERO_VERIFIER_WORKERS": "zero"})
    assert r.returncode == 2
    assert "verifier_workers" in r.stderr


def test_env_and_flags_reach_settings() -> None:
    import argparse

    from hero_service.tools.flags import settings_from as _settings_from

    s = _settings_from(argparse.Namespace(port="9999", auth_tokens="a,b", alpha=None))
    assert s.port == 9999 and s.auth_tokens == ["a", "b"]
