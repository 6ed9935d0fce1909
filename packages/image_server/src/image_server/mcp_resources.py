"""Earlier images as MCP resources, for clients that let people attach resources.

Two templates (the PNG of a stored generation, and its record as JSON) and, in every
``resources/list``, the caller's most recent images, so a client can offer them to
attach. Access is the dashboard's: people who may generate see their own images,
admins everyone's; strangers see none and are refused on read. The listing is the
caller's own, so it is made per request (a middleware), never cached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import NoReturn

import mcp.types as mt
from fastmcp import FastMCP
from fastmcp.exceptions import ResourceError
from fastmcp.resources.base import Resource, ResourceContent, ResourceResult
from fastmcp.resources.template import ResourceTemplate
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

from image_core.domain import Generation, Identity
from image_core.errors import ImageMcpError
from image_core.names import LOCAL_OWNER
from image_core.service import ImageService
from image_server.callers import identity_from_token, logged_email
from image_server.hints import user_message
from image_server.replies import structured_facts

log = logging.getLogger("image_server.resources")

SCHEME = "image-mcp"
IMAGE_TEMPLATE = f"{SCHEME}://images/{{name}}"
RECORD_TEMPLATE = f"{SCHEME}://records/{{name}}"
RESOURCE_MAX_BYTES = 4 * 1024 * 1024
"""Largest image a resource read carries: hosts refuse bigger attachments (a photo-like
4K PNG is 15 MB or more); a larger image comes as a JPEG copy, the PNG stays at its URL."""
RECENT_LISTED = 20
"""How many of the caller's latest images every ``resources/list`` names."""
TITLE_CHARS = 60


def image_uri(file_name: str) -> str:
    """The resource URI of a stored image's PNG."""
    return IMAGE_TEMPLATE.format(name=file_name)


def record_uri(file_name: str) -> str:
    """The resource URI of a generation's record (JSON)."""
    return RECORD_TEMPLATE.format(name=file_name)


def record_json(g: Generation, public_url: str) -> str:
    """What a client attaching the record reads: the facts, never the owner's secrets."""
    body = {
        **structured_facts(g, public_url),
        "image_uri": image_uri(g.file_name),
        "prompt": g.prompt,
        "created_at": g.created_at.isoformat().replace("+00:00", "Z"),
        "email": g.email,
        "failure": g.failure,
        "reference_images": list(g.reference_names),
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


def _short(text: str) -> str:
    folded = " ".join(text.split())
    return folded if len(folded) <= TITLE_CHARS else folded[: TITLE_CHARS - 1].rstrip() + "…"


class RecentImagesListing(Middleware):
    """Adds the caller's latest images to each ``resources/list`` answer."""

    def __init__(self, service: ImageService) -> None:
        self._service = service

    async def on_list_resources(
        self,
        context: MiddlewareContext[mt.ListResourcesRequest],
        call_next: CallNext[mt.ListResourcesRequest, Sequence[Resource]],
    ) -> Sequence[Resource]:
        """The fixed resources, then the caller's recent images (none for a stranger)."""
        listed = list(await call_next(context))
        identity = identity_from_token()
        if not self._service.may_generate(identity):
            return listed
        try:
            page = await self._service.list_images(identity, limit=RECENT_LISTED)
        except ImageMcpError as exc:
            log.warning("listing resources failed", extra={"error": exc.message})
            return listed
        listed.extend(
            Resource(
                uri=image_uri(g.file_name),  # type: ignore[arg-type]  # pydantic parses it
                name=g.file_name,
                title=_short(g.prompt) or g.file_name,
                description=(
                    f"{g.created_at:%Y-%m-%d %H:%M} UTC, {g.model_alias} "
                    f"{g.image_size.value}: {_short(g.prompt)}"
                ),
                mime_type="image/png",
            )
            for g in page.items
        )
        return listed


def add_image_resources(server: FastMCP, service: ImageService, public_url: str) -> None:
    """Register the two templates and the per-caller listing on ``server``."""

    async def stored_png(name: str) -> ResourceResult:
        identity = identity_from_token()
        try:
            _, image = await service.stored_image(identity, name, RESOURCE_MAX_BYTES)
        except ImageMcpError as exc:
            _refused("image", identity, exc)
        return ResourceResult([ResourceContent(image.data, mime_type=image.mime_type)])

    async def stored_record(name: str) -> ResourceResult:
        identity = identity_from_token()
        try:
            generation = await service.find_generation_record(identity, name)
        except ImageMcpError as exc:
            _refused("record", identity, exc)
        text = record_json(generation, public_url)
        return ResourceResult([ResourceContent(text, mime_type="application/json")])

    server.add_template(
        ResourceTemplate.from_function(
            stored_png,
            IMAGE_TEMPLATE,
            name="image",
            title="A generated image",
            description=(
                "The PNG of an image generate_image made, by its file name (over 4 MiB: a "
                "JPEG copy within 4 MiB; the full PNG stays at its URL)."
            ),
            mime_type="image/png",
        )
    )
    server.add_template(
        ResourceTemplate.from_function(
            stored_record,
            RECORD_TEMPLATE,
            name="image_record",
            title="What an image was made from",
            description="Prompt, model, size, date and estimated cost of a generation.",
            mime_type="application/json",
        )
    )
    server.add_middleware(RecentImagesListing(service))


def _refused(kind: str, identity: Identity | None, exc: ImageMcpError) -> NoReturn:
    """Log the refusal and raise it as a resource error with the core's own message."""
    email = logged_email(identity) or LOCAL_OWNER
    log.info(
        "resource read refused",
        extra={"event": "resource", "kind": kind, "email": email, "error": exc.message},
    )
    raise ResourceError(user_message(exc)) from None
