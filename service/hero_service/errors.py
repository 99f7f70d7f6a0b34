"""Service exceptions and the one table that maps each error kind to an HTTP status."""

from __future__ import annotations

from typing import Any, Final

from starlette.responses import JSONResponse

STATUS: Final[dict[str, int]] = {
    "validation_error": 422,
    "bad_request": 400,
    "unauthorized": 401,
    "not_found": 404,
    "body_timeout": 408,
    "conflict": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "overloaded": 429,
    "backend_error": 502,
    "not_ready": 503,
    "state_unavailable": 503,
    "deadline_exceeded": 503,
    "internal_error": 500,
}


class ServiceError(Exception):
    kind: str = "internal_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def status(self) -> int:
        return STATUS[self.kind]


class InvalidInput(ServiceError):
    kind = "validation_error"


class NotFound(ServiceError):
    kind = "not_found"


class Conflict(ServiceError):
    kind = "conflict"


class NotReady(ServiceError):
    kind = "not_ready"


class BackendError(ServiceError):
    kind = "backend_error"


class Overloaded(ServiceError):
    """A bounded stage is full; the client should retry after `retry_after` seconds."""

    kind = "overloaded"

    def __init__(self, stage: str, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.stage = stage
        self.retry_after = retry_after


class DeadlineExceeded(ServiceError):
    """503: the request ran past its deadline; its work was cancelled. Retryable."""

    kind = "deadline_exceeded"


class StateUnavailable(ServiceError):
    """The job-state store cannot be reached (e.g. Redis down); retry after a pause."""

    kind = "state_unavailable"


def error_response(
    kind: str,
    message: str,
    field: str | None = None,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": kind, "message": message, "field": field}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=STATUS[kind], headers=headers)
