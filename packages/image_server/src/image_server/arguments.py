"""Tool-argument errors in the product's words instead of pydantic's dump.

The tool's schema is enforced by fastmcp before our code runs; its failure text
("1 validation error for call[...] ... errors.pydantic.dev") tells a calling model
little. This middleware restates each problem as field, what was wrong and what is
accepted, reading the accepted values from the tool's own JSON schema so the words
cannot drift from the schema.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import mcp.types as mt
import pydantic
from fastmcp.exceptions import ToolError, ValidationError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult

_INPUT_CHARS = 40
_MISSING = frozenset({"missing", "missing_argument"})
_CHOICE = frozenset({"literal_error", "enum"})
_UNKNOWN = frozenset({"unexpected_keyword_argument", "extra_forbidden"})
_TOO_SHORT = frozenset({"string_too_short", "too_short"})
_OUT_OF_RANGE = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


class ReadableArgumentErrors(Middleware):
    """Turns fastmcp's argument ``ValidationError`` into a ``ToolError`` a model can act on."""

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        """Pass the call on; restate a schema failure."""
        try:
            return await call_next(context)
        except ValidationError as exc:
            cause = exc.__cause__
            if not isinstance(cause, pydantic.ValidationError) or context.fastmcp_context is None:
                raise
            name = context.message.name
            tool = await context.fastmcp_context.fastmcp.get_tool(name)
            schema = tool.parameters if tool is not None else {}
            # fastmcp already logged the call at WARNING; this is the same event.
            raise ToolError(describe(name, cause, schema), log_level=logging.DEBUG) from None


def describe(tool: str, error: pydantic.ValidationError, schema: Mapping[str, Any]) -> str:
    """One sentence per problem, e.g. ``aspect_ratio '7:3' is not one of: 1:1, 2:3``."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    problems = [_problem(tool, e, properties) for e in error.errors(include_url=False)]
    return f"{tool} did not run: " + "; ".join(problems) + ". Fix the arguments and call it again."


def _problem(tool: str, error: Any, properties: Mapping[str, Any]) -> str:
    field = _field(error["loc"])
    kind = str(error["type"])
    if kind in _MISSING:
        return f"{field} is required"
    if kind in _UNKNOWN:
        return f"{field} is not a parameter of {tool}; it takes {', '.join(properties)}"
    if kind in _TOO_SHORT:
        return f"{field} must not be empty"
    if kind in _OUT_OF_RANGE:
        low, high = _bounds(properties.get(str(error["loc"][0]), {}))
        if low is not None and high is not None:
            return f"{field} {_shown(error['input'])} is out of range: use {low} to {high}"
    if kind in _CHOICE:
        choices = _choices(properties.get(str(error["loc"][0]), {}))
        accepted = ", ".join(choices) if choices else error.get("ctx", {}).get("expected", "")
        return f"{field} {_shown(error['input'])} is not one of: {accepted}"
    if kind.endswith("_type"):
        wanted = kind.removesuffix("_type").replace("_", " ")
        return f"{field} must be {_article(wanted)}, not {_json_kind(error['input'])}"
    return f"{field}: {error['msg']}"


def _field(loc: tuple[int | str, ...]) -> str:
    """``("reference_images", 1)`` -> ``reference_images[1]``; union branch tags dropped."""
    name = str(loc[0]) if loc else "arguments"
    return name + "".join(f"[{part}]" for part in loc[1:] if isinstance(part, int))


def _choices(prop: Mapping[str, Any]) -> list[str]:
    """The ``enum`` values of a property, also inside ``anyOf`` (optional parameters)."""
    if "enum" in prop:
        return [str(v) for v in prop["enum"]]
    for branch in prop.get("anyOf", []):
        found = _choices(branch)
        if found:
            return found
    return []


def _bounds(prop: Mapping[str, Any]) -> tuple[Any, Any]:
    """A number property's ``minimum`` and ``maximum``, also inside ``anyOf``."""
    if "minimum" in prop or "maximum" in prop:
        return prop.get("minimum"), prop.get("maximum")
    for branch in prop.get("anyOf", []):
        found = _bounds(branch)
        if found != (None, None):
            return found
    return None, None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _INPUT_CHARS else text[: _INPUT_CHARS - 1] + "…"


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _json_kind(value: object) -> str:
    """The JSON name of what was sent, as a client author would say it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
