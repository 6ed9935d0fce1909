"""The tools over real HTTP in both protocol eras, with real clients and on the raw wire.

* Handshake era (2025-06-18, 2025-11-25): ``initialize``, an ``Mcp-Session-Id``,
  ``notifications/initialized``; fastmcp's client with ``mode="legacy"``.
* Stateless era (2026-07-28): no session, per-request ``_meta``; fastmcp's client
  pinned to ``mode="2026-07-28"``.

Some clients have dropped image content when structured content is present, so the raw
``tools/call`` result is read here byte for byte: the preview comes first, the text
after it, and the structured content beside them, in both eras.

Dev mode (placeholder images) for most tests; one production-mode run with a token
from the fake Google through the OAuth proxy and the fake Gemini behind it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx2
import pytest
from fastmcp import Client

from image_server.app import build_app
from image_server.auth import GoogleEndpoints
from image_server.settings import load_settings
from tests.e2e.oauth_client import obtain_token
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_google import FakeGoogle
from tests.support.live_server import free_port, live_server
from tests.support.mcp_wire import (
    HANDSHAKE_VERSIONS,
    STATELESS_VERSION,
    HandshakeClient,
    Reply,
    StatelessClient,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: What fastmcp's client sends for each era: the handshake, or the stateless pin.
CLIENT_MODES: Final = [
    pytest.param("legacy", "2025-11-25", id="handshake"),
    pytest.param(STATELESS_VERSION, STATELESS_VERSION, id="stateless"),
]
JPEG: Final = b"\xff\xd8\xff"
PNG: Final = b"\x89PNG\r\n\x1a\n"

GOOGLE_CLIENT_ID: Final = "88-eras.apps.googleusercontent.com"
GOOGLE_CLIENT_SECRET: Final = "GOCSPX-eras-secret-0123456789"
GEMINI_KEY: Final = "gemini-eras-key-0123456789"


@pytest.fixture(scope="module")
def dev_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dev-mode server (auth off, placeholder images) that knows its own port."""
    port = free_port()
    root = tmp_path_factory.mktemp("eras")
    settings = load_settings({"IMG_ROOT": str(root), "IMG_PORT": str(port)}, dev=True)
    with live_server(build_app(settings), port=port) as url:
        yield url


def assert_image_then_text(result: dict[str, Any]) -> dict[str, Any]:
    """The raw result of generate_image / get_image: preview first, then the text that
    names the URL, and the structured content beside them. Returns the structured part."""
    assert result.get("isError") is False, result
    content = result["content"]
    first = content[0]
    assert first["type"] == "image", [c["type"] for c in content]
    assert first["mimeType"] == "image/jpeg"
    assert base64.b64decode(first["data"]).startswith(JPEG)
    texts = [c["text"] for c in content[1:] if c["type"] == "text"]
    assert texts, [c["type"] for c in content]
    data: dict[str, Any] = result["structuredContent"]
    assert data["status"] == "done"
    assert data["url"] in texts[0]
    assert data["file_name"] in texts[0]
    return data


async def assert_the_png_is_served(url: str) -> None:
    """The full-size PNG behind the URL the result names."""
    async with httpx2.AsyncClient(timeout=30) as http:
        png = await http.get(url)
    assert png.status_code == 200, png.text
    assert png.content.startswith(PNG)


@pytest.mark.parametrize(("mode", "version"), CLIENT_MODES)
async def test_fastmcp_client_in_each_era_generates_and_fetches(
    dev_url: str, mode: str, version: str
) -> None:
    """The SDK client negotiates the era asked for, lists and calls both tools."""
    async with Client(f"{dev_url}/mcp", mode=mode, timeout=60) as client:
        assert client.protocol_version == version
        if mode == "legacy":
            assert client.initialize_result is not None
        else:
            assert client.initialize_result is None
        names = [tool.name for tool in await client.list_tools()]
        assert {"generate_image", "get_image"} <= set(names), names
        made = await client.call_tool("generate_image", {"prompt": f"a lighthouse, {mode}"})
        assert [c.type for c in made.content][:2] == ["image", "text"]
        data = made.structured_content
        assert data is not None
        shown = await client.call_tool("get_image", {"name": data["file_name"]})
    assert [c.type for c in shown.content][:2] == ["image", "text"]
    assert shown.structured_content is not None
    assert shown.structured_content["url"] == data["url"]
    assert data["url"].startswith(f"{dev_url}/")
    await assert_the_png_is_served(data["url"])


