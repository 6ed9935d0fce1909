"""The whole product over loopback: build_app on real uvicorn, fake Google, fake Gemini.

A Claude.ai-like client logs in through the OAuth proxy, then calls generate_image with
the bearer token through the real fastmcp client; the real google-genai client talks to
the fake Gemini server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx2
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from image_server.app import build_app
from image_server.auth import GoogleEndpoints
from image_server.settings import Settings, load_settings
from tests.e2e.oauth_client import obtain_token
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_google import FakeGoogle
from tests.support.live_server import free_port, live_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CLIENT_ID = "42-e2e.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-e2e-secret-0123456789"
GEMINI_KEY = "gemini-e2e-key-0123456789"
SIGNING_KEY = "0123456789abcdef" * 4


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        yield fake


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=GEMINI_KEY) as fake:
        yield fake


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def settings(tmp_path: Path, gemini: FakeGemini, port: int) -> Settings:
    return load_settings(
        {
            "IMG_ROOT": str(tmp_path / "data"),
            "IMG_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "GOOGLE_OAUTH_CLIENT_ID": CLIENT_ID,
            "GOOGLE_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "IMG_JWT_SIGNING_KEY": SIGNING_KEY,
            "IMG_ALLOWED_EMAILS": "ada@example.com",
            "IMG_ADMIN_EMAILS": "boss@example.com",
            "GEMINI_API_KEY": GEMINI_KEY,
            "IMG_GEMINI_BASE_URL": gemini.base_url,
        }
    )


def serve(settings: Settings, google: FakeGoogle, port: int) -> AbstractContextManager[str]:
    app = build_app(settings, google=GoogleEndpoints.at(google.base_url))
    return live_server(app, port=port)


async def login(base_url: str, google: FakeGoogle, email: str) -> str:
    google.next_email = email
    async with httpx2.AsyncClient(timeout=30) as http:
        tokens = await obtain_token(f"{base_url}/mcp", http=http)
    return tokens.access_token


async def test_an_allow_listed_person_generates_through_claude_like_oauth(
    settings: Settings, google: FakeGoogle, gemini: FakeGemini, port: int
) -> None:
    """Login, generate with Gemini, fetch the PNG; the sidecar names the person."""
    with serve(settings, google, port) as base_url:
        token = await login(base_url, google, "Ada@Example.com")
        async with Client(f"{base_url}/mcp", auth=token) as client:
            result = await client.call_tool(
                "generate_image", {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9"}
            )
        data = result.structured_content
        assert data is not None
        async with httpx2.AsyncClient() as http:
            png = await http.get(data["url"])
    assert png.status_code == 200
    assert png.content.startswith(b"\x89PNG")
    sent = gemini.requests[-1]
    assert sent.model == "gemini-3.1-flash-image"
    assert sent.prompt == "a lighthouse at dusk"
    sidecar = json.loads((settings.root / data["file_name"]).with_suffix(".json").read_text())
    assert sidecar["email"] == "ada@example.com"
    assert sidecar["model_id"] == "gemini-3.1-flash-image"
    assert sidecar["backend"] == "gemini"
    assert sidecar["token_usage"]["total_tokens"] > 0


async def test_a_valid_google_login_that_is_not_allow_listed_is_refused_and_nothing_happens(
    settings: Settings, google: FakeGoogle, gemini: FakeGemini, port: int
) -> None:
    """The stranger gets a clear message; Gemini is never called; no file is written."""
    with serve(settings, google, port) as base_url:
        token = await login(base_url, google, "mallory@example.com")
        async with Client(f"{base_url}/mcp", auth=token) as client:
            with pytest.raises(ToolError, match="mallory@example.com .*IMG_ALLOWED_EMAILS"):
                await client.call_tool("generate_image", {"prompt": "anything"})
    assert gemini.requests == []
    assert list(settings.root.glob("*.png")) == []
    assert list(settings.root.glob("*.json")) == []


async def test_tokens_survive_a_restart_with_the_same_key_and_volume(
    settings: Settings, google: FakeGoogle, gemini: FakeGemini, port: int
) -> None:
    """A connector keeps working after the container restarts."""
    with serve(settings, google, port) as base_url:
        token = await login(base_url, google, "ada@example.com")
    with serve(settings, google, port) as base_url:
        async with Client(f"{base_url}/mcp", auth=token) as client:
            result = await client.call_tool("generate_image", {"prompt": "after restart"})
    assert not result.is_error
    assert len(gemini.requests) == 1


async def test_a_gemini_safety_block_is_reported_and_nothing_is_recorded(
    settings: Settings, google: FakeGoogle, gemini: FakeGemini, port: int
) -> None:
    """The person learns why; no image, no sidecar, no cost."""
    gemini.script("safety_candidate")
    with serve(settings, google, port) as base_url:
        token = await login(base_url, google, "ada@example.com")
        async with Client(f"{base_url}/mcp", auth=token) as client:
            with pytest.raises(ToolError, match="(?i)safety|blocked"):
                await client.call_tool("generate_image", {"prompt": "something"})
    assert list(settings.root.glob("*.json")) == []
    assert list(settings.root.glob("*.png")) == []


async def test_mcp_without_a_token_points_at_the_protected_resource_metadata(
    settings: Settings, google: FakeGoogle, port: int
) -> None:
    """Claude.ai discovers the login from the 401."""
    with serve(settings, google, port) as base_url:
        async with httpx2.AsyncClient() as http:
            response = await http.post(f"{base_url}/mcp", json={})
            metadata = await http.get(f"{base_url}/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 401
    assert "oauth-protected-resource/mcp" in response.headers["www-authenticate"]
    assert metadata.json()["resource"] == f"{base_url}/mcp"
