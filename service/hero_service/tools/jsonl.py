"""JSONL for the offline tools: the one reader (objects with their line numbers), the
rollout groups `hero score` reads and the lines it has already written."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WIRE_FIELDS = ("prompt", "reference", "responses", "labels")


class OfflineError(Exception):
    """A problem with the input, the output or the server; the message says where."""


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; a line that is not a JSON object fails
    with its line number."""
    if not path.is_file():
        raise OfflineError(f"{path}: no such file")
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
            yield n, rec


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


def _digest(job_id: str, wire: dict[str, Any]) -> str:
    blob = json.dumps([job_id, wire], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_rows(path: Path, default_job: str) -> Iterator[Row]:
    """The input's groups; a line that is not a group object fails with its line number."""
    for n, rec in read_jsonl(path):
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
    lines = read_jsonl(path)
    while True:
        try:
            n, rec = next(lines)
        except StopIteration:
            return done
        except OfflineError as e:
            raise OfflineError(f"{e}: not a line written by `hero score`") from None
        try:
            done[(rec["job_id"], rec["group_id"])] = rec.get("input_digest", "")
        except (KeyError, TypeError):
            raise OfflineError(f"{path}:{n}: not a line written by `hero score`") from None
