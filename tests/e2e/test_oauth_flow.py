"""The MCP OAuth proxy end to end: real uvicorn, real fastmcp, fake Google, over loopback.

Each test drives the server the way Claude.ai (or an attacker) would, through
``tests/e2e/oauth_client.py``; see SECURITY.md "MCP endpoint and OAuth proxy".
"""

from __future__ import annotations

import base64
import json
import re
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError
from fastmcp.server.auth.jwt_issuer import JWTIssuer
from fastmcp.server.auth.providers.google import GoogleTokenVerifier
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.http import StarletteWithLifespan

from image_server.app import build_auth
from image_server.auth import (
    DEFAULT_ALLOWED_REDIRECT_URIS,
    TOKEN_CACHE_SECONDS,
    GoogleEndpoints,
    ImageMcpOAuthProxy,
    build_mcp_auth,
    transport_security,
)
from image_server.settings import load_settings
from tests.e2e.oauth_client import (
    DEFAULT_REDIRECT_URI,
    INITIALIZE,
    OAuthFlowError,
    authorization_url,
    discover,
    exchange_code,
    follow_browser,
    obtain_token,
    pkce_pair,
    refresh,
    register,
    register_client,
)
from tests.fakes.fake_google import EMAIL_SCOPE, FakeGoogle
from tests.support.live_server import free_port, live_server

CLIENT_ID = "1234567890-fake.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-fake-client-secret-0123456789"
SIGNING_KEY = "e2e-signing-key-0123456789abcdefghijklmnopqrstuvwxyz"
OTHER_SIGNING_KEY = "another-signing-key-0123456789abcdefghijklmnopqrstu"
PUBLIC_HOST = "mcp.example.test"
EMAIL = "ada@example.com"
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}


@dataclass(frozen=True)
class Running:
    """A live server: where it is and the auth provider inside it."""

    base_url: str
    port: int
    auth: ImageMcpOAuthProxy

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"


def build_app(
    google: FakeGoogle,
    *,
    base_url: str,
    storage_dir: Path,
    key: str,
    cache_ttl_seconds: int = TOKEN_CACHE_SECONDS,
) -> tuple[StarletteWithLifespan, ImageMcpOAuthProxy]:
    """The smallest composition the production root must match: auth + host guard."""
    auth = build_mcp_auth(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        base_url=base_url,
        jwt_signing_key=key,
        storage_dir=storage_dir,
        allowed_client_redirect_uris=list(DEFAULT_ALLOWED_REDIRECT_URIS),
        endpoints=GoogleEndpoints.at(google.base_url),
        cache_ttl_seconds=cache_ttl_seconds,
    )
    mcp = FastMCP("image-mcp-e2e", auth=auth, mask_error_details=True)

    @mcp.tool
    async def whoami() -> str:
        """Return the signed-in Google user's email."""
        token = get_access_token()
        if token is None:
            raise ToolError("not signed in")
        return str(token.claims.get("email"))

    app = mcp.http_app(path="/mcp", **transport_security(PUBLIC_HOST, dev=True))
    return app, auth


