"""Regenerate the dashboard screenshots in ``docs/screenshots/`` from realistic demo data.

    uv run python scripts/screenshots.py            # writes docs/screenshots/*.png
    uv run python scripts/screenshots.py --out DIR  # somewhere else

The whole server is built with ``build_app`` and served by uvicorn on 127.0.0.1. Google
sign-in is the fake identity provider from ``tests/fakes/fake_google.py``; images come
from a local backend that paints photo-like landscapes at exactly the size each request
asks for (a 4K card is a 4096-pixel PNG), so nothing reaches Google. A few people's
generations are made through ``ImageService.generate`` over the last four weeks, with
both models, every size and a spread of aspect ratios. Then Debian's Chromium, driven by
Playwright, signs in and photographs each page at desktop and phone widths, and each
PNG is reduced to a 256-colour palette to keep the repository small.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import re
import sys
import tempfile
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import anyio.to_thread
import attrs
from PIL import Image, ImageDraw, ImageFilter

ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fakes and tests.support

from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright  # noqa: E402
from tests.fakes.fake_google import FakeGoogle  # noqa: E402
from tests.support.live_server import free_port, live_server  # noqa: E402

from image_core.domain import (  # noqa: E402
    AspectRatio,
    BackendImage,
    BackendRequest,
    GenerationRequest,
    Identity,
)
from image_core.ports import Clock, IdSource, ImageBackend  # noqa: E402
from image_server.app import build_app, build_service  # noqa: E402
from image_server.auth import GoogleEndpoints  # noqa: E402
from image_server.settings import Settings  # noqa: E402

OUT: Final = ROOT / "docs" / "screenshots"
CHROMIUM: Final = Path("/usr/bin/chromium")
DESKTOP: Final[ViewportSize] = {"width": 1000, "height": 760}
PHONE: Final[ViewportSize] = {"width": 390, "height": 844}
NOW: Final = datetime(2026, 11, 24, 16, 40, tzinfo=UTC)
CLIENT_ID: Final = "1234567890-screenshots.apps.googleusercontent.com"
CLIENT_SECRET: Final = "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3"
SIGNING_KEY: Final = "screenshots-signing-key-0123456789abcdefghijklmnop"

ADMIN: Final = "ada@example.com"
MAYA: Final = "maya@example.com"
THEO: Final = "theo@example.com"
JONAS: Final = "jonas@example.com"
STRANGER: Final = "sam.stranger@gmail.example"


@attrs.frozen
class Planned:
    """One generation of the demo history."""

    email: str
    ago: timedelta
    prompt: str
    model: str
    size: str
    ratio: str


# who, how long ago (days, hours), model, size, ratio, prompt
_HISTORY: Final = """
ada    26 3  flash 1K 3:2   Rolling tea hills in morning fog, soft light
ada    19 5  flash 2K 1:8   Hanging scroll: a waterfall in a misty gorge, ink wash
ada    12 1  pro   4K 1:1   Alpine lake at night under the Milky Way, 4K wallpaper
ada     5 2  pro   2K 16:9  Fjord at sunrise seen from a ridge, cinematic, 35 mm film
ada     0 2  pro   4K 21:9  Panorama of a volcanic coastline at golden hour, long exposure
maya   24 6  pro   2K 2:3   Book cover: desert dunes under a violet dusk, room for a title
maya   17 4  pro   2K 16:9  Desert dunes under a violet dusk, wide establishing shot
maya   14 2  flash 1K 1:1   Fog rolling over a pine ridge, square, for a newsletter
maya    9 3  pro   4K 3:4   Poster: mountain pass at dawn, retro travel style
maya    4 5  pro   2K 21:9  Night market street under lanterns, wide
maya    2 7  flash 1K 1:1   Same pass at dawn, square crop for social media
maya    1 1  flash 2K 4:5   Lighthouse on a cliff at dawn, watercolour
theo   27 3  flash 1K 1:1   Misty harbour at dawn, fishing boats, muted colours
theo   22 2  flash 1K 9:16  Phone wallpaper: aurora over a frozen lake
theo   15 8  flash 1K 4:1   Website banner: pine forest ridge in fog, minimal
theo   11 1  flash 1K 4:5   Golden hour on a mountain hut terrace
theo    8 6  flash 2K 3:2   Golden hour over terraced rice fields, aerial
theo    3 2  flash 1K 4:3   Night sky over a desert campsite, long exposure stars
theo    0 5  flash 2K 16:9  Aurora over a frozen lake, wide
jonas  20 1  flash 1K 5:4   Stormy sea at dusk, oil painting
jonas  13 9  flash 1K 5:4   Stormy sea at dusk again, calmer water
jonas   6 4  flash 1K 3:2   Sunrise over misty vineyards, late autumn
"""


def parse_history(table: str) -> tuple[Planned, ...]:
    """``_HISTORY`` as values; the names are the local parts of ``example.com`` addresses."""
    planned = []
    for line in table.strip().splitlines():
        who, days, hours, model, size, ratio, prompt = line.split(maxsplit=6)
        ago = timedelta(days=int(days), hours=int(hours), minutes=len(prompt) % 50)
        planned.append(Planned(f"{who}@example.com", ago, prompt, model, size, ratio))
    return tuple(planned)


PLAN: Final = parse_history(_HISTORY)


@attrs.frozen
class Palette:
    """Colours of one scene: sky from top to horizon, sun, ridges from far to near."""

    sky_top: tuple[int, int, int]
    sky_low: tuple[int, int, int]
    sun: tuple[int, int, int]
    ridges: tuple[tuple[int, int, int], ...]
    night: bool = False


PALETTES: Final = {
    "dawn": Palette(
        (70, 96, 160),
        (250, 190, 150),
        (255, 236, 200),
        ((120, 110, 150), (80, 72, 110), (40, 36, 64)),
    ),
    "golden": Palette(
        (90, 130, 190),
        (255, 196, 110),
        (255, 240, 190),
        ((150, 100, 70), (96, 60, 44), (44, 28, 24)),
    ),
    "night": Palette(
        (6, 10, 30),
        (30, 50, 96),
        (230, 236, 255),
        ((26, 34, 60), (16, 22, 40), (8, 10, 20)),
        night=True,
    ),
    "dusk": Palette(
        (60, 40, 110),
        (236, 136, 120),
        (255, 210, 170),
        ((170, 110, 120), (120, 72, 96), (60, 36, 60)),
    ),
    "fog": Palette(
        (170, 184, 190),
        (226, 230, 226),
        (250, 250, 240),
        ((140, 160, 150), (96, 122, 108), (52, 76, 64)),
    ),
    "aurora": Palette(
        (8, 40, 50),
        (40, 170, 130),
        (220, 255, 240),
        ((30, 60, 70), (18, 40, 50), (8, 20, 28)),
        night=True,
    ),
    "day": Palette(
        (60, 130, 210),
        (190, 220, 240),
        (255, 250, 230),
        ((110, 140, 160), (70, 110, 90), (40, 70, 50)),
    ),
}
_KEYWORDS: Final = (
    ("aurora", "aurora"),
    ("night", "night"),
    ("dusk", "dusk"),
    ("golden", "golden"),
    ("dawn", "dawn"),
    ("sunrise", "dawn"),
    ("fog", "fog"),
    ("mist", "fog"),
)


def palette_for(prompt: str) -> Palette:
    """The scene's colours, from the first mood word in the prompt."""
    lowered = prompt.lower()
    return next((PALETTES[p] for word, p in _KEYWORDS if word in lowered), PALETTES["day"])


