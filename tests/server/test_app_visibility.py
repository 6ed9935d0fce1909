"""App-only tools and ``ui://`` apps are listed only to clients that render MCP Apps.

A real FastMCP server over real HTTP, in both protocol eras, on the raw wire: one
client declares the MCP Apps extension, one does not. The one without sees exactly the
listing it would see if the app did not exist; calls are not filtered.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import httpx2
import pytest
from fastmcp import FastMCP
from fastmcp.apps.config import UI_EXTENSION_ID

from image_server.app_visibility import AppHostListing, is_app_only
from tests.support.live_server import live_server
from tests.support.mcp_wire import HANDSHAKE_VERSIONS, HandshakeClient, Reply, StatelessClient

pytestmark = pytest.mark.anyio

APPS_HOST: Final = {"extensions": {UI_EXTENSION_ID: {"mimeTypes": ["text/html;profile=mcp-app"]}}}
VIEWER: Final = "ui://demo/viewer.html"


def _server() -> FastMCP:
    server = FastMCP("demo", middleware=[AppHostListing()])

    @server.tool(meta={"ui": {"resourceUri": VIEWER}})
    def shown(text: str) -> str:
        """A tool for the model, with a viewer beside its results."""
        return text

    @server.tool(meta={"ui": {"visibility": ["app"]}})
    def app_only(text: str) -> str:
        """A tool only the viewer calls."""
        return f"app:{text}"

    @server.resource(VIEWER, mime_type="text/html;profile=mcp-app")
    def viewer() -> str:
        """The viewer."""
        return "<!doctype html><title>viewer</title>"

    @server.resource("data://plain")
    def plain() -> str:
        """An ordinary resource."""
        return "plain"

    return server


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with live_server(_server().http_app(path="/mcp")) as base:
        yield f"{base}/mcp"


async def _listings(client: HandshakeClient | StatelessClient) -> tuple[list[str], list[str]]:
    tools: Reply = await client.request("tools/list")
    resources: Reply = await client.request("resources/list")
    return (
        sorted(t["name"] for t in tools.result["tools"]),
        sorted(r["uri"] for r in resources.result["resources"]),
    )


async def _clients(http: httpx2.AsyncClient, url: str, caps: dict[str, Any]) -> list[Any]:
    opened: list[Any] = []
    for version in HANDSHAKE_VERSIONS:
        client = HandshakeClient(http, url, version, capabilities=caps)
        await client.open()
        opened.append(client)
    opened.append(StatelessClient(http, url, capabilities=caps))
    return opened


async def test_an_apps_host_sees_the_app_only_tool_and_the_viewer(url: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        for client in await _clients(http, url, APPS_HOST):
            tools, resources = await _listings(client)
            assert tools == ["app_only", "shown"], client.version
            assert resources == ["data://plain", VIEWER], client.version


async def test_a_client_without_apps_sees_neither_but_may_still_call(url: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        for client in await _clients(http, url, {}):
            tools, resources = await _listings(client)
            assert tools == ["shown"], client.version
            assert resources == ["data://plain"], client.version
            called = await client.request(
                "tools/call", {"name": "app_only", "arguments": {"text": "x"}}
            )
            assert called.result["content"][0]["text"] == "app:x"
            read = await client.request("resources/read", {"uri": VIEWER})
            assert read.result["contents"][0]["text"].startswith("<!doctype html>")


def test_only_a_visibility_of_app_alone_is_app_only() -> None:
    assert is_app_only({"ui": {"visibility": ["app"]}})
    assert not is_app_only({"ui": {"visibility": ["app", "model"]}})
    assert not is_app_only({"ui": {"visibility": ["model"]}})
    assert not is_app_only({"ui": {"resourceUri": VIEWER}})
    assert not is_app_only({"ui": "app"})
    assert not is_app_only(None)
