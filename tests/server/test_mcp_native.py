"""The tool surface over real HTTP: annotations, output schemas, icons, list_images,
earlier images as resources, the one-tool setting, and image plus structured content.

Callers are told apart by static bearer tokens (fastmcp's ``StaticTokenVerifier``), so
access follows the same allow-list and admin rules as in production.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import jsonschema
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier
from mcp.types import BlobResourceContents, ImageContent, TextContent, TextResourceContents

from image_core.domain import BackendImage, BackendRequest
from image_core.testing import FakeImageBackend
from image_server.app import build_service
from image_server.mcp import build_mcp_server
from image_server.mcp_app import VIEWER_URI
from image_server.mcp_resources import RESOURCE_MAX_BYTES, image_uri, record_uri
from image_server.settings import Settings, SettingsError, load_settings
from image_server.tool_names import ALL_TOOLS, UPLOAD_TOOL_NAME
from image_server.tool_schemas import (
    GENERATE_OUTPUT,
    GET_OUTPUT,
    LIST_OUTPUT,
    ONE_IMAGE,
    UPLOAD_OUTPUT,
)
from tests.support.apps_host import APPS_HOST
from tests.support.live_server import live_server
from tests.support.photos import photo_bytes

pytestmark = pytest.mark.anyio

SCHEMAS = {
    "generate_image": GENERATE_OUTPUT,
    "get_image": GET_OUTPUT,
    "list_images": LIST_OUTPUT,
    "upload_photo": UPLOAD_OUTPUT,
}


def _claims(email: str) -> dict[str, Any]:
    return {"client_id": "c", "scopes": [], "email": email, "email_verified": True}


TOKENS = {
    "ada": _claims("ada@example.com"),
    "bob": _claims("bob@example.com"),
    "boss": _claims("boss@example.com"),
    "stranger": _claims("stranger@example.com"),
}


def make_settings(root: Path, **extra: str) -> Settings:
    env = {
        "IMG_ROOT": str(root),
        "IMG_PUBLIC_URL": "http://127.0.0.1:1",
        "GOOGLE_OAUTH_CLIENT_ID": "c",
        "GOOGLE_OAUTH_CLIENT_SECRET": "s" * 20,
        "IMG_ALLOWED_EMAILS": "ada@example.com,bob@example.com",
        "IMG_ADMIN_EMAILS": "boss@example.com",
        "GEMINI_API_KEY": "k" * 20,
        "IMG_TOOL_DEADLINE": "4",
        **extra,
    }
    return load_settings(env)


def serve(settings: Settings, backend: FakeImageBackend) -> Iterator[str]:
    service = build_service(settings, backend=backend)
    server = build_mcp_server(
        service,
        public_url=settings.public_url,
        auth=StaticTokenVerifier(tokens=TOKENS),
        icon_url=f"{settings.public_url}/ui/static/favicon.svg",
        website_url=f"{settings.public_url}/ui/",
        tool_deadline_seconds=settings.tool_deadline_seconds,
        tools=settings.tools,
    )
    with live_server(server.http_app(path="/mcp")) as base:
        yield f"{base}/mcp"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def backend() -> FakeImageBackend:
    return FakeImageBackend()


@pytest.fixture
def url(settings: Settings, backend: FakeImageBackend) -> Iterator[str]:
    yield from serve(settings, backend)


async def generate(url: str, prompt: str, token: str = "ada", **args: Any) -> dict[str, Any]:
    async with Client(url, auth=token) as c:
        result = await c.call_tool("generate_image", {"prompt": prompt, **args})
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    return data


def check_reply(tool: str, result: Any) -> dict[str, Any]:
    """The structured content fits the tool's schema and is repeated as the last text."""
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, SCHEMAS[tool])
    for image in data.get("images", ()):  # each image of a batch or a page, in full
        if "url" in image:
            jsonschema.validate(image, ONE_IMAGE)
        else:  # an image of a batch that failed before anything was kept
            assert set(image) == {"status", "failure"}
            assert image["status"] == "failed"
    if tool != "list_images" and "images" not in data:
        jsonschema.validate(data, ONE_IMAGE)
    last = result.content[-1]
    assert isinstance(last, TextContent)
    assert json.loads(last.text) == data
    return dict(data)