def _gradient(
    size: tuple[int, int], top: tuple[int, int, int], low: tuple[int, int, int]
) -> Image.Image:
    mask = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, low), Image.new("RGB", size, top), mask)


def _ridge(
    rng: random.Random, width: int, height: int, base: float, rough: float
) -> list[tuple[float, float]]:
    points, level, step = [], base, max(2, width // 48)
    for x in range(0, width + step, step):
        level += rng.uniform(-rough, rough) * height
        level = min(max(level, base - 0.12 * height), base + 0.12 * height)
        points.append((float(x), level))
    return [(0.0, float(height)), *points, (float(width), float(height))]


def paint_scene(width: int, height: int, palette: Palette, seed: int) -> Image.Image:
    """A landscape at ``width`` x ``height``: graded sky, sun or stars, ridges, haze, grain.

    Painted at most 1024 pixels on the long side, then scaled up, so a 4K picture takes
    a second and the grain stays soft like a photo's.
    """
    rng = random.Random(seed)
    scale = min(1.0, 1024 / max(width, height))
    size = (max(16, round(width * scale)), max(16, round(height * scale)))
    w, h = size
    image = _gradient(size, palette.sky_top, palette.sky_low)
    glow = Image.new("L", size, 0)
    draw = ImageDraw.Draw(glow)
    cx, cy, r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.18, 0.4) * h, 0.06 * min(w, h) + 4
    draw.ellipse((cx - 3 * r, cy - 3 * r, cx + 3 * r, cy + 3 * r), fill=90)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    glow = glow.filter(ImageFilter.GaussianBlur(r / 2))
    image = Image.composite(Image.new("RGB", size, palette.sun), image, glow)
    draw = ImageDraw.Draw(image)
    if palette.night:
        for _ in range(w * h // 900):
            x, y, bright = rng.uniform(0, w), rng.uniform(0, 0.6 * h), rng.randint(150, 255)
            draw.point((x, y), fill=(bright, bright, bright))
    for layer, colour in enumerate(palette.ridges):
        base = (0.55 + 0.13 * layer) * h
        draw.polygon(_ridge(rng, w, h, base, 0.02 + 0.01 * layer), fill=colour)
    grain = Image.frombytes("L", size, rng.randbytes(w * h)).convert("RGB")
    image = Image.blend(image, grain, 0.05)
    return image.resize((width, height), Image.Resampling.BICUBIC) if scale < 1 else image


def render_png(width: int, height: int, prompt: str) -> bytes:
    """The demo picture for ``prompt`` as PNG bytes (blocking)."""
    image = paint_scene(width, height, palette_for(prompt), zlib.crc32(prompt.encode()))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


@attrs.define
class SceneBackend:
    """``ImageBackend`` that paints a landscape of exactly the requested dimensions."""

    name: str = "demo"

    async def generate(self, request: BackendRequest) -> BackendImage:
        """One picture per request; the same prompt paints the same scene."""
        width, height = (request.aspect_ratio or AspectRatio.R1_1).dimensions(request.image_size)
        png = await anyio.to_thread.run_sync(render_png, width, height, request.prompt)
        return BackendImage(png, "image/png")


@attrs.define
class SettableClock:
    """``Clock`` showing whatever moment the seeding has reached."""

    moment: datetime = NOW

    def now(self) -> datetime:
        """The moment set last."""
        return self.moment


@attrs.define
class SeededIds:
    """``IdSource`` with random-looking but reproducible uuid4s."""

    rng: random.Random = attrs.Factory(lambda: random.Random(2026))

    def new_id(self) -> uuid.UUID:
        """The next uuid4 of the sequence."""
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


_: tuple[type[ImageBackend], type[Clock], type[IdSource]] = (SceneBackend, SettableClock, SeededIds)


def settings_for(root: Path, url: str) -> Settings:
    """Production-like: Google sign-in on, an allow-list, one admin."""
    return Settings(
        root=root,
        public_url=url,
        backend="gemini",
        gemini_api_key="never-used-the-scene-backend-paints",
        google_client_id=CLIENT_ID,
        google_client_secret=CLIENT_SECRET,
        jwt_signing_key=SIGNING_KEY,
        allowed_emails=frozenset({MAYA, THEO, JONAS}),
        admin_emails=frozenset({ADMIN}),
    )


async def seed(settings: Settings, clock: SettableClock, ids: SeededIds) -> None:
    """Make every planned generation through the real service, at its own time."""
    service = build_service(settings, backend=SceneBackend(), clock=clock, ids=ids)
    for item in sorted(PLAN, key=lambda p: -p.ago):
        clock.moment = NOW - item.ago
        request = GenerationRequest.parse(
            item.prompt, model=item.model, image_size=item.size, aspect_ratio=item.ratio
        )
        result = await service.generate(Identity(item.email, email_verified=True), request)
        g = result.generation
        print(
            f"  {g.created_at:%Y-%m-%d %H:%M} {g.email:18} {g.model_alias:5} {g.width}x{g.height}"
        )
    await service.set_default_model(Identity(ADMIN, email_verified=True), "pro")
    clock.moment = NOW


def sign_in(page: Page, url: str, google: FakeGoogle, email: str, start: str = "/ui/") -> None:
    """Through the login page and the (auto-approving) fake Google."""
    google.next_email = email
    page.goto(url + start)
    page.get_by_role("link", name="Sign in with Google").click()
    page.wait_for_url(re.compile(re.escape(url) + r"/ui/.*"))


def show_all_images(page: Page) -> None:
    """Scroll every lazy thumbnail in, wait until all are decoded, back to the top."""
    images = page.locator("main img")
    for index in range(images.count()):
        images.nth(index).scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth)")
    page.evaluate("() => window.scrollTo(0, 0)")


