"""`hero` command line: `hero serve` (every setting is a flag and a HERO_* env var)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hero_service.config import Settings


def _add_settings_flags(p: argparse.ArgumentParser) -> None:
    for name, f in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_ = (f.description or "") + f" [env HERO_{name.upper()}; default {f.default!r}]"
        if name == "auth_tokens":
            help_ = "Comma-separated bearer tokens. " + help_
        p.add_argument(flag, dest=name, default=None, help=help_.replace("%", "%%"))


def _settings_from(ns: argparse.Namespace) -> Settings:
    given: dict[str, Any] = {
        k: v for k, v in vars(ns).items() if k in Settings.model_fields and v is not None
    }
    if "auth_tokens" in given:
        given["auth_tokens"] = [t for t in given["auth_tokens"].split(",") if t]
    return Settings(**given)


def serve(settings: Settings) -> None:
    import uvicorn

    from hero_service.app import create_app

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hero", description="HERO reward service")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the HTTP service")
    _add_settings_flags(p_serve)
    ns = parser.parse_args(argv)
    if ns.command == "serve":
        try:
            settings = _settings_from(ns)
        except ValueError as e:
            print(f"hero: invalid configuration:\n{e}", file=sys.stderr)
            return 2
        serve(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
