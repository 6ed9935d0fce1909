"""Seed data and wiring shared by the dashboard tests.

Several people with generations on different days, models, sizes and ratios, served
through the real core service on the in-memory adapters from ``image_core.testing``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import uuid
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs
import itsdangerous
from PIL import Image, ImageDraw
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from image_core.access import AccessPolicy
from image_core.budgets import Budgets
from image_core.catalog import ModelCatalog
from image_core.domain import AspectRatio, EncodedImage, Generation, ImageSize
from image_core.names import parse_image_name
from image_core.ports import ImageCodec, MetadataRepository
from image_core.service import ImageService
from image_core.testing import (
    FakeImageBackend,
    FixedClock,
    InMemoryImageStore,
    InMemoryMetadataRepository,
    InMemoryPrefStore,
    InMemoryUploadStore,
    PassthroughImageCodec,
    SequentialIds,
    make_png,
)
from image_server.dashboard import DashboardConfig, build_dashboard
from image_server.dashboard.signouts import SignOuts

CLIENT_ID = "1234567890-dash.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-dashboard-test-secret-0123456789"
SESSION_SECRET = "dashboard-test-signing-key-0123456789abcdefghijklmnop"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

ADMIN = "ada@example.com"
USER = "bob@example.com"
OTHER = "cleo@example.com"
FORMER = "dan@example.com"  # has images but is no longer allow-listed
STRANGER = "mallory@example.com"
ALLOWED = (USER, OTHER)
XSS_PROMPT = '<script>alert("pwned")</script><img src=x onerror=alert(1)> a cat in a "hat"'

_PALETTE = (
    (47, 91, 211),
    (224, 122, 31),
    (42, 157, 111),
    (194, 65, 123),
    (123, 91, 214),
    (201, 162, 39),
    (31, 155, 184),
)


class LegacyImageStore(InMemoryImageStore):
    """Images listed in ``legacy`` predate thumbnails until one is stored for them."""

    def __init__(self) -> None:
        super().__init__()
        self.legacy: set[uuid.UUID] = set()
        self.thumbnails_stored: list[uuid.UUID] = []

    def get_thumbnail(self, image_id: uuid.UUID) -> EncodedImage | None:
        """Nothing for a legacy image."""
        if image_id in self.legacy:
            return None
        return super().get_thumbnail(image_id)

    def put_thumbnail(self, image_id: uuid.UUID, thumbnail: EncodedImage) -> None:
        """A lazily made thumbnail ends the image's legacy status."""
        super().put_thumbnail(image_id, thumbnail)
        self.legacy.discard(image_id)
        self.thumbnails_stored.append(image_id)


