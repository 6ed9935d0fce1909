"""MCP sessions are a budget per person: no flood can lock an allow-listed person out.

The production ``build_app`` on real uvicorn over loopback, fake Google for the logins;
sessions are opened with plain ``initialize`` requests, as a script would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from image_server.app import build_app
from image_server.auth import GoogleEndpoints
from image_server.session_limits import SessionLimits
from image_server.settings import Settings, load_settings
from tests.e2e.oauth_client import INITIALIZE, OAuthFlowError, obtain_token
from tests.fakes.fake_google import FakeGoogle
from tests.support.live_server import free_port, live_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CLIENT_ID = "42-sessions.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-sessions-secret-0123456789"
SIGNING_KEY = "fedcba9876543210" * 4
ADA, BOB, MALLORY = "ada@example.com", "bob@example.com", "mallory@example.com"
ACCEPT = {"Accept": "application/json, text/event-stream"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
FLOOD = 120


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        yield fake


@pytest.fixture
def port() -> int:
    return free_port()


def settings_for(root: Path, port: int, allowed: str, **extra: str) -> Settings:
    return load_settings(
        {
            "IMG_ROOT": str(root),
            "IMG_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "GOOGLE_OAUTH_CLIENT_ID": CLIENT_ID,
            "GOOGLE_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "IMG_JWT_SIGNING_KEY": SIGNING_KEY,
            "IMG_ALLOWED_EMAILS": allowed,
            "IMG_BACKEND": "placeholder",
            **extra,
        }
    )


def serve(
    settings: Settings, google: FakeGoogle, limits: SessionLimits | None = None
) -> AbstractContextManager[str]:
    app = build_app(settings, google=GoogleEndpoints.at(google.base_url), session_limits=limits)
    return live_server(app, port=urlsplit(settings.public_url).port)


async def login(mcp_url: str, google: FakeGoogle, email: str, http: httpx2.AsyncClient) -> str:
    google.next_email = email
    return (await obtain_token(mcp_url, http=http)).access_token


async def open_session(http: httpx2.AsyncClient, mcp_url: str, token: str) -> httpx2.Response:
    """One ``initialize`` without a session id: a new session when admitted."""
    return await http.post(
        mcp_url, json=INITIALIZE, headers={**ACCEPT, "Authorization": f"Bearer {token}"}
    )


async def use_session(http: httpx2.AsyncClient, mcp_url: str, token: str, session: str) -> int:
    """Status of ``tools/list`` inside ``session`` (200 when it is alive)."""
    headers = {**ACCEPT, "Authorization": f"Bearer {token}", "Mcp-Session-Id": session}
    await http.post(mcp_url, json=INITIALIZED, headers=headers)
    return (await http.post(mcp_url, json=LIST_TOOLS, headers=headers)).status_code


async def flood(http: httpx2.AsyncClient, mcp_url: str, token: str) -> list[httpx2.Response]:
    """``FLOOD`` session opens, ten at a time."""
    answers: list[httpx2.Response] = []

    async def one() -> None:
        answers.append(await open_session(http, mcp_url, token))

    for _ in range(FLOOD // 10):
        async with anyio.create_task_group() as tasks:
            for _ in range(10):
                tasks.start_soon(one)
    return answers


async def test_floods_by_a_stranger_and_by_one_person_cannot_lock_out_another(
    google: FakeGoogle, tmp_path: Path, port: int
) -> None:
    """150 opens by a stranger and 150 by Ada (ten at a time); Bob still gets in."""
    settings = settings_for(tmp_path, port, f"{ADA},{BOB}")
    with serve(settings, google) as base_url:
        mcp_url = f"{base_url}/mcp"
        async with httpx2.AsyncClient(timeout=30) as http:
            ada = await login(mcp_url, google, ADA, http)
            bob = await login(mcp_url, google, BOB, http)
            mallory = await login(mcp_url, google, MALLORY, http)
            started = time.monotonic()
            by_stranger = await flood(http, mcp_url, mallory)
            by_ada = await flood(http, mcp_url, ada)
            elapsed = time.monotonic() - started
            bob_opens = await open_session(http, mcp_url, bob)
            bob_session = bob_opens.headers["mcp-session-id"]
            bob_lists = await use_session(http, mcp_url, bob, bob_session)
            ada_ids = [r.headers["mcp-session-id"] for r in by_ada if r.status_code == 200]
            oldest_ada = await use_session(http, mcp_url, ada, ada_ids[0])
            newest_ada = await use_session(http, mcp_url, ada, ada_ids[-1])

    stranger_statuses = sorted(r.status_code for r in by_stranger)
    assert stranger_statuses == [200] * 2 + [429] * (FLOOD - 2)
    refusal = next(r for r in by_stranger if r.status_code == 429)
    assert "Too many open MCP sessions" in refusal.json()["error"]["message"]
    assert refusal.headers["retry-after"] == "60"
    assert [r.status_code for r in by_ada] == [200] * FLOOD  # her oldest idle ones made room
    assert (bob_opens.status_code, bob_lists) == (200, 200)
    assert oldest_ada == 404  # really closed in the SDK, not just forgotten
    assert newest_ada == 200
    assert elapsed < 30


async def test_a_strangers_idle_sessions_expire_and_make_room(
    google: FakeGoogle, tmp_path: Path, port: int
) -> None:
    """At the stranger's limit a new open waits for an idle session to time out."""
    settings = settings_for(tmp_path, port, ADA)
    limits = SessionLimits(stranger_idle_seconds=0.5)
    with serve(settings, google, limits) as base_url:
        mcp_url = f"{base_url}/mcp"
        async with httpx2.AsyncClient(timeout=30) as http:
            mallory = await login(mcp_url, google, MALLORY, http)
            first, second, third = [await open_session(http, mcp_url, mallory) for _ in range(3)]
            await anyio.sleep(0.7)
            later = await open_session(http, mcp_url, mallory)
            first_again = await use_session(http, mcp_url, mallory, first.headers["mcp-session-id"])

    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert later.status_code == 200
    assert first_again == 404


