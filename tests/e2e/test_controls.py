"""count, thinking and search_grounding end to end: an MCP client over HTTP, the whole app,
the real google-genai client and the fake Gemini.

Each of ``count`` images is its own Gemini call, stored, billed and answered with its
own preview and URL, with a progress notification as each one settles; a thinking level
or grounding a model lacks is refused before anything is sent; grounding's queries and
their cost land in the sidecar and the reply.
"""

from __future__ import annotations

import asyncio
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

from image_server.app import build_app
from image_server.settings import Settings, load_settings
from tests.fakes.fake_gemini import FakeGemini
from tests.support.live_server import live_server

pytestmark = [pytest.mark.anyio]

KEY = "gemini-controls-key-0123456789"
FLASH_ID = "gemini-3.1-flash-image"


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, gemini: FakeGemini) -> Settings:
    env = {
        "IMG_ROOT": str(tmp_path / "data"),
        "GEMINI_API_KEY": KEY,
        "IMG_GEMINI_BASE_URL": gemini.base_url,
    }
    return load_settings(env, dev=True)


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(build_app(settings)) as url:
        yield url


def texts(result: Any) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def sidecar(settings: Settings, file_name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (settings.root / file_name).with_suffix(".json").read_text()
    )
    return loaded


def sidecars(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(settings.root.glob("*.json"))]


async def test_count_three_returns_three_previews_urls_and_records_whose_costs_add_up(
    base_url: str, settings: Settings, gemini: FakeGemini
) -> None:
    """Three Gemini calls; three previews; three URLs serving PNGs; one progress per image."""
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(f"{base_url}/mcp") as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "a fox", "count": 3}, progress_handler=on_progress
        )
    assert not result.is_error
    assert len(gemini.requests) == 3
    previews = [c for c in result.content if isinstance(c, ImageContent)]
    assert len(previews) == 3
    data = result.structured_content
    assert data is not None
    assert (data["count"], data["ready"], data["failed"]) == (3, 3, 0)
    urls = [image["url"] for image in data["images"]]
    assert len(set(urls)) == 3
    async with httpx2.AsyncClient() as http:
        for url in urls:
            answer = await http.get(url.replace(settings.public_url, base_url))
            assert answer.status_code == 200
            assert answer.content.startswith(b"\x89PNG")
    records = sidecars(settings)
    assert len(records) == 3
    assert {r["status"] for r in records} == {"done"}
    # The records cost what Gemini's token counts say; the list price stays beside it.
    assert sum(Decimal(r["cost"]) for r in records) == Decimal(data["cost_usd"])
    assert {r["cost_basis"] for r in records} == {"usage"}
    assert data["estimated_cost_usd"] == "0.201"
    for number, url in enumerate(urls, start=1):
        assert f"Image {number} of 3 ready: {url}" in texts(result)
    per_image = [s for s in seen if s[2] and "; ready: " in s[2]]
    assert [(p, t) for p, t, _ in per_image] == [(1, 3), (2, 3), (3, 3)]
    assert all(url in " ".join(m or "" for _, _, m in per_image) for url in urls)
    values = [p for p, _, _ in seen]
    assert values == sorted(values)


@pytest.mark.parametrize("count", [0, 5])
async def test_a_count_outside_one_to_four_is_refused_and_nothing_is_sent(
    base_url: str, settings: Settings, gemini: FakeGemini, count: int
) -> None:
    async with Client(f"{base_url}/mcp") as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "a fox", "count": count}, raise_on_error=False
        )
    assert result.is_error
    message = texts(result)
    assert f"count {count} is out of range: use 1 to 4" in message
    assert gemini.requests == []
    assert sidecars(settings) == []


