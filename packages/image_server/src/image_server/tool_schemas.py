"""The JSON schemas of what the tools answer as structured content (``outputSchema``).

One home for the shapes ``replies.py`` builds: a client that validates structured
content against the schema it was shown must never find a reply that does not fit, and
a test checks every reply kind against these.

The schemas are flat and say they are draft-07 on purpose: a client compiles each
tool's schema once per session after checking it against its meta-schema, and that
check costs about 0.55 ms per property under draft 2020-12 (the default dialect) but a
sixth of it under draft-07. The first nested version of these schemas cost 30 ms of
every fresh session of the MCP Python SDK's client; these cost about 2 ms. Draft-07
is what most validators (ajv among them) take by default. Each key is typed; the
nested lists and the budget are typed as objects.
"""

from __future__ import annotations

from typing import Any, Final

_TEXT: Final = {"type": "string"}
_MAYBE_TEXT: Final = {"type": ["string", "null"]}
_MAYBE_COUNT: Final = {"type": ["integer", "null"]}
_COUNT: Final = {"type": "integer"}
_FLAG: Final = {"type": "boolean"}
_OBJECTS: Final = {"type": "array", "items": {"type": "object"}}

_IMAGE_KEYS: Final[dict[str, Any]] = {
    "status": {"enum": ["rendering", "done", "failed"]},
    "url": {"type": "string", "description": "The full-size PNG (public, unguessable)."},
    "file_name": {"type": "string", "description": "Pass it in reference_images to iterate."},
    "model": _TEXT,
    "model_id": _TEXT,
    "image_size": _TEXT,
    "aspect_ratio": _MAYBE_TEXT,
    "width": _MAYBE_COUNT,
    "height": _MAYBE_COUNT,
    "estimated_cost_usd": {"type": "string", "description": "List-price estimate, USD."},
    "cost_usd": {"type": "string", "description": "The cost recorded, USD."},
    "cost_basis": {"enum": ["usage", "list_price"]},
    "placeholder": _FLAG,
    "created_at": _TEXT,
    "prompt": _TEXT,
    "thinking_level": _TEXT,
    "search_queries": {"type": "array", "items": _TEXT},
    "search_cost_usd": _TEXT,
    "sources": _OBJECTS,
    "expected_seconds": _COUNT,
    "failure": _MAYBE_TEXT,
    "budget": {"type": "object", "description": "Where the tightest budget stands (UTC)."},
}

DIALECT: Final = "http://json-schema.org/draft-07/schema#"

ONE_IMAGE: Final[dict[str, Any]] = {
    "$schema": DIALECT,
    "type": "object",
    "properties": _IMAGE_KEYS,
    "required": ["status", "url", "file_name"],
}
"""One generation: done, still rendering, or failed."""

GENERATE_OUTPUT: Final[dict[str, Any]] = {
    "$schema": DIALECT,
    "type": "object",
    "description": "One image's facts, or with count 2 to 4 the batch and its images.",
    "properties": {
        **_IMAGE_KEYS,
        "count": _COUNT,
        "ready": _COUNT,
        "rendering": _COUNT,
        "failed": _COUNT,
        "images": _OBJECTS,
    },
}
"""``generate_image``: one image, or a batch (``count``, ``images``) for several."""

GET_OUTPUT: Final[dict[str, Any]] = ONE_IMAGE
"""``get_image``: the one generation looked up."""

LIST_OUTPUT: Final[dict[str, Any]] = {
    "$schema": DIALECT,
    "type": "object",
    "description": "A page of generations, newest first.",
    "properties": {
        "owner": _TEXT,
        "total": _COUNT,
        "offset": _COUNT,
        "has_more": _FLAG,
        "filter": _MAYBE_TEXT,
        "images": _OBJECTS,
    },
    "required": ["owner", "total", "offset", "has_more", "images"],
}
"""``list_images``: who, how many in all, and this page."""

UPLOAD_OUTPUT: Final[dict[str, Any]] = {
    "$schema": DIALECT,
    "type": "object",
    "description": "The photo as it was kept, and the name to use it by.",
    "properties": {
        "name": {"type": "string", "description": "Pass it in reference_images."},
        "width": _COUNT,
        "height": _COUNT,
        "bytes": _COUNT,
        "file_name": _MAYBE_TEXT,
    },
    "required": ["name", "width", "height", "bytes", "file_name"],
}
"""``upload_photo``: the uploaded photo's name, size as kept, and its display name."""