async def test_strangers_together_hold_a_bounded_number_of_sessions(
    google: FakeGoogle, tmp_path: Path, port: int
) -> None:
    """Many stranger accounts share one small pool; an allowed person is not counted in it."""
    settings = settings_for(tmp_path, port, ADA)
    limits = SessionLimits(strangers_in_all=3)
    with serve(settings, google, limits) as base_url:
        mcp_url = f"{base_url}/mcp"
        async with httpx2.AsyncClient(timeout=30) as http:
            strangers = [await login(mcp_url, google, f"s{n}@example.com", http) for n in range(3)]
            ada = await login(mcp_url, google, ADA, http)
            statuses = [
                (await open_session(http, mcp_url, token)).status_code
                for token in strangers
                for _ in range(2)
            ]
            ada_opens = await open_session(http, mcp_url, ada)

    assert statuses == [200, 200, 200, 429, 429, 429]
    assert ada_opens.status_code == 200


async def test_with_login_requiring_access_a_removed_persons_token_stops_working(
    google: FakeGoogle, tmp_path: Path, port: int
) -> None:
    """Removed from the list: refused on generate; with the setting, refused outright."""
    async with httpx2.AsyncClient(timeout=30) as http:
        with serve(settings_for(tmp_path, port, f"{ADA},{BOB}"), google) as base_url:
            bob = await login(f"{base_url}/mcp", google, BOB, http)
        removed = settings_for(tmp_path, port, ADA)
        with serve(removed, google) as base_url:
            async with Client(f"{base_url}/mcp", auth=bob) as client:
                with pytest.raises(ToolError, match="IMG_ALLOWED_EMAILS"):
                    await client.call_tool("generate_image", {"prompt": "a cat"})
        closed = settings_for(tmp_path, port, ADA, IMG_LOGIN_REQUIRES_ACCESS="1")
        with serve(closed, google) as base_url:
            refused = await open_session(http, f"{base_url}/mcp", bob)
            ada = await login(f"{base_url}/mcp", google, ADA, http)
            admitted = await open_session(http, f"{base_url}/mcp", ada)

    assert refused.status_code == 403
    assert "bob@example.com" in refused.json()["error"]["message"]
    assert "IMG_ALLOWED_EMAILS" in refused.json()["error"]["message"]
    assert admitted.status_code == 200


async def test_with_login_requiring_access_a_stranger_gets_no_token_and_a_page_saying_why(
    google: FakeGoogle, tmp_path: Path, port: int
) -> None:
    """The Google login ends on a 403 page naming the account and the setting; no code."""
    settings = settings_for(tmp_path, port, ADA, IMG_LOGIN_REQUIRES_ACCESS="1")
    with serve(settings, google) as base_url:
        async with httpx2.AsyncClient(timeout=30) as http:
            google.next_email = MALLORY
            with pytest.raises(OAuthFlowError) as refused:
                await obtain_token(f"{base_url}/mcp", http=http)
            ada = await login(f"{base_url}/mcp", google, ADA, http)
            admitted = await open_session(http, f"{base_url}/mcp", ada)

    page = refused.value.response
    assert page is not None
    assert page.status_code == 403
    assert "mallory@example.com" in page.text
    assert "IMG_ALLOWED_EMAILS" in page.text
    assert "code=" not in page.headers.get("location", "")
    assert admitted.status_code == 200


async def _body_status(http: httpx2.AsyncClient, mcp_url: str, token: str, size: int) -> int:
    """Status of an ``initialize`` padded with spaces to ``size`` bytes (valid JSON)."""
    body = httpx2.Request("POST", mcp_url, json=INITIALIZE).content
    padded = body + b" " * (size - len(body))
    headers = {
        **ACCEPT,
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
    }
    return (await http.post(mcp_url, content=padded, headers=headers)).status_code


async def test_only_allowed_people_may_send_a_body_past_the_sdks_cap(
    tmp_path: Path, port: int, google: FakeGoogle
) -> None:
    """The cap is raised for photos, which only allowed people upload: a valid token of
    an account off the allow-list gets 413 past the SDK's 4 MiB, and with uploads off
    nobody may send more."""
    six_mib = 6 * 1024 * 1024
    settings = settings_for(tmp_path / "on", port, ADA)
    async with httpx2.AsyncClient(timeout=30) as http:
        with serve(settings, google) as base:
            mcp_url = f"{base}/mcp"
            ada = await login(mcp_url, google, ADA, http)
            mallory = await login(mcp_url, google, MALLORY, http)
            assert await _body_status(http, mcp_url, ada, six_mib) == 200
            assert await _body_status(http, mcp_url, mallory, six_mib) == 413
            assert await _body_status(http, mcp_url, mallory, 64 * 1024) == 200
    off = settings_for(tmp_path / "off", port, ADA, IMG_UPLOADS_PER_USER="0")
    async with httpx2.AsyncClient(timeout=30) as http:
        with serve(off, google) as base:
            mcp_url = f"{base}/mcp"
            ada = await login(mcp_url, google, ADA, http)
            assert await _body_status(http, mcp_url, ada, six_mib) == 413