async def test_one_of_three_refused_keeps_and_bills_the_other_two(
    base_url: str, settings: Settings, gemini: FakeGemini
) -> None:
    """Gemini blocks one (not retried, not billed); the two that came are stored and billed."""
    gemini.script("ok", "safety_prompt", "ok")
    async with Client(f"{base_url}/mcp") as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox", "count": 3})
    assert not result.is_error
    assert len(gemini.requests) == 3
    data = result.structured_content
    assert data is not None
    assert (data["ready"], data["failed"]) == (2, 1)
    assert data["estimated_cost_usd"] == "0.134"
    failed = next(i for i in data["images"] if i["status"] == "failed")
    assert "blocked the prompt" in failed["failure"]
    assert "failed: Gemini blocked the prompt" in texts(result)
    assert len([c for c in result.content if isinstance(c, ImageContent)]) == 2
    records = sidecars(settings)
    assert [r["status"] for r in records] == ["done", "done"]


async def test_a_passing_failure_of_one_image_is_retried_alone(
    base_url: str, settings: Settings, gemini: FakeGemini
) -> None:
    """A quick 500 on one of two calls is retried; both images come, each billed once."""
    gemini.script("server_error")
    async with Client(f"{base_url}/mcp") as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox", "count": 2})
    data = result.structured_content
    assert data is not None
    assert (data["ready"], data["failed"]) == (2, 0)
    assert len(gemini.requests) == 3
    records = sidecars(settings)
    assert sum(Decimal(r["estimate"]) for r in records) == Decimal("0.134")
    assert sum(Decimal(r["cost"]) for r in records) == Decimal(data["cost_usd"])


async def test_a_plain_call_answers_as_before(base_url: str, gemini: FakeGemini) -> None:
    """No count, thinking or grounding: one image, the reply's keys as they always were."""
    async with Client(f"{base_url}/mcp") as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox"})
    assert result.structured_content is not None
    assert set(result.structured_content) == {
        "status",
        "url",
        "file_name",
        "model",
        "model_id",
        "image_size",
        "aspect_ratio",
        "width",
        "height",
        "estimated_cost_usd",
        "cost_usd",
        "cost_basis",
        "placeholder",
    }
    assert texts(result).startswith("Image ready: ")
    sent = gemini.requests[0]
    assert "thinkingConfig" not in sent.config
    assert "tools" not in sent.body


async def test_thinking_is_sent_for_flash_and_recorded(
    base_url: str, settings: Settings, gemini: FakeGemini
) -> None:
    async with Client(f"{base_url}/mcp") as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox", "thinking": "high"})
    assert result.structured_content is not None
    assert result.structured_content["thinking_level"] == "high"
    config = gemini.requests[0].config["thinkingConfig"]
    assert "HIGH" in config.values()
    assert sidecar(settings, result.structured_content["file_name"])["thinking_level"] == "high"
    assert "Thinking level: high" in texts(result)


async def test_thinking_is_refused_where_the_model_has_no_such_level(
    base_url: str, settings: Settings, gemini: FakeGemini
) -> None:
    """Pro takes no level, flash not 'medium': each refusal names what would work."""
    async with Client(f"{base_url}/mcp") as client:
        pro = await client.call_tool(
            "generate_image",
            {"prompt": "a fox", "model": "pro", "thinking": "high"},
            raise_on_error=False,
        )
        medium = await client.call_tool(
            "generate_image", {"prompt": "a fox", "thinking": "medium"}, raise_on_error=False
        )
    assert pro.is_error
    assert "takes no thinking level" in texts(pro)
    assert "'flash' takes minimal, high" in texts(pro)
    assert medium.is_error
    assert "minimal, high" in texts(medium)
    assert gemini.requests == []
    assert sidecars(settings) == []