async def test_every_tool_is_listed_with_a_title_hints_an_output_schema_and_icons(
    url: str,
) -> None:
    """Claude decides permissions from these: generate spends, the other two only read.

    An MCP Apps host sees every tool; any other client the same without the app-only
    upload tool, which it would otherwise hand to its model.
    """
    async with Client(url, auth="ada") as c:
        plain = [t.name for t in await c.list_tools()]
    async with Client(url, auth="ada", extensions=APPS_HOST) as c:
        tools = {t.name: t for t in await c.list_tools()}
        info = c.server_info
    assert list(tools) == list(ALL_TOOLS)
    assert plain == [name for name in ALL_TOOLS if name != UPLOAD_TOOL_NAME]
    generate_tool = tools["generate_image"]
    assert generate_tool.title == "Generate image"
    hints = generate_tool.annotations
    assert hints is not None
    assert (hints.read_only_hint, hints.destructive_hint) == (False, False)
    assert (hints.idempotent_hint, hints.open_world_hint) == (False, True)
    for name in ("get_image", "list_images"):
        read = tools[name].annotations
        assert read is not None
        assert read.title
        assert (read.read_only_hint, read.destructive_hint, read.idempotent_hint) == (
            True,
            False,
            True,
        )
        assert read.open_world_hint is False
    for name, tool in tools.items():
        assert tool.output_schema == SCHEMAS[name]
        jsonschema.validators.validator_for(tool.output_schema).check_schema(tool.output_schema)
        assert tool.output_schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert tool.icons
        assert tool.icons[0].src.endswith("/ui/static/favicon.svg")
    assert info is not None
    assert info.name == "image-mcp"
    assert info.website_url == "http://127.0.0.1:1/ui/"
    assert "fastmcp" not in info.version.lower()


async def test_each_reply_kind_fits_its_schema_and_repeats_it_as_json_text(
    url: str, backend: FakeImageBackend
) -> None:
    """One image, a batch, get_image of done and failed, and a listing all validate."""
    async with Client(url, auth="ada") as c:
        one = await c.call_tool("generate_image", {"prompt": "a lighthouse"})
        assert isinstance(one.content[0], ImageContent)  # the preview stays first
        made = check_reply("generate_image", one)
        batch = await c.call_tool("generate_image", {"prompt": "three foxes", "count": 3})
        assert check_reply("generate_image", batch)["count"] == 3
        seen = await c.call_tool("get_image", {"name": made["file_name"]})
        assert check_reply("get_image", seen)["status"] == "done"
        listed = await c.call_tool("list_images", {})
        assert check_reply("list_images", listed)["total"] == 4


async def test_the_raw_result_carries_the_image_the_text_and_the_structured_content(
    url: str,
) -> None:
    """Read off the wire: some clients drop images beside structured content; both are there."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    headers = {
        "Authorization": "Bearer ada",
        "Accept": "application/json, text/event-stream",
    }
    async with httpx.AsyncClient(timeout=20) as http:
        opened = await http.post(url, json=body, headers=headers)
        assert opened.status_code == 200
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        more = {**headers, **session, "MCP-Protocol-Version": "2025-06-18"}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await http.post(url, json=note, headers=more)
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "generate_image", "arguments": {"prompt": "a red fox"}},
        }
        answer = await http.post(url, json=call, headers=more)
    result = _rpc_result(answer)
    kinds = [block["type"] for block in result["content"]]
    assert kinds[0] == "image"
    assert kinds.count("text") == 2
    assert result["structuredContent"]["status"] == "done"
    assert base64.b64decode(result["content"][0]["data"])[:3] == b"\xff\xd8\xff"
    assert json.loads(result["content"][-1]["text"]) == result["structuredContent"]


def _rpc_result(answer: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC result of a plain JSON or a server-sent-events answer."""
    if answer.headers["content-type"].startswith("application/json"):
        message = answer.json()
    else:
        data = [line[5:].strip() for line in answer.text.splitlines() if line.startswith("data:")]
        message = next(m for m in map(json.loads, data) if "result" in m or "error" in m)
    assert "result" in message, message
    result: dict[str, Any] = message["result"]
    return result


