"""Client ID Metadata Documents end to end, and running with dynamic registration off.

The whole product (``build_app``) on real uvicorn, fake Google, and a fake client whose
metadata document is served on loopback; the composition root is handed a fetcher
that reaches it (production keeps fastmcp's SSRF-guarded fetcher, see the last tests).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from fastmcp import Client
from fastmcp.server.auth.cimd import CIMDFetcher

from image_server.app import build_app
from image_server.auth import GoogleEndpoints
from image_server.settings import Settings, load_settings
from tests.e2e.oauth_client import (
    Discovery,
    TokenSet,
    authorization_url,
    discover,
    exchange_code,
    follow_browser,
    obtain_token,
    pkce_pair,
    refresh,
    register,
)
from tests.fakes.fake_cimd import CLIENT_ORIGIN, FakeClientHost
from tests.fakes.fake_google import FakeGoogle
from tests.support.live_server import free_port, live_server

pytestmark = pytest.mark.anyio

CLIENT_ID = "77-cimd.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-cimd-secret-0123456789"
SIGNING_KEY = "cimd-signing-key-0123456789abcdefghijklmnopqrstuvwxyz"
EMAIL = "ada@example.com"
CLAUDE_CALLBACK = "https://claude.ai/api/mcp/auth_callback"
DOCUMENT_PATH = "/oauth/client-metadata.json"


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        fake.next_email = EMAIL
        yield fake


@pytest.fixture(scope="module")
def client_host() -> Iterator[FakeClientHost]:
    with FakeClientHost() as host:
        yield host


def settings_for(root: Path, port: int, **extra: str) -> Settings:
    return load_settings(
        {
            "IMG_ROOT": str(root),
            "IMG_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "GOOGLE_OAUTH_CLIENT_ID": CLIENT_ID,
            "GOOGLE_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "IMG_JWT_SIGNING_KEY": SIGNING_KEY,
            "IMG_ALLOWED_EMAILS": EMAIL,
            "IMG_BACKEND": "placeholder",
            **extra,
        }
    )


@contextmanager
def serve(
    root: Path, google: FakeGoogle, fetcher: CIMDFetcher | None, port: int = 0, **extra: str
) -> Iterator[str]:
    port = port or free_port()
    app = build_app(
        settings_for(root, port, **extra),
        google=GoogleEndpoints.at(google.base_url),
        cimd_fetcher=fetcher,
    )
    with live_server(app, port=port) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def cimd_only(
    google: FakeGoogle, client_host: FakeClientHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A server for CIMD clients only: ``IMG_DYNAMIC_REGISTRATION=0``."""
    root = tmp_path_factory.mktemp("cimd-only")
    with serve(root, google, client_host.fetcher(), IMG_DYNAMIC_REGISTRATION="0") as base:
        yield base


