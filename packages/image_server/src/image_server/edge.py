"""Web-edge rules with one home: keys, secrets, loopback hosts, origins, Google, headers.

Settings validation, the OAuth proxy, the MCP transport guard and the dashboard all
need some of these; each is written once here and imported, so a rule cannot drift
between two copies.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Sequence
from typing import Final
from urllib.parse import SplitResult, unquote, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# --- secrets and the keys derived from them -----------------------------------------------

#: HKDF stretches nothing: the signing secret must already be high-entropy.
MIN_SECRET_CHARS: Final = 32

#: One salt and label per purpose. Changing any of them changes the derived key, which
#: signs everyone out (cookies), invalidates MCP tokens, or makes stored OAuth state
#: unreadable: ``tests/server/test_edge.py`` pins the bytes each one yields.
OAUTH_SALT: Final = b"image-mcp/oauth/v1"
OAUTH_JWT_INFO: Final = b"image-mcp oauth jwt signing"
OAUTH_STORAGE_INFO: Final = b"image-mcp oauth storage"
DASHBOARD_SALT: Final = b"image-mcp/dashboard/v1"
DASHBOARD_SESSION_INFO: Final = b"image-mcp dashboard session"


def hkdf_sha256(secret: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 HKDF (extract, then expand) with SHA-256, from ``cryptography``."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


def oauth_jwt_key(secret: str) -> bytes:
    """The MCP token-signing key (urlsafe base64 of 32 bytes)."""
    return base64.urlsafe_b64encode(hkdf_sha256(secret.encode(), OAUTH_SALT, OAUTH_JWT_INFO))


def oauth_storage_key(secret: str) -> bytes:
    """The Fernet key that encrypts the OAuth proxy's stored state."""
    return base64.urlsafe_b64encode(hkdf_sha256(secret.encode(), OAUTH_SALT, OAUTH_STORAGE_INFO))


def dashboard_session_key(secret: str) -> str:
    """The dashboard cookie-signing key (hex), never usable as an MCP token key."""
    return hkdf_sha256(secret.encode(), DASHBOARD_SALT, DASHBOARD_SESSION_INFO).hex()


# --- hosts, origins and URLs ---------------------------------------------------------------

#: The loopback names, in the order the MCP transport guard lists them.
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """``localhost`` or any loopback IP address (``127.0.0.2``, ``::1`` ...)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_of(url: str) -> str | None:
    """Normalised ``scheme://host[:port]`` of an absolute http(s) URL, else ``None``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def public_host_and_origin(public_host: str) -> tuple[str, str]:
    """``(host, scheme://netloc)`` of a host name or http(s) URL, for the Host guard."""
    text = public_host.strip()
    parts = urlsplit(text if "://" in text else f"https://{text}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"not a host name or http(s) URL: {public_host!r}"
        raise ValueError(msg)
    netloc = parts.netloc.rpartition("@")[2].lower()
    return parts.hostname, f"{parts.scheme}://{netloc}"


# --- MCP client redirect URIs ---------------------------------------------------------------

#: Loopback clients on any port (fastmcp's ``host:*`` syntax; any path) and Claude's
#: connector callback, on claude.ai and on claude.com (which Anthropic asks servers to
#: accept too). fastmcp's own default (None) accepts any URI.
DEFAULT_ALLOWED_REDIRECT_URIS: Final = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "https://claude.ai/api/mcp/auth_callback",
    "https://claude.com/api/mcp/auth_callback",
)


#: How many dynamic client registrations the OAuth state keeps (``IMG_OAUTH_MAX_CLIENTS``).
DEFAULT_MAX_OAUTH_CLIENTS: Final = 500
#: Days a registration lives after its last token (``IMG_OAUTH_CLIENT_IDLE_DAYS``).
DEFAULT_OAUTH_CLIENT_IDLE_DAYS: Final = 30


def check_redirect_patterns(patterns: Sequence[str]) -> None:
    """Refuse patterns that would let a code travel to someone else's server.

    An https pattern is one exact callback: a fixed host, no ``*`` anywhere, no
    fragment. A loopback ``http`` pattern may leave the port open (``:*`` or no port,
    RFC 8252) and may leave out the path (then any path on that loopback host).
    """
    if not patterns:
        msg = "allowed_client_redirect_uris is empty: no MCP client could connect"
        raise ValueError(msg)
    for pattern in patterns:
        problem = _pattern_problem(pattern)
        if problem:
            msg = f"unsafe redirect URI pattern {pattern!r}: {problem}"
            raise ValueError(msg)


