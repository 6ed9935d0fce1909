"""The app-only ``upload_photo`` tool, and the MCP endpoint's body cap it needs.

The viewer beside a tool result lets a person pick a photo on their device and sends
it here as base64. The tool only translates: base64 in, ``ImageService.upload_photo``
(the size cap, the per-person limit, the decode and normalising are the core's and the
codec's), and a reply with the name to pass in ``generate_image``'s
``reference_images``. Hosts hide an app-only tool from the model; it still passes the
allow-list middleware like every tool, since visibility is no security boundary.

A photo at the cap travels as base64 inside one JSON-RPC request, a third larger than
the photo, so the endpoint's body cap (the MCP SDK's 4 MiB by default) is raised to
fit, derived from the upload cap here and nowhere else.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Final

import anyio
import attrs
import mcp.types as mt
from fastmcp.exceptions import ToolError
from fastmcp.server.http import StarletteWithLifespan, StreamableHTTPASGIApp
from fastmcp.tools.base import ToolResult
from fastmcp.tools.function_tool import FunctionTool
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from pydantic import Field
from starlette.applications import Starlette
from starlette.routing import Route

from image_core.domain import UPLOAD_FILE_NAME_CHARS, Upload
from image_core.errors import ImageMcpError, InvalidRequest
from image_core.service import ImageService
from image_server.callers import identity_from_token, logged_email
from image_server.hints import user_message
from image_server.outcomes import outcome_of
from image_server.replies import with_json_text
from image_server.tool_names import TOOL_NAME, UPLOAD_TOOL_NAME
from image_server.tool_schemas import UPLOAD_OUTPUT

log = logging.getLogger("image_server.uploads")

BODY_MARGIN_BYTES: Final = 1024 * 1024
"""Room for the JSON-RPC envelope and the other arguments beside the base64 text."""
DESCRIPTION: Final = (
    "Store a photo from the person's device so it can be used as a reference image. "
    "Called by the image viewer, not by the model. Pass the file's bytes as base64 in "
    f"'data' and, for display only, its 'file_name'. The answer's 'name' goes in "
    f"{TOOL_NAME}'s reference_images; only the person who uploaded it (and admins) can use it."
)


def body_limit_for(max_upload_bytes: int) -> int:
    """The MCP request body cap that lets a photo of ``max_upload_bytes`` through as base64.

    Base64 is 4 characters per 3 bytes; the margin holds the rest of the request. Never
    below the SDK's own default.
    """
    encoded = (max_upload_bytes + 2) // 3 * 4
    return max(DEFAULT_MAX_REQUEST_BODY_SIZE, encoded + BODY_MARGIN_BYTES)


def raise_body_limit(mcp_app: StarletteWithLifespan, max_bytes: int) -> None:
    """Let request bodies up to ``max_bytes`` reach the MCP endpoint (413 above it).

    fastmcp builds the SDK's session manager in its app's lifespan without a way to pass
    the SDK's ``max_request_body_size``, so the manager's limit is set as it starts.
    Authentication runs before the manager, so a caller without a token gets its 401
    before any of the body is read.
    """
    transport = _transport_of(mcp_app)
    started = mcp_app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Any]:
        async with started(app) as state:
            manager = transport.session_manager
            if manager is not None:
                inner = manager.asgi_app
                handler = inner.app if isinstance(inner, RequestBodyLimitMiddleware) else inner
                manager.max_request_body_size = max_bytes
                manager.asgi_app = RequestBodyLimitMiddleware(handler, max_bytes)
            yield state

    mcp_app.router.lifespan_context = lifespan


def _transport_of(mcp_app: StarletteWithLifespan) -> StreamableHTTPASGIApp:
    """fastmcp's transport app behind the MCP route (inside the auth check, if any)."""
    for route in mcp_app.routes:
        if not isinstance(route, Route):
            continue
        endpoint: object = route.endpoint
        for candidate in (endpoint, getattr(endpoint, "app", None)):
            if isinstance(candidate, StreamableHTTPASGIApp):
                return candidate
    raise RuntimeError("the MCP app has no streamable HTTP route")  # pragma: no cover


def decode_data(text: str, check_size: Callable[[int], None]) -> bytes:
    """The bytes of base64 ``text`` (standard alphabet, padding optional, line breaks
    allowed); ``check_size`` refuses an oversized photo before it is decoded."""
    compact = "".join(text.split())
    check_size(len(compact) * 3 // 4 - compact[-2:].count("="))  # exact for valid base64
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            "data is not base64: send the photo file's bytes encoded as standard base64."
        ) from None


def upload_reply(upload: Upload) -> ToolResult:
    """A short text with the name to use, and the same facts as structured content."""
    shown = f" ({upload.file_name})" if upload.file_name else ""
    text = (
        f"Photo uploaded{shown}: {upload.name}, {upload.width}x{upload.height}. "
        f"To use it, pass '{upload.name}' in {TOOL_NAME}'s reference_images; only you "
        "(and the server's admins) can use it."
    )
    facts = {
        "name": upload.name,
        "width": upload.width,
        "height": upload.height,
        "bytes": upload.size_bytes,
        "file_name": upload.file_name,
    }
    return with_json_text(
        ToolResult(content=[mt.TextContent(type="text", text=text)], structured_content=facts)
    )


@attrs.frozen
class UploadPhotoTool:
    """The ``upload_photo`` tool: one photo of the caller's kept as a reference."""

    service: ImageService

    async def __call__(
        self,
        data: Annotated[
            str,
            Field(description="The photo file's bytes as standard base64.", min_length=1),
        ],
        file_name: Annotated[
            str | None,
            Field(
                description="The file's name on the device, for display only.",
                max_length=UPLOAD_FILE_NAME_CHARS,
            ),
        ] = None,
    ) -> ToolResult:
        """Keep the photo for the caller the token names."""
        identity = identity_from_token()
        started = time.monotonic()
        fields: dict[str, Any] = {"event": "upload", "email": logged_email(identity)}
        try:
            # Tens of milliseconds for a photo at the cap: off the event loop.
            photo = await anyio.to_thread.run_sync(
                decode_data, data, self.service.check_upload_size
            )
            fields["received_bytes"] = len(photo)
            upload = await self.service.upload_photo(identity, photo, file_name)
        except ImageMcpError as exc:
            outcome = outcome_of(exc)
            fields.update(outcome=outcome.name, duration_ms=_ms(started), error=exc.message)
            log.log(outcome.level, "upload refused", extra=fields)
            # This line is the record of the failure: fastmcp's own one stays at DEBUG.
            raise ToolError(user_message(exc), log_level=logging.DEBUG) from None
        fields.update(outcome="ok", id=str(upload.id), bytes=upload.size_bytes)
        log.info("photo uploaded", extra={**fields, "duration_ms": _ms(started)})
        return upload_reply(upload)


def upload_tool(service: ImageService, icons: list[mt.Icon] | None) -> FunctionTool:
    """The registered tool: app-only, writes something new each call, this server only."""
    return FunctionTool.from_function(
        UploadPhotoTool(service),
        name=UPLOAD_TOOL_NAME,
        title="Upload a photo",
        description=DESCRIPTION,
        annotations=mt.ToolAnnotations(
            title="Upload a photo",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
        output_schema=UPLOAD_OUTPUT,
        # MCP Apps: the viewer calls this tool; hosts keep it from the model.
        meta={"ui": {"visibility": ["app"]}},
        icons=icons,
    )


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
