"""What the MCP tools answer: a stored image, one still rendering, one that failed.

Every reply has a short text (the URL first, so a client that drops images still shows
the way to the picture) and the same facts as structured data.
"""

from __future__ import annotations

import json
from typing import Any

import mcp.types as mt
from fastmcp.tools.base import ToolResult
from fastmcp.utilities.types import Image

from image_core.domain import (
    CostBasis,
    EncodedImage,
    FailedImage,
    GalleryPage,
    Generation,
    GenerationBatch,
    GenerationResult,
    Grounding,
    PendingGeneration,
    Standing,
)
from image_server.references import image_url
from image_server.tool_names import GET_TOOL_NAME

PLACEHOLDER_NOTE = (
    "Note: this server runs the offline placeholder backend; not a real image. Its cost is "
    "the list price, counted (nothing is billed) so that budgets and limits can be tried out."
)
NOTE_CHARS = 200
LISTED_PROMPT_CHARS = 80
"""How much of each prompt a listing shows (the record keeps it whole)."""
SOURCES_SHOWN = 3
"""How many of the web pages a grounded image drew on the reply names."""


def _one_line(text: str, limit: int = NOTE_CHARS) -> str:
    """Whitespace folded to single spaces, cut at ``limit`` characters with an ellipsis."""
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 1].rstrip() + "…"


def reply(result: GenerationResult, public_url: str) -> ToolResult:
    """Preview image, a text summary with the URL, and the same facts as structured data."""
    lines = [f"Image ready: {image_url(public_url, result.generation.file_name)}"]
    lines += _facts(result.generation)
    note = _one_line(result.note or "")
    if note:
        lines.append(f"Note from the model: {note}")
    return _with_preview(result.generation, result.preview, lines, public_url)


def stored_reply(generation: Generation, preview: EncodedImage, public_url: str) -> ToolResult:
    """A finished generation shown again by ``get_image``."""
    lines = [f"Image: {image_url(public_url, generation.file_name)}", *_facts(generation)]
    lines.append(f"Created: {generation.created_at:%Y-%m-%d %H:%M} UTC")
    return _with_preview(generation, preview, lines, public_url)


def pending_reply(
    pending: PendingGeneration, public_url: str, *, can_look_up: bool = True
) -> ToolResult:
    """The wait ended first: where the image will appear, and how to look again."""
    return rendering_reply(
        pending.generation, pending.expected_seconds, public_url, can_look_up=can_look_up
    )


def rendering_reply(
    generation: Generation, expected_seconds: int, public_url: str, *, can_look_up: bool = True
) -> ToolResult:
    """Still rendering: the URL it will be at, the file name, and about how long."""
    url = image_url(public_url, generation.file_name)
    look = f"Call {GET_TOOL_NAME} with the file name to see it then; it" if can_look_up else "It"
    text = (
        f"Still rendering; it will be at {url} (file name {generation.file_name}), usually "
        f"within {expected_seconds} s. {look} also appears in the dashboard. Do not generate "
        "it again: it is already paid for.\n"
        f"Model: {generation.model_alias} ({generation.model_id}), size "
        f"{generation.image_size.value}; estimated cost {generation.cost.display()}"
    )
    structured = {
        **structured_facts(generation, public_url),
        "expected_seconds": expected_seconds,
    }
    return ToolResult(
        content=[mt.TextContent(type="text", text=text)], structured_content=structured
    )


def failed_reply(generation: Generation, public_url: str) -> ToolResult:
    """A generation that failed: why, and what it may have cost."""
    text = (
        f"Generation {generation.file_name} failed: {generation.failure or 'no reason recorded'}\n"
        f"{cost_text(generation)}"
        + (" (the request may have been billed)" if generation.cost.usd else "")
    )
    structured = {**structured_facts(generation, public_url), "failure": generation.failure}
    return ToolResult(
        content=[mt.TextContent(type="text", text=text)], structured_content=structured
    )


def _facts(g: Generation) -> list[str]:
    ratio = g.aspect_ratio.value if g.aspect_ratio else "model default"
    lines = [
        f"File name (pass it in reference_images to iterate): {g.file_name}",
        f"Model: {g.model_alias} ({g.model_id}), size {g.image_size.value}, "
        f"aspect ratio {ratio}, {g.width}x{g.height} px",
        cost_text(g),
    ]
    if g.thinking_level:
        lines.append(f"Thinking level: {g.thinking_level}")
    if g.grounding is not None:
        lines.append(_grounding_line(g.grounding))
    elif g.search_grounding:
        lines.append("Google Search grounding was asked for; Gemini ran no search for it.")
    if g.is_placeholder:
        lines.append(PLACEHOLDER_NOTE)
    return lines


