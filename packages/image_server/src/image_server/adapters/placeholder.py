"""An offline ``ImageBackend`` that draws the prompt instead of generating an image.

It lets the whole product run (tests, demos, development without a Gemini key) with
no network and no cost. Output is deterministic, so tests can compare bytes, and it is
labelled on the image itself so nobody mistakes it for a real generation.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import unicodedata
from typing import Final

import anyio
from anyio import to_thread
from PIL import Image, ImageDraw, ImageFont

from image_core.domain import AspectRatio, BackendImage, BackendRequest
from image_server.adapters.encoded_bytes import encoded

# Pillow's built-in font covers ASCII only (no em dash), hence the plain hyphen.
BANNER_TEXT: Final = "PLACEHOLDER - not a real generation"
BANNER_COLOUR: Final = (255, 214, 0)
"""Signal yellow; background colours are kept darker than this so it always stands out."""
BANNER_TEXT_COLOUR: Final = (0, 0, 0)

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_ELLIPSIS: Final = "..."


class PlaceholderImageBackend:
    """Renders the prompt on a colour derived from its hash, under a placeholder banner."""

    def __init__(self, *, delay_seconds: float = 0.0) -> None:
        if not math.isfinite(delay_seconds) or delay_seconds < 0:
            raise ValueError(
                f"delay_seconds must be a finite, non-negative number, not {delay_seconds}"
            )
        self._delay_seconds = delay_seconds

    @property
    def name(self) -> str:
        """Recorded in each generation so the dashboard can mark placeholders."""
        return "placeholder"

    async def generate(self, request: BackendRequest) -> BackendImage:
        """A PNG of exactly the requested dimensions; same request, same bytes."""
        if self._delay_seconds:
            await anyio.sleep(self._delay_seconds)
        # A 4K render plus PNG encoding takes long enough to stall the event loop.
        png = await to_thread.run_sync(render_placeholder, request)
        return BackendImage(data=png, mime_type="image/png", token_usage=None)


def render_placeholder(request: BackendRequest) -> bytes:
    """Draw the placeholder for ``request`` and return it as PNG bytes (blocking)."""
    ratio = request.aspect_ratio or AspectRatio.R1_1
    width, height = ratio.dimensions(request.image_size)
    background = _background_colour(request.prompt)
    ink = _ink_for(background)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)

    unit = math.sqrt(width * height)
    margin = max(2, round(min(width, height) * 0.04))
    usable_width = max(1, width - 2 * margin)

    banner_bottom = _draw_banner(draw, width, margin, usable_width, unit)

    details = [f"{width}x{height}  {ratio.value}  {request.image_size.value}", request.model_id]
    if request.references:
        count = len(request.references)
        details.append(f"{count} reference image{'s' if count != 1 else ''}")
    small = _font(max(8, round(unit / 48)))
    small_height = _line_height(small)
    footer_top = height - margin - small_height * len(details)
    for index, line in enumerate(details):
        text = _fit_line(small, _printable(line), usable_width)
        draw.text((margin, footer_top + index * small_height), text, font=small, fill=ink)

    body = _font(max(8, round(unit / 26)))
    body_height = _line_height(body)
    top = banner_bottom + margin
    max_lines = max(0, (footer_top - margin - top) // body_height)
    for index, line in enumerate(_wrap(request.prompt, body, usable_width, max_lines)):
        draw.text((margin, top + index * body_height), line, font=body, fill=ink)

    return encoded(image, "PNG", compress_level=1)


def _draw_banner(
    draw: ImageDraw.ImageDraw, width: int, margin: int, usable_width: int, unit: float
) -> int:
    """A full-width yellow band with the banner text; returns its bottom edge."""
    size = max(8, round(unit / 20))
    lines = [BANNER_TEXT]
    font = _font(size)
    if font.getlength(BANNER_TEXT) > usable_width:
        lines = ["PLACEHOLDER", "not a real generation"]
    widest = max(font.getlength(line) for line in lines)
    if widest > usable_width:
        size = max(6, math.floor(size * usable_width / widest))
        font = _font(size)
    line_height = _line_height(font)
    padding = max(2, line_height // 3)
    bottom = 2 * padding + line_height * len(lines)
    draw.rectangle((0, 0, width - 1, bottom - 1), fill=BANNER_COLOUR)
    for index, line in enumerate(lines):
        draw.text((margin, padding + index * line_height), line, font=font, fill=BANNER_TEXT_COLOUR)
    return bottom


def _background_colour(prompt: str) -> tuple[int, int, int]:
    """A muted colour picked by the prompt's hash: never close to the banner yellow."""
    digest = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest()
    hue = digest[0] / 256 + digest[1] / 65536
    saturation = 0.30 + 0.35 * digest[2] / 255
    value = 0.30 + 0.40 * digest[3] / 255
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _ink_for(background: tuple[int, int, int]) -> tuple[int, int, int]:
    red, green, blue = background
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return (20, 20, 20) if luminance > 140 else (245, 245, 245)


def _font(size: int) -> _Font:
    return ImageFont.load_default(size=size)


def _line_height(font: _Font) -> int:
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return round((ascent + descent) * 1.15)
    return 12  # bitmap fallback when Pillow lacks FreeType


def _printable(text: str) -> str:
    """What the ASCII-only built-in font can show: accents dropped ("cafe"), control
    characters and lone surrogates turned into spaces. Other scripts still draw as boxes.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(
        " " if not ch.isprintable() else ch for ch in decomposed if not unicodedata.combining(ch)
    )


def _wrap(text: str, font: _Font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels, at most ``max_lines`` lines, "..." if cut.

    Lines are also capped in characters (no glyph is narrower than a quarter of the
    font size, zero-width ones aside) and wrapping stops once a line more than fits
    is known, so nothing long is ever measured: a 32k-character prompt costs no more
    than a short one. Words wider than a line are split by character.
    """
    if max_lines <= 0:
        return []
    max_chars = max(1, 4 * width // max(1, _font_size(font)))

    def fits(candidate: str) -> bool:
        return len(candidate) <= max_chars and font.getlength(candidate) <= width

    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in _printable(paragraph).split():
            if len(lines) > max_lines:
                break
            candidate = f"{current} {word}" if current else word
            if fits(candidate):
                current = candidate
                continue
            if current:
                lines.append(current)
            rest = word
            while len(lines) <= max_lines and not fits(rest):
                head = _longest_prefix(rest[:max_chars], font, width)
                lines.append(head)
                rest = rest[len(head) :]
            current = rest
        lines.append(current)
        if len(lines) > max_lines:
            break
    if len(lines) <= max_lines:
        return lines
    kept = lines[:max_lines]
    kept[-1] = _fit_line(font, kept[-1] + _ELLIPSIS, width)
    return kept


def _font_size(font: _Font) -> int:
    return round(font.size) if isinstance(font, ImageFont.FreeTypeFont) else 10


def _longest_prefix(word: str, font: _Font, width: int) -> str:
    """The longest prefix of ``word`` (at least one character) that fits ``width``."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(word[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return word[:low]


def _fit_line(font: _Font, text: str, width: int) -> str:
    """``text`` shortened to fit ``width``, ending in "..." when something was cut."""
    if font.getlength(text) <= width:
        return text
    stem = text.removesuffix(_ELLIPSIS)
    while stem and font.getlength(stem + _ELLIPSIS) > width:
        stem = stem[:-1]
    return stem + _ELLIPSIS if stem else ""


__all__ = ["BANNER_COLOUR", "BANNER_TEXT", "PlaceholderImageBackend", "render_placeholder"]
