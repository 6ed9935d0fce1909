"""Browser-facing safety: local-only redirects, same-origin and CSRF checks, headers.

Kept free of routing so each rule can be tested (and fuzzed) on its own.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Collection
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from image_server.dashboard.pages import ROOT_KEY
from image_server.edge import LOOPBACK_HOSTS, add_missing_headers, origin_of

MAX_NEXT_CHARS: Final = 2048
MAX_FORM_BYTES: Final = 4096

#: Same origin only, no inline script or style, no framing, forms post only here.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    # "same-origin", not "no-referrer": with no-referrer, browsers send ``Origin: null``
    # on form posts, which the same-origin check would (rightly) refuse.
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)


def safe_next(value: str | None) -> str | None:
    """``value`` when it is a path on this site, else ``None``.

    Accepted: a single leading ``/``, printable ASCII without whitespace (browsers drop
    tabs and newlines, turning ``/\\t/evil`` into ``//evil``), no backslash (browsers
    read it as ``/``), no scheme and no authority.
    """
    if not value or len(value) > MAX_NEXT_CHARS:
        return None
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if not all(0x21 <= ord(c) <= 0x7E for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def request_origin(request: Request) -> str | None:
    """The origin this request was addressed to (scheme plus ``Host`` header)."""
    host = request.headers.get("host")
    return origin_of(f"{request.url.scheme}://{host}") if host else None


def is_same_origin(request: Request, allowed: Collection[str]) -> bool:
    """Whether a state-changing request demonstrably comes from one of our own pages.

    ``Sec-Fetch-Site``, when sent, must say ``same-origin``; ``Origin`` (or failing that
    ``Referer``) must be an allowed origin. A request carrying none of them is refused.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() != "same-origin":
        return False
    origin = request.headers.get("origin")
    if origin is not None:
        return origin_of(origin) in allowed
    referer = request.headers.get("referer")
    if referer:
        return origin_of(referer) in allowed
    return site is not None


def allowed_origins(request: Request, public_origin: str, auth_disabled: bool) -> frozenset[str]:
    """The public origin; with auth disabled also the loopback origin the request used.

    Local development is often reached as ``localhost`` while the configured URL says
    ``127.0.0.1``; a loopback ``Host`` cannot be set by a cross-site page.
    """
    allowed = {public_origin}
    own = request_origin(request)
    if auth_disabled and own is not None and urlsplit(own).hostname in LOOPBACK_HOSTS:
        allowed.add(own)
    return frozenset(allowed)


async def read_small_form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form body, or ``None`` when it is anything else or too large."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return dict(parse_qsl(text, keep_blank_values=True))


async def verified_form(
    request: Request, *, public_origin: str, auth_disabled: bool, expected_csrf: object
) -> dict[str, str] | None:
    """The posted form if it is same-origin and carries the session's CSRF token.

    The origin is checked before the body is read; ``None`` means refuse and change
    nothing.
    """
    if not is_same_origin(request, allowed_origins(request, public_origin, auth_disabled)):
        return None
    form = await read_small_form(request)
    if form is None or not csrf_matches(expected_csrf, form.get("csrf_token")):
        return None
    return form


def new_csrf_token() -> str:
    """A fresh unguessable token for the session."""
    return secrets.token_urlsafe(32)


def new_session_id() -> str:
    """A fresh unguessable id for one dashboard session (what a sign-out names)."""
    return secrets.token_urlsafe(18)


def csrf_matches(expected: object, submitted: str | None) -> bool:
    """Constant-time comparison; an absent or empty token never matches."""
    if not isinstance(expected, str) or not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


class NoteMountPoint:
    """Notes the dashboard's mount point in the scope before routing changes ``root_path``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Remember ``root_path`` as the dashboard's root, then pass the request on."""
        if scope["type"] == "http":
            scope.setdefault(ROOT_KEY, scope.get("root_path", ""))
        await self.app(scope, receive, send)


def add_security_headers(headers: MutableHeaders) -> None:
    """Set each dashboard header that the response has not set itself; HTML is no-store."""
    add_missing_headers(headers, SECURITY_HEADERS, no_store_html=True)
