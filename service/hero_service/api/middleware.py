"""HTTP plumbing: auth, body-size limit and read timeout, error bodies, request metrics."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hero_service.api import docs_ui
from hero_service.api.limits import Admission
from hero_service.errors import Overloaded, ServiceError, error_response
from hero_service.metrics import Metrics

if TYPE_CHECKING:
    from hero_service.api.runtime import Runtime


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


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413 before anything parses them, and drop an
    upload that stalls past `read_timeout_s` with 408 (it would hold an admission slot)."""

    def __init__(
        self, app: ASGIApp, limit: int, metrics: Metrics, read_timeout_s: float = 0.0
    ) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        cl = headers.get(b"content-length")
        if cl is not None and cl.isdigit() and int(cl) > self.limit:
            await self._reject(scope, receive, send, int(cl))
            return
        chunks: list[bytes] = []
        total = 0
        timeout = asyncio.timeout(self.read_timeout_s or None)
        try:
            async with timeout:
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        return
                    chunk = msg.get("body", b"")
                    total += len(chunk)
                    if total > self.limit:
                        await self._reject(scope, receive, send, total)
                        return
                    chunks.append(chunk)
                    if not msg.get("more_body", False):
                        break
        except TimeoutError:
            if not timeout.expired():
                raise
            self.metrics.refused.labels("body_timeout").inc()
            resp = error_response(
                "body_timeout",
                f"request body not received within {self.read_timeout_s:g}s ({total} bytes "
                "arrived; setting body_read_timeout_s)",
            )
            await resp(scope, receive, send)
            return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        resp = error_response(
            "payload_too_large",
            f"request body is {'at least ' if size else ''}{size} bytes, over the limit of "
            f"{self.limit} (setting max_body_bytes / HERO_MAX_BODY_BYTES)",
        )
        await resp(scope, receive, send)


class Auth:
    """Bearer auth, outermost: a request without a valid token is answered 401 from its
    headers alone, before it can take an admission slot, have its body read, or cause
    any verifier or RM work (docs/reliability.md, "Auth")."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, tokens: list[bytes], open_paths: frozenset[str]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tokens = tokens
        self.open_paths = open_paths

    def _authorized(self, scope: Scope) -> bool:
        got = b""
        for k, v in scope["headers"]:
            if k == b"authorization":
                got = v
                break
        scheme, _, token = got.decode("latin-1").partition(" ")
        # Compare SHA-256 digests so the comparison time depends on neither the token's
        # length nor which token matches (every token is compared).
        given = hashlib.sha256(token.strip().encode()).digest()
        matched = 0
        for t in self.tokens:
            matched |= hmac.compare_digest(given, t)
        return scheme.lower() == "bearer" and bool(matched)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.tokens
            or scope["path"] in self.open_paths
            or self._authorized(scope)
        ):
            await self.app(scope, receive, send)
            return
        self.metrics.refused.labels("unauthorized").inc()
        # The body is never read: the server closes the connection after the answer.
        resp = error_response(
            "unauthorized",
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await resp(scope, receive, send)


class RequestMetrics:
    """Per-route request metrics, as plain ASGI (Starlette's BaseHTTPMiddleware costs a
    task and a stream per request on the hot path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # what the client sees if the app fails before starting a response

        async def send_status(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, send_status)
        except asyncio.CancelledError:
            status = 499  # nginx's "client closed request": nobody got an answer
            raise
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(name, str(status)).inc()
            self.metrics.request_duration.labels(name).observe(time.perf_counter() - t0)


def install_http(app: FastAPI, rt: Runtime) -> None:
    settings = rt.settings
    tokens = [hashlib.sha256(t.encode()).digest() for t in settings.bearer_tokens()]
    open_paths = docs_ui.open_paths(frozenset(settings.auth_open_paths))

    # add_middleware wraps: the last added runs first. Order of a request:
    # Auth (headers only) -> Admission (slot) -> BodyLimit (read, size, timeout) -> metrics.
    app.add_middleware(RequestMetrics, metrics=rt.metrics)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        metrics=rt.metrics,
        read_timeout_s=settings.body_read_timeout_s,
    )
    app.add_middleware(
        Admission,
        metrics=rt.metrics,
        max_inflight=settings.max_inflight_requests,
        deadline_s=settings.request_deadline_s,
        max_queued=settings.max_queued_requests,
        queue_wait_s=settings.queue_wait_s,
    )
    app.add_middleware(Auth, metrics=rt.metrics, tokens=tokens, open_paths=open_paths)

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
        if exc.kind in ("not_ready", "state_unavailable"):
            headers = {"Retry-After": "5" if exc.kind == "not_ready" else "2"}
        if exc.kind == "state_unavailable":
            rt.metrics.state_errors.inc()
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
        import logging

        logging.getLogger("hero_service").exception("unhandled error on %s", request.url.path)
        return error_response("internal_error", f"internal error: {type(exc).__name__}")
