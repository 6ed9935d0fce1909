"""``build_dashboard``: the /ui Starlette app, wired from the core service and config."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ExceptionHandler

from image_core.errors import ImageMcpError
from image_core.service import ImageService
from image_server.dashboard.config import CALLBACK_PATH, DashboardConfig
from image_server.dashboard.login import GoogleLogin
from image_server.dashboard.pages import STATIC, Paths, Renderer
from image_server.dashboard.security import (
    SECURITY_HEADERS,
    NoteMountPoint,
    add_security_headers,
)
from image_server.dashboard.session import Sessions
from image_server.dashboard.signouts import MemorySignOuts, SignOuts
from image_server.dashboard.views import Views
from image_server.edge import SecurityHeaders
from image_server.outcomes import NOT_FOUND, outcome_of

log = logging.getLogger("image_server.dashboard")

_STATUS_TITLES = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "You may not do this."),
    404: ("Not found", "There is nothing here, or it is not yours to see."),
    405: ("Not found", "There is nothing here, or it is not yours to see."),
}


@attrs.frozen
class ErrorPages:
    """The dashboard's answers to HTTP errors, core errors and crashes, as its own pages."""

    renderer: Renderer
    sessions: Sessions

    def page_for_status(self, request: Request, status: int) -> Response:
        """The product's page for ``status`` (405 shows as the 404), with the viewer's nav."""
        title, text = _STATUS_TITLES.get(status, ("Something went wrong", "Please try again."))
        status = 404 if status == 405 else status
        action = (Paths.of(request).home(), "Back to the dashboard")
        viewer = self.sessions.viewer(request) if "session" in request.scope else None
        return self.renderer.message(request, title, text, status, viewer=viewer, action=action)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's ``HTTPException`` (unknown path, wrong method)."""
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        return self.page_for_status(request, code)

    async def core_error(self, request: Request, exc: Exception) -> Response:
        """A core error a view let through, at the status ``outcomes.py`` gives it."""
        if not isinstance(exc, ImageMcpError):  # registered for ImageMcpError only
            return self.renderer.message(request, "Something went wrong", "Please try again.", 503)
        status = outcome_of(exc).http_status
        if status == NOT_FOUND:  # the plain 404 page: nothing about what was refused
            return self.page_for_status(request, status)
        return self.renderer.message(request, "Something went wrong", exc.message, status)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        """A crash: logged, and a page that says nothing of it (headers added by hand,
        since this answer comes from outside the middleware)."""
        log.error("dashboard error", exc_info=exc)
        response = self.renderer.message(
            request,
            "Something went wrong",
            "The dashboard hit an unexpected error. Please try again in a moment.",
            500,
            action=(Paths.of(request).home(), "Back to the dashboard"),
        )
        add_security_headers(response.headers)
        return response

    def handlers(self) -> dict[Any, ExceptionHandler]:
        """For ``Starlette(exception_handlers=...)``."""
        return {
            HTTPException: self.http_error,
            ImageMcpError: self.core_error,
            Exception: self.server_error,
        }


def dashboard_routes(views: Views, login: GoogleLogin) -> list[BaseRoute]:
    """Every page under ``/ui``, by name (templates build links with these names)."""
    return [
        Route("/", views.overview, name="home"),
        Route("/costs.csv", views.costs_csv, name="costs_csv"),
        Route("/gallery", views.my_gallery, name="my_gallery"),
        Route("/gallery/{email}", views.gallery, name="gallery"),
        Route("/thumbs/{name}", views.thumbnail, name="thumbnail"),
        Route("/uploads/{name}", views.upload_thumbnail, name="upload_thumbnail"),
        Route("/uploads/{name}/photo", views.upload_photo, name="upload_photo"),
        Route(
            "/uploads/{name}/delete", views.delete_upload, methods=["POST"], name="delete_upload"
        ),
        Route("/prefs", views.prefs, methods=["GET"], name="prefs"),
        Route("/prefs", views.save_prefs, methods=["POST"], name="save_prefs"),
        Route("/login", login.login_page, name="login"),
        Route("/login/google", login.start, name="login_start"),
        Route(CALLBACK_PATH, login.callback, name="auth_callback"),
        Route("/logout", login.logout, methods=["POST"], name="logout"),
        Route(
            "/logout/everywhere",
            login.logout_everywhere,
            methods=["POST"],
            name="logout_everywhere",
        ),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def dashboard_middleware(config: DashboardConfig) -> list[Middleware]:
    """Mount point, the dashboard's security headers, then the signed session cookie."""
    return [
        Middleware(NoteMountPoint),
        Middleware(SecurityHeaders, headers=SECURITY_HEADERS, no_store_html=True),
        Middleware(
            SessionMiddleware,
            secret_key=config.session_signing_key(),
            session_cookie=config.cookie_name,
            max_age=config.session_max_age_seconds,
            path="/",
            same_site="lax",
            https_only=config.secure_cookies,
        ),
    ]


def _no_notices() -> tuple[str, ...]:
    return ()


def build_dashboard(
    service: ImageService,
    config: DashboardConfig,
    sign_outs: SignOuts | None = None,
    *,
    model_notices: Callable[[], tuple[str, ...]] | None = None,
) -> Starlette:
    """The dashboard app, to be mounted at ``/ui`` by the composition root.

    ``sign_outs`` remembers server-side sign-outs (``FileSignOuts`` under the data
    folder in production); without it they last as long as this process.
    ``model_notices`` says what admins must fix about the models (a retired id).
    """
    sessions = Sessions(
        service=service,
        auth_disabled=config.auth_disabled,
        max_age_seconds=config.session_max_age_seconds,
        sign_outs=sign_outs or MemorySignOuts(),
    )
    renderer = Renderer(
        auth_disabled=config.auth_disabled,
        open_on_network=config.open_on_network,
        model_notices=model_notices or _no_notices,
    )
    views = Views(service=service, config=config, sessions=sessions, renderer=renderer)
    login = GoogleLogin(config=config, service=service, sessions=sessions, renderer=renderer)
    return Starlette(
        routes=dashboard_routes(views, login),
        middleware=dashboard_middleware(config),
        exception_handlers=ErrorPages(renderer, sessions).handlers(),
    )