def picture(width: int, height: int, seed: int) -> bytes:
    """A small photo-like PNG: a graded sky with grain, a sun and a hill."""
    back = _PALETTE[seed % len(_PALETTE)]
    front = _PALETTE[(seed + 3) % len(_PALETTE)]
    sky = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(
        Image.new("RGB", (width, height), back), Image.new("RGB", (width, height), "white"), sky
    )
    grain = Image.frombytes("L", (width, height), random.Random(seed).randbytes(width * height))
    image = Image.blend(image, Image.merge("RGB", (grain, grain, grain)), 0.15)
    draw = ImageDraw.Draw(image)
    side = min(width, height)
    draw.ellipse((side // 8, side // 8, side // 8 + side // 4, side // 8 + side // 4), fill="white")
    draw.polygon([(0, height), (width // 2, height // 2), (width, height)], fill=front)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


_T = TypeVar("_T")


@attrs.frozen
class Seeded:
    """The service and what was put into it, by owner."""

    service: ImageService
    images: LegacyImageStore
    prefs: InMemoryPrefStore
    by_owner: dict[str, list[Generation]]
    metadata: MetadataRepository
    uploads: InMemoryUploadStore = attrs.field(factory=InMemoryUploadStore)

    def ids_of(self, email: str) -> list[uuid.UUID]:
        """Generation ids of one owner."""
        return [g.id for g in self.by_owner.get(email, [])]


_PROMPTS = (
    "A lighthouse on a cliff at dawn, watercolour",
    "Isometric pixel-art bakery with a cat on the roof",
    "Poster that says 'OPEN SOURCE SUMMER' in bold retro type",
    "Macro photo of a dew drop on a fern",
    "A cosy reading nook, rain on the window, film grain",
    "Studio product shot of a ceramic mug, soft shadows",
)


def make_service(
    *,
    open_policy: bool = False,
    codec: ImageCodec | None = None,
    user_images: int = 27,
    pictures: bool = False,
    metadata: MetadataRepository | None = None,
    budgets: Budgets | None = None,
) -> Seeded:
    """A service with an admin, two users and a former user, each with some history."""
    policy = (
        AccessPolicy.open_policy()
        if open_policy
        else AccessPolicy(allowed=frozenset(ALLOWED), admins=frozenset({ADMIN}))
    )
    images, prefs, uploads = LegacyImageStore(), InMemoryPrefStore(), InMemoryUploadStore()
    metadata = metadata or InMemoryMetadataRepository()
    codec = codec or PassthroughImageCodec()
    catalog = ModelCatalog()
    service = ImageService(
        catalog=catalog,
        policy=policy,
        images=images,
        metadata=metadata,
        prefs=prefs,
        backend=FakeImageBackend(),
        codec=codec,
        clock=FixedClock(NOW),
        ids=SequentialIds(10_000),
        budgets=budgets or Budgets(),
        uploads=uploads,
    )
    plan: list[tuple[str, str, int, str, ImageSize, AspectRatio | None]] = []
    sizes = [ImageSize.S1K, ImageSize.S2K, ImageSize.S4K]
    ratios = [AspectRatio.R1_1, AspectRatio.R16_9, None, AspectRatio.R3_4]
    for n in range(user_images):
        prompt = XSS_PROMPT if n == 0 else _PROMPTS[n % len(_PROMPTS)]
        model = "pro" if n % 3 == 0 else "flash"
        plan.append((USER, prompt, n, model, sizes[n % 3], ratios[n % 4]))
    for n, days in enumerate((0, 2, 5, 40)):
        plan.append(
            (OTHER, f"Cleo's secret {n}: {_PROMPTS[n]}", days, "flash", ImageSize.S2K, None)
        )
    # A very wide and a very tall one: the gallery must keep their shapes.
    plan.append((ADMIN, "Ada's sketch 0", 1, "pro", ImageSize.S4K, AspectRatio.R21_9))
    plan.append((ADMIN, "Ada's sketch 1", 3, "flash", ImageSize.S4K, AspectRatio.R1_8))
    plan.append((ADMIN, "Ada's sketch 2", 4, "pro", ImageSize.S4K, AspectRatio.R1_1))
    plan.append((FORMER, "Dan's old picture", 12, "flash", ImageSize.S1K, AspectRatio.R1_1))

    by_owner: dict[str, list[Generation]] = {}
    for index, (email, prompt, days, model, size, ratio) in enumerate(plan, start=1):
        spec = catalog.resolve(model)
        width, height = ratio.dimensions(size) if ratio else (1024, 1024)
        scale = 256 / max(width, height)
        small = (max(1, round(width * scale)), max(1, round(height * scale)))
        png = picture(*small, seed=index) if pictures else make_png(*small, _PALETTE[index % 7])
        generation = Generation(
            id=uuid.UUID(int=index, version=4),
            email=email,
            prompt=prompt,
            model_alias=spec.alias,
            model_id=spec.model_id,
            image_size=size,
            aspect_ratio=ratio,
            created_at=NOW - timedelta(days=days, minutes=index),
            cost=spec.price(size),
            width=width,
            height=height,
        )
        images.put(generation.id, png, codec.thumbnail(png, 384))
        metadata.add(generation)
        by_owner.setdefault(email, []).append(generation)
    return Seeded(service, images, prefs, by_owner, metadata, uploads)


def dashboard_config(
    *,
    public_url: str = "https://dash.example.test",
    openid_configuration_url: str = "http://127.0.0.1:9/.well-known/openid-configuration",
    issuer: str = "http://127.0.0.1:9",
    auth_disabled: bool = False,
    secure_cookies: bool | None = None,
    max_age: int = 8 * 3600,
) -> DashboardConfig:
    """Config for tests; ``secure_cookies`` follows the URL scheme unless given."""
    return DashboardConfig(
        public_url=public_url,
        auth_disabled=auth_disabled,
        client_id=None if auth_disabled else CLIENT_ID,
        client_secret=None if auth_disabled else CLIENT_SECRET,
        session_secret=SESSION_SECRET,
        openid_configuration_url=openid_configuration_url,
        issuer=issuer,
        secure_cookies=public_url.startswith("https:")
        if secure_cookies is None
        else secure_cookies,
        session_max_age_seconds=max_age,
    )


def outer_app(
    seeded: Seeded,
    config: DashboardConfig,
    sign_outs: SignOuts | None = None,
    model_notices: Callable[[], tuple[str, ...]] | None = None,
) -> Starlette:
    """The dashboard mounted at /ui as the composition root does, plus /i/{name}."""

    async def full_image(request: Request) -> Response:
        image_id = parse_image_name(str(request.path_params["name"]))
        data = seeded.images.get(image_id) if image_id else None
        if data is None or not str(request.path_params["name"]).endswith(".png"):
            return Response("Not found", status_code=404)
        return Response(data, media_type="image/png")

    return Starlette(
        routes=[
            Route("/i/{name}", full_image),
            Mount(
                "/ui",
                app=build_dashboard(seeded.service, config, sign_outs, model_notices=model_notices),
            ),
        ]
    )


def sign_session(config: DashboardConfig, data: dict[str, Any], *, age: int = 0) -> str:
    """A session cookie value exactly as the dashboard signs it, optionally back-dated."""

    class BackDated(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return super().get_timestamp() - age

    payload = base64.b64encode(json.dumps(data).encode())
    return BackDated(config.session_signing_key()).sign(payload).decode()


def session_data(cookie_value: str) -> dict[str, Any]:
    """The (signed, not encrypted) payload of a session cookie."""
    payload = cookie_value.rsplit(".", 2)[0]
    data: dict[str, Any] = json.loads(base64.b64decode(payload))
    return data


def prompts_of(seeded: Seeded, emails: Iterable[str]) -> list[str]:
    """Every prompt of the given owners."""
    return [g.prompt for e in emails for g in seeded.by_owner.get(e, [])]


def run_sync(awaitable: Coroutine[Any, Any, _T]) -> _T:
    """Await a service use case from a plain test (in a thread: a loop may be running here)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, awaitable).result()
