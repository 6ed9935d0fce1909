"""The JSON schemas of what the tools answer as structured content (``outputSchema``).

One home for the shapes ``replies.py`` builds: a client that validates structured
content against the schema it was shown must never find a reply that does not fit, and
a test checks every reply kind against these.
"""

from __future__ import annotations

from typing import Any, Final

_TEXT: Final = {"type": "string"}
_MAYBE_TEXT: Final = {"type": ["string", "null"]}
_MAYBE_COUNT: Final = {"type": ["integer", "null"], "minimum": 0}
_USD: Final = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}

_BUDGET: Final[dict[str, Any]] = {
    "type": "object",
    "description": "Where the call left the tightest budget that applies (UTC periods).",
    "properties": {
        "kind": _TEXT,
        "this_request_usd": _USD,
        "used_usd": _USD,
        "limit_usd": _USD,
        "left_usd": _USD,
        "resets_at": {**_TEXT, "description": "UTC, ISO 8601."},
    },
    "required": ["kind", "used_usd", "limit_usd", "resets_at"],
}

ONE_IMAGE: Final[dict[str, Any]] = {
    "type": "object",
    "description": "One generation: done, still rendering, or failed.",
    "properties": {
        "status": {"enum": ["rendering", "done", "failed"]},
        "url": {**_TEXT, "description": "The full-size PNG (public, unguessable)."},
        "file_name": {**_TEXT, "description": "Pass it in reference_images to iterate."},
        "model": _TEXT,
        "model_id": _TEXT,
        "image_size": _TEXT,
        "aspect_ratio": _MAYBE_TEXT,
        "width": _MAYBE_COUNT,
        "height": _MAYBE_COUNT,
        "estimated_cost_usd": {**_USD, "description": "List-price estimate, US dollars."},
        "cost_usd": {**_USD, "description": "The cost recorded, US dollars."},
        "cost_basis": {
            "enum": ["usage", "list_price"],
            "description": "usage: from Gemini's token counts; list_price: the estimate.",
        },
        "budget": _BUDGET,
        "placeholder": {"type": "boolean"},
        "created_at": {**_TEXT, "description": "UTC, ISO 8601."},
        "prompt": _TEXT,
        "thinking_level": _TEXT,
        "search_queries": {"type": "array", "items": _TEXT},
        "search_cost_usd": _USD,
        "sources": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"uri": _TEXT, "title": _MAYBE_TEXT},
                "required": ["uri"],
            },
        },
        "expected_seconds": {"type": "integer", "minimum": 0},
        "failure": _MAYBE_TEXT,
    },
    "required": ["status", "url", "file_name", "model", "image_size", "estimated_cost_usd"],
}

_FAILED_WITHOUT_RECORD: Final[dict[str, Any]] = {
    "type": "object",
    "description": "An image of a batch that failed before anything was kept.",
    "properties": {"status": {"const": "failed"}, "failure": _TEXT},
    "required": ["status", "failure"],
}

BATCH: Final[dict[str, Any]] = {
    "type": "object",
    "description": "Several images of one call, each with its own outcome.",
    "properties": {
        "count": {"type": "integer", "minimum": 1},
        "ready": {"type": "integer", "minimum": 0},
        "rendering": {"type": "integer", "minimum": 0},
        "failed": {"type": "integer", "minimum": 0},
        "estimated_cost_usd": _USD,
        "cost_usd": _USD,
        "budget": _BUDGET,
        "images": {"type": "array", "items": {"anyOf": [ONE_IMAGE, _FAILED_WITHOUT_RECORD]}},
    },
    "required": ["count", "ready", "rendering", "failed", "estimated_cost_usd", "images"],
}

GENERATE_OUTPUT: Final[dict[str, Any]] = {"type": "object", "anyOf": [ONE_IMAGE, BATCH]}
"""``generate_image``: one image, or a batch when ``count`` is 2 or more."""

GET_OUTPUT: Final[dict[str, Any]] = ONE_IMAGE
"""``get_image``: the one generation looked up."""

LIST_OUTPUT: Final[dict[str, Any]] = {
    "type": "object",
    "description": "A page of generations, newest first.",
    "properties": {
        "owner": _TEXT,
        "total": {"type": "integer", "minimum": 0},
        "offset": {"type": "integer", "minimum": 0},
        "has_more": {"type": "boolean"},
        "filter": _MAYBE_TEXT,
        "images": {"type": "array", "items": ONE_IMAGE},
    },
    "required": ["owner", "total", "offset", "has_more", "images"],
}
"""``list_images``: who, how many in all, and this page."""