@pytest.mark.parametrize("version", HANDSHAKE_VERSIONS)
async def test_raw_handshake_era_result_holds_the_preview_first_and_the_text(
    dev_url: str, version: str
) -> None:
    """initialize -> session -> tools/call: image content first, then text, plus the
    structured content; the session ends on DELETE and is then unknown (404)."""
    async with httpx2.AsyncClient(timeout=60) as http:
        client = HandshakeClient(http, f"{dev_url}/mcp", version)
        opened = await client.open()
        assert opened.result["protocolVersion"] == version
        assert opened.result["capabilities"]["tools"] is not None
        listed = await client.request("tools/list")
        assert {"generate_image", "get_image"} <= _tool_names(listed)
        made = await client.request(
            "tools/call",
            {
                "name": "generate_image",
                "arguments": {"prompt": "a raw lighthouse"},
                "_meta": {"progressToken": "raw-handshake"},
            },
        )
        data = assert_image_then_text(made.result)
        shown = await client.request(
            "tools/call", {"name": "get_image", "arguments": {"name": data["file_name"]}}
        )
        assert assert_image_then_text(shown.result)["url"] == data["url"]
        assert await client.close() in {200, 204}
        gone = await http.post(
            f"{dev_url}/mcp",
            json={"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {}},
            headers={
                "Accept": "application/json, text/event-stream",
                "Mcp-Session-Id": str(client.session_id),
                "MCP-Protocol-Version": version,
            },
        )
    assert gone.status_code == 404
    await assert_the_png_is_served(data["url"])


async def test_raw_stateless_era_result_holds_the_preview_first_and_the_text(
    dev_url: str,
) -> None:
    """server/discover, then tools/call with no initialize and no session at all:
    the same image-first result, and the server never issues a session."""
    async with httpx2.AsyncClient(timeout=60) as http:
        client = StatelessClient(http, f"{dev_url}/mcp")
        found = await client.request("server/discover")
        assert STATELESS_VERSION in found.result["supportedVersions"]
        assert "tools" in found.result["capabilities"]
        listed = await client.request("tools/list")
        assert {"generate_image", "get_image"} <= _tool_names(listed)
        made = await client.request(
            "tools/call",
            {
                "name": "generate_image",
                "arguments": {"prompt": "a stateless one"},
                "_meta": {"progressToken": "raw-stateless"},
            },
        )
        data = assert_image_then_text(made.result)
        assert made.result["resultType"] == "complete"
        shown = await client.request(
            "tools/call", {"name": "get_image", "arguments": {"name": data["file_name"]}}
        )
        assert assert_image_then_text(shown.result)["url"] == data["url"]
    for reply in (found, listed, made, shown):
        assert "mcp-session-id" not in reply.headers
    await assert_the_png_is_served(data["url"])


async def test_a_stateless_request_without_its_meta_is_refused(dev_url: str) -> None:
    """The era is chosen per request: a 2026-07-28 header with no ``_meta`` is a bad
    request (400, -32602), not a silent fall-back to a session."""
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{dev_url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            headers={
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": STATELESS_VERSION,
                "Mcp-Method": "tools/list",
            },
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == -32602
    assert "mcp-session-id" not in response.headers


# --- production mode: a real token from the fake Google, both eras -------------------


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakeGoogle]]:
    """The production app behind the OAuth proxy, the fake Google and fake Gemini."""
    root: Path = tmp_path_factory.mktemp("eras-production")
    port = free_port()
    with (
        FakeGoogle(client_id=GOOGLE_CLIENT_ID, client_secret=GOOGLE_CLIENT_SECRET) as google,
        FakeGemini(api_key=GEMINI_KEY) as gemini,
    ):
        settings = load_settings(
            {
                "IMG_ROOT": str(root / "data"),
                "IMG_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "GOOGLE_OAUTH_CLIENT_ID": GOOGLE_CLIENT_ID,
                "GOOGLE_OAUTH_CLIENT_SECRET": GOOGLE_CLIENT_SECRET,
                "IMG_JWT_SIGNING_KEY": "eras-signing-key-0123456789abcdefghijklmnop",
                "IMG_ALLOWED_EMAILS": "ada@example.com",
                "GEMINI_API_KEY": GEMINI_KEY,
                "IMG_GEMINI_BASE_URL": gemini.base_url,
            }
        )
        app = build_app(settings, google=GoogleEndpoints.at(google.base_url))
        with live_server(app, port=port) as base_url:
            yield base_url, google


async def test_production_mode_serves_both_eras_to_a_signed_in_person(
    production: tuple[str, FakeGoogle],
) -> None:
    """One Google login; the same bearer token works with a handshake session and with
    stateless requests, and both get the preview first; without it both are refused."""
    base_url, google = production
    google.next_email = "ada@example.com"
    mcp_url = f"{base_url}/mcp"
    async with httpx2.AsyncClient(timeout=60) as http:
        token = (await obtain_token(mcp_url, http=http)).access_token
    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(timeout=60, headers=bearer) as http:
        session = HandshakeClient(http, mcp_url, HANDSHAKE_VERSIONS[-1])
        await session.open()
        made = await session.request(
            "tools/call", {"name": "generate_image", "arguments": {"prompt": "a session one"}}
        )
        first = assert_image_then_text(made.result)
        stateless = StatelessClient(http, mcp_url)
        again = await stateless.request(
            "tools/call", {"name": "get_image", "arguments": {"name": first["file_name"]}}
        )
        assert assert_image_then_text(again.result)["url"] == first["url"]
        made_stateless = await stateless.request(
            "tools/call", {"name": "generate_image", "arguments": {"prompt": "a stateless one"}}
        )
        second = assert_image_then_text(made_stateless.result)
        assert await session.close() in {200, 204}
    assert second["file_name"] != first["file_name"]
    async with httpx2.AsyncClient(timeout=30) as anonymous:
        refused = await anonymous.post(
            mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert refused.status_code == 401
    await assert_the_png_is_served(first["url"])


def _tool_names(reply: Reply) -> set[str]:
    return {str(tool["name"]) for tool in reply.result["tools"]}
