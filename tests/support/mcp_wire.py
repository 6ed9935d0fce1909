"""Raw MCP JSON-RPC over Streamable HTTP, in both protocol eras, for tests that must
see exactly what a client receives (no SDK between the test and the wire).

* Handshake era (2025-06-18, 2025-11-25): ``initialize``, then every request carries
  the ``Mcp-Session-Id`` the server issued and the ``MCP-Protocol-Version`` header.
* Stateless era (2026-07-28): no session; every request carries its protocol version
  and the client's capabilities in ``params._meta``, with the ``MCP-Protocol-Version``,
  ``Mcp-Method`` and (for named targets) ``Mcp-Name`` headers matching the body.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx2

HANDSHAKE_VERSIONS: Final = ("2025-06-18", "2025-11-25")
STATELESS_VERSION: Final = "2026-07-28"
ACCEPT: Final = "application/json, text/event-stream"
META_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES: Final = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT: Final = "io.modelcontextprotocol/clientInfo"
CLIENT_INFO: Final = {"name": "raw-wire-test", "version": "0"}
_NAMED: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


@dataclass(frozen=True)
class Reply:
    """One HTTP exchange: the JSON-RPC answer to our id, and what came before it."""

    status: int
    headers: httpx2.Headers
    message: dict[str, Any]
    notifications: list[dict[str, Any]] = field(default_factory=list)

    @property
    def result(self) -> dict[str, Any]:
        assert "result" in self.message, self.message
        result: dict[str, Any] = self.message["result"]
        return result


def parse_reply(response: httpx2.Response, request_id: int) -> Reply:
    """Read a JSON body or an SSE stream; the message answering ``request_id`` ends it."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("text/event-stream"):
        messages = [
            json.loads(line[len("data:") :])
            for line in response.text.splitlines()
            if line.startswith("data:") and line[len("data:") :].strip()
        ]
    else:
        messages = [response.json()]
    answers = [m for m in messages if m.get("id") == request_id]
    assert len(answers) == 1, (response.status_code, response.text[:500])
    notes = [m for m in messages if "id" not in m]
    return Reply(response.status_code, response.headers, answers[0], notes)


class HandshakeClient:
    """A handshake-era client: one session, opened by ``initialize``."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        url: str,
        version: str,
        capabilities: Mapping[str, Any] | None = None,
    ) -> None:
        self.http, self.url, self.version = http, url, version
        self.capabilities = dict(capabilities or {})
        self.session_id: str | None = None
        self.initialize_result: dict[str, Any] = {}
        self._ids = itertools.count(1)

    async def open(self) -> Reply:
        """``initialize`` then ``notifications/initialized``, as the spec orders them."""
        params = {
            "protocolVersion": self.version,
            "capabilities": self.capabilities,
            "clientInfo": CLIENT_INFO,
        }
        reply = await self._post("initialize", params)
        self.session_id = reply.headers.get("mcp-session-id")
        assert self.session_id, dict(reply.headers)
        self.initialize_result = reply.result
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        accepted = await self.http.post(self.url, json=note, headers=self._headers())
        assert accepted.status_code == 202, accepted.text
        return reply

    async def request(self, method: str, params: Mapping[str, Any] | None = None) -> Reply:
        return await self._post(method, dict(params or {}))

    async def close(self) -> int:
        """End the session (HTTP DELETE); the status the server answered."""
        response = await self.http.delete(self.url, headers=self._headers())
        return response.status_code

    async def _post(self, method: str, params: dict[str, Any]) -> Reply:
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        response = await self.http.post(self.url, json=body, headers=self._headers())
        return parse_reply(response, request_id)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": ACCEPT}
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
            headers["MCP-Protocol-Version"] = self.version
        return headers


class StatelessClient:
    """A stateless-era client: every request stands alone, with its own ``_meta``."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        url: str,
        version: str = STATELESS_VERSION,
        capabilities: Mapping[str, Any] | None = None,
    ) -> None:
        self.http, self.url, self.version = http, url, version
        self.capabilities = dict(capabilities or {})
        self._ids = itertools.count(1)

    async def request(self, method: str, params: Mapping[str, Any] | None = None) -> Reply:
        request_id = next(self._ids)
        meta = {
            META_VERSION: self.version,
            META_CAPABILITIES: self.capabilities,
            META_CLIENT: CLIENT_INFO,
        }
        full = {**(params or {}), "_meta": {**meta, **(params or {}).get("_meta", {})}}
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": full}
        headers = {"Accept": ACCEPT, "MCP-Protocol-Version": self.version, "Mcp-Method": method}
        if method in _NAMED:
            headers["Mcp-Name"] = str(full[_NAMED[method]])
        response = await self.http.post(self.url, json=body, headers=headers)
        return parse_reply(response, request_id)
