"""The reward-model backend contract.

An in-process backend is synchronous and runs on the batcher's worker thread:
`prepare` tokenizes one input (its length drives the token budget), `forward`
scores a batch of prepared inputs. The batcher owns queueing and batching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class RMInput:
    prompt: str
    response: str
    reference: str | None = None  # only the embedded demo scorer looks at it


@dataclass
class Prepared:
    n_tokens: int
    payload: Any
    truncated: bool = False


@dataclass(frozen=True)
class RMResult:
    """One score with what the reward model read (None: not tokenized on our side)."""

    score: float
    n_tokens: int | None = None
    truncated: bool | None = None


class Backend(Protocol):
    name: str
    max_length: int  # tokens per sequence, after truncation
    truncation_side: str  # "left" or "right": which end is cut

    def prepare(self, item: RMInput) -> Prepared: ...

    def forward(self, batch: list[Prepared]) -> list[float]:
        """Scores for the batch, in order; may raise (the batcher reports it)."""
        ...

    def padded_tokens(self, batch: list[Prepared]) -> int:
        """Tokens the forward pass really computes, padding included."""
        ...
