"""Shared by the adapters: configuration from the environment and the per-sample logs."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import httpx

from hero_client._async import AsyncHeroClient
from hero_client._exceptions import HeroError, InvalidArgumentError
from hero_client._sync import HeroClient
from hero_client.retry import RetryPolicy
from hero_client.schema import GET_REWARD_LOG_KEYS, GroupResult

log = logging.getLogger("hero_client.adapters")

# The numeric per-sample logs every adapter reports, same keys as /get_reward's extra_logs.
LOG_KEYS: tuple[str, ...] = GET_REWARD_LOG_KEYS


@dataclass(frozen=True)
class AdapterConfig:
    """Adapter settings; `from_env` reads HERO_URL, HERO_TOKEN, HERO_JOB_ID, ...

    fallback_reward: the reward of a sample that could not be scored (exhausted retries,
    409 late/conflicting sample); it is flagged (hero_error=1), counted (`stats()`) and
    logged as a warning. None raises instead.
    on_partial: a sample whose group was scored partial (deadline passed before all
    group_size samples arrived): "keep" its reward (flagged hero_partial=1, counted,
    logged), "fallback" (fallback_reward, as an error), or "raise".
    max_connections: the adapter's HTTP connection pool; None = no cap. Every sample
    waiting in the server's barrier holds one connection, so a cap below the samples in
    flight per process stalls the samples that would complete the groups.
    """

    url: str = "http://127.0.0.1:8000"
    token: str | None = None
    job_id: str = "default"
    group_size: int | None = None
    deadline_s: float | None = None
    timeout_s: float = 300.0
    max_attempts: int = 8
    fallback_reward: float | None = 0.0
    on_partial: str = "keep"
    max_connections: int | None = None
    verifier: str | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.on_partial not in ON_PARTIAL:
            raise InvalidArgumentError(
                f"on_partial={self.on_partial!r}: expected one of {sorted(ON_PARTIAL)}"
            )
        if self.max_connections is not None and self.max_connections < 1:
            raise InvalidArgumentError("max_connections must be at least 1 (or None: no cap)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> AdapterConfig:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get("HERO_" + f.name.upper())
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _parse(f.name, raw)
            except ValueError:
                raise InvalidArgumentError(
                    f"HERO_{f.name.upper()}={raw!r} is not a valid {f.name}"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)

    @property
    def shaping(self) -> dict[str, Any] | None:
        return {"preset": self.preset} if self.preset else None

    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts)

    def limits(self) -> httpx.Limits:
        keep = min(self.max_connections or 1000, 1000)
        return httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=keep)

    def sync_client(self) -> HeroClient:
        return HeroClient(
            self.url,
            token=self.token,
            timeout=self.timeout_s,
            retry=self.retry(),
            limits=self.limits(),
        )

    def async_client(self) -> AsyncHeroClient:
        return AsyncHeroClient(
            self.url,
            token=self.token,
            timeout=self.timeout_s,
            retry=self.retry(),
            limits=self.limits(),
        )


ON_PARTIAL = frozenset({"keep", "fallback", "raise"})

# Client-side counters of every sample an adapter handed back (this process).
_stats: Counter[str] = Counter()
_stats_lock = threading.Lock()


def count(event: str, n: int = 1) -> int:
    with _stats_lock:
        _stats[event] += n
        return _stats[event]


def stats() -> dict[str, int]:
    """This process's adapter counters: scored, partial, fallback, raised, validation."""
    with _stats_lock:
        return dict(_stats)


def reset_stats() -> None:
    with _stats_lock:
        _stats.clear()


class PartialGroupError(HeroError):
    """A group was scored partial and the adapter is set to on_partial="raise"."""


def on_failure(cfg: AdapterConfig, what: str, n: int, e: BaseException) -> float:
    """A sample that could not be scored: raise, or count, log and return the fallback."""
    if cfg.fallback_reward is None:
        count("raised", n)
        raise e
    total = count("fallback", n)
    log.warning(
        "hero: %s not scored (%s); reward %s with hero_error=1 (%d such samples so far)",
        what,
        e,
        cfg.fallback_reward,
        total,
    )
    return cfg.fallback_reward


def on_partial_group(cfg: AdapterConfig, group: str, got: int, want: int | None) -> bool:
    """A sample of a partial group: True to keep its reward, False for the fallback."""
    total = count("partial")
    msg = f"group {group!r} scored partial ({got} of {want} samples by its deadline)"
    if cfg.on_partial == "raise":
        count("raised")
        raise PartialGroupError(msg)
    log.warning("hero: %s; on_partial=%s (%d partial samples so far)", msg, cfg.on_partial, total)
    return cfg.on_partial == "keep"


def _parse(name: str, raw: str) -> Any:
    if name in ("group_size", "max_attempts"):
        return int(raw)
    if name == "max_connections":
        return None if raw.lower() in ("none", "0", "unlimited") else int(raw)
    if name in ("deadline_s", "timeout_s"):
        return float(raw)
    if name == "fallback_reward":
        return None if raw.lower() in ("none", "raise") else float(raw)
    return raw


def sample_logs(
    g: GroupResult, pos: int, partial: bool, count: int, prompt_mismatch: bool = False
) -> dict[str, float]:
    """The numeric logs of sample `pos` of a scored group."""
    return {
        "hero_verifier": float(g.verifier[pos]),
        "hero_rm_score": float(g.rm_scores[pos]),
        "hero_normalized": float(g.normalized[pos]),
        "hero_weight": float(g.weight),
        "hero_sigma": float(g.sigma),
        "hero_sigma_bar": float(g.sigma_bar),
        "hero_all_correct": float(g.collapse == "all_correct"),
        "hero_all_incorrect": float(g.collapse == "all_incorrect"),
        "hero_partial": float(partial),
        "hero_group_count": float(count),
        "hero_prompt_mismatch": float(prompt_mismatch),
        "hero_error": 0.0,
    }


def error_logs() -> dict[str, float]:
    out = dict.fromkeys(LOG_KEYS, 0.0)
    out["hero_error"] = 1.0
    return out


def message_text(x: Any) -> str:
    """Plain text of a prompt or completion: a string, or chat messages (TRL, verl)."""
    if isinstance(x, str):
        return x
    if isinstance(x, Mapping):
        return _content(x.get("content", ""))
    if isinstance(x, (list, tuple)) or hasattr(x, "tolist"):
        items = x.tolist() if hasattr(x, "tolist") else x
        return "\n\n".join(message_text(m) for m in items)
    return str(x)


def _content(c: Any) -> str:
    if isinstance(c, str):
        return c
    if isinstance(c, (list, tuple)):  # multimodal parts: keep the text ones
        return "".join(p.get("text", "") if isinstance(p, Mapping) else str(p) for p in c)
    return "" if c is None else str(c)
