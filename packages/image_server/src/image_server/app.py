"""Composition root: the one place that turns ``Settings`` into a running ASGI app.

Every adapter is chosen and built here and nowhere else; tests pass replacements as
keyword overrides instead of patching modules.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypedDict, Unpack

import anyio
import attrs
from fastmcp.server.http import HostOriginGuardMiddleware, StarletteWithLifespan
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from image_core.access import AccessPolicy
from image_core.background import BackgroundWork
from image_core.errors import InvalidConfiguration, StorageError
from image_core.ports import (
    Clock,
    IdSource,
    ImageBackend,
    ImageCodec,
    ImageStore,
    MetadataRepository,
    ModelAvailability,
    PrefStore,
    PublicImageFiles,
    UploadStore,
)
from image_core.service import ImageService
from image_server.adapters.fs_images import FilesystemImageStore
from image_server.adapters.fs_metadata import FilesystemMetadataRepository
from image_server.adapters.fs_prefs import FilesystemPrefStore
from image_server.adapters.fs_uploads import FilesystemUploadStore
from image_server.adapters.gemini import GeminiImageBackend
from image_server.adapters.pillow_codec import PillowImageCodec
from image_server.adapters.placeholder import PlaceholderImageBackend
from image_server.adapters.system import RandomIds, SystemClock
from image_server.auth import (
    GoogleEndpoints,
    HttpAppSecurity,
    ImageMcpOAuthProxy,
    build_mcp_auth,
    transport_security,
)
from image_server.cimd import CIMDFetcher
from image_server.dashboard import SIGN_OUTS_DIR, DashboardConfig, FileSignOuts, build_dashboard
from image_server.edge import PublicReads, SecurityHeaders
from image_server.login_gate import LoginGate
from image_server.mcp import build_mcp_server, offered_tools
from image_server.mcp_uploads import body_limit_for, raise_body_limit
from image_server.model_lifecycle import ModelLister, ModelReport, ModelWatch
from image_server.references import IMAGE_ROUTE_PREFIX
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
from image_server.session_limits import SessionGate, SessionLimits
from image_server.settings import Settings
from image_server.tool_names import UPLOAD_TOOL_NAME

log = logging.getLogger("image_server")

OAUTH_STATE_DIR = ".oauth"
OAUTH_CULL_SECONDS = 3600
SHUTDOWN_GRACE_SECONDS = 20.0
"""How long shutdown waits for paid generations in flight; the next start settles the rest."""


def build_backend(settings: Settings, closing: contextlib.AsyncExitStack) -> ImageBackend:
    """Gemini when configured (its client closed with ``closing``), else the placeholder."""
    if settings.backend == "gemini" and settings.gemini_api_key:
        gemini = GeminiImageBackend(
            api_key=settings.gemini_api_key,
            base_url=settings.gemini_base_url,
            timeout_seconds=settings.gemini_timeout_seconds,
            retry_window_seconds=settings.tool_deadline_seconds,
        )
        closing.push_async_callback(gemini.aclose)
        return gemini
    return PlaceholderImageBackend()


def build_policy(settings: Settings) -> AccessPolicy:
    """Open in dev, else the allow-list and admin list."""
    if settings.auth_disabled:
        return AccessPolicy.open_policy()
    return AccessPolicy(allowed=settings.allowed_emails, admins=settings.admin_emails)


def build_auth(
    settings: Settings, google: GoogleEndpoints, cimd_fetcher: CIMDFetcher | None = None
) -> ImageMcpOAuthProxy | None:
    """The Google OAuth proxy for /mcp, or nothing when auth is disabled.

    ``cimd_fetcher`` is for tests (a fake client on loopback); production keeps
    fastmcp's SSRF-guarded fetcher of Client ID Metadata Documents.
    """
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
        cimd_fetcher=cimd_fetcher,
        dynamic_registration=settings.dynamic_registration,
        max_clients=settings.oauth_max_clients,
        client_idle_days=settings.oauth_client_idle_days,
    )


class ServedImageStore(ImageStore, PublicImageFiles, Protocol):
    """An image store whose PNGs ``/i/`` can also stream (``FilesystemImageStore``)."""


class AdapterOverrides(TypedDict, total=False):
    """The adapters a caller may supply instead of the production ones (``None``: build it)."""

    images: ServedImageStore | None
    metadata: MetadataRepository | None
    prefs: PrefStore | None
    backend: ImageBackend | None
    codec: ImageCodec | None
    clock: Clock | None
    ids: IdSource | None
    uploads: UploadStore | None


@attrs.frozen(kw_only=True)
class Adapters:
    """Every adapter the root built or was given, by name."""

    images: ServedImageStore
    metadata: MetadataRepository
    prefs: PrefStore
    backend: ImageBackend
    codec: ImageCodec
    clock: Clock
    ids: IdSource
    uploads: UploadStore


def build_adapters(
    settings: Settings,
    closing: contextlib.AsyncExitStack,
    **given: Unpack[AdapterOverrides],
) -> Adapters:
    """The given adapters, and the production one for each role not given.

    What is built here and holds resources is registered on ``closing``; what the
    caller passed in stays the caller's to close.
    """
    make_data_folder(settings)
    return Adapters(
        images=given.get("images") or FilesystemImageStore(settings.root),
        metadata=given.get("metadata") or build_metadata(settings, closing),
        prefs=given.get("prefs") or FilesystemPrefStore(settings.root),
        backend=given.get("backend") or build_backend(settings, closing),
        codec=given.get("codec") or PillowImageCodec(max_preview_bytes=settings.preview_max_bytes),
        clock=given.get("clock") or SystemClock(),
        ids=given.get("ids") or RandomIds(),
        uploads=given.get("uploads") or FilesystemUploadStore(settings.root),
    )


def make_data_folder(settings: Settings) -> None:
    """Create ``IMG_ROOT`` (and its parents) or fail with the reason."""
    try:
        settings.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"Cannot create the data folder IMG_ROOT ({exc.strerror}).") from None


def build_metadata(
    settings: Settings, closing: contextlib.AsyncExitStack
) -> FilesystemMetadataRepository:
    """The records under ``IMG_ROOT``; its index connection is closed with ``closing``."""
    metadata = FilesystemMetadataRepository(settings.root)
    closing.callback(metadata.close)
    return metadata


def service_for(
    settings: Settings,
    adapters: Adapters,
    background: BackgroundWork | None = None,
    availability: ModelAvailability | None = None,
) -> ImageService:
    """The core service over ``adapters``, with the policy and catalog ``settings`` name."""
    return ImageService(
        availability=availability,
        background=background or BackgroundWork(),
        catalog=settings.catalog,
        policy=build_policy(settings),
        images=adapters.images,
        metadata=adapters.metadata,
        prefs=adapters.prefs,
        backend=adapters.backend,
        codec=adapters.codec,
        clock=adapters.clock,
        ids=adapters.ids,
        public_files=adapters.images,
        preview_max_side=settings.preview_max_side,
        budgets=settings.budgets,
        limits=settings.call_limits,
        uploads=adapters.uploads if settings.uploads_per_user else None,
        upload_max_bytes=settings.upload_max_bytes,
        uploads_per_person=settings.uploads_per_user,
    )


def build_service(
    settings: Settings,
    *,
    closing: contextlib.AsyncExitStack | None = None,
    background: BackgroundWork | None = None,
    **given: Unpack[AdapterOverrides],
) -> ImageService:
    """The core service wired to the data folder and the chosen backend (scripts, benches).

    Pass ``closing`` and close it when done to release what was built (the index
    connection, the Gemini client); ``build_app`` does that at shutdown. Paid work runs
    in ``background`` (a fresh one when not given); whoever owns it drains it.
    """
    stack = closing if closing is not None else contextlib.AsyncExitStack()
    return service_for(settings, build_adapters(settings, stack, **given), background)


def dashboard_config(settings: Settings, google: GoogleEndpoints) -> DashboardConfig:
    """What the dashboard needs from the settings: its URL, login and cookie secret."""
    return DashboardConfig(
        public_url=settings.public_url,
        auth_disabled=settings.auth_disabled,
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret,
        session_secret=settings.jwt_signing_key,
        openid_configuration_url=google.openid_configuration_url,
        issuer=google.issuer,
        secure_cookies=settings.secure_cookies,
        open_on_network=settings.open_without_login,
    )


def build_app(
    settings: Settings,
    *,
    google: GoogleEndpoints | None = None,
    session_limits: SessionLimits | None = None,
    cimd_fetcher: CIMDFetcher | None = None,
    **given: Unpack[AdapterOverrides],
) -> Starlette:
    """Build the whole server: /mcp (+ OAuth routes), /health, /i/{name} and /ui.

    Every adapter is a named value, replaceable by keyword (``images=``, ``metadata=``,
    ``prefs=``, ``backend=``, ``codec=``, ``clock=``, ``ids=``, ``uploads=``); what this builds is
    closed by the app's lifespan at shutdown. ``session_limits`` replaces the MCP
    session budgets (tests use short idle times).
    """
    google = google or GoogleEndpoints.google()
    closing = contextlib.AsyncExitStack()
    background = BackgroundWork()
    adapters = build_adapters(settings, closing, **given)
    watch = model_watch(settings, adapters.backend)
    service = service_for(settings, adapters, background, availability=watch)
    auth = build_auth(settings, google, cimd_fetcher)
    security = transport_security(settings.public_url, dev=settings.dev or settings.auth_disabled)
    mcp_app = build_mcp_app(settings, service, auth, security, session_limits or SessionLimits())
    dashboard = build_dashboard(
        service,
        dashboard_config(settings, google),
        FileSignOuts(settings.root / SIGN_OUTS_DIR),
        model_notices=watch.notices,
    )
    return Starlette(
        routes=public_routes(service, dashboard, mcp_app),
        middleware=edge_middleware(security),
        lifespan=lifespan_for(mcp_app, auth, closing, Running(service, background), watch),
    )


def model_watch(settings: Settings, backend: ImageBackend) -> ModelWatch:
    """The models-list check: it asks the backend when the backend can list its models."""
    lister = backend if isinstance(backend, ModelLister) else None
    return ModelWatch(settings.catalog, lister)


async def check_models_once(settings: Settings) -> ModelReport:
    """One models-list check with the configured backend (``image-mcp check --online``)."""
    async with contextlib.AsyncExitStack() as closing:
        return await model_watch(settings, build_backend(settings, closing)).check()


def build_mcp_app(
    settings: Settings,
    service: ImageService,
    auth: ImageMcpOAuthProxy | None,
    security: HttpAppSecurity,
    limits: SessionLimits,
) -> StarletteWithLifespan:
    """The MCP server's ASGI app at ``/mcp``, answering unknown paths with our 404.

    After authentication, ``SessionGate`` holds each identity to its session budget
    (``session_limits.py``); the SDK's own idle timeout matches the longest budget.
    """
    server = build_mcp_server(
        service,
        public_url=settings.public_url,
        auth=auth,
        icon_url=settings.public_url + LOGO_PATH,
        website_url=settings.public_url + DASHBOARD_PATH,
        tool_deadline_seconds=settings.tool_deadline_seconds,
        tools=settings.tools,
    )
    takes_uploads = UPLOAD_TOOL_NAME in offered_tools(service, settings.tools)
    gate = Middleware(
        SessionGate,
        service=service,
        mcp_path=MCP_PATH,
        limits=limits,
        refuse_strangers=settings.login_requires_access,
        # The raised cap is for allowed people's photos; anyone else keeps the SDK's.
        stranger_body_max=DEFAULT_MAX_REQUEST_BODY_SIZE if takes_uploads else None,
    )
    middleware = [gate]
    if auth is not None and settings.login_requires_access:
        middleware.append(Middleware(LoginGate, auth=auth, service=service))
    mcp_app = server.http_app(
        path=MCP_PATH,
        middleware=middleware,
        session_idle_timeout=limits.allowed_idle_seconds,
        **security,
    )
    if takes_uploads:
        # A photo at the upload cap fits in one request as base64; larger bodies get 413.
        raise_body_limit(mcp_app, body_limit_for(settings.upload_max_bytes))
    # The MCP app is mounted at the root, so its router answers every unknown path.
    mcp_app.add_exception_handler(404, not_found)
    return mcp_app


def public_routes(service: ImageService, dashboard: ASGIApp, mcp_app: ASGIApp) -> list[BaseRoute]:
    """The outer routing table: our own routes first, the MCP app last (at the root)."""
    return [
        Route("/health", health, methods=["GET", "HEAD"]),
        image_route(service),
        redirect(DASHBOARD_MOUNT, DASHBOARD_PATH),
        redirect("/favicon.ico", LOGO_PATH),
        Mount(DASHBOARD_MOUNT, app=dashboard),
        Mount("", app=mcp_app),
    ]


def edge_middleware(security: HttpAppSecurity) -> list[Middleware]:
    """Default security headers, then the Host/Origin guard, around every route (a
    public image's read is let through from any origin, ``PublicReads``)."""
    return [
        Middleware(SecurityHeaders),
        Middleware(PublicReads, prefix=IMAGE_ROUTE_PREFIX),
        Middleware(
            HostOriginGuardMiddleware,
            allowed_hosts=security["allowed_hosts"],
            allowed_origins=security["allowed_origins"],
            mode="strict",
        ),
    ]


@attrs.frozen
class Running:
    """The service and the paid work it runs: settled at start-up, drained at shutdown."""

    service: ImageService
    background: BackgroundWork
    grace_seconds: float = SHUTDOWN_GRACE_SECONDS

    async def start(self) -> None:
        """Settle what an earlier run left rendering, and say so in one line."""
        report = await self.service.reconcile()
        log.info(
            "start-up reconciled %d unfinished generations: %d done, %d failed",
            report.done + report.failed,
            report.done,
            report.failed,
            extra={"event": "reconcile", "done": report.done, "failed": report.failed},
        )

    async def stop(self) -> None:
        """Give the generations in flight a bounded time to be stored."""
        if not len(self.background):
            return
        log.info(
            "waiting up to %.0f s for %d generations in flight",
            self.grace_seconds,
            len(self.background),
            extra={"event": "shutdown"},
        )
        cancelled = await self.background.drain(self.grace_seconds)
        if cancelled:
            log.warning(
                "%d generations were still rendering at shutdown; the next start settles them",
                cancelled,
                extra={"event": "shutdown"},
            )


def lifespan_for(
    mcp_app: StarletteWithLifespan,
    auth: ImageMcpOAuthProxy | None,
    closing: contextlib.AsyncExitStack,
    running: Running | None = None,
    watch: ModelWatch | None = None,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """Settle, run the MCP app's lifespan, the OAuth clean-up and the daily models check
    (which never holds up start-up); drain, close what was built."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with closing:
            if running is not None:
                await running.start()
            try:
                async with mcp_app.lifespan(app), anyio.create_task_group() as tasks:
                    if auth is not None:
                        tasks.start_soon(_cull_periodically, auth)
                    if watch is not None and watch.lister is not None:
                        tasks.start_soon(watch.run)
                    yield
                    tasks.cancel_scope.cancel()
            finally:
                if running is not None:
                    await running.stop()

    return lifespan


async def _cull_periodically(auth: ImageMcpOAuthProxy) -> None:
    """Expired OAuth transactions and codes are only ignored on read; delete them hourly."""
    while True:
        try:
            await auth.cull_expired_state()
        except Exception:
            log.exception("could not clean expired OAuth state", extra={"event": "oauth_cull"})
        await anyio.sleep(OAUTH_CULL_SECONDS)
