"""The service in the test process: `create_app` with its lifespan (real verifier pool,
embedded scorer, SQLite state) running on a background event loop, reached through
httpx's ASGI transport. No sockets, no subprocess: the fast tier's server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from hero_client import AsyncHeroClient, HeroClient
from hero_service.api.app import create_app
from hero_service.api.runtime import Runtime
from hero_service.config import Settings

T = TypeVar("T")
BASE_URL = "http://hero.test"


class InProcess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.app = create_app(settings)
        self.rt: Runtime = self.app.state.rt
        self._life = self.app.router.lifespan_context(self.app)
        self.call(self._life.__aenter__())
        self.asgi = httpx.ASGITransport(app=self.app)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        """Run a coroutine on the app's loop (where its pool, batcher and store live)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _forward(self, request: httpx.Request) -> httpx.Response:
        resp = await self.asgi.handle_async_request(request)
        body = await resp.aread()
        return httpx.Response(resp.status_code, headers=resp.headers, content=body)

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=BASE_URL, transport=_SyncBridge(self), **kw)

    def async_client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=BASE_URL, transport=_AsyncBridge(self), **kw)

    def hero(self, **kw: Any) -> HeroClient:
        return HeroClient(BASE_URL, transport=_SyncBridge(self), **kw)

    def async_hero(self, **kw: Any) -> AsyncHeroClient:
        return AsyncHeroClient(BASE_URL, transport=_AsyncBridge(self), **kw)

    def close(self) -> None:
        try:
            self.call(self._life.__aexit__(None, None, None), timeout=120)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)


def _copy(request: httpx.Request, body: bytes) -> httpx.Request:
    return httpx.Request(request.method, request.url, headers=request.headers, content=body)


class _SyncBridge(httpx.BaseTransport):
    def __init__(self, proc: InProcess) -> None:
        self.proc = proc

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.proc.call(self.proc._forward(_copy(request, request.read())))


class _AsyncBridge(httpx.AsyncBaseTransport):
    """From any event loop (a test's) to the app's loop."""

    def __init__(self, proc: InProcess) -> None:
        self.proc = proc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fut = asyncio.run_coroutine_threadsafe(
            self.proc._forward(_copy(request, await request.aread())), self.proc.loop
        )
        return await asyncio.wrap_future(fut)


@asynccontextmanager
async def asgi_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the caller's event loop, lifespan included, for one async test."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=None) as c,
    ):
        yield c
