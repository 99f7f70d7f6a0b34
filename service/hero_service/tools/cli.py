"""`hero` command line: `hero serve` (every setting is a flag and a HERO_* env var),
`hero score` / `hero report` (offline scoring and reports: score.py, report.py)."""

from __future__ import annotations

import argparse
import os
import socket
import sys

from hero_service.config import Settings
from hero_service.tools import report, score
from hero_service.tools.flags import add_settings_flags, settings_from


def port_problem(host: str, port: int) -> str | None:
    """Why uvicorn could not listen on (host, port), or None. Checked before the models
    load (10-20 s) so a taken port fails at once; binds as uvicorn does (SO_REUSEADDR)."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return f"cannot listen on {host}:{port}: {e.strerror or e}"
    return None


def serve(settings: Settings) -> int:
    from hero_service.api.app import create_app
    from hero_service.api.lifecycle import run

    problem = port_problem(settings.host, settings.port)
    if problem is not None:
        print(
            f"hero: {problem} (another `hero serve`? choose another with --port or HERO_PORT)",
            file=sys.stderr,
        )
        return 2

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run(create_app(settings), settings)  # graceful SIGTERM: not ready, drain, finish, close
    return 0


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_STATE_FLAGS = ("state_url", "state_path", "redis_key_prefix", "state_timeout_s")


def _duration(text: str) -> float:
    t = text.strip().lower()
    try:
        return float(t[:-1]) * _UNITS[t[-1]] if t and t[-1] in _UNITS else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (e.g. 30d, 12h, 90m, 3600)"
        ) from None


def prune_cmd(ns: argparse.Namespace) -> int:
    """Old-job policy: delete jobs not updated for --older-than (cron / CronJob)."""
    import asyncio

    from hero_service.state import build_store, prune_jobs

    given = {k: getattr(ns, k) for k in _STATE_FLAGS if getattr(ns, k) is not None}
    settings = Settings(**given)

    async def go() -> list[str]:
        store = await build_store(settings)
        try:
            return await prune_jobs(store, ns.older_than, ns.dry_run)
        finally:
            await store.close()

    pruned = asyncio.run(go())
    verb = "would delete" if ns.dry_run else "deleted"
    for j in pruned:
        print(j)
    print(f"{verb} {len(pruned)} job(s) idle for over {ns.older_than:.0f}s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hero", description="HERO reward service")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the HTTP service")
    add_settings_flags(p_serve)
    p_prune = sub.add_parser(
        "prune-jobs", help="delete jobs idle for longer than --older-than (with their state)"
    )
    p_prune.add_argument("--older-than", type=_duration, required=True, help="e.g. 30d, 12h")
    p_prune.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    for name in _STATE_FLAGS:
        p_prune.add_argument("--" + name.replace("_", "-"), dest=name, default=None)
    score.add_parser(sub)  # hero score
    report.add_parser(sub)  # hero report
    ns = parser.parse_args(argv)
    if ns.command == "score":
        return score.main(ns)
    if ns.command == "report":
        return report.main(ns)
    if ns.command == "serve":
        try:
            settings = settings_from(ns)
        except ValueError as e:
            print(f"hero: invalid configuration:\n{e}", file=sys.stderr)
            return 2
        return serve(settings)
    if ns.command == "prune-jobs":
        return prune_cmd(ns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
