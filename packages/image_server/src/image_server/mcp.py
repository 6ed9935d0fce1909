"""The MCP face of the product: ``generate_image`` and ``get_image`` behind an allow-list.

The tools only translate: MCP arguments in, the ``ImageService`` use case in the core, an
inline preview plus the full-size URL out (``replies.py``). Core errors become
``isError`` results with the core's own user-facing message. ``generate_image`` answers
within its deadline whatever happens: the paid work runs on without the caller.
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
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult
from fastmcp.tools.function_tool import FunctionTool
from pydantic import Field

from image_core.access import owner_key
from image_core.domain import (
    MAX_IMAGES_PER_CALL,
    AspectRatio,
    FailedImage,
    GenerationBatch,
    GenerationRequest,
    GenerationResult,
    GenerationStatus,
    Identity,
    ImageOutcome,
    ImageSize,
    ModelSpec,
    PendingGeneration,
    by_long_side,
)
from image_core.errors import ImageMcpError, LimitReached
from image_core.names import LOCAL_OWNER
from image_core.service import ImageService, not_allowed
from image_server.about import PRODUCT_NAME, product_version
from image_server.app_visibility import AppHostListing
from image_server.arguments import ReadableArgumentErrors
from image_server.callers import identity_from_token, logged_email
from image_server.hints import user_message
from image_server.mcp_app import add_viewer_app
from image_server.mcp_resources import add_image_resources
from image_server.mcp_uploads import upload_tool
from image_server.outcomes import FAILED, outcome_of
from image_server.references import image_url, reference_name
from image_server.replies import (
    batch_reply,
    failed_reply,
    list_reply,
    rendering_reply,
    reply,
    stored_reply,
    with_json_text,
)
from image_server.tool_names import (
    ALL_TOOLS,
    GET_TOOL_NAME,
    LIST_TOOL_NAME,
    TOOL_NAME,
    UPLOAD_TOOL_NAME,
)
from image_server.tool_schemas import GENERATE_OUTPUT, GET_OUTPUT, LIST_OUTPUT

log = logging.getLogger("image_server.generation")

HEARTBEAT_SECONDS = 5.0
REPLY_MARGIN_SECONDS = 0.2
"""Kept from the deadline for the answer itself to reach the client."""

__all__ = [
    "ALL_TOOLS",
    "GET_TOOL_NAME",
    "LIST_TOOL_NAME",
    "TOOL_NAME",
    "GenerateImageTool",
    "GetImageTool",
    "ListImagesTool",
    "reply",
]
LIST_PAGE_MAX = 50

SIZE_SPELLINGS = ("0.5K",)
"""Other spellings the tool accepts for a size (``0.5K`` is 512)."""

if TYPE_CHECKING:
    AspectRatioChoice = str
    SizeChoice = str
else:
    #: The tool's choices are the core's enums, in their order: the client's JSON schema
    #: lists exactly these values, and a new ratio or size reaches it without an edit here.
    AspectRatioChoice = Literal[tuple(ratio.value for ratio in AspectRatio)]
    SizeChoice = Literal[(*(size.value for size in ImageSize), *SIZE_SPELLINGS)]


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


def tool_description(
    models_offered: Iterable[ModelSpec], *, can_look_up: bool = True, takes_uploads: bool = False
) -> str:
    """Teaches the calling model the contract, including when (not) to pick a model.

    Every model's sizes (with prices) and ratios are spelt out, so the calling model
    never has to guess which model takes what it is asked for.
    """
    offered = list(models_offered)
    models = "\n".join(_model_line(m) for m in offered)
    sizes = by_long_side({s for m in offered for s in m.sizes})
    size_text = ", ".join(_size_choice(s, offered) for s in sizes)
    uploaded = (
        " A photo the person uploaded in the image viewer is passed by its name, like "
        "'upload-<uuid>.jpg'."
        if takes_uploads
        else ""
    )
    return (
        "Generate an image from a text prompt with Google's Gemini image models, store it, "
        "and return a small preview plus the URL of the full-size PNG.\n\n"
        "Parameters:\n"
        "- prompt: a full description of the picture (subject, style, composition, any "
        "text to render).\n"
        "- aspect_ratio: width:height, e.g. 16:9 for landscape, 9:16 for a phone "
        "wallpaper; default 1:1 (or follows the reference image when editing). Each model "
        "takes the ratios listed below.\n"
        f"- image_size: {size_text}; bigger costs more and takes longer. 1K is the "
        "default.\n"
        "- reference_images: to iterate on or edit earlier results ('same scene but at "
        "night'), pass the file names this tool returned before (e.g. '<uuid>.png'); "
        f"their URLs also work.{uploaded}\n"
        "- model: ONLY pass this when the human explicitly asked for a specific model. "
        "Otherwise leave it out: the person's default model (chosen in the dashboard) "
        "applies, and without one, flash. If the default cannot do what was asked, the "
        "error names the model that can.\n"
        f"- count: ONLY when the human asks for several images or variations ('show me "
        f"three options'): 2 to {MAX_IMAGES_PER_CALL}. Each is generated, stored and billed as "
        "one image of its own (three cost three times one) and comes with its own preview "
        "and URL. Leave it out for one image.\n"
        "- thinking: ONLY when the human asks the model to think harder or to be quick: "
        f"a thinking level. {_thinking_text(offered)} Leave it out otherwise; the model's "
        "own default applies.\n"
        "- search_grounding: ONLY when the human asks for the picture to follow real or "
        "current facts from the web (today's weather, a recent event, a real building): "
        f"true grounds it in Google Search results. {_grounding_text(offered)} Leave it "
        "out otherwise.\n\n"
        f"Models (estimated list price per image; sizes; ratios):\n{models}\n\n"
        "Show the returned URL to the person; it is the full-resolution image. A large "
        "image may answer 'still rendering' with its URL and file name: it is paid for and "
        "will appear there; "
        + (
            f"call {GET_TOOL_NAME} with the file name later instead of generating it again."
            if can_look_up
            else "do not generate it again."
        )
    )


def _thinking_text(offered: list[ModelSpec]) -> str:
    """Which levels each model takes, and which take none."""
    takes = [f"{m.alias}: {', '.join(m.thinking_levels)}" for m in offered if m.thinking_levels]
    without = [m.alias for m in offered if not m.thinking_levels]
    text = f"Levels per model: {'; '.join(takes)}." if takes else "No model takes one."
    if takes and without:
        text += f" {', '.join(without)} take{'s' if len(without) == 1 else ''} none."
    return text


def _grounding_text(offered: list[ModelSpec]) -> str:
    """Which models ground, and what one search query adds."""
    able = [m for m in offered if m.search_grounding]
    if not able:
        return "No model offered here can."
    prices = sorted({m.search_query_price.display() for m in able})
    return (
        f"Models that can: {', '.join(m.alias for m in able)}; each search query Gemini "
        f"runs adds about {' or '.join(prices)} to the cost."
    )


def _model_line(m: ModelSpec) -> str:
    prices = ", ".join(f"{s.value} {m.price(s).display()}" for s in m.sizes_in_order)
    every = len(m.aspect_ratios) == len(AspectRatio)
    ratios = ", ".join(r.value for r in m.ratios_in_order)
    ratio_text = f"every ratio ({ratios})" if every else f"ratios {ratios} only"
    return f"- '{m.alias}' = {m.display_name} ({m.model_id}): {m.use_for}; {prices}; {ratio_text}"


def _size_choice(size: ImageSize, offered: list[ModelSpec]) -> str:
    """``512 (also 0.5K; flash only)``: who takes a size, when not every model does."""
    takers = [m.alias for m in offered if size in m.sizes]
    spelt = " or 0.5K" if size is ImageSize.S512 else ""
    if len(takers) == len(offered):
        return f"{size.value}{spelt}"
    return f"{size.value}{spelt} ({', '.join(takers)} only)"


def list_description(*, can_look_up: bool) -> str:
    """What ``list_images`` is for; it names ``get_image`` only when that tool is offered."""
    then = (
        f"then pass its file name to {GET_TOOL_NAME} to see it, or in reference_images to "
        "iterate on it"
        if can_look_up
        else "then pass its file name in reference_images to iterate on it"
    )
    return (
        f"List the images {TOOL_NAME} made earlier for this person, newest first: file "
        "name, date (UTC), model, size, cost and the start of each prompt. Use it when "
        f"the person refers to an earlier picture ('the lighthouse from yesterday'); {then}. "
        "Read-only and free. 'containing' keeps the images whose prompt holds each of its "
        "words; 'offset' pages on. Admins may pass another person's email as 'owner'."
    )


GET_DESCRIPTION = (
    "Show an image generate_image made earlier again: a small preview, its URL, file "
    "name, model, size and estimated cost; or say that it is still rendering, or why it "
    "failed. Pass the file name (e.g. '<uuid>.png') or the URL generate_image returned. "
    "Read-only and free: use it after a 'still rendering' answer."
)


@attrs.define
class ImageProgress:
    """Progress of a call making several images: one notification as each one settles.

    Progress is the number of images settled, of ``total``; the heartbeat in between
    adds a fraction below one that grows with time, so the value only ever increases
    (as MCP asks) and a client's bar moves while it waits. One image keeps the plain
    heartbeat of seconds waited.
    """

    ctx: Context | None
    total: int
    public_url: str
    settled_count: int = 0
    started: float = attrs.field(factory=time.monotonic)
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)

    async def settled(self, outcome: ImageOutcome) -> None:
        """One image is done, rendering on or failed: say which, with its URL."""
        async with self._lock:
            self.settled_count += 1
            so_far = f"{self.settled_count} of {self.total} images settled"
            if isinstance(outcome, FailedImage):
                message = f"{so_far}; this one failed: {outcome.message}"
            else:
                url = image_url(self.public_url, outcome.generation.file_name)
                message = f"{so_far}; ready: {url}"
            await self._send(float(self.settled_count), message)

    async def beat(self, label: str) -> None:
        """A heartbeat: seconds waited, or images settled plus a growing fraction."""
        async with self._lock:
            elapsed = time.monotonic() - self.started
            if self.total == 1:
                await self._send(elapsed, f"{label} ({elapsed:.0f} s)", counted=False)
                return
            value = self.settled_count + elapsed / (elapsed + HEARTBEAT_SECONDS * 6)
            text = f"{label} ({elapsed:.0f} s; {self.settled_count} of {self.total} settled)"
            await self._send(value, text)

    async def _send(self, value: float, message: str, *, counted: bool = True) -> None:
        """``counted``: progress of ``total`` images; else seconds, with no total."""
        if self.ctx is None:
            return
        with contextlib.suppress(Exception):  # progress is best effort
            await self.ctx.report_progress(value, self.total if counted else None, message)


@contextlib.asynccontextmanager
async def heartbeat(
    ctx: Context | None, label: str, progress: ImageProgress | None = None
) -> AsyncIterator[None]:
    """Sends a progress notification every few seconds while a slow call runs."""
    if ctx is None:
        yield
        return
    ticker = progress or ImageProgress(ctx, 1, "")

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await ticker.beat(label)

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
    deadline_seconds: float | None = None
    """When the tool answers at the latest (``IMG_TOOL_DEADLINE``); ``None`` waits."""
    can_look_up: bool = True
    """Whether ``get_image`` is offered, so a 'still rendering' reply may point to it."""

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
            Field(description="Only when the human explicitly asked for one, e.g. 'pro'."),
        ] = None,
        image_size: Annotated[
            SizeChoice | None,
            Field(description="512 (or 0.5K), 1K (default), 2K or 4K; see each model's sizes."),
        ] = None,
        count: Annotated[
            int | None,
            Field(
                ge=1,
                le=MAX_IMAGES_PER_CALL,
                description="Only when the human asks for several images: 2 to 4, each "
                "billed as one image. Leave out for one.",
            ),
        ] = None,
        thinking: Annotated[
            str | None,
            Field(
                description="Only when the human asks the model to think more or less: a "
                "thinking level the model offers (see the description)."
            ),
        ] = None,
        search_grounding: Annotated[
            bool | None,
            Field(
                description="Only when the human asks for real-world or current facts from "
                "the web: ground the image in Google Search (each query costs extra)."
            ),
        ] = None,
        ctx: Context | None = None,
    ) -> ToolResult:
        """Generate ``count`` images (one by default) for the caller the token names."""
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
                count=count,
                thinking=thinking,
                search_grounding=search_grounding,
            )
            fields["size"] = request.image_size.value
            if request.count > 1:
                fields["count"] = request.count
            progress = ImageProgress(ctx, request.count, self.public_url)
            async with heartbeat(ctx, "Waiting for the image model", progress):
                batch = await self._generate(identity, request, started, progress)
        except ImageMcpError as exc:
            outcome = outcome_of(exc)
            fields.update(outcome=outcome.name, duration_ms=_ms(started), error=exc.message)
            if isinstance(exc, LimitReached):  # which limit, and its figures
                fields.update({**exc.facts, "reason": exc.reason.value})
            log.log(outcome.level, "generation failed", extra=fields)
            # This line is the record of the failure: fastmcp's own one stays at DEBUG.
            raise ToolError(user_message(exc), log_level=logging.DEBUG) from None
        for result in batch.outcomes:
            _log_outcome(result, fields, started)
        return with_json_text(batch_reply(batch, self.public_url, can_look_up=self.can_look_up))

    async def _generate(
        self,
        identity: Identity | None,
        request: GenerationRequest,
        started: float,
        progress: ImageProgress,
    ) -> GenerationBatch:
        settled = progress.settled if request.count > 1 else None
        if self.deadline_seconds is None:
            return await self.service.generate_images(identity, request, on_settled=settled)
        spent = time.monotonic() - started
        wait = max(0.0, self.deadline_seconds - REPLY_MARGIN_SECONDS - spent)
        return await self.service.generate_images(
            identity, request, wait_seconds=wait, on_settled=settled
        )


@attrs.frozen
class GetImageTool:
    """The read-only ``get_image`` tool: one earlier generation shown again."""

    service: ImageService
    public_url: str

    async def __call__(
        self,
        name: Annotated[
            str,
            Field(description="File name ('<uuid>.png') or URL from generate_image.", min_length=1),
        ],
    ) -> ToolResult:
        """Look the generation up for the caller the token names."""
        identity = identity_from_token()
        try:
            found = await self.service.find_generation(identity, reference_name(name))
        except ImageMcpError as exc:
            raise _read_refused("lookup", identity, exc) from None
        g = found.generation
        if g.status is GenerationStatus.RENDERING:
            return with_json_text(rendering_reply(g, found.expected_seconds or 0, self.public_url))
        if g.status is GenerationStatus.FAILED or found.preview is None:
            return with_json_text(failed_reply(g, self.public_url))
        return with_json_text(stored_reply(g, found.preview, self.public_url))


@attrs.frozen
class ListImagesTool:
    """The read-only ``list_images`` tool: a page of the caller's earlier images."""

    service: ImageService
    public_url: str
    can_look_up: bool = True
    """Whether ``get_image`` is offered, so the listing may point to it."""

    async def __call__(
        self,
        containing: Annotated[
            str | None,
            Field(
                description="Words the prompt must contain (any case, any order).",
                max_length=200,
            ),
        ] = None,
        offset: Annotated[int, Field(ge=0, le=100_000, description="Images to skip.")] = 0,
        limit: Annotated[
            int, Field(ge=1, le=LIST_PAGE_MAX, description="Images per page (default 20).")
        ] = 20,
        owner: Annotated[
            str | None,
            Field(description="Admins only: whose images to list (an email).", max_length=320),
        ] = None,
    ) -> ToolResult:
        """List for the caller the token names."""
        identity = identity_from_token()
        try:
            page = await self.service.list_images(
                identity, owner, offset=offset, limit=limit, containing=containing
            )
        except ImageMcpError as exc:
            raise _read_refused("listing", identity, exc) from None
        whose = (
            owner.strip() if owner and owner.strip() else (logged_email(identity) or LOCAL_OWNER)
        )
        words = " ".join(containing.split()) if containing else None
        listed = list_reply(
            page, owner_key(whose), words or None, self.public_url, can_look_up=self.can_look_up
        )
        return with_json_text(listed)