def optimise(path: Path) -> None:
    """A 256-colour palette PNG: a third of the size, indistinguishable for UI shots."""
    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


@contextmanager
def phone_and_desktop(browser: Browser) -> Iterator[dict[str, Page]]:
    """A signed-out page per width."""
    pages = {
        "": browser.new_context(viewport=DESKTOP).new_page(),
        "-phone": browser.new_context(viewport=PHONE, device_scale_factor=2).new_page(),
    }
    try:
        yield pages
    finally:
        for page in pages.values():
            page.context.close()


def photograph(browser: Browser, url: str, google: FakeGoogle, out: Path) -> list[Path]:
    """Every page the README links, at desktop and phone width."""
    shots: list[Path] = []

    def shoot(page: Page, name: str, *, full_page: bool = False) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        optimise(path)
        shots.append(path)

    with phone_and_desktop(browser) as pages:
        for suffix, page in pages.items():
            sign_in(page, url, google, ADMIN)
            page.get_by_role("heading", name="Cost per user").wait_for()
            shoot(page, f"overview{suffix}", full_page=True)
            page.goto(f"{url}/ui/gallery/{ADMIN}")
            show_all_images(page)
            shoot(page, f"gallery{suffix}")
            page.goto(f"{url}/ui/prefs")
            shoot(page, f"model-picker{suffix}", full_page=not suffix)
            page.goto(f"{url}/ui/no-such-page")
            shoot(page, f"not-found{suffix}")
            page.context.clear_cookies()
            sign_in(page, url, google, STRANGER)
            page.get_by_role("heading", name="Not allowed").wait_for()
            shoot(page, f"not-allowed{suffix}")
    return shots


def main(argv: list[str] | None = None) -> None:
    """Seed, serve, photograph."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNGs")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: install Debian's chromium package.")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="image-mcp-shots-") as folder:
        settings = settings_for(Path(folder), url)
        clock = SettableClock()
        print(f"Seeding {len(PLAN)} generations in {folder}")
        asyncio.run(seed(settings, clock, SeededIds()))
        with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as google:
            google.redirect_uris = [f"{url}/ui/auth/callback", f"{url}/auth/callback"]
            app = build_app(
                settings,
                backend=SceneBackend(),
                clock=clock,
                google=GoogleEndpoints.at(google.base_url),
            )
            with live_server(app, port=port), sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
                )
                try:
                    shots = photograph(browser, url, google, args.out)
                finally:
                    browser.close()
    for path in shots:
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"  {shown}: {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
