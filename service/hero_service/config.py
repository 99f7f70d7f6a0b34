"""All service configuration in one settings object (env vars HERO_*, CLI flags)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hero_service.shaping import PRESETS, ShapingConfig, ShapingError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERO_", extra="forbid")

    # server
    host: str = Field("127.0.0.1", description="Bind address (loopback by default).")
    port: int = Field(8000, ge=0, le=65535, description="Bind port.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    auth_tokens: list[str] = Field(
        default_factory=list, description="Bearer tokens; empty disables auth."
    )
    metrics_max_jobs: int = Field(
        100, ge=1, description="Job ids kept as metric labels; later jobs report as 'other'."
    )

    # state
    state_path: str = Field(
        "hero-state.sqlite3", description="SQLite file for per-job state (':memory:' for none)."
    )
    idempotency_ttl_s: float = Field(
        7 * 86400.0, gt=0, description="How long a request id is remembered."
    )

    # verifier
    verifier: Literal["math_verify", "string", "exact", "cascade", "choice"] = Field(
        "cascade", description="Default rule verifier."
    )
    verifier_workers: int = Field(2, ge=1, le=64, description="Verifier worker processes.")
    verifier_deadline_s: float = Field(
        10.0, gt=0, description="Outer wall-clock deadline per verification (parent kills)."
    )
    verifier_inner_timeout_s: int = Field(
        3, ge=1, description="Math-Verify's own SIGALRM timeout inside a worker."
    )
    verifier_max_tasks: int = Field(500, ge=1, description="Recycle a worker after N tasks.")
    verifier_memory_mb: int = Field(1536, ge=256, description="Address-space cap per worker.")
    verifier_cache_size: int = Field(100_000, ge=0, description="LRU (reference, answer) cache.")
    verifier_max_queue: int = Field(
        20_000, ge=1, description="Max verifications waiting for a worker before 429."
    )

    # reward model
    rm_backend: Literal["embedded", "hf"] = Field("embedded", description="Reward-model backend.")
    rm_model: str = Field("", description="Model path for the hf backend.")
    rm_device: str = Field("cpu", description="torch device for in-process backends.")
    rm_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Body dtype for in-process backends (head stays fp32)."
    )
    rm_max_length: int = Field(512, ge=8, description="Max tokens per sequence (truncated).")
    rm_truncation_side: Literal["left", "right"] = Field(
        "left", description="Which side to cut when a sequence is too long."
    )
    rm_max_batch_size: int = Field(32, ge=1, description="Max sequences per forward pass.")
    rm_max_batch_tokens: int = Field(
        16384, ge=8, description="Token budget per forward pass, padding included."
    )
    rm_max_queue: int = Field(4096, ge=1, description="Max sequences waiting before 429.")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads (0 = default).")

    # request limits
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Max request body (413).")
    max_group_size: int = Field(1024, ge=1, description="Max responses per group.")
    max_batch_groups: int = Field(1024, ge=1, description="Max groups per /score_batch call.")
    max_response_chars: int = Field(200_000, ge=1, description="Max characters per response.")
    max_prompt_chars: int = Field(200_000, ge=1, description="Max characters of a prompt.")
    max_reference_chars: int = Field(10_000, ge=1, description="Max characters of a reference.")

    # default shaping (a preset, then explicit overrides)
    shaping_preset: Literal["paper_main", "paper_appendix", "easy_to_verify", "mixed"] = Field(
        "paper_main", description="Named HERO preset new jobs start from."
    )
    alpha: float | None = Field(None, description="Incorrect band [-alpha, alpha] (preset: 0.1).")
    beta: float | None = Field(None, description="Correct band [1-beta, 1+beta] (preset: 0.1).")
    eps: float | None = Field(None, description="Min-max normalisation epsilon (1e-6).")
    w_min: float | None = Field(None, description="Lowest variance weight (preset: 0.5).")
    w_max: float | None = Field(None, description="Highest variance weight (preset: 2.0).")
    k: float | None = Field(None, description="Sigmoid steepness of the weight (preset: 5).")
    sigma_mean: Literal["ema", "cumulative"] = Field(
        "ema", description="Running mean of sigma per job: ema or cumulative."
    )
    momentum: float | None = Field(None, description="EMA momentum (0.9).")
    advantage: Literal["none", "centered", "grpo"] = Field(
        "none", description="Also return advantages: none, centered, grpo (w after std)."
    )

    @model_validator(mode="after")
    def _check_shaping(self) -> Settings:
        self.default_shaping()  # raises ShapingError (a ValueError) on a bad combination
        return self

    def default_shaping(self) -> ShapingConfig:
        over: dict[str, Any] = {
            "alpha": self.alpha,
            "beta": self.beta,
            "eps": self.eps,
            "w_min": self.w_min,
            "w_max": self.w_max,
            "k": self.k,
            "momentum": self.momentum,
            "sigma_mean": self.sigma_mean,
            "advantage": self.advantage,
        }
        try:
            return PRESETS[self.shaping_preset].with_overrides(over)
        except ShapingError as e:
            raise ValueError(f"invalid shaping setting {e}") from None
