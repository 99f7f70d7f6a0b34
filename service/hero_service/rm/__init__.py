"""Reward-model backends and the dynamic batcher in front of them."""

from __future__ import annotations

from hero_service.config import Settings
from hero_service.rm.base import Backend, Prepared, RMInput
from hero_service.rm.batcher import DynamicBatcher


def build_backend(settings: Settings) -> Backend:
    """Load the configured in-process backend (slow: call at start-up, off the loop)."""
    if settings.rm_backend == "embedded":
        from hero_service.rm.embedded import EmbeddedScorer

        return EmbeddedScorer(settings.rm_max_length, settings.rm_device, settings.torch_threads)
    if settings.rm_backend == "hf":
        from hero_service.rm.hf import HFRewardModel

        return HFRewardModel.from_settings(settings)
    raise ValueError(f"unknown rm_backend {settings.rm_backend!r}")


__all__ = ["Backend", "DynamicBatcher", "Prepared", "RMInput", "build_backend"]
