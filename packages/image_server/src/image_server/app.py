"""Composition root: the one place that turns ``Settings`` into a running ASGI app.

Every adapter is chosen and built here and nowhere else; tests pass replacements as
keyword overrides instead of patching modules.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from fastmcp.server.auth import AuthProvider
from fastmcp.server.http import HostOriginGuardMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from image_core.access import AccessPolicy
from image_core.errors import InvalidConfiguration, StorageError
from image_core.ports import Clock, IdSource, ImageBackend, ImageCodec
from image_core.service import ImageService
from image_server.adapters.fs_images import FilesystemImageStore
from image_server.adapters.fs_metadata import FilesystemMetadataRepository
from image_server.adapters.fs_prefs import FilesystemPrefStore
from image_server.adapters.gemini import GeminiImageBackend
from image_server.adapters.pillow_codec import PillowImageCodec
from image_server.adapters.placeholder import PlaceholderImageBackend
from image_server.adapters.system import RandomIds, SystemClock
from image_server.auth import (
    GoogleEndpoints,
    ImageMcpOAuthProxy,
    build_mcp_auth,
    transport_security,
)
from image_server.dashboard import DashboardConfig, build_dashboard
from image_server.mcp import build_mcp_server
from image_server.routes import (
    DASHBOARD_MOUNT,
    DASHBOARD_PATH,
    LOGO_PATH,
    MCP_PATH,
    health,
    image_route,
    not_found,
    redirect,
)
from image_server.settings import Settings

log = logging.getLogger("image_server")

OAUTH_STATE_DIR = ".oauth"
OAUTH_CULL_SECONDS = 3600


def build_backend(settings: Settings) -> ImageBackend:
    """Gemini when configured, else the offline placeholder (dev or explicit choice)."""
    if settings.backend == "gemini" and settings.gemini_api_key:
        return GeminiImageBackend(
            api_key=settings.gemini_api_key,
            base_url=settings.gemini_base_url,
            timeout_seconds=settings.gemini_timeout_seconds,
        )
    return PlaceholderImageBackend()


def build_policy(settings: Settings) -> AccessPolicy:
    """Open in dev, else the allow-list and admin list."""
    if settings.auth_disabled:
        return AccessPolicy.open_policy()
    return AccessPolicy(allowed=settings.allowed_emails, admins=settings.admin_emails)


def build_auth(settings: Settings, google: GoogleEndpoints) -> AuthProvider | None:
    """The Google OAuth proxy for /mcp, or nothing when auth is disabled."""
    if settings.auth_disabled:
        return None
    if not settings.google_client_id or not settings.google_client_secret:
        raise InvalidConfiguration("Google login needs GOOGLE_OAUTH_CLIENT_ID and _SECRET.")
    return build_mcp_auth(
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret,
        base_url=settings.public_url,
        jwt_signing_key=settings.jwt_signing_key,
        storage_dir=settings.root / OAUTH_STATE_DIR,
        allowed_client_redirect_uris=list(settings.allowed_redirect_uris),
        endpoints=google,
    )


class SecurityHeaders:
    """Adds headers every response should carry unless it set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap ``send`` to add the defaults to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                present = {name.lower() for name, _ in headers}
                for name, value in _DEFAULT_HEADERS:
                    if name not in present:
                        headers.append((name, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)  # type: ignore[arg-type]


_DEFAULT_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def build_service(
    settings: Settings,
    *,
    backend: ImageBackend | None = None,
    codec: ImageCodec | None = None,
    clock: Clock | None = None,
    ids: IdSource | None = None,
) -> ImageService:
    """The core service wired to the data folder and the chosen backend."""
    try:
        settings.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"Cannot create the data folder IMG_ROOT ({exc.strerror}).") from None
    return ImageService(
        catalog=settings.catalog,
        policy=build_policy(settings),
        images=FilesystemImageStore(settings.root),
        metadata=FilesystemMetadataRepository(settings.root),
        prefs=FilesystemPrefStore(settings.root),
        backend=backend or build_backend(settings),
        codec=codec or PillowImageCodec(),
        clock=clock or SystemClock(),
        ids=ids or RandomIds(),
    )


def build_app(
    settings: Settings,
    *,
    backend: ImageBackend | None = None,
    codec: ImageCodec | None = None,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    google: GoogleEndpoints | None = None,
) -> Starlette:
    """Build the whole server: /mcp (+ OAuth routes), /health, /i/{name} and /ui."""
    google = google or GoogleEndpoints.google()
    service = build_service(settings, backend=backend, codec=codec, clock=clock, ids=ids)
    images = service.images
    if not isinstance(images, FilesystemImageStore):
        raise TypeError("the /i/ route serves files from a FilesystemImageStore")
    server = build_mcp_server(
        service,
        public_url=settings.public_url,
        auth=build_auth(settings, google),
        icon_url=settings.public_url + LOGO_PATH,
        website_url=settings.public_url + DASHBOARD_PATH,
    )
    security = transport_security(settings.public_url, dev=settings.dev or settings.auth_disabled)
    mcp_app = server.http_app(path=MCP_PATH, **security)
    # The MCP app is mounted at the root, so its router answers every unknown path.
    mcp_app.add_exception_handler(404, not_found)
    dashboard = build_dashboard(
        service,
        DashboardConfig(
            public_url=settings.public_url,
            auth_disabled=settings.auth_disabled,
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret,
            session_secret=settings.jwt_signing_key,
            openid_configuration_url=google.openid_configuration_url,
            issuer=google.issuer,
            secure_cookies=settings.secure_cookies,
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp_app.lifespan(app), anyio.create_task_group() as tasks:
            if isinstance(server.auth, ImageMcpOAuthProxy):
                tasks.start_soon(_cull_periodically, server.auth)
            yield
            tasks.cancel_scope.cancel()
        for resource in (service.backend, service.metadata):
            await _close(resource)

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET", "HEAD"]),
            image_route(images),
            redirect(DASHBOARD_MOUNT, DASHBOARD_PATH),
            redirect("/favicon.ico", LOGO_PATH),
            Mount(DASHBOARD_MOUNT, app=dashboard),
            Mount("", app=mcp_app),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                HostOriginGuardMiddleware,
                allowed_hosts=security["allowed_hosts"],
                allowed_origins=security["allowed_origins"],
                mode="strict",
            ),
        ],
        lifespan=lifespan,
    )


async def _cull_periodically(auth: ImageMcpOAuthProxy) -> None:
    """Expired OAuth transactions and codes are only ignored on read; delete them hourly."""
    while True:
        try:
            await auth.cull_expired_state()
        except Exception:
            log.exception("could not clean expired OAuth state", extra={"event": "oauth_cull"})
        await anyio.sleep(OAUTH_CULL_SECONDS)


async def _close(resource: object) -> None:
    """Release what an adapter holds (HTTP clients, database connections), sync or async."""
    aclose = getattr(resource, "aclose", None)
    if aclose is not None:
        await aclose()
        return
    close = getattr(resource, "close", None)
    if close is not None:
        close()