@contextmanager
def serve(
    google: FakeGoogle,
    storage_dir: Path,
    *,
    signing_key: str = SIGNING_KEY,
    port: int | None = None,
    cache_ttl_seconds: int = TOKEN_CACHE_SECONDS,
) -> Iterator[Running]:
    """Run the app under uvicorn on 127.0.0.1; pass ``port`` to restart at the same URL."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    app, auth = build_app(
        google,
        base_url=base_url,
        storage_dir=storage_dir,
        key=signing_key,
        cache_ttl_seconds=cache_ttl_seconds,
    )
    with live_server(app, port=port) as url:
        assert url == base_url
        yield Running(base_url=base_url, port=port, auth=auth)


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    """One fake Google for the module; tests that need a fresh server start their own."""
    with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _signed_in_as_ada(google: FakeGoogle) -> None:
    """Every test starts as the same verified user, whatever the last one changed."""
    google.next_email = EMAIL
    google.email_verified = True
    google.next_error = None


@pytest.fixture(scope="module")
def storage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oauth-state")


@pytest.fixture(scope="module")
def server(google: FakeGoogle, storage_dir: Path) -> Iterator[Running]:
    """One live server for the module: starting uvicorn per test would double the time."""
    with serve(google, storage_dir) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as client:
        yield client


async def whoami(mcp_url: str, access_token: str) -> str:
    """Call the tool through the real fastmcp client, as Claude would."""
    async with Client(StreamableHttpTransport(mcp_url, auth=access_token)) as client:
        result = await client.call_tool("whoami", {})
    return str(result.data)


async def mcp_status(http: httpx2.AsyncClient, mcp_url: str, token: str) -> int:
    """Status of an MCP initialize sent with ``token``: 200 if accepted, 401 if not."""
    response = await http.post(
        mcp_url, json=INITIALIZE, headers={**MCP_ACCEPT, "Authorization": f"Bearer {token}"}
    )
    return response.status_code


def read_tree(root: Path) -> tuple[dict[Path, int], bytes]:
    """Every file under ``root`` with its permission bits, and all names and bytes."""
    files = {p: stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}
    blob = b"\n".join(p.read_bytes() for p in files) + "\n".join(map(str, files)).encode()
    return files, blob


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def start_authorization(
    http: httpx2.AsyncClient, server: Running, **overrides: Any
) -> httpx2.Response:
    """Register a loopback client, then send one (possibly tampered) /authorize."""
    discovery = await discover(server.mcp_url, http=http)
    client_id = await register_client(discovery, DEFAULT_REDIRECT_URI, http=http)
    _, challenge = pkce_pair()
    params: dict[str, Any] = {
        "client_id": client_id,
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "state": "s1",
        "code_challenge": challenge,
        **overrides,
    }
    return await http.get(authorization_url(discovery, **params))


# --------------------------------------------------------------------- discovery


@pytest.mark.anyio
async def test_mcp_without_token_gets_401_pointing_at_resource_metadata(
    server: Running, http: httpx2.AsyncClient
) -> None:
    """An anonymous MCP request is challenged, and the metadata names the /mcp resource."""
    response = await http.post(server.mcp_url, json=INITIALIZE, headers=MCP_ACCEPT)

    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    match = re.search(r'resource_metadata="([^"]+)"', challenge)
    assert match is not None
    assert match.group(1) == f"{server.base_url}/.well-known/oauth-protected-resource/mcp"
    metadata = (await http.get(match.group(1))).json()
    assert metadata["resource"] == server.mcp_url
    assert metadata["authorization_servers"] == [f"{server.base_url}/"]
    assert set(metadata["scopes_supported"]) == {"openid", EMAIL_SCOPE}


@pytest.mark.anyio
async def test_server_metadata_offers_only_s256_pkce(
    server: Running, http: httpx2.AsyncClient
) -> None:
    """Clients learn up front that plain PKCE is not on offer."""
    discovery = await discover(server.mcp_url, http=http)

    assert discovery.metadata["code_challenge_methods_supported"] == ["S256"]
    assert discovery.registration_endpoint == f"{server.base_url}/register"


# --------------------------------------------------------------------- full flow


@pytest.mark.anyio
async def test_full_flow_then_tool_call_returns_the_google_users_email(
    server: Running, google: FakeGoogle, http: httpx2.AsyncClient
) -> None:
    """Claude's whole dance ends in a token the real MCP client can call tools with."""
    token = await obtain_token(server.mcp_url, http=http)

    assert await whoami(server.mcp_url, token.access_token) == EMAIL
    assert token.refresh_token is not None
    claims = jwt_claims(token.access_token)
    assert claims["aud"] == server.mcp_url
    assert claims["iss"] == f"{server.base_url}/"
    upstream = google.authorize_requests[-1]
    assert {"openid", EMAIL_SCOPE} <= set(upstream["scope"].split())
    assert upstream["access_type"] == "offline"
    assert upstream["prompt"] == "consent"
    assert upstream["code_challenge_method"] == "S256"
    assert upstream["redirect_uri"] == f"{server.base_url}/auth/callback"


