"""What a stranger may make the OAuth endpoints do: small registrations, clear refusals.

``/register``, ``/authorize`` and ``/consent`` need no login, so each limit here is a
fixed constant: a registration names at most a few short redirect URIs and a short
name, a request body is refused before it is read in full when it is too large, and
a write the state budget (``oauth_state``) or a full disk refuses is answered 503
with ``Retry-After`` instead of a bare 500.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Sequence
from typing import Final

from fastmcp.server.auth.oauth_proxy.models import ProxyDCRClient
from mcp.server.auth.provider import RegistrationError
from mcp.shared.auth import InvalidRedirectUriError, OAuthClientInformationFull
from pydantic import AnyUrl, Field
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from image_server.edge import redirect_uri_allowed
from image_server.oauth_state import StateBudgetExceeded

#: A registration, consent form or token request is a few hundred bytes.
MAX_BODY_BYTES: Final = 16_384
MAX_CLIENT_NAME_CHARS: Final = 200
MAX_REDIRECT_URIS: Final = 5
MAX_REDIRECT_URI_CHARS: Final = 512
MAX_SCOPE_CHARS: Final = 512
#: The OAuth routes whose writes are guarded (paths as fastmcp mounts them).
GUARDED_PATHS: Final = frozenset(
    {"/register", "/authorize", "/consent", "/auth/callback", "/token"}
)
RETRY_AFTER_SECONDS: Final = 60
_DISK_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT})


def check_registration(client: OAuthClientInformationFull, patterns: Sequence[str]) -> None:
    """Refuse a registration that is too big or names a callback not listed exactly."""
    name = client.client_name or ""
    uris = [str(uri) for uri in client.redirect_uris or []]
    if len(name) > MAX_CLIENT_NAME_CHARS:
        _refuse("invalid_client_metadata", f"client_name over {MAX_CLIENT_NAME_CHARS} chars")
    if len(client.scope or "") > MAX_SCOPE_CHARS:
        _refuse("invalid_client_metadata", f"scope over {MAX_SCOPE_CHARS} chars")
    if len(uris) > MAX_REDIRECT_URIS:
        _refuse("invalid_redirect_uri", f"more than {MAX_REDIRECT_URIS} redirect URIs")
    for uri in uris:
        if len(uri) > MAX_REDIRECT_URI_CHARS:
            _refuse("invalid_redirect_uri", f"a redirect URI over {MAX_REDIRECT_URI_CHARS} chars")
        if not redirect_uri_allowed(uri, patterns):
            _refuse("invalid_redirect_uri", f"Redirect URI '{uri}' is not allowed.")


class ExactRedirectClient(ProxyDCRClient):
    """A client whose every redirect URI, given or resolved, is on the list exactly.

    fastmcp compares allow-list patterns by path only, so a query or fragment added to
    a listed callback would pass; the client the proxy hands to ``/authorize`` (a
    registered, synthesized or CIMD one) is this class, which refuses such URIs with
    the SDK's error, before any redirect is sent.
    """

    exact_redirect_patterns: list[str] = Field(default_factory=list, exclude=True)

    def validate_redirect_uri(self, redirect_uri: AnyUrl | None) -> AnyUrl:
        resolved = super().validate_redirect_uri(redirect_uri)
        if not redirect_uri_allowed(str(resolved), self.exact_redirect_patterns):
            msg = f"Redirect URI '{resolved}' is not on the allow-list exactly."
            raise InvalidRedirectUriError(msg)
        return resolved


def exact_redirects(client: ProxyDCRClient, patterns: Sequence[str]) -> ExactRedirectClient:
    """``client`` (unchanged) as an ``ExactRedirectClient`` checking ``patterns``."""
    fields = {name: getattr(client, name) for name in type(client).model_fields}
    return ExactRedirectClient.model_construct(
        _fields_set=client.model_fields_set,
        **fields,
        exact_redirect_patterns=list(patterns),
    )


def _refuse(error: str, description: str) -> None:
    raise RegistrationError(error, description)  # type: ignore[arg-type]


def guard_routes(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with each OAuth write route wrapped in ``StateGuard``."""
    guarded: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route) and route.path in GUARDED_PATHS:
            guarded.append(
                Route(
                    route.path,
                    endpoint=StateGuard(route.app),
                    methods=sorted(route.methods or ()),
                    name=route.name,
                    include_in_schema=route.include_in_schema,
                )
            )
        else:
            guarded.append(route)
    return guarded


class _BodyTooLarge(Exception):
    pass


class StateGuard:
    """Refuses over-large bodies (413) and over-budget or disk-full writes (503)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the route; answer in its place if it breaks a limit before it answered."""
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            await _answer(send, 413, "invalid_request", f"body over {MAX_BODY_BYTES} bytes")
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await _answer(send, 413, "invalid_request", f"body over {MAX_BODY_BYTES} bytes")
        except StateBudgetExceeded as exc:
            if started:
                raise
            await _answer(send, 503, "temporarily_unavailable", str(exc))
        except OSError as exc:
            if started or exc.errno not in _DISK_FULL:
                raise
            await _answer(send, 503, "temporarily_unavailable", "the server's disk is full")


async def _answer(send: Send, status: int, error: str, description: str) -> None:
    body = json.dumps({"error": error, "error_description": description}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if status == 503:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
