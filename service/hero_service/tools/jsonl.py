"""The one JSONL reader of the offline tools: objects with their line numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
