"""What only an MCP Apps host can use is listed only to clients that say they are one.

The MCP Apps extension marks a tool meant for the app alone (``_meta.ui.visibility``
``["app"]``) and serves the app itself as a ``ui://`` resource. A host that renders apps
declares the extension (``io.modelcontextprotocol/ui``) in its capabilities and keeps
app-only tools from its model; a client without it would show them to its model as
ordinary tools. So both are left out of the listings such a client gets, and it sees
what it saw before the app existed. Calls and reads are not filtered: listing is not
access control, and every call still passes the allow-list like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import mcp.types as mt
from fastmcp.apps.config import UI_EXTENSION_ID
from fastmcp.resources.base import Resource
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import Tool

UI_SCHEME: Final = "ui://"
APP_ONLY: Final = ("app",)


def is_app_only(meta: Mapping[str, Any] | None) -> bool:
    """Whether a tool's ``_meta`` says only the app may call it (hidden from the model)."""
    ui = (meta or {}).get("ui")
    visibility = ui.get("visibility") if isinstance(ui, Mapping) else None
    return isinstance(visibility, Sequence) and tuple(visibility) == APP_ONLY


def _renders_apps(context: MiddlewareContext[Any]) -> bool:
    ctx = context.fastmcp_context
    return ctx is not None and ctx.client_supports_extension(UI_EXTENSION_ID)


class AppHostListing(Middleware):
    """Leaves app-only tools and ``ui://`` resources out for clients without MCP Apps."""

    async def on_list_tools(
        self,
        context: MiddlewareContext[mt.ListToolsRequest],
        call_next: CallNext[mt.ListToolsRequest, Sequence[Tool]],
    ) -> Sequence[Tool]:
        """Every tool for an apps host; the others lose the app-only ones."""
        tools = await call_next(context)
        if _renders_apps(context):
            return tools
        return [tool for tool in tools if not is_app_only(tool.meta)]

    async def on_list_resources(
        self,
        context: MiddlewareContext[mt.ListResourcesRequest],
        call_next: CallNext[mt.ListResourcesRequest, Sequence[Resource]],
    ) -> Sequence[Resource]:
        """Every resource for an apps host; the others lose the ``ui://`` apps."""
        resources = await call_next(context)
        if _renders_apps(context):
            return resources
        return [r for r in resources if not str(r.uri).startswith(UI_SCHEME)]
