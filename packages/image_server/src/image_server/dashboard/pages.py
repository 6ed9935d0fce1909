"""HTML rendering: one autoescaping Jinja2 environment and the dashboard's URLs.

Every URL is built from the request's ``root_path`` (the mount point, ``/ui``), so
links stay right however the outer app mounts the dashboard.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

import attrs
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from image_core.domain import AspectRatio, CostEstimate

#: Scope key holding the dashboard's own mount point; nested mounts (``/static``)
#: change ``root_path``, and error pages must still link to the dashboard's root.
ROOT_KEY: Final = "image_mcp.dashboard_root"
TEMPLATES: Final = Path(__file__).with_name("templates")
STATIC: Final = Path(__file__).with_name("static")


@attrs.frozen
class Paths:
    """The dashboard's own URLs (absolute paths) below its mount point."""

    root: str

    @classmethod
    def of(cls, request: Request) -> Paths:
        """Paths for the app that is handling ``request``."""
        root = request.scope.get(ROOT_KEY, request.scope.get("root_path", ""))
        return cls(str(root).rstrip("/"))

    def home(self, period: str | None = None) -> str:
        """Costs and spend overview (of ``period``, an address value of ``periods.py``)."""
        return f"{self.root}/" + (f"?{urlencode({'period': period})}" if period else "")

    def costs_csv(self, period: str) -> str:
        """The cost export of ``period`` as CSV."""
        return f"{self.root}/costs.csv?{urlencode({'period': period})}"

    def gallery(self, email: str | None = None, page: int = 1) -> str:
        """One person's gallery (the viewer's own when ``email`` is ``None``)."""
        base = (
            f"{self.root}/gallery"
            if email is None
            else f"{self.root}/gallery/{quote(email, safe='@+')}"
        )
        return base if page == 1 else f"{base}?{urlencode({'page': page})}"

    def thumbnail(self, image_id: object) -> str:
        """Small gallery image for a generation id."""
        return f"{self.root}/thumbs/{image_id}"

    def upload_thumbnail(self, name: str) -> str:
        """Small gallery image of an uploaded photo (``upload-{uuid}.jpg``)."""
        return f"{self.root}/uploads/{name}"

    def upload_photo(self, name: str) -> str:
        """An uploaded photo as it is kept (owner and admins only)."""
        return f"{self.root}/uploads/{name}/photo"

    def upload_delete(self, name: str) -> str:
        """Where the gallery's form deletes an uploaded photo (POST)."""
        return f"{self.root}/uploads/{name}/delete"

    def prefs(self) -> str:
        """The default-model picker (GET shows, POST saves)."""
        return f"{self.root}/prefs"

    def login(self, next_path: str | None = None) -> str:
        """The sign-in page."""
        query = f"?{urlencode({'next': next_path})}" if next_path else ""
        return f"{self.root}/login{query}"

    def login_start(self, next_path: str | None = None, switch: bool = False) -> str:
        """Starts the Google redirect; ``switch`` asks Google to offer other accounts."""
        params = {"next": next_path} if next_path else {}
        if switch:
            params["switch"] = "1"
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.root}/login/google{query}"

    def logout(self) -> str:
        """Sign out (POST)."""
        return f"{self.root}/logout"

    def logout_everywhere(self) -> str:
        """Sign out of every browser (POST)."""
        return f"{self.root}/logout/everywhere"

    def static(self, name: str) -> str:
        """A file under ``static/``, versioned by its content so caches never serve a stale one."""
        return f"{self.root}/static/{name}?v={static_version(name)}"


@functools.cache
def static_version(name: str) -> str:
    """The first 12 hex digits of the SHA-256 of a static file (read once per process)."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def image_url(file_name: str) -> str:
    """The public full-size image, served by the outer app at ``/i/``."""
    return f"/i/{quote(file_name)}"


def when(moment: datetime) -> str:
    """UTC timestamp as people read it, e.g. ``2026-11-24 12:00 UTC``."""
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def ratio(value: AspectRatio | None) -> str:
    """Aspect ratio or the model's default."""
    return value.value if value is not None else "default"


def money(cost: CostEstimate) -> str:
    """``$0.067`` style."""
    return cost.display()


def make_environment() -> jinja2.Environment:
    """Autoescaping everywhere (templates are ``.html``), undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, when=when, ratio=ratio)
    env.globals.update(image_url=image_url)
    return env


@attrs.frozen
class Renderer:
    """Renders a template with what every page needs (paths, the viewer, the mode)."""

    env: jinja2.Environment = attrs.field(factory=make_environment)
    auth_disabled: bool = False
    open_on_network: bool = False
    model_notices: Callable[[], tuple[str, ...]] = attrs.field(default=lambda: ())
    """What admins must fix about the models (shown to admins only, on every page)."""

    def page(
        self,
        request: Request,
        template: str,
        context: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        """An HTML response; ``viewer`` defaults to ``None`` (signed out)."""
        values: dict[str, Any] = {
            "paths": Paths.of(request),
            "viewer": None,
            "auth_disabled": self.auth_disabled,
            "open_on_network": self.open_on_network,
            "nav": "",
        }
        values.update(context or {})
        viewer = values["viewer"]
        admin = viewer is not None and bool(getattr(viewer, "is_admin", False))
        values["model_notices"] = self.model_notices() if admin else ()
        html = self.env.get_template(template).render(values)
        return HTMLResponse(html, status_code=status_code)

    def message(
        self,
        request: Request,
        title: str,
        text: str,
        status_code: int,
        *,
        viewer: object = None,
        action: tuple[str, str] | None = None,
    ) -> HTMLResponse:
        """A plain page for errors, refusals and empty results."""
        context = {"title": title, "text": text, "viewer": viewer, "action": action}
        return self.page(request, "message.html", context, status_code)
