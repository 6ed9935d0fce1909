"""get_image through a real MCP client: own images, others' refused, admins see all."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier
from mcp.types import ImageContent, TextContent

from image_core.errors import BackendRefused
from image_core.testing import FakeImageBackend
from image_server.app import build_service
from image_server.mcp import build_mcp_server
from image_server.settings import Settings, load_settings
from tests.support.bad_records import plant
from tests.support.live_server import live_server

pytestmark = pytest.mark.anyio


def _claims(email: str) -> dict[str, Any]:
    return {"client_id": "c", "scopes": [], "email": email, "email_verified": True}


TOKENS = {
    "ada": _claims("ada@example.com"),
    "bob": _claims("bob@example.com"),
    "boss": _claims("boss@example.com"),
    "stranger": _claims("stranger@example.com"),
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    env = {
        "IMG_ROOT": str(tmp_path / "data"),
        "IMG_PUBLIC_URL": "http://127.0.0.1:1",
        "GOOGLE_OAUTH_CLIENT_ID": "c",
        "GOOGLE_OAUTH_CLIENT_SECRET": "s" * 20,
        "IMG_ALLOWED_EMAILS": "ada@example.com,bob@example.com",
        "IMG_ADMIN_EMAILS": "boss@example.com",
        "GEMINI_API_KEY": "k" * 20,
        "IMG_TOOL_DEADLINE": "4",
    }
    return load_settings(env)


@pytest.fixture
def backend() -> FakeImageBackend:
    return FakeImageBackend(text="Here is\nyour   fox.")


@pytest.fixture
def url(settings: Settings, backend: FakeImageBackend) -> Iterator[str]:
    service = build_service(settings, backend=backend)
    server = build_mcp_server(
        service,
        public_url=settings.public_url,
        auth=StaticTokenVerifier(tokens=TOKENS),
        tool_deadline_seconds=settings.tool_deadline_seconds,
    )
    with live_server(server.http_app(path="/mcp")) as base:
        yield f"{base}/mcp"


def texts(result: Any) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def generate(url: str, token: str = "ada") -> dict[str, Any]:
    async with Client(url, auth=token) as c:
        result = await c.call_tool("generate_image", {"prompt": "a fox"})
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    return data


async def test_the_owner_sees_the_image_again_with_a_preview(url: str) -> None:
    """By file name or URL: preview, URL, file name, model, size, cost."""
    made = await generate(url)
    async with Client(url, auth="ada") as c:
        by_name = await c.call_tool("get_image", {"name": made["file_name"]})
        by_url = await c.call_tool("get_image", {"name": made["url"]})
    for result in (by_name, by_url):
        assert any(isinstance(c, ImageContent) for c in result.content)
        text = texts(result)
        assert text.startswith(f"Image: {made['url']}")
        assert made["file_name"] in text
        assert "Model: flash" in text
        assert "Estimated cost: $0.067" in text
        assert result.structured_content is not None
        assert result.structured_content["status"] == "done"


async def test_the_models_words_are_one_line_of_the_generate_reply(url: str) -> None:
    """Text the model returned beside the image is a one-line note."""
    async with Client(url, auth="ada") as c:
        result = await c.call_tool("generate_image", {"prompt": "a fox"})
    assert "Note from the model: Here is your fox." in texts(result).splitlines()


async def test_another_persons_image_is_refused_but_an_admin_sees_it(url: str) -> None:
    """Bob may not look at Ada's image; the admin may."""
    made = await generate(url)
    async with Client(url, auth="bob") as c:
        with pytest.raises(ToolError, match="only look up your own"):
            await c.call_tool("get_image", {"name": made["file_name"]})
    async with Client(url, auth="boss") as c:
        seen = await c.call_tool("get_image", {"name": made["file_name"]})
    assert seen.structured_content is not None
    assert seen.structured_content["file_name"] == made["file_name"]


async def test_a_stranger_is_refused_like_generate_image(url: str) -> None:
    """Not on the allow-list: refused before the tool runs."""
    made = await generate(url)
    async with Client(url, auth="stranger") as c:
        with pytest.raises(ToolError, match="allow-list|IMG_ALLOWED_EMAILS"):
            await c.call_tool("get_image", {"name": made["file_name"]})


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("not-a-name", "is not the name of a generation"),
        ("0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09.png", "no generation named"),
    ],
)
async def test_an_unknown_name_is_a_clear_error(url: str, name: str, said: str) -> None:
    """Garbage and a well-formed name that was never generated are told apart."""
    async with Client(url, auth="ada") as c:
        with pytest.raises(ToolError, match=said):
            await c.call_tool("get_image", {"name": name})


@pytest.mark.parametrize("case", ["a cost beyond the bound", "deep nesting in the cost"])
async def test_an_image_whose_record_was_damaged_is_not_found_not_a_crash(
    url: str, settings: Settings, case: str
) -> None:
    """The sidecar is damaged once the image is done: get_image treats it as absent."""
    made = await generate(url)
    async with Client(url, auth="ada") as c:
        for _ in range(100):
            seen = await c.call_tool("get_image", {"name": made["file_name"]})
            assert seen.structured_content is not None
            if seen.structured_content["status"] == "done":
                break
            await asyncio.sleep(0.05)
        plant(settings.root, case, record_id=uuid.UUID(made["file_name"].removesuffix(".png")))
        with pytest.raises(ToolError, match="no generation named"):
            await c.call_tool("get_image", {"name": made["file_name"]})


async def test_pending_says_still_rendering_and_failed_says_why(
    url: str, backend: FakeImageBackend
) -> None:
    """Past the deadline the tool says still rendering; a later refusal is shown with why."""
    backend.delay_seconds = 5
    backend.failures.append(BackendRefused("Blocked by the safety filter."))
    made = await generate(url)
    assert made["status"] == "rendering"
    async with Client(url, auth="ada") as c:
        pending = await c.call_tool("get_image", {"name": made["file_name"]})
        assert texts(pending).startswith("Still rendering; it will be at")
        assert pending.structured_content is not None
        assert pending.structured_content["expected_seconds"] >= 5
        for _ in range(150):
            failed = await c.call_tool("get_image", {"name": made["file_name"]})
            assert failed.structured_content is not None
            if failed.structured_content["status"] == "failed":
                break
            await asyncio.sleep(0.1)
    assert not failed.is_error
    assert "failed: Blocked by the safety filter." in texts(failed)
    assert failed.structured_content["estimated_cost_usd"] == "0"
