"""`hero score`: score a JSONL file of rollout groups (docs/offline.md).

Local mode builds the server's own app (`create_app`) in-process and calls its routes
through an ASGI transport: the same validation, verifier pool, RM batcher, shaping and
state code as `hero serve`. With `--url` the same requests go to a running server.
Groups are scored in file order, one `/score_group` call per line (or `/score_batch` of
`--batch-size` consecutive lines of one job), so the running sigma_bar evolves exactly as
it would for a trainer sending the file in that order.

Resumable: lines already in the output (by job_id + group_id) are skipped; each call
carries a request id derived from its content, and local mode keeps the job state in a
SQLite file beside the output, so a crash between scoring and writing replays the stored
answer instead of folding sigma in twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hero_client import (
    NO_RETRY,
    AsyncHeroClient,
    Call,
    HeroAPIError,
    HeroConnectionError,
    HeroError,
    RetryPolicy,
)
from hero_client.schema import GroupResult, ServiceConfig
from hero_service.config import Settings
from hero_service.tools.flags import add_settings_flags, settings_from
from hero_service.tools.jsonl import OfflineError, Row, load_done, read_rows

_NOT_RESULTS = {"job_id", "request_id", "replayed", "timings", "group_id"}


@dataclass
class ScoreOptions:
    input: Path
    output: Path
    job_id: str = "offline"
    url: str | None = None
    token: str | None = None
    settings: Settings | None = None  # local mode
    shaping: dict[str, Any] = field(default_factory=dict)  # remote mode: per-call overrides
    verifier: str | None = None  # remote mode
    batch_size: int = 1
    overwrite: bool = False
    quiet: bool = False
    timeout_s: float = 600.0
    max_retries: int = 8


@dataclass
class ScoreSummary:
    scored: int = 0
    skipped: int = 0
    replayed: int = 0
    startup_s: float = 0.0
    seconds: float = 0.0
    collapse: dict[str, int] = field(default_factory=dict)


# -- transports: AsyncHeroClient, in-process over ASGI or remote by URL ----------------


@asynccontextmanager
async def local_client(settings: Settings, max_retries: int) -> AsyncIterator[AsyncHeroClient]:
    """The server's app in this process, lifespan included (verifier pool, RM, state)."""
    from hero_service.api.app import create_app

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # mixes with our bar
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncHeroClient(
            "http://hero.local",
            transport=httpx.ASGITransport(app=app),
            timeout=httpx.Timeout(None),
            retry=RetryPolicy(max_attempts=max_retries + 1),
        ) as c,
    ):
        yield c


@asynccontextmanager
async def remote_client(
    url: str, token: str | None, timeout_s: float, max_retries: int
) -> AsyncIterator[AsyncHeroClient]:
    retry = RetryPolicy(max_attempts=max_retries + 1)
    async with AsyncHeroClient(url, token=token, timeout=timeout_s, retry=retry) as c:
        yield c


@asynccontextmanager
async def _errors() -> AsyncIterator[None]:
    """The client's errors as this tool's (the caller adds the input line)."""
    try:
        yield
    except HeroAPIError as e:
        raise OfflineError(f"server answered {e.status_code} {e.error}: {e.message}") from None
    except HeroConnectionError as e:
        raise OfflineError(f"cannot reach the server: {e}") from None
    except HeroError as e:
        raise OfflineError(str(e)) from None


# -- the run ------------------------------------------------------------------------------

_CONFIG = Call("GET", "/config", lambda r: ServiceConfig.model_validate_json(r.content))