@pytest.fixture(scope="module")
def default_server(
    google: FakeGoogle, client_host: FakeClientHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Default settings: CIMD and dynamic registration both on."""
    with serve(tmp_path_factory.mktemp("default"), google, client_host.fetcher()) as base:
        yield base


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(follow_redirects=False, timeout=15) as client:
        yield client


async def authorize(
    discovery: Discovery, *, client_id: str, redirect_uri: str
) -> tuple[dict[str, str], str]:
    """The browser's part of the flow; the callback's parameters and the PKCE verifier."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(8)
    url = authorization_url(
        discovery,
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=challenge,
    )
    async with httpx2.AsyncClient(follow_redirects=False, timeout=15) as browser:
        callback = await follow_browser(url, redirect_uri=redirect_uri, browser=browser)
    assert callback.get("state") == state
    return callback, verifier


async def list_tools(mcp_url: str, token: TokenSet) -> set[str]:
    async with Client(mcp_url, auth=token.access_token) as client:
        return {tool.name for tool in await client.list_tools()}


# ------------------------------------------------------------------ the flow


async def test_a_cimd_client_logs_in_calls_tools_and_refreshes_without_registering(
    cimd_only: str, google: FakeGoogle, client_host: FakeClientHost, http: httpx2.AsyncClient
) -> None:
    """Claude's newer flow: the client_id is its document's URL; no /register at all."""
    client_id = client_host.publish(
        DOCUMENT_PATH,
        client_name="Claude-like",
        redirect_uris=[CLAUDE_CALLBACK],
        grant_types=["authorization_code", "refresh_token"],
        token_endpoint_auth_method="none",
    )
    discovery = await discover(f"{cimd_only}/mcp", http=http)
    assert discovery.metadata["client_id_metadata_document_supported"] is True
    assert "none" in discovery.metadata["token_endpoint_auth_methods_supported"]

    callback, verifier = await authorize(
        discovery, client_id=client_id, redirect_uri=CLAUDE_CALLBACK
    )
    token = await exchange_code(
        discovery,
        client_id=client_id,
        code=callback["code"],
        code_verifier=verifier,
        redirect_uri=CLAUDE_CALLBACK,
        http=http,
    )

    assert DOCUMENT_PATH in client_host.requested
    assert google.authorize_requests[-1]["redirect_uri"] == f"{cimd_only}/auth/callback"
    assert "generate_image" in await list_tools(discovery.resource, token)
    renewed = await refresh(token, http=http)
    assert "generate_image" in await list_tools(discovery.resource, renewed)


# -------------------------------------------------------------- the refusals


async def test_a_document_whose_client_id_is_not_its_own_url_is_refused(
    default_server: str, google: FakeGoogle, client_host: FakeClientHost, http: httpx2.AsyncClient
) -> None:
    """Whoever serves a document cannot make it speak for another client."""
    path = "/oauth/impostor.json"
    client_host.publish(
        path, client_id=f"{CLIENT_ORIGIN}/oauth/someone-else.json", redirect_uris=[CLAUDE_CALLBACK]
    )
    discovery = await discover(f"{default_server}/mcp", http=http)
    sent_to_google = len(google.authorize_requests)
    _, challenge = pkce_pair()

    response = await http.get(
        authorization_url(
            discovery,
            client_id=CLIENT_ORIGIN + path,
            redirect_uri=CLAUDE_CALLBACK,
            state="s",
            code_challenge=challenge,
        )
    )

    assert path in client_host.requested
    assert response.status_code == 400
    assert "location" not in response.headers
    assert len(google.authorize_requests) == sent_to_google


async def test_a_redirect_uri_the_document_does_not_list_is_refused(
    default_server: str, google: FakeGoogle, client_host: FakeClientHost, http: httpx2.AsyncClient
) -> None:
    """Even one on the server's allow-list: the document decides for its client."""
    client_id = client_host.publish("/oauth/loopback-only.json", redirect_uris=[CLAUDE_CALLBACK])
    discovery = await discover(f"{default_server}/mcp", http=http)
    sent_to_google = len(google.authorize_requests)
    _, challenge = pkce_pair()

    response = await http.get(
        authorization_url(
            discovery,
            client_id=client_id,
            redirect_uri="http://127.0.0.1:9/callback",
            state="s",
            code_challenge=challenge,
        )
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "location" not in response.headers
    assert len(google.authorize_requests) == sent_to_google


async def test_a_document_redirect_off_the_servers_allow_list_is_refused(
    default_server: str, google: FakeGoogle, client_host: FakeClientHost, http: httpx2.AsyncClient
) -> None:
    """A document cannot widen IMG_ALLOWED_REDIRECT_URIS."""
    evil = "https://evil.example/callback"
    client_id = client_host.publish("/oauth/evil.json", redirect_uris=[evil])
    discovery = await discover(f"{default_server}/mcp", http=http)
    sent_to_google = len(google.authorize_requests)
    _, challenge = pkce_pair()

    response = await http.get(
        authorization_url(
            discovery, client_id=client_id, redirect_uri=evil, state="s", code_challenge=challenge
        )
    )

    assert response.status_code == 400
    assert "location" not in response.headers
    assert len(google.authorize_requests) == sent_to_google


# ------------------------------------------------- dynamic registration switch


async def test_by_default_both_cimd_and_dynamic_registration_are_offered(
    default_server: str, http: httpx2.AsyncClient
) -> None:
    discovery = await discover(f"{default_server}/mcp", http=http)

    assert discovery.metadata["client_id_metadata_document_supported"] is True
    assert discovery.registration_endpoint == f"{default_server}/register"
    response = await register(discovery, [CLAUDE_CALLBACK], http=http)
    assert response.status_code == 201


async def test_with_dynamic_registration_off_register_is_refused_and_not_advertised(
    cimd_only: str, http: httpx2.AsyncClient
) -> None:
    """IMG_DYNAMIC_REGISTRATION=0: clients must use CIMD; /register says so."""
    discovery = await discover(f"{cimd_only}/mcp", http=http)

    assert "registration_endpoint" not in discovery.metadata
    assert discovery.metadata["client_id_metadata_document_supported"] is True
    response = await http.post(
        f"{cimd_only}/register",
        json={"client_name": "x", "redirect_uris": [CLAUDE_CALLBACK], "grant_types": []},
    )
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "access_denied"
    assert "Client ID Metadata Document" in body["error_description"]


async def test_with_dynamic_registration_off_a_registered_looking_client_id_is_unknown(
    cimd_only: str, google: FakeGoogle, http: httpx2.AsyncClient
) -> None:
    """No way around it: a made-up client_id is not a client."""
    discovery = await discover(f"{cimd_only}/mcp", http=http)
    sent_to_google = len(google.authorize_requests)
    _, challenge = pkce_pair()

    response = await http.get(
        authorization_url(
            discovery,
            client_id="made-up-client",
            redirect_uri=CLAUDE_CALLBACK,
            state="s",
            code_challenge=challenge,
        )
    )

    assert response.status_code == 400
    assert len(google.authorize_requests) == sent_to_google


async def test_with_dynamic_registration_off_the_google_client_id_is_no_way_in(
    cimd_only: str, default_server: str, google: FakeGoogle, http: httpx2.AsyncClient
) -> None:
    """fastmcp lets a client skip registration by sending the Google app's client ID;
    with registration off that shortcut is closed too (on by default, it stays)."""
    sent_to_google = len(google.authorize_requests)
    answers = {}
    for base in (cimd_only, default_server):
        discovery = await discover(f"{base}/mcp", http=http)
        _, challenge = pkce_pair()
        answers[base] = await http.get(
            authorization_url(
                discovery,
                client_id=CLIENT_ID,
                redirect_uri=CLAUDE_CALLBACK,
                state="s",
                code_challenge=challenge,
            )
        )

    assert answers[cimd_only].status_code == 400
    assert answers[default_server].status_code == 302
    assert len(google.authorize_requests) == sent_to_google


async def test_connectors_registered_before_registration_was_turned_off_keep_working(
    google: FakeGoogle, tmp_path: Path
) -> None:
    port = free_port()
    with serve(tmp_path, google, None, port) as base:
        async with httpx2.AsyncClient(timeout=15) as http:
            token = await obtain_token(f"{base}/mcp", http=http)

    with serve(tmp_path, google, None, port, IMG_DYNAMIC_REGISTRATION="0") as base:
        async with httpx2.AsyncClient(timeout=15) as http:
            renewed = await refresh(token, http=http)
        assert "generate_image" in await list_tools(f"{base}/mcp", renewed)


# ------------------------------------------------------------ production fetcher


async def test_production_keeps_the_ssrf_guarded_fetcher_and_refuses_loopback_documents(
    google: FakeGoogle, client_host: FakeClientHost, tmp_path: Path
) -> None:
    """Without an injected fetcher, a document on a loopback address is never fetched."""
    port = client_host.base_url.rsplit(":", 1)[1]
    client_host.publish("/oauth/local.json", redirect_uris=[CLAUDE_CALLBACK])
    local_client_id = f"https://127.0.0.1:{port}/oauth/local.json"
    asked = len(client_host.requested)

    with serve(tmp_path, google, None) as base:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=15) as http:
            discovery = await discover(f"{base}/mcp", http=http)
            _, challenge = pkce_pair()
            response = await http.get(
                authorization_url(
                    discovery,
                    client_id=local_client_id,
                    redirect_uri=CLAUDE_CALLBACK,
                    state="s",
                    code_challenge=challenge,
                )
            )

    assert response.status_code == 400
    assert len(client_host.requested) == asked