@pytest.mark.anyio
async def test_refresh_rotates_tokens_and_the_old_refresh_token_dies(
    server: Running, http: httpx2.AsyncClient
) -> None:
    """A refreshed token works; replaying the spent refresh token is refused."""
    token = await obtain_token(server.mcp_url, http=http)

    renewed = await refresh(token, http=http)

    assert renewed.access_token != token.access_token
    assert await whoami(server.mcp_url, renewed.access_token) == EMAIL
    with pytest.raises(OAuthFlowError) as replay:
        await refresh(token, http=http)
    assert replay.value.response is not None
    assert replay.value.response.json()["error"] == "invalid_grant"


@pytest.mark.anyio
async def test_unverified_google_email_reaches_the_tool_as_not_verified(
    server: Running, google: FakeGoogle, http: httpx2.AsyncClient
) -> None:
    """The proxy passes email_verified through, as Google's string, for the allow-list."""
    google.email_verified = False
    token = await obtain_token(server.mcp_url, http=http)

    verified = await server.auth.verify_token(token.access_token)

    assert verified is not None
    assert verified.claims["email_verified"] == "false"


# ------------------------------------------------------------ registration rules


@pytest.mark.anyio
@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/cb",
        "http://evil.example/cb",
        "http://localhost@evil.example/cb",
        "https://claude.ai.evil.example/api/mcp/auth_callback",
        "https://claude.ai/api/other",
        "javascript:alert(1)",
    ],
)
async def test_registration_refuses_redirect_uris_off_the_allow_list(
    server: Running, http: httpx2.AsyncClient, redirect_uri: str
) -> None:
    """Dynamic registration only takes loopback or Claude's callback."""
    discovery = await discover(server.mcp_url, http=http)

    response = await register(discovery, [redirect_uri], http=http)

    assert response.status_code == 400
    assert response.json()["error"] in {"invalid_redirect_uri", "invalid_client_metadata"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:51234/callback",
        "http://localhost:8080/oauth/cb",
        "https://claude.ai/api/mcp/auth_callback",
        "https://claude.com/api/mcp/auth_callback",
    ],
)
async def test_registration_accepts_loopback_and_claude(
    server: Running, http: httpx2.AsyncClient, redirect_uri: str
) -> None:
    """The default allow-list lets the real clients in."""
    discovery = await discover(server.mcp_url, http=http)

    response = await register(discovery, [redirect_uri], http=http)

    assert response.status_code == 201
    assert response.json()["token_endpoint_auth_method"] == "none"


@pytest.mark.anyio
async def test_authorize_refuses_an_allowed_but_unregistered_redirect_uri(
    server: Running, http: httpx2.AsyncClient
) -> None:
    """A client cannot switch to another allow-listed URI it never registered."""
    response = await start_authorization(
        http, server, redirect_uri="https://claude.ai/api/mcp/auth_callback"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.anyio
async def test_authorize_lets_a_loopback_client_change_port(
    server: Running, http: httpx2.AsyncClient
) -> None:
    """RFC 8252: native clients get a new loopback port each run; that is allowed."""
    response = await start_authorization(http, server, redirect_uri="http://127.0.0.1:10/callback")

    assert response.status_code == 302
    assert response.headers["location"].startswith(f"{server.base_url}/consent?")


# ---------------------------------------------------------------- PKCE, resource


@pytest.mark.anyio
@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"code_challenge_method": "plain"}, id="plain"),
        pytest.param({"code_challenge": None}, id="no-challenge"),
    ],
)
async def test_authorize_refuses_anything_but_s256_pkce(
    server: Running, google: FakeGoogle, http: httpx2.AsyncClient, overrides: dict[str, Any]
) -> None:
    """Without an S256 challenge the client is sent back with an error and no code."""
    sent_to_google = len(google.authorize_requests)

    response = await start_authorization(http, server, **overrides)

    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(DEFAULT_REDIRECT_URI + "?")
    assert "error=invalid_request" in location
    assert "code=" not in location
    assert len(google.authorize_requests) == sent_to_google


