"""Rate and concurrency limits over real HTTP: build_app on uvicorn, real MCP clients.

Two people sign in through the OAuth proxy (fake Google) and call generate_image with
the fastmcp client over streamable HTTP; the real Gemini adapter talks to fake Gemini,
which counts what reached it. Refusals are tool errors in the product's words, nothing
refused reaches Gemini, each is logged with its reason, and two people do not share
their limits (the server's total aside).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mcp.types import TextContent

from image_server.app import build_app
from image_server.auth import GoogleEndpoints
from image_server.settings import Settings, load_settings
from tests.e2e.oauth_client import obtain_token
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_google import FakeGoogle
from tests.support.live_server import free_port, live_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CLIENT_ID = "42-limits.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-limits-secret-0123456789"
GEMINI_KEY = "gemini-limits-key-0123456789"
SIGNING_KEY = "0123456789abcdef" * 4
ADA = "ada@example.com"
BOB = "bob@example.com"


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        yield fake


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=GEMINI_KEY) as fake:
        yield fake


def settings_for(root: Path, gemini: FakeGemini, port: int, **extra: str) -> Settings:
    return load_settings(
        {
            "IMG_ROOT": str(root),
            "IMG_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "GOOGLE_OAUTH_CLIENT_ID": CLIENT_ID,
            "GOOGLE_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "IMG_JWT_SIGNING_KEY": SIGNING_KEY,
            "IMG_ALLOWED_EMAILS": f"{ADA},{BOB}",
            "GEMINI_API_KEY": GEMINI_KEY,
            "IMG_GEMINI_BASE_URL": gemini.base_url,
            **extra,
        }
    )


def serve(settings: Settings, google: FakeGoogle, port: int) -> AbstractContextManager[str]:
    return live_server(build_app(settings, google=GoogleEndpoints.at(google.base_url)), port=port)


async def login(base_url: str, google: FakeGoogle, email: str) -> str:
    google.next_email = email
    async with httpx2.AsyncClient(timeout=30) as http:
        tokens = await obtain_token(f"{base_url}/mcp", http=http)
    return tokens.access_token


async def generate(client: Client[Any], prompt: str) -> str:
    result = await client.call_tool("generate_image", {"prompt": prompt, "image_size": "512"})
    assert not result.is_error
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def until_sent(gemini: FakeGemini, count: int) -> None:
    """Wait (a few seconds at most) until fake Gemini has received ``count`` requests."""
    for _ in range(500):
        if len(gemini.requests) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fake Gemini received {len(gemini.requests)} of {count} requests")


def refusals(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        vars(r)
        for r in caplog.records
        if getattr(r, "event", None) == "generation" and getattr(r, "outcome", None) == "limited"
    ]


async def test_the_eleventh_image_in_a_minute_is_refused_and_another_person_is_not(
    tmp_path: Path, google: FakeGoogle, gemini: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    """IMG_RATE_PER_MINUTE's default of 10: the 11th call is a clear tool error, unsent."""
    caplog.set_level(logging.INFO, logger="image_server.generation")
    port = free_port()
    settings = settings_for(tmp_path / "data", gemini, port)
    with serve(settings, google, port) as base_url:
        ada, bob = await login(base_url, google, ADA), await login(base_url, google, BOB)
        async with Client(f"{base_url}/mcp", auth=ada) as client:
            for n in range(10):
                await generate(client, f"lighthouse {n}")
            with pytest.raises(ToolError) as caught:
                await client.call_tool("generate_image", {"prompt": "one too many"})
        assert str(caught.value).startswith(
            "You have had 10 images made in the last minute; this image would be more than "
            "the 10 one person may have a minute. Nothing was sent; try again in "
        )
        assert len(gemini.requests) == 10
        async with Client(f"{base_url}/mcp", auth=bob) as client:
            await generate(client, "bob's own minute")
    assert len(gemini.requests) == 11
    [logged] = refusals(caplog)
    assert logged["reason"] == "rate"
    assert logged["email"] == ADA
    assert logged["in_last_minute"] == "10"
    assert logged["limit_per_minute"] == "10"
    assert logged["levelno"] == logging.INFO
    assert GEMINI_KEY not in repr(logged)


async def test_a_third_call_at_once_is_refused_per_person_and_the_total_holds_across_people(
    tmp_path: Path, google: FakeGoogle, gemini: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    """Two at once each (IMG_MAX_CONCURRENT=2), three in all (IMG_MAX_CONCURRENT_TOTAL=3)."""
    caplog.set_level(logging.INFO, logger="image_server.generation")
    port = free_port()
    settings = settings_for(tmp_path / "data", gemini, port, IMG_MAX_CONCURRENT_TOTAL="3")
    with serve(settings, google, port) as base_url:
        ada, bob = await login(base_url, google, ADA), await login(base_url, google, BOB)
        async with (
            Client(f"{base_url}/mcp", auth=ada) as ada_client,
            Client(f"{base_url}/mcp", auth=bob) as bob_client,
        ):
            gemini.delay_seconds = 1.5
            held = [asyncio.create_task(generate(ada_client, f"slow {n}")) for n in range(2)]
            await until_sent(gemini, 2)
            with pytest.raises(ToolError, match=r"^You already have 2 images being made, the"):
                await ada_client.call_tool("generate_image", {"prompt": "a third"})
            # Bob has places of his own: Ada's two do not hold him ...
            bobs = asyncio.create_task(generate(bob_client, "bob's"))
            await until_sent(gemini, 3)
            # ... but the server's three in all are taken now.
            with pytest.raises(ToolError, match=r"^This server is already making 3 images at"):
                await bob_client.call_tool("generate_image", {"prompt": "bob's second"})
            await asyncio.gather(*held, bobs)
            assert len(gemini.requests) == 3
            gemini.delay_seconds = 0
            # The places are free again once the images are done.
            await generate(ada_client, "afterwards")
    assert len(gemini.requests) == 4
    logged = refusals(caplog)
    assert [(r["reason"], r["scope"], r["email"]) for r in logged] == [
        ("concurrency", "person", ADA),
        ("concurrency", "server", BOB),
    ]
