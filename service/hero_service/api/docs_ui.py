"""/docs (Swagger UI) and /redoc from files shipped in a Python package (fastapi-offline),
not a CDN: training clusters are often air-gapped, and a CDN page renders blank there."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

ASSET_PREFIX = "/docs/assets/"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
ASSET_PATHS = frozenset(ASSET_PREFIX + name for name in ASSETS)


def open_paths(paths: frozenset[str]) -> frozenset[str]:
    """The vendored assets are public files: open whenever a docs page is open."""
    return paths | ASSET_PATHS if {"/docs", "/redoc"} & paths else paths


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc (create the app with docs_url=None, redoc_url=None)."""
    static = files("fastapi_offline") / "static"
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=ASSET_PREFIX + "swagger-ui-bundle.js",
            swagger_css_url=ASSET_PREFIX + "swagger-ui.css",
            swagger_favicon_url=ASSET_PREFIX + "favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=ASSET_PREFIX + "redoc.standalone.js",
            redoc_favicon_url=ASSET_PREFIX + "favicon.png",
            with_google_fonts=False,
        )

    for name, media_type in ASSETS.items():
        app.add_api_route(
            ASSET_PREFIX + name,
            _asset_route(str(static / name), media_type),
            methods=["GET"],
            include_in_schema=False,
        )


def _asset_route(path: str, media_type: str) -> Callable[[], Awaitable[FileResponse]]:
    # A closure, not default arguments: FastAPI would expose those as query parameters.
    async def asset() -> FileResponse:
        return FileResponse(path, media_type=media_type)

    return asset
