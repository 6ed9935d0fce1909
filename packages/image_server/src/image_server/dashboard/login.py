"""Browser sign-in with Google (OIDC authorization code + PKCE) through authlib.

The ID token is checked for signature, issuer, audience, expiry and nonce; the OAuth
``state`` must match the one stored in this browser's session. Only a verified,
allow-listed email gets a user session; anyone else sees who they signed in as and
why that is not enough. Errors never leave a half-made session behind.
"""

from __future__ import annotations

import functools
import logging
import ssl
from typing import Any, Final

import anyio
import attrs
import httpx2
from authlib.common.errors import AuthlibBaseError  # type: ignore[import-untyped]
from authlib.integrations.starlette_client import OAuth  # type: ignore[import-untyped]
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from image_core.access import owner_key
from image_core.domain import Identity
from image_core.service import ImageService
from image_server.dashboard.config import DashboardConfig
from image_server.dashboard.pages import Paths, Renderer
from image_server.dashboard.security import safe_next, verified_form
from image_server.dashboard.session import Sessions

log = logging.getLogger("image_server.dashboard")

SCOPES: Final = "openid email"
HTTP_TIMEOUT_SECONDS: Final = 10.0
_LOGIN_ERRORS: Final = (
    AuthlibBaseError,
    JoseError,
    httpx2.HTTPError,
    ValueError,
    KeyError,
    TypeError,
    RuntimeError,
)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every call to Google.

    authlib opens a fresh HTTP client per request (discovery, keys, token); letting
    each load the system CA store again costs about a third of a second apiece.
    """
    return httpx2.create_ssl_context()


def _claims_verified(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


@attrs.frozen
class GoogleLogin:
    """The login, callback and logout endpoints."""

    config: DashboardConfig
    service: ImageService
    sessions: Sessions
    renderer: Renderer
    oauth: Any = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        oauth = OAuth()
        if self.config.auth_disabled:
            object.__setattr__(self, "oauth", oauth)
            return
        oauth.register(
            name="google",
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            server_metadata_url=self.config.openid_configuration_url,
            client_kwargs={
                "scope": SCOPES,
                "code_challenge_method": "S256",
                "timeout": HTTP_TIMEOUT_SECONDS,
                "verify": _tls_context(),
            },
        )
        object.__setattr__(self, "oauth", oauth)

    async def login_page(self, request: Request) -> Response:
        """``GET /login``: a button to Google (or straight on when auth is disabled)."""
        next_path = safe_next(request.query_params.get("next"))
        paths = Paths.of(request)
        if self.config.auth_disabled or self.sessions.viewer(request) is not None:
            return RedirectResponse(next_path or paths.home(), status_code=303)
        context = {
            "next_path": next_path,
            "title": "Sign in",
            "signed_out": "bye" in request.query_params,
        }
        return self.renderer.page(request, "login.html", context)

    async def start(self, request: Request) -> Response:
        """``GET /login/google``: remember ``next`` and send the browser to Google."""
        paths = Paths.of(request)
        next_path = safe_next(request.query_params.get("next"))
        if self.config.auth_disabled:
            return RedirectResponse(next_path or paths.home(), status_code=303)
        self.sessions.remember_next(request, next_path)
        extra = {"prompt": "select_account"} if request.query_params.get("switch") else {}
        try:
            response: Response = await self.oauth.google.authorize_redirect(
                request, self.config.callback_url, **extra
            )
        except _LOGIN_ERRORS as exc:
            log.warning("google sign-in unavailable: %s", type(exc).__name__)
            return self._failed(request, "Google sign-in cannot be reached right now.")
        return response

    async def callback(self, request: Request) -> Response:
        """``GET /auth/callback``: check state and ID token, then admit or refuse."""
        if self.config.auth_disabled:
            return RedirectResponse(Paths.of(request).home(), status_code=303)
        next_path = safe_next(self.sessions.pending_next(request))
        try:
            token = await self.oauth.google.authorize_access_token(
                request,
                claims_options={
                    "iss": {"essential": True, "values": [self.config.issuer]},
                    "aud": {"essential": True, "values": [self.config.client_id]},
                },
            )
            claims = token.get("userinfo")
            if not claims:
                raise ValueError("no ID token in the token response")
        except _LOGIN_ERRORS as exc:
            log.warning("dashboard sign-in rejected: %s: %s", type(exc).__name__, exc)
            self.sessions.remember_next(request, None)
            return self._failed(request, "Google sign-in did not complete. Please try again.")
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            self.sessions.remember_next(request, None)
            return self._failed(request, "Google did not share an email address for this account.")
        identity = Identity(email, email_verified=_claims_verified(claims.get("email_verified")))
        if not self.service.may_generate(identity):
            self.sessions.sign_out(request)
            log.info(
                "dashboard sign-in refused", extra={"event": "refused", "email": owner_key(email)}
            )
            return self._refused(request, identity)
        self.sessions.sign_in(request, owner_key(email))
        log.info("dashboard sign-in", extra={"event": "login", "email": owner_key(email)})
        return RedirectResponse(next_path or Paths.of(request).home(), status_code=303)

    async def logout(self, request: Request) -> Response:
        """``POST /logout``: same-origin and CSRF checked, then this session ends for good."""
        return await self._sign_out(request, everywhere=False)

    async def logout_everywhere(self, request: Request) -> Response:
        """``POST /logout/everywhere``: checked the same way; ends all the person's sessions."""
        return await self._sign_out(request, everywhere=True)

    async def _sign_out(self, request: Request, *, everywhere: bool) -> Response:
        paths = Paths.of(request)
        viewer = self.sessions.viewer(request)
        if viewer is None or self.config.auth_disabled:
            return RedirectResponse(paths.login() if viewer is None else paths.home(), 303)
        form = await verified_form(
            request,
            public_origin=self.config.origin,
            auth_disabled=self.config.auth_disabled,
            expected_csrf=viewer.csrf_token,
        )
        if form is None:
            return self.renderer.message(
                request,
                "Request refused",
                "This sign-out did not come from this dashboard's own page. Reload and try again.",
                403,
                viewer=viewer,
            )
        if everywhere:
            await anyio.to_thread.run_sync(self.sessions.sign_out_everywhere, request, viewer.email)
            log.info("dashboard signed out everywhere", extra={"event": "logout_everywhere"})
        else:
            await anyio.to_thread.run_sync(self.sessions.sign_out, request)
        return RedirectResponse(f"{paths.login()}?bye=1", status_code=303)

    def _failed(self, request: Request, text: str) -> Response:
        paths = Paths.of(request)
        return self.renderer.message(
            request, "Sign-in failed", text, 400, action=(paths.login_start(), "Try again")
        )

    def _refused(self, request: Request, identity: Identity) -> Response:
        paths = Paths.of(request)
        if identity.email_verified:
            text = (
                f"You signed in as {identity.email}, which is not on this server's "
                "allow-list. Ask the owner to add it to IMG_ALLOWED_EMAILS, or use "
                "another Google account."
            )
        else:
            text = (
                f"The Google account {identity.email} has no verified email address, "
                "so it cannot be allowed. Verify it with Google or use another account."
            )
        return self.renderer.message(
            request,
            "Not allowed",
            text,
            403,
            action=(paths.login_start(switch=True), "Use another Google account"),
        )