async def test_grounding_is_sent_and_its_queries_and_cost_are_recorded(
    base_url: str, settings: Settings, gemini: FakeGemini
) -> None:
    """One query at $0.014 on top of a $0.067 image: the sidecar, the reply and the total agree."""
    async with Client(f"{base_url}/mcp") as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "the Eiffel tower today", "search_grounding": True}
        )
        assert result.structured_content is not None
        again = await client.call_tool(
            "get_image", {"name": result.structured_content["file_name"]}
        )
    assert gemini.requests[0].body["tools"] == [{"googleSearch": {}}]
    data = result.structured_content
    assert data is not None
    assert data["estimated_cost_usd"] == "0.081"
    assert data["search_queries"] == ["the Eiffel tower today"]
    assert data["search_cost_usd"] == "0.014"
    assert data["sources"][0]["uri"] == "https://example.org/source-1"
    record = sidecar(settings, data["file_name"])
    assert record["search_grounding"] is True
    assert record["grounding"]["queries"] == ["the Eiffel tower today"]
    assert record["grounding"]["cost"] == "0.014"
    assert record["estimate"] == "0.081"
    # The true cost: the image's and prompt's tokens, then the query at $0.014 once.
    assert record["cost"] == data["cost_usd"]
    assert record["cost_basis"] == "usage"
    assert Decimal("0.081") < Decimal(record["cost"]) < Decimal("0.082")
    text = texts(result)
    assert "Grounded in Google Search: 1 search query" in text
    assert "https://example.org/source-1" in text
    assert "Grounded in Google Search: 1 search query" in texts(again)
    assert again.structured_content is not None
    assert again.structured_content["search_cost_usd"] == "0.014"


async def test_grounding_is_refused_for_lite_naming_who_can(
    base_url: str, gemini: FakeGemini
) -> None:
    async with Client(f"{base_url}/mcp") as client:
        result = await client.call_tool(
            "generate_image",
            {"prompt": "a fox", "model": "lite", "search_grounding": True},
            raise_on_error=False,
        )
    assert result.is_error
    assert "cannot ground images in Google Search" in texts(result)
    assert "'flash'" in texts(result)
    assert gemini.requests == []


async def test_the_tool_describes_the_controls_as_on_request_only(base_url: str) -> None:
    async with Client(f"{base_url}/mcp") as client:
        tool = next(t for t in await client.list_tools() if t.name == "generate_image")
    props = tool.input_schema["properties"]
    assert {"count", "thinking", "search_grounding"} <= set(props)
    assert tool.input_schema["required"] == ["prompt"]
    assert "maximum" in json.dumps(props["count"])
    description = tool.description or ""
    for control in ("count", "thinking", "search_grounding"):
        line = next(ln for ln in description.splitlines() if ln.startswith(f"- {control}:"))
        assert "ONLY" in line
    assert "minimal, high" in description
    assert "$0.014" in description


async def test_at_the_deadline_each_image_answers_as_it_stands(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    """One quick, one slow past IMG_TOOL_DEADLINE: one preview, one 'still rendering' URL
    that serves the image once it is done; both billed."""
    env = {
        "IMG_ROOT": str(tmp_path / "data"),
        "GEMINI_API_KEY": KEY,
        "IMG_GEMINI_BASE_URL": gemini.base_url,
        "IMG_TOOL_DEADLINE": "1.5",
    }
    settings = load_settings(env, dev=True)
    gemini.script("ok", "slow:3")
    with live_server(build_app(settings)) as base_url:
        async with Client(f"{base_url}/mcp") as client:
            result = await client.call_tool("generate_image", {"prompt": "a fox", "count": 2})
        data = result.structured_content
        assert data is not None
        assert (data["ready"], data["rendering"], data["failed"]) == (1, 1, 0)
        later = next(i for i in data["images"] if i["status"] == "rendering")
        assert "Still rendering" in texts(result)
        deadline = time.monotonic() + 15
        async with httpx2.AsyncClient() as http:
            while True:
                answer = await http.get(later["url"].replace(settings.public_url, base_url))
                if answer.status_code == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        assert answer.status_code == 200
    assert sorted(r["status"] for r in sidecars(settings)) == ["done", "done"]
