"""Reading the answers of the servers the remote RM backend talks to (remote.py)."""

from __future__ import annotations

from typing import Any


def parse_scores(api: str, data: Any, n: int) -> list[float]:
    """The n raw scores in a vLLM `/classify` or `/pooling`, or TEI `/predict` answer."""
    if api == "tei":
        rows = data
        if not isinstance(rows, list) or len(rows) != n:
            raise ValueError(f"expected a list of {n} predictions")
        # one label per input: [{score,label}] (or [[{score,label}]] for some versions)
        out = [float(_first(row)["score"]) for row in rows]
    else:
        items = sorted(data["data"], key=lambda d: int(d.get("index", 0)))
        if len(items) != n:
            raise ValueError(f"expected {n} results, got {len(items)}")
        if api == "vllm_classify":
            out = [_one_label(d["probs"]) for d in items]
        else:
            out = [_pooled(d["data"]) for d in items]
    for s in out:
        if s != s or s in (float("inf"), float("-inf")):
            raise ValueError(f"non-finite score {s}")
    return out


def _first(row: Any) -> Any:
    while isinstance(row, list):
        if len(row) != 1:
            raise ValueError(f"expected one label per input, got {len(row)}")
        row = row[0]
    return row


def _one_label(probs: Any) -> float:
    """`/classify`: `probs` of a one-label classifier is `[x]`."""
    if not isinstance(probs, list) or len(probs) != 1:
        raise ValueError(f"expected one label, got probs={str(probs)[:80]}")
    return float(probs[0])


def _pooled(data: Any) -> float:
    """`/pooling`: `[x]` (sequence classifier) or per-token `[[x], ...]` / `[x, ...]`
    (token reward model): the last token's value."""
    if not isinstance(data, list):
        return float(data)
    if not data:
        raise ValueError("empty pooling output")
    last = data[-1]
    if isinstance(last, list):
        if len(last) != 1:
            raise ValueError(f"expected one label per token, got {len(last)}")
        return float(last[0])
    return float(last)