async def test_list_images_shows_ones_own_newest_first_pages_and_filters(url: str) -> None:
    """Own images only, newest first; offset pages on; words filter the prompts."""
    for prompt in ["a lighthouse at dawn", "a fox in the snow", "Lighthouse in a STORM"]:
        await generate(url, prompt)
    await generate(url, "bob's lighthouse", token="bob")
    async with Client(url, auth="ada") as c:
        first = check_reply("list_images", await c.call_tool("list_images", {"limit": 2}))
        rest = check_reply("list_images", await c.call_tool("list_images", {"offset": 2}))
        storm = await c.call_tool("list_images", {"containing": "storm lighthouse"})
        nothing = await c.call_tool("list_images", {"containing": "whale"})
    assert first["owner"] == "ada@example.com"
    assert [i["prompt"] for i in first["images"]] == ["Lighthouse in a STORM", "a fox in the snow"]
    assert first["total"] == 3
    assert first["has_more"] is True
    assert [i["prompt"] for i in rest["images"]] == ["a lighthouse at dawn"]
    assert rest["has_more"] is False
    found = check_reply("list_images", storm)
    assert [i["prompt"] for i in found["images"]] == ["Lighthouse in a STORM"]
    text = storm.content[0]
    assert isinstance(text, TextContent)
    assert found["images"][0]["file_name"] in text.text
    assert "UTC" in text.text
    assert check_reply("list_images", nothing)["total"] == 0


async def test_list_images_of_another_person_is_for_admins_only(url: str) -> None:
    """Bob may not list Ada's images; the admin may; a stranger may not list at all."""
    await generate(url, "ada's fox")
    async with Client(url, auth="bob") as c:
        with pytest.raises(ToolError, match="only see your own"):
            await c.call_tool("list_images", {"owner": "ada@example.com"})
    async with Client(url, auth="boss") as c:
        seen = check_reply(
            "list_images", await c.call_tool("list_images", {"owner": "ADA@example.com"})
        )
    assert [i["prompt"] for i in seen["images"]] == ["ada's fox"]
    async with Client(url, auth="stranger") as c:
        with pytest.raises(ToolError, match="allow-list|IMG_ALLOWED_EMAILS"):
            await c.call_tool("list_images", {})


async def test_earlier_images_are_resources_read_by_their_owner_and_admins(
    url: str, settings: Settings
) -> None:
    """The listing names the caller's own images; the PNG and the record read back whole."""
    mine = await generate(url, "a lighthouse at dawn")
    theirs = await generate(url, "bob's boat", token="bob")
    async with Client(url, auth="ada") as c:
        templates = {t.uri_template for t in await c.list_resource_templates()}
        listed = {str(r.uri): r for r in await c.list_resources()}
        png = await c.read_resource(image_uri(mine["file_name"]))
        record = await c.read_resource(record_uri(mine["file_name"]))
        with pytest.raises(Exception, match="only look up your own"):
            await c.read_resource(image_uri(theirs["file_name"]))
    assert templates == {"image-mcp://images/{name}", "image-mcp://records/{name}"}
    assert image_uri(mine["file_name"]) in listed
    assert image_uri(theirs["file_name"]) not in listed
    assert listed[image_uri(mine["file_name"])].mime_type == "image/png"
    assert "lighthouse" in (listed[image_uri(mine["file_name"])].title or "")
    (blob,) = png
    assert isinstance(blob, BlobResourceContents)
    assert blob.mime_type == "image/png"
    stored = (settings.root / mine["file_name"]).read_bytes()
    assert base64.b64decode(blob.blob) == stored
    (text,) = record
    assert isinstance(text, TextResourceContents)
    facts = json.loads(text.text)
    assert facts["prompt"] == "a lighthouse at dawn"
    assert facts["url"] == mine["url"]
    async with Client(url, auth="boss") as c:
        (seen,) = await c.read_resource(image_uri(theirs["file_name"]))
    assert isinstance(seen, BlobResourceContents)


async def test_a_stranger_gets_no_listing_and_cannot_read_a_resource(url: str) -> None:
    """A valid Google account that is not allowed: no image listed, reads refused (the
    viewer page, the same for everyone and holding nothing of anyone's, stays listed
    for an apps host)."""
    made = await generate(url, "a fox")
    async with Client(url, auth="stranger", extensions=APPS_HOST) as c:
        listed = [str(r.uri) for r in await c.list_resources()]
        with pytest.raises(Exception, match="allow-list|IMG_ALLOWED_EMAILS"):
            await c.read_resource(image_uri(made["file_name"]))
        with pytest.raises(Exception, match="allow-list|IMG_ALLOWED_EMAILS"):
            await c.read_resource(record_uri(made["file_name"]))
    assert listed == [VIEWER_URI]


