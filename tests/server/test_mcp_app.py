"""The image viewer (an MCP App) as the MCP wire shows it: the ``ui://`` resource, the
tools naming it, and replies that stay the same for clients without MCP Apps."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier
from mcp.types import TextResourceContents

from image_core.testing import FakeImageBackend, FixedClock, SequentialIds
from image_server.app import build_service
from image_server.mcp import build_mcp_server
from image_server.mcp_app import (
    LEGACY_URI_KEY,
    VIEWER_URI,
    offers_app,
    origin_of,
    viewer_html,
    viewer_page,
)
from image_server.settings import Settings
from image_server.tool_names import ALL_TOOLS, GET_TOOL_NAME, LIST_TOOL_NAME, TOOL_NAME
from tests.server.test_mcp_native import TOKENS, make_settings
from tests.support.apps_host import APPS_HOST
from tests.support.live_server import live_server

pytestmark = pytest.mark.anyio

PUBLIC_URL = "http://127.0.0.1:1"


def serve_fixed(settings: Settings) -> Iterator[str]:
    """The MCP endpoint with predictable ids and time, so two servers answer alike."""
    service = build_service(
        settings, backend=FakeImageBackend(), clock=FixedClock(), ids=SequentialIds()
    )
    server = build_mcp_server(
        service,
        public_url=settings.public_url,
        auth=StaticTokenVerifier(tokens=TOKENS),
        tool_deadline_seconds=settings.tool_deadline_seconds,
        tools=settings.tools,
    )
    with live_server(server.http_app(path="/mcp")) as base:
        yield f"{base}/mcp"


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield from serve_fixed(make_settings(tmp_path / "data"))


async def test_the_viewer_is_a_ui_resource_limited_to_the_servers_own_origin(url: str) -> None:
    """Listed and read as ``text/html;profile=mcp-app``, the built page whole, with the
    server's origin as its only resource domain and no connect domains."""
    async with Client(url, auth="ada", extensions=APPS_HOST) as c:
        listed = {str(r.uri): r for r in await c.list_resources()}
        (page,) = await c.read_resource(VIEWER_URI)
    assert listed[VIEWER_URI].mime_type == "text/html;profile=mcp-app"
    assert (listed[VIEWER_URI].meta or {})["ui"]["csp"] == {"resourceDomains": [PUBLIC_URL]}
    assert isinstance(page, TextResourceContents)
    assert page.mime_type == "text/html;profile=mcp-app"
    assert page.text == viewer_page(20 * 1024 * 1024)
    assert page.text.startswith("<!doctype html>")
    ui = (page.meta or {})["ui"]
    assert ui == {"csp": {"resourceDomains": [PUBLIC_URL]}, "prefersBorder": True}


async def test_generate_and_get_name_the_viewer_and_the_listing_does_not(url: str) -> None:
    async with Client(url, auth="ada") as c:
        tools = {t.name: t for t in await c.list_tools()}
    for name in (TOOL_NAME, GET_TOOL_NAME):
        meta = tools[name].meta or {}
        assert meta["ui"]["resourceUri"] == VIEWER_URI
        assert meta[LEGACY_URI_KEY] == VIEWER_URI
        assert "visibility" not in meta["ui"]  # the model still sees and calls them
    assert "ui" not in (tools[LIST_TOOL_NAME].meta or {})


async def test_a_client_without_mcp_apps_gets_the_same_reply(tmp_path: Path) -> None:
    """The reply of generate_image with the viewer offered equals the one-tool
    contract's (no app) exactly: preview image, text with the URL, structured content."""
    answers: list[dict[str, Any]] = []
    metas: list[dict[str, Any]] = []
    for tools in ("all", TOOL_NAME):
        settings = make_settings(tmp_path / tools, IMG_TOOLS=tools)
        for url in serve_fixed(settings):
            async with Client(url, auth="ada") as c:
                listed = {t.name: t for t in await c.list_tools()}
                raw = await c.call_tool_mcp(TOOL_NAME, {"prompt": "a red kite over a lake"})
        answers.append(raw.model_dump(by_alias=True, exclude_none=True))
        metas.append(dict(listed[TOOL_NAME].meta or {}))
    with_app, without = answers
    assert with_app == without
    kinds = [block["type"] for block in with_app["content"]]
    assert kinds[0] == "image"
    assert "text" in kinds
    assert any(f"{PUBLIC_URL}/i/" in b.get("text", "") for b in with_app["content"])
    # The tool itself differs only by naming the viewer.
    ui_keys = {"ui", LEGACY_URI_KEY}
    assert ui_keys <= set(metas[0])
    assert not ui_keys & set(metas[1])
    assert {k: v for k, v in metas[0].items() if k not in ui_keys} == metas[1]


def test_the_viewer_comes_with_get_image_only() -> None:
    assert offers_app(ALL_TOOLS)
    assert not offers_app([TOOL_NAME])
    assert not offers_app([TOOL_NAME, LIST_TOOL_NAME])


def test_the_origin_drops_any_path() -> None:
    assert origin_of("https://images.example.org/base/") == "https://images.example.org"
    assert origin_of("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


# What the script of the page may spell as a URL: identifiers and examples inside the
# bundled libraries, never fetched (a JSON Schema dialect's id, the base URI the schema
# validator falls back to, an IPv6 check building a URL to parse, the SDK's own field
# description). Anything else, or any URL in markup or styles, fails.
NEVER_FETCHED = {
    "http://json-schema.org/draft-04/schema#",
    "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-07/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft-06/schema",
    "https://json-schema.org/draft-07/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "https://json-schema.org/draft/2020-12/schema",
    "https://github.com/cfworker",
    "http://[${e}]",
    "https://*.example.com",
}


def test_the_page_is_self_contained() -> None:
    """One file: the script and styles inline, no URL to load anything from outside."""
    html = viewer_html()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 2  # the server's settings (JSON, no code), then the viewer
    config, (attributes, script) = scripts
    assert config == (' type="application/json" id="viewer-config"', '{"uploadMaxBytes":20971520}')
    assert "src" not in attributes
    markup = html.replace(script, "")
    assert not re.search(r"https?:|//", markup)
    assert not re.search(r"@import|url\(", markup)
    assert "<link" not in markup
    spelt = set(re.findall(r"https?://[^\"'`\s)\\]*", script))
    assert spelt <= NEVER_FETCHED, spelt - NEVER_FETCHED
    assert len(html.encode()) < 600_000


async def test_the_page_carries_this_servers_upload_cap_and_none_without_uploads(
    tmp_path: Path,
) -> None:
    """The viewer checks a photo against the server's own cap before sending it, and
    offers no upload where the upload tool is not offered."""
    caps = []
    for name, extra in (
        ("small", {"IMG_UPLOAD_MAX_MB": "5"}),
        ("off", {"IMG_UPLOADS_PER_USER": "0"}),
    ):
        for url in serve_fixed(make_settings(tmp_path / name, **extra)):
            async with Client(url, auth="ada", extensions=APPS_HOST) as c:
                (page,) = await c.read_resource(VIEWER_URI)
            assert isinstance(page, TextResourceContents)
            found = re.search(r'id="viewer-config">([^<]*)<', page.text)
            assert found is not None
            caps.append(found.group(1))
    assert caps == ['{"uploadMaxBytes":5242880}', '{"uploadMaxBytes":0}']


def test_a_page_without_its_settings_block_is_refused() -> None:
    with pytest.raises(RuntimeError, match="rebuild the viewer"):
        viewer_page(1, "<!doctype html><script></script>")