@pytest.mark.anyio
async def test_authorize_refuses_an_unknown_resource(
    server: Running, google: FakeGoogle, http: httpx2.AsyncClient
) -> None:
    """RFC 8707: a token for another server cannot be obtained here."""
    sent_to_google = len(google.authorize_requests)

    response = await start_authorization(http, server, resource="https://other.example/mcp")

    assert response.status_code == 302
    assert "error=invalid_target" in response.headers["location"]
    assert len(google.authorize_requests) == sent_to_google


@pytest.mark.anyio
async def test_token_exchange_refuses_a_wrong_code_verifier(
    server: Running, http: httpx2.AsyncClient
) -> None:
    """An intercepted code is useless without the PKCE verifier."""
    discovery = await discover(server.mcp_url, http=http)
    client_id = await register_client(discovery, DEFAULT_REDIRECT_URI, http=http)
    _, challenge = pkce_pair()
    url = authorization_url(
        discovery,
        client_id=client_id,
        redirect_uri=DEFAULT_REDIRECT_URI,
        state="s",
        code_challenge=challenge,
    )
    async with httpx2.AsyncClient() as browser:
        callback = await follow_browser(url, redirect_uri=DEFAULT_REDIRECT_URI, browser=browser)
    wrong_verifier, _ = pkce_pair()

    with pytest.raises(OAuthFlowError) as refused:
        await exchange_code(
            discovery,
            client_id=client_id,
            code=callback["code"],
            code_verifier=wrong_verifier,
            redirect_uri=DEFAULT_REDIRECT_URI,
            http=http,
        )

    assert refused.value.response is not None
    # fastmcp answers invalid_grant with 401, not RFC 6749's 400 (its reading of MCP).
    assert refused.value.response.status_code == 401
    assert refused.value.response.json()["error"] == "invalid_grant"


@pytest.mark.anyio
async def test_consent_without_the_browsers_cookie_is_refused(
    server: Running, http: httpx2.AsyncClient
) -> None:
    """A consent form replayed from another browser (no cookie) is a forgery."""
    response = await start_authorization(http, server)
    consent_url = response.headers["location"]
    page = await http.get(consent_url)
    fields = dict(re.findall(r'name="(txn_id|csrf_token)" value="([^"]+)"', page.text))

    async with httpx2.AsyncClient() as other_browser:
        forged = await other_browser.post(consent_url, data={**fields, "action": "approve"})

    assert forged.status_code == 403


# ------------------------------------------------------------------ bad tokens


@pytest.mark.anyio
async def test_forged_expired_and_misaddressed_tokens_get_401(
    server: Running, http: httpx2.AsyncClient
) -> None:
    """Only an unexpired token signed with our key, for this /mcp, is accepted."""
    token = await obtain_token(server.mcp_url, http=http)
    claims = jwt_claims(token.access_token)
    issuer = server.auth.jwt_issuer

    def forge(*, key: bytes, audience: str, expires_in: int) -> str:
        forger = JWTIssuer(issuer=issuer.issuer, audience=audience, signing_key=key)
        return forger.issue_access_token(
            client_id=claims["client_id"],
            scopes=claims["scope"].split(),
            jti=claims["jti"],
            expires_in=expires_in,
        )

    own_key = server.auth._jwt_signing_key
    control = forge(key=own_key, audience=server.mcp_url, expires_in=600)
    other_key = forge(key=b"x" * 44, audience=server.mcp_url, expires_in=600)
    expired = forge(key=own_key, audience=server.mcp_url, expires_in=-60)
    other_resource = forge(key=own_key, audience=f"{server.base_url}/other", expires_in=600)

    assert await mcp_status(http, server.mcp_url, control) == 200
    assert await mcp_status(http, server.mcp_url, other_key) == 401
    assert await mcp_status(http, server.mcp_url, expired) == 401
    assert await mcp_status(http, server.mcp_url, other_resource) == 401
    assert await mcp_status(http, server.mcp_url, "garbage") == 401
    assert await mcp_status(http, server.mcp_url, token.refresh_token or "") == 401


