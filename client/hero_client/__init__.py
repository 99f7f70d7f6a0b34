"""Thin client and wire schema for the HERO reward service (imports neither torch nor
the server).

    from hero_client import HeroClient
    with HeroClient("http://127.0.0.1:8000") as hero:
        r = hero.score_group("run-1", prompt="1+1?", reference="2",
                             responses=["\\boxed{2}", "\\boxed{3}"])
        r.rewards

`AsyncHeroClient` has the same methods, awaitable. Trainer adapters live in
`hero_client.adapters.{trl,verl,openrlhf}` and are imported only when you import them.
"""

from hero_client import schema
from hero_client._async import AsyncHeroClient
from hero_client._base import Call
from hero_client._exceptions import (
    AuthenticationError,
    BackendError,
    BadRequestError,
    ConflictError,
    GroupLayoutError,
    HeroAPIError,
    HeroConnectionError,
    HeroError,
    HeroResponseError,
    HeroTimeoutError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    UnprocessableError,
)
from hero_client._sync import HeroClient
from hero_client.retry import NO_RETRY, RetryPolicy

__all__ = [
    "NO_RETRY",
    "AsyncHeroClient",
    "AuthenticationError",
    "BackendError",
    "BadRequestError",
    "Call",
    "ConflictError",
    "GroupLayoutError",
    "HeroAPIError",
    "HeroClient",
    "HeroConnectionError",
    "HeroError",
    "HeroResponseError",
    "HeroTimeoutError",
    "InvalidArgumentError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "UnprocessableError",
    "schema",
]
__version__ = "0.1.0"
