"""The image viewer, an MCP App: one ``ui://`` HTML resource the tools' results link to.

Hosts that render MCP Apps (the ``io.modelcontextprotocol/ui`` extension) show a
result of ``generate_image`` or ``get_image`` in the viewer: the full image, its facts,
and actions that call the tools back through the host. Every other client sees the
tools exactly as before: the replies are the same, and the one addition to each tool
is ``_meta.ui`` naming the resource. The page is a single self-contained file built
from ``packages/image_server/viewer`` and shipped as package data; it loads nothing
but the images, from this server's own origin (its declared ``resourceDomains``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any, Final
from urllib.parse import urlsplit

from fastmcp import FastMCP
from fastmcp.apps.config import UI_MIME_TYPE
from fastmcp.resources.types import TextResource
from fastmcp.tools.function_tool import FunctionTool

from image_server.tool_names import GET_TOOL_NAME, TOOL_NAME

VIEWER_URI: Final = "ui://image-mcp/viewer.html"
VIEWER_FILE: Final = "viewer.html"
LEGACY_URI_KEY: Final = "ui/resourceUri"
"""The key hosts read before ``_meta.ui.resourceUri``; the SDK's own server helper
writes both, and so does this."""
SHOWN_BY_VIEWER: Final = (TOOL_NAME, GET_TOOL_NAME)
"""The tools whose results the viewer shows."""


def offers_app(offered: Iterable[str]) -> bool:
    """Whether the viewer is offered with these tools.

    It polls ``get_image`` while an image renders, so it comes with that tool;
    ``IMG_TOOLS=generate_image`` stays the original one-tool contract without it.
    """
    return GET_TOOL_NAME in set(offered)


def viewer_html() -> str:
    """The built viewer page, read from the package data."""
    return (resources.files("image_server") / "app_ui" / VIEWER_FILE).read_text("utf-8")


_CONFIG: Final = re.compile(
    r'(<script type="application/json" id="viewer-config">)[^<]*(</script>)'
)


def viewer_page(upload_max_bytes: int, built: str | None = None) -> str:
    """The page as this server serves it: its own upload cap written in (0: no uploads).

    The built page carries a default in a JSON block; it is replaced, never the script,
    so the page stays the one the locked sources build.
    """
    config = json.dumps({"uploadMaxBytes": upload_max_bytes}, separators=(",", ":"))
    html = viewer_html() if built is None else built
    page, found = _CONFIG.subn(lambda m: f"{m.group(1)}{config}{m.group(2)}", html)
    if found != 1:
        raise RuntimeError(f"{VIEWER_FILE} has {found} viewer-config blocks; rebuild the viewer")
    return page


def origin_of(public_url: str) -> str:
    """``https://images.example.org`` of ``https://images.example.org/base``."""
    parts = urlsplit(public_url)
    return f"{parts.scheme}://{parts.netloc}"


def resource_ui(public_url: str) -> dict[str, Any]:
    """The resource's ``_meta.ui``: the images come from this origin; nothing else loads."""
    return {"csp": {"resourceDomains": [origin_of(public_url)]}, "prefersBorder": True}


def tool_ui_meta(meta: dict[str, Any] | None) -> dict[str, Any]:
    """A tool's ``_meta`` with the viewer named, in the current and the older key."""
    ui = {**(meta or {}).get("ui", {}), "resourceUri": VIEWER_URI}
    return {**(meta or {}), "ui": ui, LEGACY_URI_KEY: VIEWER_URI}


def add_viewer_app(
    server: FastMCP, tools: Sequence[FunctionTool], public_url: str, upload_max_bytes: int = 0
) -> list[FunctionTool]:
    """Register the viewer on ``server`` when the tools offer it; the tools to add.

    The tools the viewer shows come back naming it in ``_meta.ui``; without the app
    the tools come back as they were. ``upload_max_bytes`` is the largest photo the
    viewer may send (0 when the upload tool is not offered: it offers no upload).
    """
    chosen = list(tools)
    if not offers_app(t.name for t in chosen):
        return chosen
    server.add_resource(
        TextResource(
            uri=VIEWER_URI,  # type: ignore[arg-type]  # pydantic parses it
            name="image_viewer",
            title="Image viewer",
            description=(
                "Shows a generated image at full size with its prompt, model, size and "
                "cost; makes the next image from it or from an uploaded photo."
            ),
            mime_type=UI_MIME_TYPE,
            text=viewer_page(upload_max_bytes),
            meta={"ui": resource_ui(public_url)},
        )
    )
    return [
        t.model_copy(update={"meta": tool_ui_meta(t.meta)}) if t.name in SHOWN_BY_VIEWER else t
        for t in chosen
    ]
