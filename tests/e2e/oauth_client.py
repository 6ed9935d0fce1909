"""A Claude.ai-like MCP OAuth client, for end-to-end tests of the real OAuth proxy.

It walks the same path a remote MCP client does (MCP authorization spec 2025-06):
401 challenge -> protected resource metadata (RFC 9728) -> authorization server
metadata (RFC 8414) -> dynamic client registration (RFC 7591) -> authorization with
PKCE S256, state and resource (RFC 8707) -> the consent page -> the identity provider
-> back to the client's redirect URI (never followed: nothing listens there) ->
token exchange. Each step is also a function of its own so tests can break one.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx2

__all__ = [
    "DEFAULT_REDIRECT_URI",
    "Discovery",
    "OAuthFlowError",
    "TokenSet",
    "authorization_url",
    "discover",
    "exchange_code",
    "follow_browser",
    "obtain_token",
    "pkce_pair",
    "refresh",
    "register",
    "register_client",
]

#: Port 9 (discard) on loopback: a valid native-app redirect that nothing serves.
DEFAULT_REDIRECT_URI: Final = "http://127.0.0.1:9/callback"
_MAX_HOPS: Final = 10
#: The handshake-era initialize request every probe of /mcp sends.
INITIALIZE: Final = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "oauth-e2e", "version": "0"},
    },
}


class OAuthFlowError(Exception):
    """A step of the flow got an answer other than the one a client can go on with."""

    def __init__(self, step: str, detail: str, response: httpx2.Response | None = None) -> None:
        self.step = step
        self.response = response
        status = f" (HTTP {response.status_code})" if response is not None else ""
        super().__init__(f"{step}{status}: {detail}")


@dataclass(frozen=True)
class Discovery:
    """What a client learns before registering: the resource and its auth server."""

    resource: str
    resource_metadata_url: str
    issuer: str
    metadata: dict[str, Any]
    scopes: list[str]

    @property
    def authorization_endpoint(self) -> str:
        return str(self.metadata["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.metadata["token_endpoint"])

    @property
    def registration_endpoint(self) -> str:
        return str(self.metadata["registration_endpoint"])


@dataclass(frozen=True)
class TokenSet:
    """Tokens plus what a client must remember to refresh them."""

    access_token: str
    refresh_token: str | None
    expires_in: int | None
    scope: str
    client_id: str
    redirect_uri: str
    token_endpoint: str
    resource: str
    raw: dict[str, Any] = field(repr=False)


def pkce_pair() -> tuple[str, str]:
    """A fresh (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


async def discover(mcp_url: str, *, http: httpx2.AsyncClient) -> Discovery:
    """Unauthenticated MCP request -> 401 -> resource metadata -> server metadata."""
    challenge = await http.post(
        mcp_url,
        json=INITIALIZE,
        headers={"Accept": "application/json, text/event-stream"},
    )
    if challenge.status_code != 401:
        raise OAuthFlowError("challenge", "expected 401", challenge)
    www_authenticate = challenge.headers.get("www-authenticate", "")
    match = re.search(r'resource_metadata="([^"]+)"', www_authenticate)
    if match is None:
        raise OAuthFlowError("challenge", f"no resource_metadata in {www_authenticate!r}")
    prm_url = match.group(1)
    prm = await _get_json(http, prm_url, "resource metadata")
    issuer = str(prm["authorization_servers"][0])
    metadata = await _get_json(http, _server_metadata_url(issuer), "server metadata")
    if metadata.get("issuer") != issuer:
        raise OAuthFlowError("server metadata", f"issuer {metadata.get('issuer')!r} != {issuer!r}")
    scopes = [str(s) for s in prm.get("scopes_supported") or metadata.get("scopes_supported") or []]
    return Discovery(
        resource=str(prm["resource"]),
        resource_metadata_url=prm_url,
        issuer=issuer,
        metadata=metadata,
        scopes=scopes,
    )


async def register(
    discovery: Discovery,
    redirect_uris: list[str],
    *,
    http: httpx2.AsyncClient,
    client_name: str = "oauth-e2e",
) -> httpx2.Response:
    """Dynamic client registration as a public client; the raw answer."""
    return await http.post(
        discovery.registration_endpoint,
        json={
            "client_name": client_name,
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    )


async def register_client(
    discovery: Discovery, redirect_uri: str, *, http: httpx2.AsyncClient
) -> str:
    """Register and return the new ``client_id``."""
    response = await register(discovery, [redirect_uri], http=http)
    if response.status_code != 201:
        raise OAuthFlowError("registration", response.text, response)
    return str(response.json()["client_id"])


def authorization_url(
    discovery: Discovery,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    code_challenge: str | None,
    code_challenge_method: str = "S256",
    resource: str | None = None,
) -> str:
    """The URL a client opens in the user's browser."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "resource": resource if resource is not None else discovery.resource,
        "code_challenge_method": code_challenge_method,
    }
    if code_challenge is not None:
        params["code_challenge"] = code_challenge
    if discovery.scopes:
        params["scope"] = " ".join(discovery.scopes)
    return f"{discovery.authorization_endpoint}?{urlencode(params)}"


async def follow_browser(
    url: str, *, redirect_uri: str, browser: httpx2.AsyncClient
) -> dict[str, str]:
    """Act as the user's browser: follow redirects, approve the consent form, and
    stop at ``redirect_uri``, returning its query parameters (code, state, iss or error).
    """
    method, form = "GET", None
    for _ in range(_MAX_HOPS):
        if _same_endpoint(url, redirect_uri):
            return dict(parse_qsl(urlsplit(url).query))
        response = await browser.request(method, url, data=form)
        method, form = "GET", None
        if response.is_redirect:
            url = urljoin(url, response.headers["location"])
            continue
        consent = _ConsentForm.parse(response.text) if response.status_code == 200 else None
        if consent is None:
            raise OAuthFlowError("browser", f"stuck at {url}: {response.text[:300]}", response)
        url = urljoin(url, consent.action or url)
        method, form = "POST", {**consent.fields, "action": "approve"}
    raise OAuthFlowError("browser", "too many redirects")


async def exchange_code(
    discovery: Discovery,
    *,
    client_id: str,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    http: httpx2.AsyncClient,
) -> TokenSet:
    """Authorization code + PKCE verifier -> tokens."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": code_verifier,
        "resource": discovery.resource,
    }
    response = await http.post(discovery.token_endpoint, data=data)
    if response.status_code != 200:
        raise OAuthFlowError("token", response.text, response)
    return _token_set(
        response.json(), client_id, redirect_uri, discovery.token_endpoint, discovery.resource
    )


async def obtain_token(
    mcp_url: str,
    *,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    http: httpx2.AsyncClient,
    browser: httpx2.AsyncClient | None = None,
) -> TokenSet:
    """The whole flow, as Claude.ai runs it, ending with tokens for ``mcp_url``.

    ``http`` plays the client's back end; ``browser`` (a fresh cookie jar when
    omitted) plays the user's browser, so consent cookies stay where they belong.
    """
    discovery = await discover(mcp_url, http=http)
    client_id = await register_client(discovery, redirect_uri, http=http)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = authorization_url(
        discovery,
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=challenge,
    )
    if browser is None:
        async with httpx2.AsyncClient(follow_redirects=False) as own_browser:
            callback = await follow_browser(url, redirect_uri=redirect_uri, browser=own_browser)
    else:
        callback = await follow_browser(url, redirect_uri=redirect_uri, browser=browser)
    if "error" in callback:
        raise OAuthFlowError(
            "authorization", f"{callback['error']}: {callback.get('error_description')}"
        )
    if callback.get("state") != state:
        raise OAuthFlowError("authorization", "state mismatch")
    if callback.get("iss") != discovery.issuer:  # RFC 9207 mix-up defence
        raise OAuthFlowError(
            "authorization", f"iss {callback.get('iss')!r} != {discovery.issuer!r}"
        )
    return await exchange_code(
        discovery,
        client_id=client_id,
        code=callback["code"],
        code_verifier=verifier,
        redirect_uri=redirect_uri,
        http=http,
    )


async def refresh(token: TokenSet, *, http: httpx2.AsyncClient) -> TokenSet:
    """Trade the refresh token for a new token set (the proxy rotates both)."""
    if token.refresh_token is None:
        raise OAuthFlowError("refresh", "no refresh token")
    data = {
        "grant_type": "refresh_token",
        "refresh_token": token.refresh_token,
        "client_id": token.client_id,
        "resource": token.resource,
    }
    response = await http.post(token.token_endpoint, data=data)
    if response.status_code != 200:
        raise OAuthFlowError("refresh", response.text, response)
    return _token_set(
        response.json(), token.client_id, token.redirect_uri, token.token_endpoint, token.resource
    )


def _token_set(
    body: dict[str, Any], client_id: str, redirect_uri: str, token_endpoint: str, resource: str
) -> TokenSet:
    expires_in = body.get("expires_in")
    return TokenSet(
        access_token=str(body["access_token"]),
        refresh_token=body.get("refresh_token"),
        expires_in=int(expires_in) if expires_in is not None else None,
        scope=str(body.get("scope", "")),
        client_id=client_id,
        redirect_uri=redirect_uri,
        token_endpoint=token_endpoint,
        resource=resource,
        raw=body,
    )


async def _get_json(http: httpx2.AsyncClient, url: str, step: str) -> dict[str, Any]:
    response = await http.get(url)
    if response.status_code != 200:
        raise OAuthFlowError(step, response.text, response)
    body: dict[str, Any] = response.json()
    return body


def _server_metadata_url(issuer: str) -> str:
    """RFC 8414 section 3.1: the well-known segment goes before the issuer's path."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}"


def _same_endpoint(url: str, target: str) -> bool:
    a, b = urlsplit(url), urlsplit(target)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


class _ConsentForm(HTMLParser):
    """The consent page's form: its action and hidden fields (txn_id, csrf_token)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    @classmethod
    def parse(cls, html: str) -> _ConsentForm | None:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser if "csrf_token" in parser.fields else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form" and attributes.get("method", "").upper() == "POST":
            self._in_form, self.action = True, attributes.get("action", "")
        elif tag == "input" and self._in_form and attributes.get("type") == "hidden":
            self.fields[attributes.get("name", "")] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
