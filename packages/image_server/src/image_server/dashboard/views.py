"""The dashboard pages: costs and spend, galleries, thumbnails, the default-model picker.

Views only ask the core service, always with the viewer's identity, so what a person
may see is decided by ``AccessPolicy`` and nothing here can widen it. The service's use
cases move their own blocking work (file reads, thumbnail encoding) off the event loop.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from image_core import names
from image_core.domain import EncodedImage, Identity, ModelSpec
from image_core.errors import ImageMcpError
from image_core.service import ImageService
from image_server.dashboard.chart import build_spend_chart
from image_server.dashboard.config import DashboardConfig
from image_server.dashboard.pages import Paths, Renderer
from image_server.dashboard.periods import choices, csv_lines, parse_period
from image_server.dashboard.security import verified_form
from image_server.dashboard.session import Sessions, Viewer
from image_server.outcomes import outcome_of

PAGE_SIZE: Final = 24
MAX_PAGE: Final = 100_000
CHART_DAYS: Final = 30
MAX_EMAIL_CHARS: Final = 320
THUMBNAIL_CACHE: Final = "private, max-age=86400"


def parse_page(raw: str | None) -> int | None:
    """1-based page number from the query string; ``None`` when it is not one."""
    if raw is None:
        return 1
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        return None
    page = int(raw)
    return page if 1 <= page <= MAX_PAGE else None


def price_list(spec: ModelSpec) -> list[tuple[str, str]]:
    """``[("1K", "$0.067"), ...]`` in size order."""
    sizes = sorted(spec.prices, key=lambda s: s.long_side)
    return [(size.value, spec.price(size).display()) for size in sizes]


def _private_image(request: Request, image: EncodedImage) -> Response:
    """An image only this viewer may see: cached by their browser alone, by its hash."""
    etag = '"' + hashlib.sha256(image.data).hexdigest()[:32] + '"'
    headers = {"cache-control": THUMBNAIL_CACHE, "etag": etag, "vary": "Cookie"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(image.data, media_type=image.mime_type, headers=headers)


@attrs.frozen
class Views:
    """Endpoints for the pages behind the login."""

    service: ImageService
    config: DashboardConfig
    sessions: Sessions
    renderer: Renderer

    def _to_login(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(Paths.of(request).login(target), status_code=303)

    def not_found(self, request: Request, viewer: Viewer | None) -> Response:
        """The product's 404 page."""
        return self.renderer.message(
            request,
            "Not found",
            "There is nothing here, or it is not yours to see.",
            404,
            viewer=viewer,
            action=(Paths.of(request).home(), "Back to the dashboard"),
        )

    async def overview(self, request: Request) -> Response:
        """``GET /?period=``: spend of a period per person (everyone for admins) against
        their budgets, the server's total against its own, and spend over 30 days."""
        viewer = self.sessions.viewer(request)
        if viewer is None:
            return self._to_login(request)
        today = self.service.today()
        choice = parse_period(request.query_params.get("period"), today)
        if choice is None:
            return self.not_found(request, viewer)
        spend = await self.service.spend_overview(viewer.identity, choice.period)
        daily = await self.service.daily_spend_for(viewer.identity, CHART_DAYS)
        chart = build_spend_chart(daily, today, CHART_DAYS)
        default = await self.service.default_model_for(viewer.email)
        context = {
            "title": "Costs",
            "nav": "home",
            "viewer": viewer,
            "spend": spend,
            "choice": choice,
            "choices": choices(today),
            "this_month": f"{today:%Y-%m}",
            "rebuilding": await self.service.index_rebuilding(),
            "budgeted": any(r.budget is not None for r in spend.rows),
            "chart": chart,
            "default_model": default,
        }
        return self.renderer.page(request, "overview.html", context)

    async def costs_csv(self, request: Request) -> Response:
        """``GET /costs.csv?period=``: the period's settled records the viewer may see.

        Streamed as it is read; a download (``attachment``), never cached. While the
        index is being rebuilt the export would be incomplete, so it is refused (503).
        """
        viewer = self.sessions.viewer(request)
        if viewer is None:
            return self._to_login(request)
        choice = parse_period(request.query_params.get("period"), self.service.today())
        if choice is None:
            return self.not_found(request, viewer)
        progress = await self.service.index_rebuilding()
        if progress is not None:
            page = self.renderer.message(
                request,
                "Index rebuilding",
                f"The records' index is being rebuilt ({progress.read:,} of "
                f"{progress.total:,} records read), so an export now would be incomplete. "
                "Try again in a few seconds.",
                503,
                viewer=viewer,
                action=(Paths.of(request).home(choice.key), "Back to the costs"),
            )
            page.headers["retry-after"] = "5"
            return page
        rows = self.service.cost_rows_for(viewer.identity, choice.period)
        name = f"image-mcp-costs-{choice.file_part}.csv"
        headers = {
            "content-disposition": f'attachment; filename="{name}"',
            "cache-control": "private, no-store",
            "vary": "Cookie",
        }
        return StreamingResponse(
            csv_lines(rows), media_type="text/csv; charset=utf-8", headers=headers
        )

    async def my_gallery(self, request: Request) -> Response:
        """``GET /gallery``: the viewer's own gallery."""
        viewer = self.sessions.viewer(request)
        if viewer is None:
            return self._to_login(request)
        return RedirectResponse(Paths.of(request).gallery(viewer.email), status_code=303)

    async def gallery(self, request: Request) -> Response:
        """``GET /gallery/{email}?page=N``: one person's images, newest first."""
        viewer = self.sessions.viewer(request)
        if viewer is None:
            return self._to_login(request)
        owner = str(request.path_params["email"])
        page_number = parse_page(request.query_params.get("page"))
        if page_number is None or len(owner) > MAX_EMAIL_CHARS:
            return self.not_found(request, viewer)
        offset = (page_number - 1) * PAGE_SIZE
        # A refusal (NotAllowed) reaches the app's core-error handler, which answers with
        # the status outcomes.py gives it: the plain 404 page, so nobody learns the owner
        # exists. The page number was checked above, so paging cannot be refused.
        page = await self.service.gallery(viewer.identity, owner, offset, PAGE_SIZE)
        if page_number > 1 and not page.items:
            return self.not_found(request, viewer)
        others = await self.service.visible_users(viewer.identity) if viewer.is_admin else []
        uploads = await self.service.uploads_of(viewer.identity, owner) if page_number == 1 else []
        context = {
            "title": f"Images by {owner}",
            "nav": "gallery" if owner.lower() == viewer.email.lower() else "",
            "viewer": viewer,
            "owner": owner,
            "own": owner.lower() == viewer.email.lower(),
            "page": page,
            "page_number": page_number,
            "page_count": max(1, math.ceil(page.total / PAGE_SIZE)),
            "users": others,
            "uploads": uploads,
        }
        return self.renderer.page(request, "gallery.html", context)

    async def thumbnail(self, request: Request) -> Response:
        """``GET /thumbs/{name}``: a small WebP/JPEG, only for images the viewer may see."""
        viewer = self.sessions.viewer(request)
        name = str(request.path_params["name"])
        if viewer is None or not names.is_id_text(name):
            return self.not_found(request, viewer)
        try:
            image = await self.service.thumbnail(viewer.identity, uuid.UUID(name))
        except ImageMcpError:  # an <img> source: every failure is the 404 (see outcomes.py)
            image = None
        if image is None:
            return self.not_found(request, viewer)
        return _private_image(request, image)

    async def upload_thumbnail(self, request: Request) -> Response:
        """``GET /uploads/{name}``: an uploaded photo's thumbnail, for its owner or admins."""
        return await self._uploaded(request, self.service.upload_thumbnail)

    async def upload_photo(self, request: Request) -> Response:
        """``GET /uploads/{name}/photo``: the uploaded photo as kept, for its owner or admins."""
        return await self._uploaded(request, self.service.uploaded_image)

    async def delete_upload(self, request: Request) -> Response:
        """``POST /uploads/{name}/delete``: same-origin and CSRF checked, owner or admin only."""
        viewer = self.sessions.viewer(request)
        if viewer is None:
            return self._to_login(request)
        form = await self._own_form(
            request,
            viewer,
            "This deletion did not come from this dashboard's own page, so nothing was "
            "deleted. Reload the gallery and try again.",
            (Paths.of(request).gallery(), "Back to your gallery"),
        )
        if isinstance(form, Response):
            return form
        deleted = await self.service.delete_upload(
            viewer.identity, str(request.path_params["name"])
        )
        if deleted is None:
            return self.not_found(request, viewer)
        return RedirectResponse(Paths.of(request).gallery(deleted.email), status_code=303)

    async def _own_form(
        self, request: Request, viewer: Viewer, refusal: str, back: tuple[str, str]
    ) -> dict[str, str] | Response:
        """The posted form if it came from this dashboard's own page (same origin, the
        session's CSRF token); else the 403 page saying ``refusal``, having changed nothing."""
        form = await verified_form(
            request,
            public_origin=self.config.origin,
            auth_disabled=self.config.auth_disabled,
            expected_csrf=viewer.csrf_token,
        )
        if form is not None:
            return form
        return self.renderer.message(
            request, "Request refused", refusal, 403, viewer=viewer, action=back
        )

    async def _uploaded(
        self,
        request: Request,
        read: Callable[[Identity | None, str], Awaitable[EncodedImage | None]],
    ) -> Response:
        """Anyone else, signed in or not, gets the plain 404: nobody learns it exists."""
        viewer = self.sessions.viewer(request)
        name = str(request.path_params["name"])
        image = None
        if viewer is not None:
            try:
                image = await read(viewer.identity, name)
            except ImageMcpError:  # an <img> source: every failure is the 404
                image = None
        if image is None:
            return self.not_found(request, viewer)
        return _private_image(request, image)

    async def prefs(self, request: Request) -> Response:
        """``GET /prefs``: the default-model picker."""
        viewer = self.sessions.viewer(request)
        if viewer is None:
            return self._to_login(request)
        current = await self.service.default_model_for(viewer.email)
        context = {
            "title": "My default model",
            "nav": "prefs",
            "viewer": viewer,
            "current": current,
            "models": [(spec, price_list(spec)) for spec in self.service.offered_models()],
            "saved": request.query_params.get("saved") == "1",
        }
        return self.renderer.page(request, "prefs.html", context)

    async def save_prefs(self, request: Request) -> Response:
        """``POST /prefs``: the only write; same-origin and CSRF checked first."""
        viewer = self.sessions.viewer(request)
        if viewer is None:
            return self._to_login(request)
        form = await self._own_form(
            request,
            viewer,
            "This change did not come from this dashboard's own page, so nothing was "
            "saved. Reload the page and try again.",
            (Paths.of(request).prefs(), "Back to the model picker"),
        )
        if isinstance(form, Response):
            return form
        try:
            await self.service.set_default_model(viewer.identity, form.get("model", ""))
        except ImageMcpError as exc:
            return self.renderer.message(
                request,
                "Not saved",
                exc.message,
                outcome_of(exc).http_status,
                viewer=viewer,
                action=(Paths.of(request).prefs(), "Back to the model picker"),
            )
        return RedirectResponse(f"{Paths.of(request).prefs()}?saved=1", status_code=303)
