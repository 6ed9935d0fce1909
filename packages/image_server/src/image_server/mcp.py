"""The MCP face of the product: one ``generate_image`` tool behind an email allow-list.

The tool only translates: MCP arguments in, ``ImageService.generate`` in the core, an
inline preview plus the full-size URL out. Core errors become ``isError`` results
with the core's own user-facing message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import attrs
import mcp.types as mt
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import AuthProvider
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult
from fastmcp.tools.function_tool import FunctionTool
from fastmcp.utilities.types import Image
from pydantic import Field

from image_core.access import owner_key
from image_core.domain import (
    AspectRatio,
    GenerationRequest,
    GenerationResult,
    Identity,
    ImageSize,
    ModelSpec,
)
from image_core.errors import ImageMcpError
from image_core.service import ImageService, not_allowed
from image_server.about import PRODUCT_NAME, product_version
from image_server.arguments import ReadableArgumentErrors
from image_server.hints import user_message
from image_server.outcomes import outcome_of
from image_server.references import image_url, reference_name

log = logging.getLogger("image_server.generation")

TOOL_NAME = "generate_image"
HEARTBEAT_SECONDS = 5.0

if TYPE_CHECKING:
    AspectRatioChoice = str
    SizeChoice = str
else:
    #: The tool's choices are the core's enums, in their order: the client's JSON schema
    #: lists exactly these values, and a new ratio or size reaches it without an edit here.
    AspectRatioChoice = Literal[tuple(ratio.value for ratio in AspectRatio)]
    SizeChoice = Literal[tuple(size.value for size in ImageSize)]


def identity_from_token() -> Identity | None:
    """The caller as the OAuth token describes them; ``None`` when there is no token."""
    token = get_access_token()
    if token is None:
        return None
    email = token.claims.get("email")
    if not isinstance(email, str):
        return None
    verified = token.claims.get("email_verified")
    return Identity(email=email, email_verified=verified is True or str(verified).lower() == "true")


def logged_email(identity: Identity | None) -> str | None:
    """The email as records store it (lower-cased), so logs and records spell it alike."""
    return owner_key(identity.email) if identity is not None else None


class AllowedEmailsMiddleware(Middleware):
    """Refuses tool calls from anyone not on the allow-list, before any tool code runs."""

    def __init__(self, service: ImageService) -> None:
        self._service = service

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        """Check the token's email, then let the call through."""
        if not self._service.access_is_open:
            identity = identity_from_token()
            if not self._service.may_generate(identity):
                log.info(
                    "tool call refused",
                    extra={"event": "refused", "email": logged_email(identity)},
                )
                raise ToolError(user_message(not_allowed(identity)))
        return await call_next(context)


def tool_description(models_offered: Iterable[ModelSpec]) -> str:
    """Teaches the calling model the contract, including when (not) to pick a model."""
    models = "\n".join(
        f"- '{m.alias}' = {m.display_name} ({m.model_id}): {m.use_for}; "
        + ", ".join(f"{s.value} {m.price(s).display()}" for s in sorted(m.prices))
        for m in models_offered
    )
    return (
        "Generate an image from a text prompt with Google's Gemini image models, store it, "
        "and return a small preview plus the URL of the full-size PNG.\n\n"
        "Parameters:\n"
        "- prompt: a full description of the picture (subject, style, composition, any "
        "text to render).\n"
        "- aspect_ratio: width:height, e.g. 16:9 for landscape, 9:16 for a phone "
        "wallpaper; default 1:1 (or follows the reference image when editing).\n"
        "- image_size: 1K (default), 2K or 4K; bigger costs more and takes longer.\n"
        "- reference_images: to iterate on or edit earlier results ('same scene but at "
        "night'), pass the file names this tool returned before (e.g. '<uuid>.png'); "
        "their URLs also work.\n"
        "- model: ONLY pass this when the human explicitly asked for a specific model. "
        "Otherwise leave it out: the person's default model (chosen in the dashboard) "
        "applies, and without one, flash.\n\n"
        f"Models (estimated list price per image):\n{models}\n\n"
        "Show the returned URL to the person; it is the full-resolution image."
    )


def reply(result: GenerationResult, public_url: str) -> ToolResult:
    """Preview image, a text summary with the URL, and the same facts as structured data."""
    g = result.generation
    url = image_url(public_url, g.file_name)
    ratio = g.aspect_ratio.value if g.aspect_ratio else "model default"
    lines = [
        f"Image ready: {url}",
        f"File name (pass it in reference_images to iterate): {g.file_name}",
        f"Model: {g.model_alias} ({g.model_id}), size {g.image_size.value}, "
        f"aspect ratio {ratio}, {g.width}x{g.height} px",
        f"Estimated cost: {g.cost.display()}",
    ]
    if g.is_placeholder:
        lines.append("Note: this server runs the offline placeholder backend; not a real image.")
    preview_format = result.preview.mime_type.split("/", 1)[-1]
    preview = Image(data=result.preview.data, format=preview_format).to_image_content()
    structured: dict[str, Any] = {
        "url": url,
        "file_name": g.file_name,
        "model": g.model_alias,
        "model_id": g.model_id,
        "image_size": g.image_size.value,
        "aspect_ratio": g.aspect_ratio.value if g.aspect_ratio else None,
        "width": g.width,
        "height": g.height,
        "estimated_cost_usd": str(g.cost.usd),
        "placeholder": g.is_placeholder,
    }
    return ToolResult(
        content=[preview, mt.TextContent(type="text", text="\n".join(lines))],
        structured_content=structured,
    )