def _read_refused(event: str, identity: Identity | None, exc: ImageMcpError) -> ToolError:
    """A read-only tool's failure, logged once at its outcome's level, as the tool error."""
    log.log(
        outcome_of(exc).level,
        f"{event} failed",
        extra={"event": event, "email": logged_email(identity), "error": exc.message},
    )
    # This line is the record of the failure: fastmcp's own one stays at DEBUG.
    return ToolError(user_message(exc), log_level=logging.DEBUG)


def _log_outcome(result: ImageOutcome, fields: dict[str, Any], started: float) -> None:
    """One ``generation`` line per image: stored, still rendering, or failed."""
    if isinstance(result, FailedImage):
        error = result.error
        outcome = outcome_of(error) if isinstance(error, ImageMcpError) else FAILED
        failed = {
            **fields,
            "outcome": outcome.name,
            "duration_ms": _ms(started),
            "error": result.message,
        }
        if result.generation is not None:
            failed.update(id=str(result.generation.id), cost_usd=str(result.generation.cost.usd))
        log.log(outcome.level, "generation failed", extra=failed)
    elif isinstance(result, PendingGeneration):
        log.info(
            "generation still rendering",
            extra={**fields, **_stored_fields(result, started), "outcome": "rendering"},
        )
    else:
        log.info("generation stored", extra={**fields, **_stored_fields(result, started)})


