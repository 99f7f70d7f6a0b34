"""Retrying: the client's policy (backoff with jitter, at least the server's Retry-After)
and the one Retry-After parser (the server's remote RM backend uses it too)."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass

import httpx
from tenacity import RetryCallState

from hero_client._exceptions import HeroAPIError, HeroConnectionError

log = logging.getLogger("hero_client")


def parse_retry_after(resp: httpx.Response) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    raw = resp.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry. Retries are safe: scoring calls carry a request id
    generated once per logical call, so the server replays instead of scoring twice."""

    max_attempts: int = 6
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter_s: float = 0.5
    max_elapsed_s: float = 600.0
    retry_after_max_s: float = 120.0
    retry_statuses: frozenset[int] = frozenset({429, 502, 503, 504})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, HeroConnectionError):
            return True
        return isinstance(exc, HeroAPIError) and exc.status_code in self.retry_statuses

    def wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, at least the server's Retry-After."""
        n = max(state.attempt_number - 1, 0)
        backoff = min(self.backoff_initial_s * (2.0**n), self.backoff_max_s)
        backoff += random.uniform(0, self.jitter_s)
        exc = state.outcome.exception() if state.outcome is not None else None
        after = getattr(exc, "retry_after", None)
        if isinstance(after, (int, float)) and after > 0:
            backoff = max(backoff, min(float(after), self.retry_after_max_s))
        return backoff


NO_RETRY = RetryPolicy(max_attempts=1)


NO_RETRY = RetryPolicy(max_attempts=1)


def log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    sleep = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "hero: attempt %d failed (%s); retrying in %.2f s", state.attempt_number, exc, sleep
    )