def cost_text(g: Generation) -> str:
    """The cost as the record has it: from Gemini's token counts, or the list price."""
    if g.cost_basis is CostBasis.USAGE:
        return (
            f"Cost: {g.cost.display()} by Gemini's token counts "
            f"(list price {g.list_price_estimate.display()})"
        )
    return f"Estimated cost: {g.cost.display()}"


def _grounding_line(grounding: Grounding) -> str:
    """The search queries (how many, what they cost) and the first few sources, briefly."""
    n = len(grounding.queries)
    queries = "; ".join(_one_line(q, 60) for q in grounding.queries[:SOURCES_SHOWN])
    said = f"{n} search {'query' if n == 1 else 'queries'}"
    line = f"Grounded in Google Search: {said} ({queries}), {grounding.cost.display()}"
    shown = [
        f"{_one_line(s.title, 40)} <{_one_line(s.uri, 120)}>" if s.title else _one_line(s.uri, 120)
        for s in grounding.sources[:SOURCES_SHOWN]
    ]
    more = len(grounding.sources) - len(shown)
    if shown:
        line += "; sources: " + ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    return line


def _with_preview(
    g: Generation, preview: EncodedImage, lines: list[str], public_url: str
) -> ToolResult:
    preview_format = preview.mime_type.split("/", 1)[-1]
    content = Image(data=preview.data, format=preview_format).to_image_content()
    return ToolResult(
        content=[content, mt.TextContent(type="text", text="\n".join(lines))],
        structured_content=structured_facts(g, public_url),
    )


def structured_facts(g: Generation, public_url: str) -> dict[str, Any]:
    """The facts of one generation as structured content (and a resource's record)."""
    return {
        "status": g.status.value,
        "url": image_url(public_url, g.file_name),
        "file_name": g.file_name,
        "model": g.model_alias,
        "model_id": g.model_id,
        "image_size": g.image_size.value,
        "aspect_ratio": g.aspect_ratio.value if g.aspect_ratio else None,
        "width": g.width,
        "height": g.height,
        "estimated_cost_usd": str(g.list_price_estimate.usd),
        "cost_usd": str(g.cost.usd),
        "cost_basis": g.cost_basis.value,
        "placeholder": g.is_placeholder,
        **_controls(g),
    }


def _controls(g: Generation) -> dict[str, Any]:
    """The controls the request used, only those (a plain request's reply is unchanged)."""
    used: dict[str, Any] = {}
    if g.thinking_level:
        used["thinking_level"] = g.thinking_level
    if g.search_grounding:
        grounding = g.grounding or Grounding()
        used["search_queries"] = list(grounding.queries)
        used["search_cost_usd"] = str(grounding.cost.usd)
        used["sources"] = [
            {"uri": s.uri, "title": s.title} for s in grounding.sources[:SOURCES_SHOWN]
        ]
    return used


def batch_reply(batch: GenerationBatch, public_url: str, *, can_look_up: bool = True) -> ToolResult:
    """Several images of one call: each with its preview and URL, or why it is missing.

    One image is ``reply`` (or ``pending_reply``) exactly, so a plain call answers as it
    always did.
    """
    outcomes = batch.outcomes
    if len(outcomes) == 1 and not isinstance(outcomes[0], FailedImage):
        only = outcomes[0]
        if isinstance(only, PendingGeneration):
            return _with_standing(
                pending_reply(only, public_url, can_look_up=can_look_up), batch.standing, 1
            )
        return _with_standing(reply(only, public_url), batch.standing, 1)
    return _with_standing(
        _several(batch, public_url, can_look_up=can_look_up), batch.standing, len(outcomes)
    )


def standing_line(standing: Standing, count: int = 1) -> str:
    """Where the call left the tightest budget, e.g. "This image ≈ $0.067; you have used
    $3.20 of your $10.00 this month (UTC)."
    """
    asked = "This image" if count == 1 else f"These {count} images"
    who, whose = ("you have", "your") if standing.kind.personal else ("this server has", "its")
    return (
        f"{asked} ≈ {standing.this_request.display()}; {who} used {standing.used.display()} "
        f"of {whose} {standing.limit.display()} {standing.kind.period_words} (UTC)."
    )


def _with_standing(result: ToolResult, standing: Standing | None, count: int) -> ToolResult:
    """``result`` with the budget standing in its text and in its data."""
    if standing is None:
        return result
    line = standing_line(standing, count)
    content = list(result.content)
    # One image: after its facts; several: in the summary that heads them.
    order = range(len(content) - 1, -1, -1) if count == 1 else range(len(content))
    for at in order:
        block = content[at]
        if isinstance(block, mt.TextContent):
            content[at] = mt.TextContent(type="text", text=f"{block.text}\n{line}")
            break
    structured = {
        **(result.structured_content or {}),
        "budget": {
            "kind": standing.kind.value,
            "this_request_usd": str(standing.this_request.usd),
            "used_usd": str(standing.used.usd),
            "limit_usd": str(standing.limit.usd),
            "left_usd": str(standing.left.usd),
            "resets_at": standing.resets_at.isoformat(),
        },
    }
    return ToolResult(content=content, structured_content=structured)