def _stored_fields(result: GenerationResult | PendingGeneration, started: float) -> dict[str, Any]:
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


def offered_tools(service: ImageService, tools: Iterable[str]) -> list[str]:
    """The tools offered, in listing order: those asked for (``IMG_TOOLS``), without
    ``upload_photo`` while the service takes no uploads."""
    offered: list[str] = [name for name in ALL_TOOLS if name in set(tools)]
    if not service.accepts_uploads and UPLOAD_TOOL_NAME in offered:
        offered.remove(UPLOAD_TOOL_NAME)
    return offered


def build_mcp_server(
    service: ImageService,
    *,
    public_url: str,
    auth: AuthProvider | None,
    icon_url: str | None = None,
    website_url: str | None = None,
    tool_deadline_seconds: float | None = None,
    tools: Iterable[str] = ALL_TOOLS,
) -> FastMCP:
    """The FastMCP server with the tools, the image resources and the allow-list middleware.

    ``icon_url`` and ``website_url`` reach clients in ``serverInfo`` and on every tool,
    and brand the OAuth consent page; the icon must be on this server's origin (the
    page's CSP allows no other). ``tools`` picks which tools are offered
    (``IMG_TOOLS``); ``generate_image`` alone is the original one-tool contract, with no
    resources and no mention of the other tools. ``upload_photo`` is offered only while
    the service accepts uploads.
    """
    offered = offered_tools(service, tools)
    if TOOL_NAME not in offered:
        raise ValueError(f"{TOOL_NAME} is always offered")
    can_look_up = GET_TOOL_NAME in offered
    later = (
        f" After a 'still rendering' answer, call {GET_TOOL_NAME} with the file name."
        if can_look_up
        else ""
    )
    earlier = (
        f" To find an earlier image, call {LIST_TOOL_NAME}." if LIST_TOOL_NAME in offered else ""
    )
    server = FastMCP(
        name=PRODUCT_NAME,
        version=product_version(),
        instructions=(
            f"Generates images with Gemini. Use {TOOL_NAME}; show the returned URL.{later}{earlier}"
        ),
        website_url=website_url,
        icons=_icons(icon_url),
        auth=auth,
        middleware=[AllowedEmailsMiddleware(service), ReadableArgumentErrors(), AppHostListing()],
        mask_error_details=True,
    )
    icons = _icons(icon_url)
    built = {
        TOOL_NAME: FunctionTool.from_function(
            GenerateImageTool(service, public_url, tool_deadline_seconds, can_look_up),
            name=TOOL_NAME,
            title="Generate image",
            description=tool_description(
                service.offered_models(),
                can_look_up=can_look_up,
                takes_uploads=UPLOAD_TOOL_NAME in offered,
            ),
            # Spends money and makes something new each time; reaches Google's models.
            annotations=mt.ToolAnnotations(
                title="Generate image",
                read_only_hint=False,
                destructive_hint=False,
                idempotent_hint=False,
                open_world_hint=True,
            ),
            output_schema=GENERATE_OUTPUT,
            icons=icons,
        ),
        GET_TOOL_NAME: FunctionTool.from_function(
            GetImageTool(service, public_url),
            name=GET_TOOL_NAME,
            title="Show an earlier image",
            description=GET_DESCRIPTION,
            annotations=_read_only("Show an earlier image"),
            output_schema=GET_OUTPUT,
            icons=icons,
        ),
        LIST_TOOL_NAME: FunctionTool.from_function(
            ListImagesTool(service, public_url, can_look_up),
            name=LIST_TOOL_NAME,
            title="List earlier images",
            description=list_description(can_look_up=can_look_up),
            annotations=_read_only("List earlier images"),
            output_schema=LIST_OUTPUT,
            icons=icons,
        ),
        UPLOAD_TOOL_NAME: upload_tool(service, icons),
    }
    uploads = service.upload_max_bytes if UPLOAD_TOOL_NAME in offered else 0
    chosen = add_viewer_app(server, [built[name] for name in offered], public_url, uploads)
    for tool in chosen:
        server.add_tool(tool)
    _serve_input_schemas(server, chosen)
    if can_look_up:
        add_image_resources(server, service, public_url)
    return server


def _read_only(title: str) -> mt.ToolAnnotations:
    """A tool that only reads this server's own records: safe to call freely."""
    return mt.ToolAnnotations(
        title=title,
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=False,
    )


def _serve_input_schemas(server: FastMCP, tools: list[FunctionTool]) -> None:
    """Let the HTTP transport look a tool's input schema up instead of listing all tools.

    The 2026-07-28 transport checks ``Mcp-Param-*`` headers against the called tool's
    schema before each ``tools/call``; without a lookup it runs the whole ``tools/list``
    handler (middleware, schemas, descriptions) first, about 10 ms of every call. The
    tools here are the same for every caller, so their schemas are fixed at start-up.
    """
    schemas = {tool.name: dict(tool.parameters) for tool in tools}
    # fastmcp has no public setter for this low-level option (pinned; tested).
    server._mcp_server.get_tool_input_schema = schemas.get


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
