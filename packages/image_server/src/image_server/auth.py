"""MCP OAuth wiring: fastmcp's OAuth proxy in front of Google, endpoints injectable.

``fastmcp``'s ``GoogleProvider`` hard-codes Google's URLs, so tests could not point it
at a fake identity provider. ``build_mcp_auth`` builds the same ``OAuthProxy`` that
``GoogleProvider.__init__`` builds, with the Google endpoints as a value, the proxy
state persisted encrypted under a directory the caller chooses, keys derived from
one secret, and a redirect-URI allow-list that is never "anything https".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypedDict

import anyio.to_thread
import attrs
import httpx2
from cryptography.fernet import Fernet
from fastmcp.server.auth.oauth_proxy import OAuthProxy
from fastmcp.server.auth.oauth_proxy.models import ProxyDCRClient
from fastmcp.server.auth.providers.google import GoogleTokenVerifier
from key_value.aio.wrappers.encryption import FernetEncryptionWrapper
from mcp.server.auth.provider import AuthorizationCode, RefreshToken
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from starlette.routing import BaseRoute

from image_server.cimd import (
    CIMDFetcher,
    document_speaks_for,
    install_fetcher,
    registration_refused_route,
)
from image_server.edge import (
    DEFAULT_ALLOWED_REDIRECT_URIS,
    DEFAULT_MAX_OAUTH_CLIENTS,
    DEFAULT_OAUTH_CLIENT_IDLE_DAYS,
    GOOGLE_AUTHORIZE_URL,
    GOOGLE_ISSUER,
    GOOGLE_OPENID_CONFIGURATION,
    GOOGLE_TOKEN_URL,
    GOOGLE_TOKENINFO_URL,
    GOOGLE_USERINFO_URL,
    LOOPBACK_HOSTS,
    MIN_SECRET_CHARS,
    check_redirect_patterns,
    oauth_jwt_key,
    oauth_storage_key,
    public_host_and_origin,
    redirect_uri_allowed,
)
from image_server.oauth_budget import check_registration, exact_redirects, guard_routes
from image_server.oauth_redemption import LEDGER_FOLDER, RedemptionLedger
from image_server.oauth_state import ClientLeases, StateBudget, StateFileStore

#: The name this module has always exported; the rule itself lives in ``edge``.
MIN_SIGNING_KEY_CHARS: Final = MIN_SECRET_CHARS

__all__ = [
    "DEFAULT_ALLOWED_REDIRECT_URIS",
    "GOOGLE_SCOPES",
    "MIN_SIGNING_KEY_CHARS",
    "GoogleEndpoints",
    "HttpAppSecurity",
    "ImageMcpOAuthProxy",
    "build_mcp_auth",
    "transport_security",
]

#: ``openid`` alone yields no email claim; the allow-list needs the email.
GOOGLE_SCOPES: Final = ("openid", "https://www.googleapis.com/auth/userinfo.email")

_VERIFY_TIMEOUT_SECONDS: Final = 10
#: fastmcp's consent-page policy, but images only from this origin (its default allows
#: any https image, and its default logo is fetched from fastmcp's website).
CONSENT_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'"
)


@attrs.frozen
class GoogleEndpoints:
    """Where Google's OAuth/OIDC endpoints live; Google's own or a fake's."""

    authorize_url: str
    token_url: str
    tokeninfo_url: str
    userinfo_url: str
    openid_configuration_url: str
    issuer: str

    @classmethod
    def google(cls) -> GoogleEndpoints:
        """Google's production endpoints (the ones fastmcp's GoogleProvider uses)."""
        return cls(
            authorize_url=GOOGLE_AUTHORIZE_URL,
            token_url=GOOGLE_TOKEN_URL,
            tokeninfo_url=GOOGLE_TOKENINFO_URL,
            userinfo_url=GOOGLE_USERINFO_URL,
            openid_configuration_url=GOOGLE_OPENID_CONFIGURATION,
            issuer=GOOGLE_ISSUER,
        )

    @classmethod
    def at(cls, base_url: str) -> GoogleEndpoints:
        """The same paths on another origin, e.g. ``tests/fakes/fake_google.py``."""
        base = base_url.rstrip("/")
        return cls(
            authorize_url=f"{base}/o/oauth2/v2/auth",
            token_url=f"{base}/token",
            tokeninfo_url=f"{base}/tokeninfo",
            userinfo_url=f"{base}/oauth2/v2/userinfo",
            openid_configuration_url=f"{base}/.well-known/openid-configuration",
            issuer=base,
        )

    @property
    def is_google(self) -> bool:
        return self == GoogleEndpoints.google()


