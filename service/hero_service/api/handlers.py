"""Error bodies: every failure answers `{"error", "message", "field"}` with the status of
its kind (errors.py), including FastAPI's validation errors and unexpected exceptions."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hero_service.errors import Overloaded, ServiceError, error_response
from hero_service.metrics import Metrics

log = logging.getLogger("hero_service")


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_WRONG_TYPE = (
    "expected Content-Type: application/json (e.g. curl -H 'content-type: application/json')"
)


def _is_json(request: Request) -> bool:
    """What FastAPI parses as JSON: application/json or application/*+json."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype == "application/json" or (
        ctype.startswith("application/") and ctype.endswith("+json")
    )


def _json_error(doc: Any, err: Any) -> str:
    """'... at line L column C' for a JSON syntax error (FastAPI gives the offset)."""
    loc = tuple(err.get("loc", ()))
    reason = (err.get("ctx") or {}).get("error", err.get("msg"))
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    if pos is None or not isinstance(doc, str):
        return f"request body is not valid JSON: {reason}"
    line = doc.count("\n", 0, pos) + 1
    col = pos - (doc.rfind("\n", 0, pos) + 1) + 1
    return f"request body is not valid JSON: {reason} at line {line} column {col} (char {pos})"


def install_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _loc(tuple(first.get("loc", ())))
        kind = first.get("type", "")
        # A body FastAPI did not parse as JSON (no or another Content-Type) fails as a
        # whole; name the header, not the body's shape.
        if tuple(first.get("loc", ()))[:1] == ("body",) and field == "" and not _is_json(request):
            return error_response("unsupported_media_type", _WRONG_TYPE, None)
        if kind == "json_invalid":
            return error_response("validation_error", _json_error(exc.body, first), None)
        if kind == "missing" and field == "":
            return error_response(
                "validation_error", "request body is empty: expected a JSON object"
            )
        if kind in ("json_invalid", "json_type") or field == "":
            msg = f"request body is not valid JSON: {first.get('msg')}"
            if kind == "json_type" or (field == "" and kind == "model_attributes_type"):
                msg = "request body must be a JSON object"
            return error_response("validation_error", msg, None)
        msg = f"{field}: {first.get('msg')}"
        details = [
            {"field": _loc(tuple(e.get("loc", ()))), "message": e.get("msg"), "type": e.get("type")}
            for e in errors[:20]
        ]
        return error_response(
            "validation_error", msg, field, json.loads(json.dumps(details, default=str))
        )

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        headers = None
        if isinstance(exc, Overloaded):
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        if exc.kind in ("not_ready", "state_unavailable", "deadline_exceeded"):
            ra = {"not_ready": "5", "state_unavailable": "2"}.get(exc.kind, "1")
            headers = {"Retry-After": ra}
        if exc.kind == "state_unavailable":
            metrics.state_errors.inc()
        return error_response(exc.kind, exc.message, exc.field, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {400: "bad_request", 404: "not_found", 413: "payload_too_large"}.get(
            exc.status_code, "bad_request"
        )
        if exc.status_code == 405:
            return JSONResponse(
                {"error": "method_not_allowed", "message": str(exc.detail), "field": None},
                status_code=405,
            )
        return error_response(kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response("internal_error", f"internal error: {type(exc).__name__}")