@contextlib.asynccontextmanager
async def heartbeat(ctx: Context | None, label: str) -> AsyncIterator[None]:
    """Sends a progress notification every few seconds while a slow call runs."""
    if ctx is None:
        yield
        return
    started = time.monotonic()

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            elapsed = time.monotonic() - started
            with contextlib.suppress(Exception):  # progress is best effort
                await ctx.report_progress(elapsed, None, f"{label} ({elapsed:.0f} s)")

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@attrs.frozen
class GenerateImageTool:
    """The ``generate_image`` tool, with its collaborators given explicitly.

    An instance is what ``build_mcp_server`` registers; tests can build one and await
    it directly. It parses the arguments, runs ``ImageService.generate`` with progress
    heartbeats, logs one ``generation`` line (at the level ``outcomes.py`` gives a
    failure) and replies.
    """

    service: ImageService
    public_url: str

    async def __call__(
        self,
        prompt: Annotated[str, Field(description="What to draw, in detail.", min_length=1)],
        aspect_ratio: Annotated[
            AspectRatioChoice | None, Field(description="width:height; default 1:1.")
        ] = None,
        reference_images: Annotated[
            list[str] | None,
            Field(description="File names (or URLs) of earlier generations to iterate on."),
        ] = None,
        model: Annotated[
            str | None,
            Field(description="Only when the human explicitly asked: 'flash' or 'pro'."),
        ] = None,
        image_size: Annotated[
            SizeChoice | None, Field(description="1K (default), 2K or 4K.")
        ] = None,
        ctx: Context | None = None,
    ) -> ToolResult:
        """Generate one image for the caller the token names."""
        identity = identity_from_token()
        started = time.monotonic()
        fields: dict[str, Any] = {
            "event": "generation",
            "email": logged_email(identity),
            "prompt_chars": len(prompt),
            "references": len(reference_images or []),
        }
        try:
            request = GenerationRequest.parse(
                prompt,
                aspect_ratio=aspect_ratio,
                image_size=image_size,
                model=model,
                references=[reference_name(r) for r in reference_images or ()],
            )
            fields["size"] = request.image_size.value
            async with heartbeat(ctx, "Waiting for the image model"):
                result = await self.service.generate(identity, request)
        except ImageMcpError as exc:
            outcome = outcome_of(exc)
            fields.update(outcome=outcome.name, duration_ms=_ms(started), error=exc.message)
            log.log(outcome.level, "generation failed", extra=fields)
            # This line is the record of the failure: fastmcp's own one stays at DEBUG.
            raise ToolError(user_message(exc), log_level=logging.DEBUG) from None
        log.info("generation stored", extra={**fields, **_stored_fields(result, started)})
        return reply(result, self.public_url)


def _stored_fields(result: GenerationResult, started: float) -> dict[str, Any]:
    g = result.generation
    return {
        "outcome": "ok",
        "id": str(g.id),
        "email": g.email,
        "model": g.model_alias,
        "model_id": g.model_id,
        "cost_usd": str(g.cost.usd),
        "duration_ms": _ms(started),
        "backend": g.backend,
    }


def _icons(icon_url: str | None) -> list[mt.Icon] | None:
    return [mt.Icon(src=icon_url, mime_type="image/svg+xml", sizes=["any"])] if icon_url else None


def build_mcp_server(
    service: ImageService,
    *,
    public_url: str,
    auth: AuthProvider | None,
    icon_url: str | None = None,
    website_url: str | None = None,
) -> FastMCP:
    """The FastMCP server with the tool and the allow-list middleware.

    ``icon_url`` and ``website_url`` reach clients in ``serverInfo`` and brand the OAuth
    consent page; the icon must be on this server's origin (the page's CSP allows no other).
    """
    server = FastMCP(
        name=PRODUCT_NAME,
        version=product_version(),
        instructions="Generates images with Gemini. Use generate_image; show the returned URL.",
        website_url=website_url,
        icons=_icons(icon_url),
        auth=auth,
        middleware=[AllowedEmailsMiddleware(service), ReadableArgumentErrors()],
        mask_error_details=True,
    )
    server.add_tool(
        FunctionTool.from_function(
            GenerateImageTool(service, public_url),
            name=TOOL_NAME,
            description=tool_description(service.offered_models()),
        )
    )
    return server


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