class ImageMcpOAuthProxy(OAuthProxy):
    """fastmcp's OAuthProxy, but ``/authorize`` only takes a redirect URI the client
    registered, and only one the allow-list names exactly (``edge.redirect_uri_allowed``).

    With an allow-list configured, fastmcp lets any registered client authorize with
    *any* allowed redirect URI, registered or not. Here a dynamically registered
    client keeps only its own registered URIs (loopback ports may still vary, RFC
    8252) that are still on the allow-list; a client left with none is unknown and
    re-registers. The IdP callback still re-checks the allow-list itself.
    """

    def __init__(
        self,
        *,
        state_files: StateFileStore,
        redemptions: RedemptionLedger,
        cimd_fetcher: CIMDFetcher | None = None,
        dynamic_registration: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._state_files = state_files
        self._redemptions = redemptions
        install_fetcher(self._cimd_manager, cimd_fetcher)
        self._dynamic_registration = dynamic_registration
        if not dynamic_registration and self.client_registration_options is not None:
            # No /register route and no registration_endpoint in the metadata.
            self.client_registration_options.enabled = False

    async def cull_expired_state(self) -> None:
        """Delete expired entries from disk; call it now and then (e.g. hourly).

        Expired transactions, codes and token mappings are only ignored on read, never
        removed, so without this the state directory grows with every login.
        """
        await self._state_files.cull()
        await anyio.to_thread.run_sync(self._redemptions.cull)

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        """fastmcp's exchange, but only one request (in any process) per code."""
        code = authorization_code
        async with self._redemptions.redeeming("code", code.code, code.expires_at):
            return await super().exchange_authorization_code(client, code)

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        """fastmcp's rotation, but only one request (in any process) per refresh token."""
        token = refresh_token
        async with self._redemptions.redeeming("refresh", token.token, token.expires_at):
            return await super().exchange_refresh_token(client, token, scopes)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        """fastmcp's registration, but small, and for exactly listed callbacks only."""
        check_registration(client_info, self._allowed_client_redirect_uris or [])
        await super().register_client(client_info)

    def get_routes(self, mcp_path: str | None = None) -> list[BaseRoute]:  # type: ignore[override]
        """fastmcp's routes; the OAuth writes refuse over-budget work with 413/503.

        With dynamic registration off, ``POST /register`` says why instead of 404.
        """
        routes = guard_routes(super().get_routes(mcp_path))
        if not self._dynamic_registration:
            routes.append(registration_refused_route())
        return routes

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        if not self._dynamic_registration and client_id == self._upstream_client_id:
            return None  # fastmcp's registration-free client for this ID: off with DCR
        client = await super().get_client(client_id)
        cimd_document = client.cimd_document if isinstance(client, ProxyDCRClient) else None
        if cimd_document is not None and not document_speaks_for(client_id, cimd_document):
            return None
        if not isinstance(client, ProxyDCRClient):
            return client
        patterns = self._allowed_client_redirect_uris or []
        if client.cimd_document is not None or client.allow_unregistered_redirect_uris:
            return exact_redirects(client, patterns)
        allowed = [
            uri for uri in client.redirect_uris or [] if redirect_uri_allowed(str(uri), patterns)
        ]
        if not allowed:
            return None
        return exact_redirects(
            client.model_copy(
                update={"redirect_uris": allowed, "allowed_redirect_uri_patterns": None}
            ),
            patterns,
        )


#: How long one Google verdict on a token is reused: a token revoked at Google (or a
#: removed app) stops working within this many seconds.
TOKEN_CACHE_SECONDS: Final = 60


def build_mcp_auth(
    *,
    client_id: str,
    client_secret: str,
    base_url: str,
    jwt_signing_key: str,
    storage_dir: Path,
    allowed_client_redirect_uris: Sequence[str],
    endpoints: GoogleEndpoints,
    cache_ttl_seconds: int = TOKEN_CACHE_SECONDS,
    cimd_fetcher: CIMDFetcher | None = None,
    dynamic_registration: bool = True,
    max_clients: int = DEFAULT_MAX_OAUTH_CLIENTS,
    client_idle_days: int = DEFAULT_OAUTH_CLIENT_IDLE_DAYS,
) -> ImageMcpOAuthProxy:
    """The OAuth provider for ``FastMCP(auth=...)``: Google login, Claude-ready.

    ``base_url`` is the public origin (tokens are bound to ``{base_url}/mcp``, so
    keep it stable across restarts). ``jwt_signing_key`` is one high-entropy secret;
    the token-signing key and the storage encryption key are derived from it
    separately, so changing it invalidates tokens and stored state together.
    ``storage_dir`` holds client registrations and upstream Google tokens,
    Fernet-encrypted, so connectors survive restarts; at most ``max_clients``
    registrations, each lasting ``client_idle_days`` after its last token.
    ``cache_ttl_seconds`` bounds how long a token revoked at Google keeps working (tests
    pass about a second). ``cimd_fetcher`` replaces fastmcp's SSRF-guarded
    metadata-document fetcher (tests only: production passes ``None``);
    ``dynamic_registration=False`` leaves CIMD the only way to become a client.
    """
    if len(jwt_signing_key) < MIN_SECRET_CHARS:
        msg = f"jwt_signing_key must be at least {MIN_SECRET_CHARS} random characters"
        raise ValueError(msg)
    patterns = list(allowed_client_redirect_uris)
    check_redirect_patterns(patterns)
    state_files = _state_files(storage_dir, max_clients)
    verifier = GoogleTokenVerifier(
        required_scopes=list(GOOGLE_SCOPES),
        timeout_seconds=_VERIFY_TIMEOUT_SECONDS,
        cache_ttl_seconds=cache_ttl_seconds,
        http_client=None if endpoints.is_google else _redirecting_client(endpoints),
        audience=client_id,
    )
    return ImageMcpOAuthProxy(
        upstream_authorization_endpoint=endpoints.authorize_url,
        upstream_token_endpoint=endpoints.token_url,
        upstream_client_id=client_id,
        upstream_client_secret=client_secret,
        token_verifier=verifier,
        base_url=base_url,
        issuer_url=base_url,
        redirect_path="/auth/callback",
        allowed_client_redirect_uris=patterns,
        state_files=state_files,
        redemptions=RedemptionLedger(storage_dir / LEDGER_FOLDER),
        cimd_fetcher=cimd_fetcher,
        dynamic_registration=dynamic_registration,
        client_storage=ClientLeases(
            FernetEncryptionWrapper(
                key_value=state_files,
                fernet=Fernet(oauth_storage_key(jwt_signing_key)),
                # After a key change old entries read as missing: clients re-register.
                raise_on_decryption_error=False,
            ),
            idle_seconds=client_idle_days * 86400,
        ),
        jwt_signing_key=oauth_jwt_key(jwt_signing_key),
        require_authorization_consent=True,
        consent_csp_policy=CONSENT_CSP,
        extra_authorize_params={"access_type": "offline", "prompt": "consent"},
    )


class HttpAppSecurity(TypedDict):
    """Keyword arguments of ``FastMCP.http_app`` that switch on Host/Origin checks."""

    host_origin_protection: bool
    allowed_hosts: list[str]
    allowed_origins: list[str]


def transport_security(public_host: str | None, dev: bool) -> HttpAppSecurity:
    """DNS-rebinding protection for ``mcp.http_app(path="/mcp", **transport_security(...))``.

    ``public_host`` is the public host name (``img.example.com``, with or without a
    port) or the public URL. A foreign ``Host`` gets 421, a foreign browser
    ``Origin`` 403, on every route of the app. The public https origin is listed
    because behind a TLS proxy the app sees plain http and would otherwise refuse the
    browser's own consent-form POST. fastmcp always accepts loopback hosts (and the
    address the connection arrived on) whatever is passed here; ``dev`` lists them
    explicitly and allows running without a public host.
    """
    hosts: list[str] = []
    origins: list[str] = []
    if public_host is not None:
        host, origin = public_host_and_origin(public_host)
        hosts.append(host)
        origins.append(origin)
    elif not dev:
        msg = "a public host is required outside dev mode"
        raise ValueError(msg)
    if dev:
        hosts.extend(h for h in LOOPBACK_HOSTS if h not in hosts)
    return HttpAppSecurity(
        host_origin_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def _state_files(storage_dir: Path, max_clients: int) -> StateFileStore:
    """The file store fastmcp builds by default, but private, bounded and healed."""
    storage_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    storage_dir.chmod(0o700)  # also when it pre-existed: only this service reads it
    return StateFileStore(storage_dir, StateBudget.for_proxy(max_clients))


def _redirecting_client(endpoints: GoogleEndpoints) -> httpx2.AsyncClient:
    """An HTTP client for GoogleTokenVerifier that reaches ``endpoints`` instead.

    The verifier has Google's tokeninfo/userinfo URLs as literals; this is the seam.
    """
    routes = {
        GOOGLE_TOKENINFO_URL: endpoints.tokeninfo_url,
        GOOGLE_USERINFO_URL: endpoints.userinfo_url,
    }
    return httpx2.AsyncClient(
        transport=_RedirectingTransport(routes), timeout=_VERIFY_TIMEOUT_SECONDS
    )


class _RedirectingTransport(httpx2.AsyncBaseTransport):
    """Send requests for known URLs to their replacements; refuse anything else.

    Each request gets a short-lived inner transport, so the long-lived client owns no
    connections and needs no closing.
    """

    def __init__(self, routes: Mapping[str, str]) -> None:
        self._routes = dict(routes)
        self._tls = httpx2.create_ssl_context()  # building one costs ~40 ms: do it once

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        target = self._routes.get(str(request.url.copy_with(query=None, fragment=None)))
        if target is None:
            msg = f"no route for {request.url.host}"
            raise httpx2.ConnectError(msg, request=request)
        url = httpx2.URL(target)
        if request.url.query:
            url = url.copy_with(query=request.url.query)
        forwarded = httpx2.Request(
            request.method,
            url,
            headers=[(k, v) for k, v in request.headers.multi_items() if k.lower() != "host"],
            content=await request.aread(),
            extensions=request.extensions,
        )
        async with httpx2.AsyncHTTPTransport(verify=self._tls) as inner:
            response = await inner.handle_async_request(forwarded)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx2.Response(response.status_code, headers=headers, content=body, request=request)
