"""The reply says where the budget stands; the placeholder backend counts at list price.

A real MCP client over Streamable HTTP against build_app in dev mode (login off, so
everyone is the one local person) with the offline placeholder backend: the limits
can be tried out without a Gemini key, and the replies say the figure is a list price.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mcp.types import TextContent

from image_server.app import build_app
from image_server.replies import PLACEHOLDER_NOTE
from image_server.settings import load_settings
from image_server.tool_schemas import GENERATE_OUTPUT
from tests.support.live_server import live_server

pytestmark = pytest.mark.anyio


def serve(root: Path, **extra: str) -> Iterator[str]:
    settings = load_settings(
        {"IMG_ROOT": str(root), "IMG_BACKEND": "placeholder", **extra}, dev=True
    )
    with live_server(build_app(settings)) as url:
        yield url


@pytest.fixture
def budgeted(tmp_path: Path) -> Iterator[str]:
    yield from serve(tmp_path / "data", IMG_BUDGET_USER_MONTHLY="0.20")


@pytest.fixture
def unbudgeted(tmp_path: Path) -> Iterator[str]:
    yield from serve(tmp_path / "data")


def texts(result: Any) -> list[str]:
    return [c.text for c in result.content if isinstance(c, TextContent)]


async def test_each_reply_says_where_the_monthly_budget_stands_until_it_refuses(
    budgeted: str,
) -> None:
    async with Client(f"{budgeted}/mcp") as client:
        first = await client.call_tool("generate_image", {"prompt": "a harbour at dawn"})
        second = await client.call_tool("generate_image", {"prompt": "a harbour at dusk"})
        with pytest.raises(ToolError) as caught:
            await client.call_tool("generate_image", {"prompt": "a harbour at night"})
    text, _json = texts(first)
    assert text.endswith(
        f"{PLACEHOLDER_NOTE}\nThis image ≈ $0.067; you have used $0.067 of your $0.20 this "
        "month (UTC)."
    )
    assert "you have used $0.134 of your $0.20 this month (UTC)." in texts(second)[0]
    assert second.structured_content is not None
    jsonschema.validate(second.structured_content, GENERATE_OUTPUT)  # what tools/list promised
    budget = second.structured_content["budget"]
    assert budget["kind"] == "personal_monthly"
    assert (budget["used_usd"], budget["limit_usd"], budget["left_usd"]) == (
        "0.134",
        "0.20",
        "0.066",
    )
    assert budget["resets_at"].endswith("-01T00:00:00+00:00")
    message = str(caught.value)
    assert message.startswith("This image would cost up to about $0.072, more than is left of your")
    assert "You have used $0.134 of $0.20; it resets on " in message
    assert message.endswith("A smaller size fits: 512 with flash, about $0.049 an image.")


async def test_a_call_for_several_images_says_it_in_its_summary(budgeted: str) -> None:
    async with Client(f"{budgeted}/mcp") as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "three foxes", "count": 2, "image_size": "512"}
        )
    head = texts(result)[0]
    assert head.startswith("2 of 2 images ready")
    assert head.endswith(
        "\nThese 2 images ≈ $0.09; you have used $0.09 of your $0.20 this month (UTC)."
    )


async def test_without_a_budget_the_reply_says_nothing_of_one(unbudgeted: str) -> None:
    async with Client(f"{unbudgeted}/mcp") as client:
        result = await client.call_tool("generate_image", {"prompt": "a quiet lake"})
    assert "≈" not in "\n".join(texts(result))
    assert result.structured_content is not None
    assert "budget" not in result.structured_content
    assert PLACEHOLDER_NOTE in texts(result)[0]
