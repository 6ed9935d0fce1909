"""The names of the MCP tools, in one place for the server, its replies and its settings."""

from __future__ import annotations

from typing import Final

TOOL_NAME: Final = "generate_image"
GET_TOOL_NAME: Final = "get_image"
LIST_TOOL_NAME: Final = "list_images"
UPLOAD_TOOL_NAME: Final = "upload_photo"
"""The app-only tool the viewer calls to store a person's own photo as a reference."""
ALL_TOOLS: Final = (TOOL_NAME, GET_TOOL_NAME, LIST_TOOL_NAME, UPLOAD_TOOL_NAME)
"""Every tool the server can offer (``IMG_TOOLS`` picks among them), in listing order."""