async def test_one_tool_alone_is_the_original_contract(tmp_path: Path) -> None:
    """IMG_TOOLS=generate_image: one tool, no resources, no word of the others."""
    settings = make_settings(tmp_path / "data", IMG_TOOLS="generate_image")
    slow = FakeImageBackend(delay_seconds=6.0)
    for url in serve(settings, slow):
        async with Client(url, auth="ada") as c:
            tools = await c.list_tools()
            templates = await c.list_resource_templates()
            resources = await c.list_resources()
            pending = await c.call_tool(
                "generate_image", {"prompt": "a slow fox"}, raise_on_error=False
            )
            instructions = c.instructions
    assert [t.name for t in tools] == ["generate_image"]
    assert "get_image" not in (tools[0].description or "")
    assert "list_images" not in (tools[0].description or "")
    assert templates == []
    assert resources == []  # no viewer (MCP App) either
    assert "ui" not in (tools[0].meta or {})
    assert not any(key.startswith("ui") for key in tools[0].meta or {})
    assert instructions
    assert "get_image" not in instructions
    words = " ".join(b.text for b in pending.content if isinstance(b, TextContent))
    assert "get_image" not in words


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ("get_image", "must include generate_image"),
        ("generate_image,show_image", "show_image"),
    ],
)
def test_img_tools_refuses_what_it_cannot_offer(tmp_path: Path, raw: str, said: str) -> None:
    """A tool the server lacks, or leaving out generate_image, stops start-up clearly."""
    with pytest.raises(SettingsError, match=said):
        make_settings(tmp_path, IMG_TOOLS=raw)


def test_img_tools_keeps_the_listing_order(tmp_path: Path) -> None:
    """Names in any case and order come out in the server's own order; all is every tool."""
    picked = make_settings(tmp_path, IMG_TOOLS=" LIST_IMAGES , generate_image")
    assert picked.tools == ("generate_image", "list_images")
    assert make_settings(tmp_path, IMG_TOOLS="all").tools == ALL_TOOLS


class PhotoBackend(FakeImageBackend):
    """Answers with a photo-like 2K PNG (several MB), as Gemini does."""

    async def generate(self, request: BackendRequest) -> BackendImage:
        self.requests.append(request)
        return BackendImage(photo_bytes(2048, 2048), "image/png")


async def test_a_large_image_is_attached_as_a_copy_that_hosts_accept(tmp_path: Path) -> None:
    """Over 4 MiB the resource is a JPEG copy within 4 MiB; the PNG at the URL is whole."""
    settings = make_settings(tmp_path / "data")
    for url in serve(settings, PhotoBackend()):
        made = await generate(url, "a harbour, photo", image_size="2K")
        async with Client(url, auth="ada") as c:
            (blob,) = await c.read_resource(image_uri(made["file_name"]))
    stored = (settings.root / made["file_name"]).read_bytes()
    assert len(stored) > RESOURCE_MAX_BYTES
    assert isinstance(blob, BlobResourceContents)
    sent = base64.b64decode(blob.blob)
    assert blob.mime_type == "image/jpeg"
    assert len(sent) <= RESOURCE_MAX_BYTES
    assert sent[:3] == b"\xff\xd8\xff"


async def test_without_get_image_the_listing_never_names_it(tmp_path: Path) -> None:
    """IMG_TOOLS=generate_image,list_images: neither the description nor a reply points to
    a tool that is not there."""
    settings = make_settings(tmp_path / "data", IMG_TOOLS="generate_image,list_images")
    for url in serve(settings, FakeImageBackend()):
        await generate(url, "a lighthouse")
        async with Client(url, auth="ada") as c:
            tools = {t.name: t for t in await c.list_tools()}
            listed = await c.call_tool("list_images", {})
    assert list(tools) == ["generate_image", "list_images"]
    assert "get_image" not in (tools["list_images"].description or "")
    words = " ".join(b.text for b in listed.content if isinstance(b, TextContent))
    assert "get_image" not in words
    assert "reference_images" in words