def _several(batch: GenerationBatch, public_url: str, *, can_look_up: bool = True) -> ToolResult:
    """The reply to a call that asked for several images (or whose one image failed)."""
    outcomes = batch.outcomes
    total = len(outcomes)
    ready = sum(isinstance(o, GenerationResult) for o in outcomes)
    rendering = sum(isinstance(o, PendingGeneration) for o in outcomes)
    failed = total - ready - rendering
    summary = [f"{ready} of {total} images ready"]
    if rendering:
        summary.append(f"{rendering} still rendering")
    if failed:
        summary.append(f"{failed} failed")
    head = ", ".join(summary) + f"; cost {batch.cost.display()} in all."
    content: list[mt.ContentBlock] = [mt.TextContent(type="text", text=head)]
    images: list[dict[str, Any]] = []
    for number, outcome in enumerate(outcomes, start=1):
        label = f"Image {number} of {total}"
        if isinstance(outcome, GenerationResult):
            one = reply(outcome, public_url)
            content += [_relabelled(block, label) for block in one.content]
            images.append(one.structured_content or {})
        elif isinstance(outcome, PendingGeneration):
            one = pending_reply(outcome, public_url, can_look_up=can_look_up)
            content += [_relabelled(block, label) for block in one.content]
            images.append(one.structured_content or {})
        else:
            text = f"{label} failed: {outcome.message}"
            if outcome.generation is not None and outcome.generation.cost.usd:
                text += f" (estimated cost {outcome.generation.cost.display()}: it may be billed)"
            content.append(mt.TextContent(type="text", text=text))
            kept = outcome.generation
            images.append(
                {
                    **(structured_facts(kept, public_url) if kept else {"status": "failed"}),
                    "failure": outcome.message,
                }
            )
    structured = {
        "count": total,
        "ready": ready,
        "rendering": rendering,
        "failed": failed,
        "estimated_cost_usd": str(batch.estimate.usd),
        "cost_usd": str(batch.cost.usd),
        "images": images,
    }
    return ToolResult(content=content, structured_content=structured)


def with_json_text(result: ToolResult) -> ToolResult:
    """The structured content also as JSON text, last, for clients that ignore it.

    The MCP specification asks for this; the preview stays first and the readable
    summary second, so a client that shows only the first blocks still shows those.
    """
    if result.structured_content is None:
        return result
    text = json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    content = [*result.content, mt.TextContent(type="text", text=text)]
    return ToolResult(content=content, structured_content=result.structured_content)


def list_reply(
    page: GalleryPage,
    owner: str,
    containing: str | None,
    public_url: str,
    *,
    can_look_up: bool = True,
) -> ToolResult:
    """A page of earlier images: one line each (file name, date, model, size, cost, prompt)."""
    shown = f"{page.offset + 1} to {page.offset + len(page.items)} of {page.total}"
    matching = f" matching {containing!r}" if containing else ""
    if not page.items:
        head = f"No images of {owner}{matching}" + (
            f" after the first {page.offset}." if page.offset else "."
        )
    else:
        head = f"Images of {owner}{matching}, newest first ({shown}):"
    lines = [head]
    entries: list[dict[str, Any]] = []
    for g in page.items:
        prompt = _one_line(g.prompt, LISTED_PROMPT_CHARS)
        lines.append(
            f"- {g.file_name} ({g.created_at:%Y-%m-%d %H:%M} UTC, {g.model_alias} "
            f"{g.image_size.value}, {g.cost.display()}): {prompt}"
        )
        entries.append(
            {
                **structured_facts(g, public_url),
                "created_at": g.created_at.isoformat().replace("+00:00", "Z"),
                "prompt": prompt,
            }
        )
    if page.has_next:
        lines.append(f"More: pass offset {page.offset + len(page.items)}.")
    if page.items and can_look_up:
        lines.append(
            f"Pass a file name to {GET_TOOL_NAME} to see it, or in reference_images to iterate."
        )
    elif page.items:
        lines.append("Pass a file name in reference_images to iterate on it.")
    structured = {
        "owner": owner,
        "total": page.total,
        "offset": page.offset,
        "has_more": page.has_next,
        "filter": containing,
        "images": entries,
    }
    return ToolResult(
        content=[mt.TextContent(type="text", text="\n".join(lines))],
        structured_content=structured,
    )


def _relabelled(block: mt.ContentBlock, label: str) -> mt.ContentBlock:
    """A text block of one image's reply, headed with which image of the call it is."""
    if not isinstance(block, mt.TextContent):
        return block
    ready = "Image ready: "
    if block.text.startswith(ready):
        return mt.TextContent(type="text", text=f"{label} ready: {block.text[len(ready) :]}")
    return mt.TextContent(type="text", text=f"{label}: {block.text}")
