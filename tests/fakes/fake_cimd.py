"""A client's Client ID Metadata Document host on 127.0.0.1, and a fetcher that reaches it.

With CIMD a client's ``client_id`` is an https URL where its metadata document lives
(draft-ietf-oauth-client-id-metadata-document); the server fetches that document
instead of taking a registration. fastmcp's fetcher refuses plain http and loopback
addresses (SSRF protection), so tests hand the composition root a
``LoopbackCIMDFetcher``: it fetches ``https://<host>/<path>`` from the fake at
``http://127.0.0.1:PORT/<path>`` and does nothing else. In particular it checks
neither the document's ``client_id`` nor its redirect URIs: those refusals are the
server's own, and the tests show they happen.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import httpx2
from fastmcp.server.auth.cimd import (
    CIMDDocument,
    CIMDFetcher,
    CIMDFetchError,
    CIMDValidationError,
)

__all__ = ["CLIENT_ORIGIN", "FakeClientHost", "LoopbackCIMDFetcher"]

#: The https origin the fake client's documents claim to live at.
CLIENT_ORIGIN: Final = "https://mcp-client.example.test"


class FakeClientHost:
    """Serves ``documents`` (path -> JSON object) and records the paths asked for."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.requested: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def publish(self, path: str, **metadata: Any) -> str:
        """Serve a document at ``path``; its ``client_id`` defaults to its own URL."""
        url = CLIENT_ORIGIN + path
        self.documents[path] = {"client_id": url, **metadata}
        return url

    def __enter__(self) -> FakeClientHost:
        handler = type("_BoundHandler", (_Handler,), {"host": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeClientHost is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fetcher(self) -> LoopbackCIMDFetcher:
        return LoopbackCIMDFetcher({CLIENT_ORIGIN: self.base_url})


class LoopbackCIMDFetcher(CIMDFetcher):
    """fastmcp's fetcher with its HTTP layer replaced: known https origins are read
    from loopback stand-ins; any other URL is refused."""

    def __init__(self, origins: Mapping[str, str]) -> None:
        super().__init__(timeout=5.0)
        self._origins = dict(origins)

    async def fetch(self, client_id_url: str) -> CIMDDocument:
        parts = urlsplit(client_id_url)
        stand_in = self._origins.get(f"{parts.scheme}://{parts.netloc}")
        if stand_in is None:
            raise CIMDFetchError(f"no loopback stand-in for {client_id_url}")
        async with httpx2.AsyncClient(follow_redirects=False, timeout=self.timeout) as http:
            response = await http.get(stand_in + parts.path)
        if response.status_code != 200:
            raise CIMDFetchError(f"HTTP {response.status_code} for {client_id_url}")
        if len(response.content) > self.MAX_RESPONSE_SIZE:
            raise CIMDValidationError("CIMD document too large")
        try:
            return CIMDDocument.model_validate(response.json())
        except ValueError as exc:
            raise CIMDValidationError(f"Invalid CIMD document: {exc}") from exc


class _Handler(BaseHTTPRequestHandler):
    host: ClassVar[FakeClientHost]
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.host.requested.append(path)
        document = self.host.documents.get(path)
        status = HTTPStatus.OK if document is not None else HTTPStatus.NOT_FOUND
        payload = json.dumps(document or {"error": "not found"}).encode()
        self.send_response(status, status.phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""
