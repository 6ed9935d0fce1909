"""Public routes: ``/health``, ``/i/{name}`` for the images, and the answers for the rest.

``/i/`` is public on purpose: Claude.ai must fetch the URL to show the picture, and the
random uuid4 name is the access control. Only ``<lowercase uuid4>.png`` regular files
with a single name are served, opened without following symlinks, so sidecars, prefs,
OAuth state and anything a symlink or a hard link points at stay unreachable.

Every other address outside ``/ui/`` falls through to the MCP app; an unknown one gets a
404 that says where the real doors are, as JSON for programs and as a small page for
browsers, instead of a bare "Not Found".
"""

from __future__ import annotations

import html
import os

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from image_core.service import ImageService

CHUNK_BYTES = 1024 * 1024
IMMUTABLE = "public, max-age=31536000, immutable"
#: The server's public addresses, one home for the composition root and the 404 text.
MCP_PATH = "/mcp"
DASHBOARD_MOUNT = "/ui"
DASHBOARD_PATH = f"{DASHBOARD_MOUNT}/"
#: The dashboard's favicon doubles as the product logo (MCP consent page, serverInfo).
LOGO_PATH = f"{DASHBOARD_MOUNT}/static/favicon.svg"
_NOT_FOUND_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"
_NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found - image-mcp</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}}
</style></head><body><h1>Not found</h1>
<p>This image-mcp server has nothing at <code>{path}</code>.</p>
<p><a href="{dashboard}">Open the dashboard</a>. MCP clients connect to
<code>{mcp}</code>.</p></body></html>
"""


async def health(_: Request) -> Response:
    """Liveness for the container health check: no dependencies consulted."""
    return JSONResponse({"ok": True})


def redirect(path: str, target: str) -> Route:
    """``GET``/``HEAD path`` answered with a temporary redirect to ``target``, query kept.

    ``/ui`` is the documented dashboard address (its pages live under ``/ui/``), and
    browsers ask every origin for ``/favicon.ico``.
    """

    async def endpoint(request: Request) -> Response:
        query = request.url.query
        return RedirectResponse(target + (f"?{query}" if query else ""), status_code=307)

    return Route(path, endpoint, methods=["GET", "HEAD"])


async def not_found(request: Request, _: Exception) -> Response:
    """The 404 for any unknown path outside the dashboard: JSON, or a page for browsers."""
    path = request.url.path
    if "text/html" in request.headers.get("accept", "") and request.method in {"GET", "HEAD"}:
        page = _NOT_FOUND_PAGE.format(
            path=html.escape(path), dashboard=DASHBOARD_PATH, mcp=MCP_PATH
        )
        return HTMLResponse(page, 404, headers={"content-security-policy": _NOT_FOUND_CSP})
    description = (
        f"Nothing is served at {path}. MCP clients connect to {MCP_PATH}; "
        f"people open the dashboard at {DASHBOARD_PATH}."
    )
    return JSONResponse({"error": "not_found", "error_description": description}, 404)


class OpenFileResponse(Response):
    """Streams an already opened file descriptor, so the checked file is the served file."""

    def __init__(self, fd: int, info: os.stat_result, headers: dict[str, str], send_body: bool):
        super().__init__(status_code=200, headers=headers, media_type="image/png")
        self.headers["content-length"] = str(info.st_size)
        self._fd = fd
        self._send_body = send_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send headers, then the file in large chunks read in a worker thread."""
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if not self._send_body:
                await send({"type": "http.response.body", "body": b""})
                return
            more = True
            while more:
                chunk = await anyio.to_thread.run_sync(os.read, self._fd, CHUNK_BYTES)
                more = len(chunk) == CHUNK_BYTES
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
        finally:
            os.close(self._fd)


def image_route(service: ImageService) -> Route:
    """``GET``/``HEAD /i/{name}`` serving the stored PNGs with strong caching."""

    async def serve_image(request: Request) -> Response:
        opened = await service.open_public_image(request.path_params["name"])
        if opened is None:
            return PlainTextResponse("Not found", status_code=404)
        fd, info = opened
        etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
        headers = {
            "etag": etag,
            "cache-control": IMMUTABLE,
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; sandbox",
        }
        if etag in _etags(request.headers.get("if-none-match", "")):
            os.close(fd)
            return Response(status_code=304, headers=headers)
        return OpenFileResponse(fd, info, headers, send_body=request.method != "HEAD")

    return Route("/i/{name}", serve_image, methods=["GET", "HEAD"])


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}