async def provenance(client: AsyncHeroClient, opts: ScoreOptions) -> dict[str, Any] | None:
    """What scores this run (GET /config plus this run's per-request overrides), written
    on every output line as `scored_by` for `hero report`; None from a server without
    /config."""
    try:  # one attempt: a server without /config (or none at all) just goes unrecorded
        cfg = await client.send(_CONFIG, NO_RETRY)
    except HeroError:
        return None
    out: dict[str, Any] = {
        "rm_backend": cfg.rm_backend,
        "rm_model": cfg.rm_model,
        "verifier": opts.verifier or cfg.verifier,
        "shaping_preset": opts.shaping.get("preset") or cfg.shaping_preset,
    }
    if out["verifier"] == "cascade+judge" and cfg.judge:
        out["judge"] = cfg.judge  # the model whose flips are in these rewards
    overrides = {k: v for k, v in opts.shaping.items() if k != "preset"}
    if opts.url is None and opts.settings is not None:  # local mode: the settings flags
        given = opts.settings.model_fields_set
        overrides = {f: getattr(opts.settings, f) for f in _SHAPING if f in given}
    if overrides:
        out["shaping_overrides"] = overrides
    return out


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """Consecutive rows of one job, at most `size` per chunk."""
    buf: list[Row] = []
    for r in rows:
        if buf and (len(buf) >= size or r.job_id != buf[0].job_id):
            yield buf
            buf = []
        buf.append(r)
    if buf:
        yield buf


def _result_fields(res: GroupResult) -> dict[str, Any]:
    return res.model_dump(mode="json", exclude=_NOT_RESULTS)


async def _score_chunk(
    client: AsyncHeroClient, chunk: list[Row], opts: ScoreOptions
) -> tuple[list[dict[str, Any]], bool]:
    extra: dict[str, Any] = {}
    if opts.shaping:
        extra["shaping"] = opts.shaping
    if opts.verifier:
        extra["verifier"] = opts.verifier
    rid = (
        "hero-score-"
        + hashlib.sha256(
            json.dumps([r.digest + r.group_id for r in chunk] + [extra], sort_keys=True).encode()
        ).hexdigest()[:40]
    )
    job = chunk[0].job_id
    async with _errors():
        if opts.batch_size == 1:
            one = await client.score_group(job, **chunk[0].wire(), request_id=rid, **extra)
            return [_result_fields(one)], one.replayed
        groups = [{"group_id": r.group_id, **r.wire()} for r in chunk]
        many = await client.score_batch(job, groups, request_id=rid, **extra)
    return [_result_fields(g) for g in many.groups], many.replayed


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def state_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".state.sqlite3")


async def run(opts: ScoreOptions) -> ScoreSummary:
    from tqdm import tqdm

    if not opts.input.is_file():
        raise OfflineError(f"{opts.input}: no such file")
    if opts.overwrite and opts.output.exists():
        opts.output.unlink()
    fresh = not opts.output.exists()
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    settings = opts.settings or Settings()
    if opts.url is None and "state_path" not in settings.model_fields_set:
        sp = state_path_for(opts.output)
        if fresh:  # the state belongs to this output: a new output starts a new state
            for suffix in ("", "-wal", "-shm", "-journal"):
                sp.with_name(sp.name + suffix).unlink(missing_ok=True)
        settings = settings.model_copy(update={"state_path": str(sp)})
    done = load_done(opts.output)
    summary = ScoreSummary()

    def todo() -> Iterator[Row]:
        for row in read_rows(opts.input, opts.job_id):
            prev = done.get(row.key)
            if prev is None:
                yield row
                continue
            if prev and prev != row.digest:
                raise OfflineError(
                    f"{opts.input}:{row.lineno}: group {row.group_id!r} of job {row.job_id!r} "
                    f"differs from the one already in {opts.output}; use --overwrite or a new -o"
                )

    # Read the whole input once before start-up (10-20 s for the models): a bad line fails
    # at once, and a run with nothing left to score never starts the service.
    left = sum(1 for _ in todo())
    total = _count_lines(opts.input)
    summary.skipped = total - left
    if left == 0:
        return summary
    t0 = time.perf_counter()
    bar = tqdm(total=total, unit="group", desc="scoring", disable=True if opts.quiet else None)
    bar.update(summary.skipped)

    ctx = (
        remote_client(opts.url, opts.token, opts.timeout_s, opts.max_retries)
        if opts.url is not None
        else local_client(settings, opts.max_retries)
    )
    try:
        async with ctx as client:
            summary.startup_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            scored_by = await provenance(client, opts)
            with opts.output.open("a", encoding="utf-8") as out:
                for chunk in _chunks(todo(), max(1, opts.batch_size)):
                    try:
                        results, replayed = await _score_chunk(client, chunk, opts)
                    except OfflineError as e:
                        lines = f"{chunk[0].lineno}" + (
                            f"-{chunk[-1].lineno}" if len(chunk) > 1 else ""
                        )
                        raise OfflineError(f"{opts.input}:{lines}: {e}") from None
                    for row, res in zip(chunk, results, strict=True):
                        rec = {
                            **row.record,
                            "job_id": row.job_id,
                            "group_id": row.group_id,
                            **res,
                            "input_digest": row.digest,
                        }
                        if scored_by is not None:
                            rec["scored_by"] = scored_by
                        out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                        c = str(res.get("collapse"))
                        summary.collapse[c] = summary.collapse.get(c, 0) + 1
                    out.flush()
                    summary.scored += len(chunk)
                    summary.replayed += len(chunk) if replayed else 0
                    bar.update(len(chunk))
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def print_summary(s: ScoreSummary, output: Path) -> None:
    if s.scored == 0:
        print(f"nothing left to score: skipped {s.skipped} already in {output}", file=sys.stderr)
        return
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.collapse.items())) or "none"
    rate = s.scored / s.seconds if s.seconds > 0 else 0.0
    print(
        f"scored {s.scored} groups in {s.seconds:.1f}s ({rate:.1f}/s, after {s.startup_s:.1f}s "
        f"start-up), skipped {s.skipped} already in {output}"
        + (f", {s.replayed} replayed by the server" if s.replayed else "")
        + f"; collapse: {kinds}",
        file=sys.stderr,
    )


