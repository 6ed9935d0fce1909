"""A client extension that makes a test client say it renders MCP Apps, as hosts do.

Hosts that show apps declare ``io.modelcontextprotocol/ui`` in their capabilities; the
server lists its app-only tool and its ``ui://`` viewer only to them.
"""

from __future__ import annotations

from typing import Any, Final

from fastmcp.apps.config import UI_EXTENSION_ID, UI_MIME_TYPE
from mcp.client.extension import ClientExtension


class AppsHost(ClientExtension):
    """Declares the MCP Apps extension with the one mime type apps are served as."""

    identifier = UI_EXTENSION_ID

    def settings(self) -> dict[str, Any]:
        """What the host renders: HTML apps."""
        return {"mimeTypes": [UI_MIME_TYPE]}


APPS_HOST: Final = (AppsHost(),)
"""``extensions=`` for a fastmcp ``Client`` that renders apps."""
