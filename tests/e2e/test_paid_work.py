"""A paid image is never lost, over real protocols: build_app on uvicorn, fake Gemini.

A client that cancels, one that disconnects, and a tool deadline shorter than Gemini's
answer: the image is stored and its cost recorded all the same, and get_image shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastmcp import Client
from mcp.types import ImageContent, TextContent

from image_server.adapters.fs_metadata import FilesystemMetadataRepository
from image_server.app import build_app
from image_server.settings import Settings, load_settings
from tests.fakes.fake_gemini import FakeGemini
from tests.support.live_server import free_port, live_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

GEMINI_KEY = "gemini-e2e-key-0123456789"
FLASH_1K = Decimal("0.067")


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=GEMINI_KEY) as fake:
        yield fake


def make_settings(root: Path, gemini: FakeGemini, port: int, **extra: str) -> Settings:
    env = {
        "IMG_ROOT": str(root),
        "IMG_PORT": str(port),
        "IMG_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "GEMINI_API_KEY": GEMINI_KEY,
        "IMG_GEMINI_BASE_URL": gemini.base_url,
        **extra,
    }
    return load_settings(env, dev=True)


def texts(result: Any) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def _settled(root: Path) -> dict[str, Any] | None:
    for sidecar in root.glob("*.json"):
        if sidecar.name == "prefs.json":
            continue
        with contextlib.suppress(ValueError):
            data: dict[str, Any] = json.loads(sidecar.read_text())
            if data["status"] != "rendering":
                return data
    return None


async def settled_record(root: Path, seconds: float = 15.0) -> dict[str, Any]:
    """The one sidecar in ``root`` once it is no longer rendering (bounded wait)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(_settled, root)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no settled record appeared within {seconds} s")


def assert_one_flash_image(recorded: tuple[int, Decimal]) -> None:
    """One image, costed by the fake's token counts: a little above flash's list price."""
    count, cost = recorded
    assert count == 1
    assert FLASH_1K <= cost < FLASH_1K + Decimal("0.001")


def recorded_cost(root: Path) -> tuple[int, Decimal]:
    with FilesystemMetadataRepository(root) as metadata:
        usage = metadata.usage()
    return usage.total_count, usage.total_cost.usd


async def test_a_deadline_shorter_than_gemini_answers_still_rendering_with_the_url(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    """IMG_TOOL_DEADLINE=1 and a 3 s answer: 'still rendering' in time; the URL serves it."""
    port = free_port()
    settings = make_settings(tmp_path / "data", gemini, port, IMG_TOOL_DEADLINE="1")
    gemini.script("slow:3")
    with live_server(build_app(settings), port=port) as base_url:
        async with Client(f"{base_url}/mcp") as client:
            started = time.monotonic()
            result = await client.call_tool("generate_image", {"prompt": "a slow lighthouse"})
            took = time.monotonic() - started
            assert took < 1.5
            assert not result.is_error
            data = result.structured_content
            assert data is not None
            assert data["status"] == "rendering"
            text = texts(result)
            assert text.startswith(f"Still rendering; it will be at {data['url']} (file name ")
            assert data["file_name"] in text
            assert "usually within" in text
            async with httpx2.AsyncClient() as http:
                assert (await http.get(data["url"])).status_code == 404
                record = await settled_record(settings.root)
                assert record["status"] == "done"
                png = await http.get(data["url"])
            assert png.status_code == 200
            assert png.content.startswith(b"\x89PNG")
            # The dashboard shows the late image in the gallery and its cost in the table.
            image_id = data["file_name"].removesuffix(".png")
            async with httpx2.AsyncClient(follow_redirects=True) as http:
                gallery = await http.get(f"{base_url}/ui/gallery")
                overview = await http.get(f"{base_url}/ui/")
            assert gallery.status_code == overview.status_code == 200
            assert f"/ui/thumbs/{image_id}" in gallery.text
            assert "$0.067" in overview.text
            shown = await client.call_tool("get_image", {"name": data["url"]})
        assert any(isinstance(c, ImageContent) for c in shown.content)
        assert texts(shown).startswith(f"Image: {data['url']}")
    assert_one_flash_image(recorded_cost(settings.root))
    assert len(gemini.requests) == 1


@pytest.mark.parametrize("leaves", ["cancels", "disconnects"])
async def test_a_client_that_leaves_mid_call_still_gets_its_image_stored(
    tmp_path: Path, gemini: FakeGemini, leaves: str
) -> None:
    """1 s into a 5 s generation the client goes away: the image and its cost appear."""
    port = free_port()
    settings = make_settings(tmp_path / "data", gemini, port)
    gemini.script("slow:5")
    with live_server(build_app(settings), port=port) as base_url:
        async with contextlib.AsyncExitStack() as session:
            client = await session.enter_async_context(Client(f"{base_url}/mcp"))
            call = asyncio.create_task(client.call_tool("generate_image", {"prompt": "a fox"}))
            await asyncio.sleep(1.0)
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await call
            if leaves == "disconnects":
                with contextlib.suppress(Exception):
                    await session.aclose()
            record = await settled_record(settings.root)
        assert record["status"] == "done"
        assert (settings.root / f"{record['id']}.png").is_file()
        async with Client(f"{base_url}/mcp") as again:
            shown = await again.call_tool("get_image", {"name": f"{record['id']}.png"})
        assert shown.structured_content is not None
        assert shown.structured_content["status"] == "done"
    assert_one_flash_image(recorded_cost(settings.root))
    assert len(gemini.requests) == 1


async def test_a_gemini_timeout_after_the_deadline_is_recorded_as_failed_at_its_price(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    """Deadline 1 s, Gemini timeout 2 s, no answer for 4 s: failed, maybe billed, counted."""
    port = free_port()
    settings = make_settings(
        tmp_path / "data", gemini, port, IMG_TOOL_DEADLINE="1", IMG_GEMINI_TIMEOUT="2"
    )
    gemini.script("slow:4")
    with live_server(build_app(settings), port=port) as base_url:
        async with Client(f"{base_url}/mcp") as client:
            result = await client.call_tool("generate_image", {"prompt": "a fox"})
            assert result.structured_content is not None
            name = result.structured_content["file_name"]
            record = await settled_record(settings.root)
            shown = await client.call_tool("get_image", {"name": name})
        async with httpx2.AsyncClient() as http:
            overview = await http.get(f"{base_url}/ui/")
            gallery = await http.get(f"{base_url}/ui/gallery", follow_redirects=True)
    # The failed call's price is in the dashboard's costs; it has no picture in the gallery.
    assert overview.status_code == gallery.status_code == 200
    assert "$0.067" in overview.text
    assert name.removesuffix(".png") not in gallery.text
    assert record["status"] == "failed"
    assert "did not answer within 2 s" in record["failure"]
    assert f"Generation {name} failed: Gemini did not answer" in texts(shown)
    assert recorded_cost(settings.root) == (0, FLASH_1K)