# -- command line -------------------------------------------------------------------------

_SHAPING = ("alpha", "beta", "eps", "w_min", "w_max", "k", "sigma_mean", "momentum", "advantage")


def add_parser(sub: Any) -> None:

    p = sub.add_parser(
        "score",
        help="score a JSONL file of rollout groups (local, or --url a server)",
        description="Score rollouts.jsonl (one group per line, docs/offline.md) into a JSONL "
        "of HERO results. Local mode runs the server's code in-process with the settings "
        "flags below; --url sends the same requests to a running server (then only the "
        "shaping flags and --verifier apply, as per-request overrides). Resumes by default.",
    )
    p.add_argument("input", type=Path, help="rollouts JSONL")
    p.add_argument("-o", "--output", type=Path, default=None, help="default: INPUT.scored.jsonl")
    p.add_argument("--url", default=None, help="score against this server instead of locally")
    p.add_argument("--token", default=os.environ.get("HERO_TOKEN"), help="bearer token (--url)")
    p.add_argument(
        "--job-id",
        dest="score_job_id",
        metavar="JOB_ID",
        default="offline",
        help="job for lines without a job_id",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="groups per call: 1 = /score_group per line; N = /score_batch of N lines "
        "(the N groups share the pre-call sigma_bar, as a trainer's batch would)",
    )
    p.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per call (--url)")
    add_settings_flags(p.add_argument_group("service settings (local mode)"))


def main(ns: Any) -> int:

    try:
        settings = settings_from(ns)
    except ValueError as e:
        print(f"hero score: invalid settings:\n{e}", file=sys.stderr)
        return 2
    given = settings.model_fields_set
    opts = ScoreOptions(
        input=ns.input,
        output=ns.output or ns.input.with_name(ns.input.stem + ".scored.jsonl"),
        job_id=ns.score_job_id,
        url=ns.url,
        token=ns.token,
        batch_size=ns.batch_size,
        overwrite=ns.overwrite,
        quiet=ns.quiet,
        timeout_s=ns.timeout,
    )
    if ns.url is None:
        opts.settings = settings
    else:
        opts.shaping = {f: getattr(settings, f) for f in _SHAPING if f in given}
        if "shaping_preset" in given:
            opts.shaping["preset"] = settings.shaping_preset
        if "verifier" in given:
            opts.verifier = settings.verifier
        ignored = sorted(given - set(_SHAPING) - {"shaping_preset", "verifier"})
        if ignored:
            print(f"hero score: ignored with --url: {', '.join(ignored)}", file=sys.stderr)
    try:
        summary = asyncio.run(run(opts))
    except OfflineError as e:
        print(f"hero score: {e}", file=sys.stderr)
        return 1
    print_summary(summary, opts.output)
    return 0
