"""Reward-model backends and the dynamic batcher in front of them."""

from __future__ import annotations

from typing import Protocol

from hero_service.config import Settings
from hero_service.metrics import Metrics
from hero_service.rm.base import Backend, Prepared, RMInput, RMResult
from hero_service.rm.batcher import DynamicBatcher


class RMScorer(Protocol):
    """What the pipeline needs from a reward model: async, batched across callers."""

    @property
    def name(self) -> str: ...

    def start(self) -> None: ...

    @property
    def truncation(self) -> tuple[int | None, str | None]:
        """(max tokens, side cut) applied on our side; (None, None) when the scorer
        does not tokenize locally."""
        ...

    async def score(self, items: list[RMInput]) -> list[float]: ...

    async def score_details(self, items: list[RMInput]) -> list[RMResult]:
        """`score` plus, per item, the tokens read and whether they were truncated."""
        ...

    async def close(self) -> None: ...


def build_backend(settings: Settings) -> Backend:
    """Load the configured in-process backend (slow: call at start-up, off the loop)."""
    if settings.rm_backend == "embedded":
        from hero_service.rm.embedded import EmbeddedScorer

        return EmbeddedScorer(settings.rm_max_length, settings.rm_device, settings.torch_threads)
    if settings.rm_backend == "hf":
        from hero_service.rm.hf import HFRewardModel

        return HFRewardModel.from_settings(settings)
    if settings.rm_backend in ("vllm", "remote"):
        raise ValueError(f"rm_backend {settings.rm_backend!r} is a scorer: use build_scorer")
    raise ValueError(f"unknown rm_backend {settings.rm_backend!r}")


def build_scorer(settings: Settings, metrics: Metrics) -> RMScorer:
    """The configured scorer, not yet started (slow for in-process models: run off-loop).

    `embedded`/`hf` run behind our DynamicBatcher; `vllm` (in-process engine) and `remote`
    (an RM served over HTTP) batch on the serving engine's side and are scorers themselves.
    """
    if settings.rm_backend == "remote":
        from hero_service.rm.remote import RemoteScorer

        return RemoteScorer.from_settings(settings, metrics)
    if settings.rm_backend == "vllm":
        from hero_service.rm.vllm import VLLMScorer

        return VLLMScorer.from_settings(settings, metrics)
    backend = build_backend(settings)
    return DynamicBatcher(
        backend,
        metrics,
        settings.rm_max_batch_size,
        settings.rm_max_batch_tokens,
        settings.rm_max_queue,
    )


__all__ = [
    "Backend",
    "DynamicBatcher",
    "Prepared",
    "RMInput",
    "RMResult",
    "RMScorer",
    "build_backend",
    "build_scorer",
]
