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

from hero_service.config import Settings

WIRE_FIELDS = ("prompt", "reference", "responses", "labels")
_NOT_RESULTS = {"job_id", "request_id", "replayed", "timings", "group_id"}
_RETRY_CODES = {429, 502, 503, 504}


class OfflineError(Exception):
    """A problem with the input, the output or the server; the message says where."""


@dataclass(frozen=True)
class Row:
    lineno: int
    job_id: str
    group_id: str
    record: dict[str, Any]
    digest: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.job_id, self.group_id)

    def wire(self) -> dict[str, Any]:
        return {k: self.record[k] for k in WIRE_FIELDS if self.record.get(k) is not None}


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


def _digest(job_id: str, wire: dict[str, Any]) -> str:
    blob = json.dumps([job_id, wire], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_rows(path: Path, default_job: str) -> Iterator[Row]:
    """The input's groups; a line that is not a group object fails with its line number."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise OfflineError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise OfflineError(f"{path}:{n}: each line must be a JSON object (one group)")
            for k in ("reference", "responses"):
                if k not in rec:
                    raise OfflineError(f"{path}:{n}: missing field {k!r}")
            if not isinstance(rec["responses"], list):
                raise OfflineError(f"{path}:{n}: field 'responses' must be a list of strings")
            job = rec.get("job_id") or default_job
            gid = rec.get("group_id")
            if not isinstance(job, str) or (gid is not None and not isinstance(gid, str)):
                raise OfflineError(f"{path}:{n}: job_id and group_id must be strings")
            gid = gid or f"line-{n}"
            wire = {k: rec[k] for k in WIRE_FIELDS if rec.get(k) is not None}
            yield Row(n, job, gid, rec, _digest(job, wire))


def load_done(path: Path) -> dict[tuple[str, str], str]:
    """Groups already in the output -> their input digest. A torn last line (a crash
    mid-write) is cut off so the file stays valid JSONL."""
    done: dict[tuple[str, str], str] = {}
    if not path.exists():
        return done
    data = path.read_bytes()
    good = data.rfind(b"\n") + 1
    if good < len(data):
        with path.open("r+b") as f:
            f.truncate(good)
    for n, line in enumerate(data[:good].decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            done[(rec["job_id"], rec["group_id"])] = rec.get("input_digest", "")
        except (json.JSONDecodeError, KeyError, TypeError):
            raise OfflineError(f"{path}:{n}: not a line written by `hero score`") from None
    return done


# -- transports ---------------------------------------------------------------------------


@asynccontextmanager
async def local_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The server's app in this process, lifespan included (verifier pool, RM, state)."""
    from hero_service.app import create_app

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # mixes with our bar
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hero.local", timeout=None
        ) as c:
            yield c


@asynccontextmanager
async def remote_client(
    url: str, token: str | None, timeout_s: float
) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s) as c:
        yield c


async def post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], max_retries: int
) -> dict[str, Any]:
    """POST with retries on 429/5xx-unavailable and connection errors (Retry-After aware).
    The request id makes a retry safe: the server replays instead of scoring twice."""
    delay = 0.5
    for attempt in range(max_retries + 1):
        try:
            r = await client.post(path, json=body)
        except httpx.TransportError as e:
            if attempt == max_retries:
                raise OfflineError(f"cannot reach the server: {type(e).__name__}: {e}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        if r.status_code == 200:
            out: dict[str, Any] = r.json()
            return out
        if r.status_code in _RETRY_CODES and attempt < max_retries:
            after = r.headers.get("retry-after", "")
            await asyncio.sleep(float(after) if after.isdigit() else delay)
            delay = min(delay * 2, 30.0)
            continue
        try:
            err = r.json()
            msg = f"{err.get('error')}: {err.get('message')}"
        except ValueError:
            msg = r.text[:500]
        raise OfflineError(f"server answered {r.status_code} {msg}")
    raise AssertionError("unreachable")


# -- the run ------------------------------------------------------------------------------


async def provenance(client: httpx.AsyncClient, opts: ScoreOptions) -> dict[str, Any] | None:
    """What scores this run (GET /config plus this run's per-request overrides), written
    on every output line as `scored_by` for `hero report`; None from a server without
    /config."""
    try:
        r = await client.get("/config")
    except httpx.TransportError:
        return None
    if r.status_code != 200:
        return None
    cfg = r.json()
    out: dict[str, Any] = {
        "rm_backend": cfg.get("rm_backend"),
        "rm_model": cfg.get("rm_model"),
        "verifier": opts.verifier or cfg.get("verifier"),
        "shaping_preset": opts.shaping.get("preset") or cfg.get("shaping_preset"),
    }
    if out["verifier"] == "cascade+judge" and cfg.get("judge"):
        out["judge"] = cfg["judge"]  # the model whose flips are in these rewards
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


def _result_fields(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k not in _NOT_RESULTS}


async def _score_chunk(
    client: httpx.AsyncClient, chunk: list[Row], opts: ScoreOptions
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
    if opts.batch_size == 1:
        body = {"job_id": job, "request_id": rid, **chunk[0].wire(), **extra}
        res = await post(client, "/score_group", body, opts.max_retries)
        return [_result_fields(res)], bool(res.get("replayed"))
    groups = [{"group_id": r.group_id, **r.wire()} for r in chunk]
    body = {"job_id": job, "request_id": rid, "groups": groups, **extra}
    res = await post(client, "/score_batch", body, opts.max_retries)
    return [_result_fields(g) for g in res["groups"]], bool(res.get("replayed"))


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
        remote_client(opts.url, opts.token, opts.timeout_s)
        if opts.url is not None
        else local_client(settings)
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
    from hero_service.cli import _add_settings_flags

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
    _add_settings_flags(p.add_argument_group("service settings (local mode)"))


def main(ns: Any) -> int:
    from hero_service.cli import _settings_from

    try:
        settings = _settings_from(ns)
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