def _pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused, or ``None`` when it is safe."""
    parts = urlsplit(pattern)
    hostport = parts.netloc.lower()
    host = _pattern_host(hostport)
    if "@" in parts.netloc or "#" in pattern:
        return "no user name or fragment allowed"
    if parts.scheme == "http" and is_loopback(host):
        port = _pattern_port(hostport)
        if "*" in f"{parts.path}?{parts.query}" or (port not in ("", "*") and not port.isdigit()):
            return "on loopback only the port may be a wildcard (http://127.0.0.1:*)"
        return None
    if parts.scheme != "https" or not host:
        return "use an exact https://host/path callback or loopback http"
    if "*" in pattern:
        return "wildcards are refused; list each exact https callback"
    return None


def redirect_uri_allowed(uri: str, patterns: Sequence[str]) -> bool:
    """Whether a client's redirect URI is one the allow-list names exactly.

    An https pattern matches only the identical callback (host case and a spelled-out
    default port aside): no other path, no added query, no fragment, no user name.
    A loopback pattern matches its own host on any port when it names none (or
    ``*``), and its path exactly, or any path when it names none.
    """
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if not host or "@" in parts.netloc or "#" in uri or _has_dot_segment(parts.path):
        return False
    return any(_matches(parts.scheme.lower(), host, port, parts, p) for p in patterns)


def _matches(scheme: str, host: str, port: int | None, uri: SplitResult, pattern: str) -> bool:
    wanted = urlsplit(pattern)
    if scheme != wanted.scheme.lower() or host != _pattern_host(wanted.netloc):
        return False
    wanted_port = _pattern_port(wanted.netloc)
    if scheme == "http" and is_loopback(host):
        if wanted_port not in ("", "*") and port != int(wanted_port):
            return False
        if wanted.path in ("", "/") and not wanted.query:
            return True
    else:
        default = _DEFAULT_PORTS.get(scheme)
        if (port or default) != (int(wanted_port) if wanted_port else default):
            return False
    return uri.path == wanted.path and uri.query == wanted.query


def _pattern_port(netloc: str) -> str:
    """The port of a pattern's netloc as written: ``""``, ``"*"`` or digits."""
    hostport = netloc.rpartition("@")[2]
    rest = hostport.partition("]")[2] if hostport.startswith("[") else hostport
    return rest.partition(":")[2]


def _has_dot_segment(path: str) -> bool:
    """``.``/``..`` segments, raw or percent-encoded: browsers collapse them."""
    return any(seg in (".", "..") for p in (path, unquote(path)) for seg in p.split("/"))


def _pattern_host(netloc: str) -> str:
    """The host of a pattern's netloc; ports may be ``*``, so urlsplit cannot parse it."""
    hostport = netloc.rpartition("@")[2].lower()
    if hostport.startswith("["):
        return hostport[1:].partition("]")[0]
    return hostport.partition(":")[0]


# --- Google's endpoints ------------------------------------------------------------------------

GOOGLE_ISSUER: Final = "https://accounts.google.com"
GOOGLE_OPENID_CONFIGURATION: Final = f"{GOOGLE_ISSUER}/.well-known/openid-configuration"
GOOGLE_AUTHORIZE_URL: Final = f"{GOOGLE_ISSUER}/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL: Final = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
GOOGLE_TOKENINFO_URL: Final = "https://oauth2.googleapis.com/tokeninfo"
GOOGLE_USERINFO_URL: Final = "https://www.googleapis.com/oauth2/v2/userinfo"


# --- security headers --------------------------------------------------------------------------

#: What every response of the server carries unless it (or an inner mount) set its own.
BASELINE_HEADERS: Final = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
)


def add_missing_headers(
    headers: MutableHeaders, defaults: Sequence[tuple[str, str]], *, no_store_html: bool
) -> None:
    """Set each default the response has not set itself; optionally never cache HTML."""
    for name, value in defaults:
        if name not in headers:
            headers[name] = value
    html = headers.get("content-type", "").startswith("text/html")
    if no_store_html and html and "cache-control" not in headers:
        headers["cache-control"] = "no-store"


class SecurityHeaders:
    """Adds ``headers`` to every HTTP response that has not set them; one per mount.

    The whole server uses it with ``BASELINE_HEADERS``; the dashboard with its CSP and
    ``no_store_html`` (its pages are private and change with each login).
    """

    def __init__(
        self,
        app: ASGIApp,
        headers: Sequence[tuple[str, str]] = BASELINE_HEADERS,
        *,
        no_store_html: bool = False,
    ) -> None:
        self.app = app
        self.headers = tuple(headers)
        self.no_store_html = no_store_html

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap ``send`` to complete the response headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                add_missing_headers(headers, self.headers, no_store_html=self.no_store_html)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class PublicReads:
    """Lets pages of any origin read what is public by URL (the stored images).

    A browser sends ``Origin`` with some plain image loads, ``null`` from a sandboxed
    frame such as the one an MCP host shows the image viewer in; the transport guard
    refuses any origin it does not know. For a ``GET`` or ``HEAD`` under ``prefix``,
    which changes nothing and returns what anyone holding the URL may fetch, the
    header is dropped before that guard; the ``Host`` check still applies.
    """

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass ``scope`` on, without ``Origin`` when it is a public read."""
        if (
            scope["type"] == "http"
            and scope["method"] in {"GET", "HEAD"}
            and scope["path"].startswith(self.prefix)
        ):
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"origin"]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)