@pytest.mark.anyio
async def test_token_stops_working_when_google_revokes_it(
    server: Running, google: FakeGoogle, http: httpx2.AsyncClient, storage_dir: Path
) -> None:
    """The proxy token is only a reference: Google's verdict decides (after the cache)."""
    token = await obtain_token(server.mcp_url, http=http)
    google.revoke_all()

    with serve(google, storage_dir) as fresh:  # fresh verifier cache, same state
        status = await mcp_status(http, fresh.mcp_url, token.access_token)

    assert status == 401


@pytest.mark.anyio
async def test_a_revoked_token_is_refused_once_the_verifier_cache_expires(
    google: FakeGoogle, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    """Revoking at Google ends the token within the cache time, without a restart."""
    with serve(google, tmp_path, cache_ttl_seconds=1) as running:
        token = await obtain_token(running.mcp_url, http=http)
        assert await mcp_status(http, running.mcp_url, token.access_token) == 200
        google.revoke_all()
        await anyio.sleep(1.2)
        status = await mcp_status(http, running.mcp_url, token.access_token)

    assert status == 401


def test_production_reuses_a_google_verdict_for_at_most_a_minute(tmp_path: Path) -> None:
    """The default cache time, and the one the composition root really builds, is <= 60 s."""
    settings = load_settings(
        {
            "IMG_ROOT": str(tmp_path),
            "IMG_PUBLIC_URL": "https://mcp.example.test",
            "GOOGLE_OAUTH_CLIENT_ID": CLIENT_ID,
            "GOOGLE_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "IMG_JWT_SIGNING_KEY": SIGNING_KEY,
            "IMG_ALLOWED_EMAILS": EMAIL,
            "IMG_BACKEND": "placeholder",
        }
    )
    auth = build_auth(settings, GoogleEndpoints.google())
    assert auth is not None
    verifier = auth._token_validator
    assert isinstance(verifier, GoogleTokenVerifier)
    assert TOKEN_CACHE_SECONDS <= 60
    assert 0 < verifier._cache._ttl <= 60


# -------------------------------------------------------------------- restarts


@pytest.mark.anyio
async def test_tokens_survive_a_restart_with_the_same_key_but_not_a_new_key(
    google: FakeGoogle, tmp_path: Path
) -> None:
    """Connectors keep working across restarts; rotating the key logs everyone out."""
    storage_dir = tmp_path / "state"
    with serve(google, storage_dir) as first:
        async with httpx2.AsyncClient(timeout=10) as http:
            token = await obtain_token(first.mcp_url, http=http)
    port = first.port

    with serve(google, storage_dir, port=port) as second:
        assert await whoami(second.mcp_url, token.access_token) == EMAIL
        async with httpx2.AsyncClient(timeout=10) as http:
            renewed = await refresh(token, http=http)
        assert await whoami(second.mcp_url, renewed.access_token) == EMAIL

    with serve(google, storage_dir, port=port, signing_key=OTHER_SIGNING_KEY) as rotated:
        async with httpx2.AsyncClient(timeout=10) as http:
            assert await mcp_status(http, rotated.mcp_url, renewed.access_token) == 401
            with pytest.raises(OAuthFlowError):
                await refresh(renewed, http=http)
            again = await obtain_token(rotated.mcp_url, http=http)
        assert await whoami(rotated.mcp_url, again.access_token) == EMAIL


# ------------------------------------------------------------ Host and Origin


@pytest.mark.anyio
async def test_foreign_host_gets_421_on_every_route(
    server: Running, http: httpx2.AsyncClient
) -> None:
    """DNS rebinding: a request naming another host never reaches MCP or OAuth."""
    for method, path in [
        ("POST", "/mcp"),
        ("GET", "/.well-known/oauth-authorization-server"),
        ("GET", "/authorize"),
        ("POST", "/register"),
    ]:
        response = await http.request(
            method, server.base_url + path, headers={**MCP_ACCEPT, "Host": "evil.example"}
        )
        assert response.status_code == 421, path


@pytest.mark.anyio
@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", PUBLIC_HOST, f"{PUBLIC_HOST}:443"]
)
async def test_loopback_and_public_hosts_are_accepted(
    server: Running, http: httpx2.AsyncClient, host: str
) -> None:
    """The public host and loopback pass the guard (and meet the auth check)."""
    response = await http.post(
        server.mcp_url,
        json=INITIALIZE,
        headers={**MCP_ACCEPT, "Host": host.format(port=server.port)},
    )

    assert response.status_code == 401


