"""``IMG_LOGIN_REQUIRES_ACCESS=1``: no connector token for people who may not generate.

By default anyone with a Google account may finish the connector login (and is then
refused when asking for an image). With the door closed, ``LoginGate`` looks at the
end of the Google login: when the OAuth proxy is about to send the client its
authorization code, the Google account behind it is checked against the allow-list.
Someone who may not generate gets a page saying who they signed in as and whom to
ask, and the code is deleted, so no token can ever be made from it.

The proxy keeps the Google tokens of a pending code in its code store and verifies
Google tokens with its token verifier; these are fastmcp internals (``_code_store``,
``_token_validator``, ``_redirect_path``), used here and nowhere else.
"""

from __future__ import annotations

import html
import logging
from typing import Final
from urllib.parse import parse_qs, urlsplit

from fastmcp.server.auth.oauth_proxy import OAuthProxy
from fastmcp.server.dependencies import AccessToken
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from image_core.access import owner_key
from image_core.domain import Identity
from image_core.service import ImageService, not_allowed
from image_server.callers import identity_of
from image_server.hints import user_message

log = logging.getLogger("image_server")

REFUSED_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"


class LoginGate:
    """ASGI middleware around the OAuth proxy's callback (see the module doc)."""

    def __init__(self, app: ASGIApp, *, auth: OAuthProxy, service: ImageService) -> None:
        self.app = app
        self.auth = auth
        self.service = service
        self.callback_path: str = auth._redirect_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold the callback's answer until the account behind its code is known."""
        if scope["type"] != "http" or scope["path"] != self.callback_path:
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        code = _code_sent(held)
        if code is not None:
            identity = await self._identity_behind(code)
            if not self.service.may_generate(identity):
                await self.auth._code_store.delete(key=code)
                email = owner_key(identity.email) if identity is not None else None
                log.info("connector login refused", extra={"event": "refused", "email": email})
                await _refusal(held, user_message(not_allowed(identity)), send)
                return
        for message in held:
            await send(message)

    async def _identity_behind(self, code: str) -> Identity | None:
        """The Google account whose tokens wait behind ``code``, as every MCP call sees it."""
        pending = await self.auth._code_store.get(key=code)
        access = pending.idp_tokens.get("access_token") if pending is not None else None
        if not isinstance(access, str):
            return None
        verified = await self.auth._token_validator.verify_token(access)
        return identity_of(verified) if isinstance(verified, AccessToken) else None


def _code_sent(held: list[Message]) -> str | None:
    """The authorization code in a redirect to the client, if that is the answer."""
    start = next((m for m in held if m["type"] == "http.response.start"), None)
    if start is None or start.get("status") not in (302, 303):
        return None
    for key, value in start.get("headers", []):
        if key.lower() == b"location":
            codes = parse_qs(urlsplit(value.decode("latin-1")).query).get("code")
            return codes[0] if codes else None
    return None


async def _refusal(held: list[Message], text: str, send: Send) -> None:
    """A plain 403 page instead of the redirect (keeping the cookies the proxy cleared)."""
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>Not allowed · image-mcp</title></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;"
        "padding:0 1rem;line-height:1.5'>"
        "<h1>Not allowed</h1>"
        f"<p>{html.escape(text)}</p>"
        "<p>No connector token was issued. Once the owner has added the address, "
        "connect again; or log in with another Google account.</p>"
        "</body></html>"
    ).encode()
    start = next(m for m in held if m["type"] == "http.response.start")
    cookies = [(k, v) for k, v in start.get("headers", []) if k.lower() == b"set-cookie"]
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"cache-control", b"no-store"),
        (b"content-security-policy", REFUSED_CSP.encode()),
        *cookies,
    ]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
