"""Every exception the HERO client raises, in one tree.

    HeroError                      base of everything below
    ├── InvalidArgumentError       bad arguments, caught before any request (also ValueError)
    ├── GroupLayoutError           an adapter got a batch it cannot split into groups
    │                              (also ValueError)
    ├── HeroConnectionError        the server could not be reached or dropped the connection,
    │   │                          on every attempt of the retry budget
    │   └── HeroTimeoutError       ... or did not answer in time
    ├── HeroResponseError          a 2xx answer that is not what the schema says
    └── HeroAPIError               the server answered with an error status; carries
        │                          status_code, error (kind), message, field, body
        ├── BadRequestError        400
        ├── AuthenticationError    401  missing or wrong bearer token
        ├── NotFoundError          404
        ├── ConflictError          409  request id reused with another payload, a late
        │                               sample for a group already scored, ...
        ├── PayloadTooLargeError   413
        ├── UnprocessableError     422  invalid input; `field` names it
        ├── RateLimitError         429  overloaded; `retry_after` seconds (retried first)
        └── ServerError            5xx
            ├── BackendError           502  the reward-model backend failed (retried first)
            └── ServiceUnavailableError 503 starting or shutting down (retried first)

Retried automatically, with exponential backoff and jitter and honouring Retry-After:
connection errors, timeouts, 429, 502, 503 and 504. The exception raised after the retry
budget is spent is the last attempt's, with `attempts` set to the number of tries.
"""

from __future__ import annotations

from typing import Any


class HeroError(Exception):
    """Base class of every error raised by hero_client."""

    attempts: int = 1


class InvalidArgumentError(HeroError, ValueError):
    """Arguments that the wire schema rejects; nothing was sent."""


class GroupLayoutError(HeroError, ValueError):
    """A trainer adapter got completions it cannot split into whole groups."""


class HeroConnectionError(HeroError):
    """The request did not get an HTTP answer (connect error, dropped connection)."""


class HeroTimeoutError(HeroConnectionError):
    """The request timed out (connect, read, write or pool timeout)."""


class HeroResponseError(HeroError):
    """A success status with a body that does not parse as the expected model."""

    def __init__(self, message: str, status_code: int, body: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class HeroAPIError(HeroError):
    """The server answered with an error status (its ErrorBody is unpacked here)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        error: str | None = None,
        field: str | None = None,
        details: list[dict[str, Any]] | None = None,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        where = f" [{field}]" if field else ""
        super().__init__(f"HTTP {status_code} {error or 'error'}{where}: {message}")
        self.status_code = status_code
        self.error = error
        self.message = message
        self.field = field
        self.details = details
        self.body = body
        self.retry_after = retry_after


class BadRequestError(HeroAPIError):
    """400."""


class AuthenticationError(HeroAPIError):
    """401: missing or wrong bearer token."""


class NotFoundError(HeroAPIError):
    """404."""


class ConflictError(HeroAPIError):
    """409: the request conflicts with the server's state."""


class PayloadTooLargeError(HeroAPIError):
    """413: the request body is over the server's max_body_bytes."""


class UnprocessableError(HeroAPIError):
    """422: invalid input; `field` names the culprit."""


class RateLimitError(HeroAPIError):
    """429: a bounded stage is full; `retry_after` says when to come back."""


class ServerError(HeroAPIError):
    """5xx."""


class BackendError(ServerError):
    """502: the reward-model backend failed."""


class ServiceUnavailableError(ServerError):
    """503: the service is starting, shutting down, or its state store is unavailable."""


STATUS_ERRORS: dict[int, type[HeroAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableError,
    429: RateLimitError,
    502: BackendError,
    503: ServiceUnavailableError,
}


def error_for_status(status: int) -> type[HeroAPIError]:
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    return ServerError if status >= 500 else HeroAPIError


__all__ = [
    "AuthenticationError",
    "BackendError",
    "BadRequestError",
    "ConflictError",
    "GroupLayoutError",
    "HeroAPIError",
    "HeroConnectionError",
    "HeroError",
    "HeroResponseError",
    "HeroTimeoutError",
    "InvalidArgumentError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "ServerError",
    "ServiceUnavailableError",
    "UnprocessableError",
    "error_for_status",
]