@pytest.mark.anyio
async def test_foreign_origin_gets_403_and_the_public_origin_passes(
    server: Running, http: httpx2.AsyncClient
) -> None:
    """A page on another site cannot drive the server from a user's browser."""
    foreign = await http.post(
        server.mcp_url, json=INITIALIZE, headers={**MCP_ACCEPT, "Origin": "https://evil.example"}
    )
    public = await http.post(
        server.mcp_url,
        json=INITIALIZE,
        headers={**MCP_ACCEPT, "Host": PUBLIC_HOST, "Origin": f"https://{PUBLIC_HOST}"},
    )

    assert foreign.status_code == 403
    assert public.status_code == 401


def test_transport_security_lists_the_public_host_and_origin() -> None:
    """The helper's output is exactly what http_app needs."""
    assert transport_security("https://img.example.com", dev=False) == {
        "host_origin_protection": True,
        "allowed_hosts": ["img.example.com"],
        "allowed_origins": ["https://img.example.com"],
    }
    dev = transport_security(None, dev=True)
    assert dev["allowed_hosts"] == ["127.0.0.1", "localhost", "::1"]
    with pytest.raises(ValueError, match="public host"):
        transport_security(None, dev=False)


# --------------------------------------------------------------------- storage


@pytest.mark.anyio
async def test_stored_state_is_encrypted_and_private(
    server: Running, google: FakeGoogle, http: httpx2.AsyncClient, storage_dir: Path
) -> None:
    """Whoever reads the state directory learns no token, secret or email."""
    token = await obtain_token(server.mcp_url, http=http)
    renewed = await refresh(token, http=http)
    files, blob = read_tree(storage_dir)

    secrets_ = [
        *google.issued_secrets,
        CLIENT_SECRET,
        EMAIL,
        token.access_token,
        renewed.access_token,
        renewed.refresh_token or "",
    ]
    assert len(files) >= 4
    assert google.issued_secrets
    for secret in secrets_:
        assert secret.encode() not in blob, secret[:12]
    assert all(mode & 0o077 == 0 for mode in files.values()), files
    assert stat.S_IMODE(storage_dir.stat().st_mode) == 0o700  # noqa: ASYNC240 (test)


@pytest.mark.anyio
async def test_culling_removes_expired_state_and_keeps_live_tokens(
    server: Running, http: httpx2.AsyncClient, storage_dir: Path
) -> None:
    """Expired entries leave the disk; live connectors are untouched."""
    token = await obtain_token(server.mcp_url, http=http)
    await server.auth._client_storage.put(key="probe", value={"v": 1}, collection="probe", ttl=0.05)
    probe = next(p for p in read_tree(storage_dir)[0] if "probe" in p.parent.name)
    await anyio.sleep(0.1)

    await server.auth.cull_expired_state()

    assert probe not in read_tree(storage_dir)[0]
    assert await whoami(server.mcp_url, token.access_token) == EMAIL
