"""Strangers cannot fill the OAuth state: bounded registrations, logins and healing.

The real app (fastmcp's OAuth proxy with this server's store) runs in process behind
httpx's ASGI transport, so thousands of requests take seconds; Google is the fake
speaking its real protocol over loopback.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastmcp import FastMCP
from fastmcp.server.auth.oauth_proxy.models import ProxyDCRClient
from pydantic import AnyUrl

from image_server.auth import (
    DEFAULT_ALLOWED_REDIRECT_URIS,
    GoogleEndpoints,
    ImageMcpOAuthProxy,
    build_mcp_auth,
    transport_security,
)
from image_server.oauth_state import CLIENTS, CONSENT_TOKENS, TRANSACTIONS
from tests.e2e.oauth_client import (
    DEFAULT_REDIRECT_URI,
    INITIALIZE,
    authorization_url,
    discover,
    obtain_token,
    pkce_pair,
    refresh,
    register,
    register_client,
)
from tests.fakes.fake_google import FakeGoogle

CLIENT_ID = "1234567890-fake.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-fake-client-secret-0123456789"
SIGNING_KEY = "budget-signing-key-0123456789abcdefghijklmnopqrstuvwxyz"
BASE_URL = "http://127.0.0.1:8999"  # never listened on: the ASGI transport answers it
MCP_URL = f"{BASE_URL}/mcp"
CLAUDE = "https://claude.ai/api/mcp/auth_callback"
DAY = 86400.0


@dataclass
class InProcess:
    auth: ImageMcpOAuthProxy
    http: httpx2.AsyncClient
    browser: Callable[[], httpx2.AsyncClient]

    async def token(self) -> Any:
        async with self.browser() as browser:
            return await obtain_token(MCP_URL, http=self.http, browser=browser)

    async def mcp_status(self, access_token: str) -> int:
        response = await self.http.post(
            MCP_URL,
            json=INITIALIZE,
            headers={
                "Accept": "application/json, text/event-stream",
                "Authorization": f"Bearer {access_token}",
            },
        )
        return response.status_code


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        fake.next_email = "ada@example.com"
        yield fake


@asynccontextmanager
async def in_process(
    google: FakeGoogle, storage_dir: Path, **budget: Any
) -> AsyncIterator[InProcess]:
    """The app with its lifespan running, and clients whose requests reach it in process."""
    auth = build_mcp_auth(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        base_url=BASE_URL,
        jwt_signing_key=SIGNING_KEY,
        storage_dir=storage_dir,
        allowed_client_redirect_uris=list(DEFAULT_ALLOWED_REDIRECT_URIS),
        endpoints=GoogleEndpoints.at(google.base_url),
        **budget,
    )
    mcp = FastMCP("image-mcp-budget", auth=auth)
    app = mcp.http_app(path="/mcp", **transport_security("mcp.example.test", dev=True))
    transport = httpx2.ASGITransport(app=app)

    def client() -> httpx2.AsyncClient:
        return httpx2.AsyncClient(mounts={BASE_URL: transport}, follow_redirects=False, timeout=30)

    async with app.lifespan(app), client() as http:
        yield InProcess(auth=auth, http=http, browser=client)


def state_size(root: Path) -> tuple[int, int]:
    """(files, bytes) under ``root``."""
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


async def in_batches(
    count: int, call: Callable[[int], Coroutine[Any, Any, None]], width: int = 10
) -> None:
    for start in range(0, count, width):
        async with anyio.create_task_group() as tg:
            for i in range(start, min(start + width, count)):
                tg.start_soon(call, i)


# ---------------------------------------------------------------------- the flood


@pytest.fixture
def memory_dir(tmp_path: Path) -> Iterator[Path]:
    """A private folder in memory-backed /dev/shm when there is one, else in tmp_path."""
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else tmp_path))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.anyio
async def test_ten_thousand_registrations_and_logins_leave_the_state_small(
    google: FakeGoogle, memory_dir: Path
) -> None:
    """10,000 registrations and 10,000 /authorize calls: a few MB, and Ada still connects.

    The state lives in memory-backed /dev/shm when there is one: this measures what
    stays on disk, not how fast the test machine's disk syncs 20,000 files.
    """
    state = memory_dir / "oauth"
    started = time.monotonic()
    async with in_process(google, state) as app:
        discovery = await discover(MCP_URL, http=app.http)
        statuses: list[int] = []

        async def one_registration(i: int) -> None:
            response = await register(discovery, [f"http://127.0.0.1:{1024 + i}/cb"], http=app.http)
            statuses.append(response.status_code)

        await in_batches(10_000, one_registration)
        client_id = await register_client(discovery, DEFAULT_REDIRECT_URI, http=app.http)
        _, challenge = pkce_pair()

        async def one_login(i: int) -> None:
            url = authorization_url(
                discovery,
                client_id=client_id,
                redirect_uri=DEFAULT_REDIRECT_URI,
                state=f"s{i}",
                code_challenge=challenge,
            )
            response = await app.http.get(url)
            statuses.append(response.status_code)

        await in_batches(10_000, one_login)
        files, size = state_size(state)

        token = await app.token()
        status = await app.mcp_status(token.access_token)
    elapsed = time.monotonic() - started

    assert statuses.count(201) == 10_000
    assert statuses.count(302) == 10_000
    assert files < 1200, files
    assert size < 3_000_000, size
    assert status == 200
    print(f"flood: {files} files, {size} bytes, {elapsed:.1f} s")


# ------------------------------------------------------------ registration limits


@pytest.mark.anyio
async def test_an_oversized_registration_is_refused_before_it_is_stored(
    google: FakeGoogle, tmp_path: Path
) -> None:
    """A 3.9 MB registration body gets 413 and leaves nothing on disk."""
    state = tmp_path / "oauth"
    async with in_process(google, state) as app:
        discovery = await discover(MCP_URL, http=app.http)
        before = state_size(state)
        response = await register(
            discovery, [DEFAULT_REDIRECT_URI], http=app.http, client_name="x" * 3_900_000
        )

        assert response.status_code == 413
        assert state_size(state) == before


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "uris", "error"),
    [
        pytest.param("x" * 201, [DEFAULT_REDIRECT_URI], "invalid_client_metadata", id="long-name"),
        pytest.param(
            "n",
            [f"http://127.0.0.1:{p}/cb" for p in range(1000, 1006)],
            "invalid_redirect_uri",
            id="six-uris",
        ),
        pytest.param(
            "n", ["http://127.0.0.1:9/" + "a" * 600], "invalid_redirect_uri", id="long-uri"
        ),
    ],
)
async def test_registration_fields_are_capped(
    google: FakeGoogle, tmp_path: Path, name: str, uris: list[str], error: str
) -> None:
    async with in_process(google, tmp_path / "oauth") as app:
        discovery = await discover(MCP_URL, http=app.http)
        response = await register(discovery, uris, http=app.http, client_name=name)

    assert response.status_code == 400
    assert response.json()["error"] == error


@pytest.mark.anyio
async def test_an_unused_registration_expires_in_a_day_and_a_token_extends_it(
    google: FakeGoogle, tmp_path: Path
) -> None:
    async with in_process(google, tmp_path / "oauth", client_idle_days=30) as app:
        discovery = await discover(MCP_URL, http=app.http)
        unused = await register_client(discovery, DEFAULT_REDIRECT_URI, http=app.http)
        token = await app.token()

        _, unused_ttl = await app.auth._client_storage.ttl(unused, collection=CLIENTS)
        _, used_ttl = await app.auth._client_storage.ttl(token.client_id, collection=CLIENTS)
        renewed = await refresh(token, http=app.http)

    assert unused_ttl is not None
    assert DAY - 60 < unused_ttl <= DAY
    assert used_ttl is not None
    assert 30 * DAY - 60 < used_ttl <= 30 * DAY
    assert renewed.access_token


@pytest.mark.anyio
async def test_a_registration_flood_pushes_out_unused_clients_but_not_connected_ones(
    google: FakeGoogle, tmp_path: Path
) -> None:
    async with in_process(google, tmp_path / "oauth", max_clients=3) as app:
        token = await app.token()
        discovery = await discover(MCP_URL, http=app.http)
        for _ in range(20):
            assert (
                await register(discovery, [DEFAULT_REDIRECT_URI], http=app.http)
            ).status_code == 201
        renewed = await refresh(token, http=app.http)
        count = app.auth._state_files.entry_count(CLIENTS)

    assert renewed.access_token
    assert count == 3


@pytest.mark.anyio
async def test_registration_answers_503_when_every_client_is_in_use(
    google: FakeGoogle, tmp_path: Path
) -> None:
    async with in_process(google, tmp_path / "oauth", max_clients=2) as app:
        first, second = await app.token(), await app.token()
        discovery = await discover(MCP_URL, http=app.http)
        response = await register(discovery, [DEFAULT_REDIRECT_URI], http=app.http)
        still = [await app.mcp_status(t.access_token) for t in (first, second)]

    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.json()["error"] == "temporarily_unavailable"
    assert "IMG_OAUTH_MAX_CLIENTS" in response.json()["error_description"]
    assert still == [200, 200]


@pytest.mark.anyio
async def test_pending_logins_are_capped_and_the_oldest_make_room(
    google: FakeGoogle, tmp_path: Path
) -> None:
    async with in_process(google, tmp_path / "oauth") as app:
        discovery = await discover(MCP_URL, http=app.http)
        client_id = await register_client(discovery, DEFAULT_REDIRECT_URI, http=app.http)
        _, challenge = pkce_pair()
        for i in range(600):
            url = authorization_url(
                discovery,
                client_id=client_id,
                redirect_uri=DEFAULT_REDIRECT_URI,
                state=f"{i}",
                code_challenge=challenge,
            )
            assert (await app.http.get(url)).status_code == 302
        pending = app.auth._state_files.entry_count(TRANSACTIONS)
        token = await app.token()

    assert pending == 500
    assert token.access_token


@pytest.mark.anyio
async def test_consent_page_renders_are_capped(google: FakeGoogle, tmp_path: Path) -> None:
    """Each render of the consent page stores a form token; reloading it 600 times keeps 500."""
    async with in_process(google, tmp_path / "oauth") as app:
        discovery = await discover(MCP_URL, http=app.http)
        client_id = await register_client(discovery, DEFAULT_REDIRECT_URI, http=app.http)
        _, challenge = pkce_pair()
        url = authorization_url(
            discovery,
            client_id=client_id,
            redirect_uri=DEFAULT_REDIRECT_URI,
            state="s",
            code_challenge=challenge,
        )
        consent = (await app.http.get(url)).headers["location"]
        statuses = {(await app.http.get(consent)).status_code for _ in range(600)}
        tokens = app.auth._state_files.entry_count(CONSENT_TOKENS)
        token = await app.token()

    assert statuses == {200}
    assert tokens == 500
    assert token.access_token


# ------------------------------------------------------------ exact redirect URIs


@pytest.mark.anyio
@pytest.mark.parametrize(
    "uri",
    [
        f"{CLAUDE}?next=https://evil.example",
        f"{CLAUDE}#@evil.example",
        f"{CLAUDE}/../../evil",
        f"{CLAUDE}x",
        "https://claude.ai.evil.example/api/mcp/auth_callback",
    ],
)
async def test_registration_takes_only_the_exact_claude_callback(
    google: FakeGoogle, tmp_path: Path, uri: str
) -> None:
    async with in_process(google, tmp_path / "oauth") as app:
        discovery = await discover(MCP_URL, http=app.http)
        response = await register(discovery, [uri], http=app.http)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"


@pytest.mark.anyio
async def test_authorize_refuses_a_stored_registration_whose_callback_is_not_exact(
    google: FakeGoogle, tmp_path: Path
) -> None:
    """A registration stored before exact matching cannot send a code elsewhere."""
    evil = f"{CLAUDE}?next=https://evil.example"
    async with in_process(google, tmp_path / "oauth") as app:
        await app.auth._client_store.put(
            key="old-client",
            value=ProxyDCRClient(
                client_id="old-client",
                redirect_uris=[AnyUrl(evil)],
                token_endpoint_auth_method="none",
                grant_types=["authorization_code", "refresh_token"],
            ),
        )
        discovery = await discover(MCP_URL, http=app.http)
        _, challenge = pkce_pair()
        url = authorization_url(
            discovery,
            client_id="old-client",
            redirect_uri=evil,
            state="s",
            code_challenge=challenge,
        )
        response = await app.http.get(url)

    assert response.status_code in (400, 401)
    assert "evil.example" not in response.headers.get("location", "")


@pytest.mark.anyio
async def test_the_exact_claude_callback_and_moving_loopback_ports_still_work(
    google: FakeGoogle, tmp_path: Path
) -> None:
    async with in_process(google, tmp_path / "oauth") as app:
        discovery = await discover(MCP_URL, http=app.http)
        claude = await register(discovery, [CLAUDE], http=app.http)
        loopback = await register_client(discovery, "http://127.0.0.1:5000/cb", http=app.http)
        _, challenge = pkce_pair()
        url = authorization_url(
            discovery,
            client_id=loopback,
            redirect_uri="http://127.0.0.1:6000/cb",
            state="s",
            code_challenge=challenge,
        )
        moved = await app.http.get(url)

    assert claude.status_code == 201
    assert moved.status_code == 302


# ------------------------------------------------------------------------ healing


async def _connect_then_stop(google: FakeGoogle, state: Path) -> tuple[Any, str]:
    async with in_process(google, state) as app:
        token = await app.token()
    return token, token.client_id


@pytest.mark.anyio
async def test_a_moved_state_folder_keeps_working_and_takes_new_registrations(
    google: FakeGoogle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """IMG_ROOT restored elsewhere: registrations work, and connectors stay connected."""
    token, _ = await _connect_then_stop(google, tmp_path / "old" / "oauth")
    shutil.move(tmp_path / "old", tmp_path / "new")

    with caplog.at_level(logging.WARNING, logger="image_server.oauth_state"):
        async with in_process(google, tmp_path / "new" / "oauth") as app:
            discovery = await discover(MCP_URL, http=app.http)
            response = await register(discovery, [DEFAULT_REDIRECT_URI], http=app.http)
            status = await app.mcp_status(token.access_token)

    assert response.status_code == 201
    assert status == 200
    assert "IMG_ROOT moved or restored" in caplog.text


@pytest.mark.anyio
async def test_a_damaged_metadata_file_is_rebuilt_at_start(
    google: FakeGoogle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "oauth"
    token, _ = await _connect_then_stop(google, state)
    info = next(state.glob("*oauth_proxy_clients*-info.json"))
    info.write_text("{not json", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="image_server.oauth_state"):
        async with in_process(google, state) as app:
            discovery = await discover(MCP_URL, http=app.http)
            response = await register(discovery, [DEFAULT_REDIRECT_URI], http=app.http)
            status = await app.mcp_status(token.access_token)

    assert response.status_code == 201
    assert status == 200
    assert info.name in caplog.text
    json.loads(info.read_text(encoding="utf-8"))


@pytest.mark.anyio
async def test_a_damaged_entry_is_removed_and_its_connector_reconnects(
    google: FakeGoogle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "oauth"
    await _connect_then_stop(google, state)
    folder = next(p for p in state.glob("*oauth_proxy_clients*") if p.is_dir())
    entry = next(folder.glob("*.json"))
    entry.write_text("garbage", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="image_server.oauth_state"):
        async with in_process(google, state) as app:
            token = await app.token()

    assert not entry.exists()
    assert token.access_token
    assert "must reconnect" in caplog.text


@pytest.mark.anyio
@pytest.mark.parametrize("uri", [f"{CLAUDE}?next=https://evil.example", f"{CLAUDE}#@evil.example"])
async def test_a_client_that_skips_registration_gets_only_exact_callbacks(
    google: FakeGoogle, tmp_path: Path, uri: str
) -> None:
    """Clients may send the Google client ID without registering; the same rule holds."""
    async with in_process(google, tmp_path / "oauth") as app:
        discovery = await discover(MCP_URL, http=app.http)
        _, challenge = pkce_pair()
        refused = await app.http.get(
            authorization_url(
                discovery,
                client_id=CLIENT_ID,
                redirect_uri=uri,
                state="s",
                code_challenge=challenge,
            )
        )
        exact = await app.http.get(
            authorization_url(
                discovery,
                client_id=CLIENT_ID,
                redirect_uri=CLAUDE,
                state="s",
                code_challenge=challenge,
            )
        )

    assert refused.status_code == 400
    assert "location" not in refused.headers
    assert exact.status_code == 302
    assert exact.headers["location"].startswith(f"{BASE_URL}/consent?")
