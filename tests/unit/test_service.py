"""The ImageService use cases, run against the in-memory adapters of image_core.testing."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image_core.access import AccessPolicy
from image_core.budgets import Period
from image_core.catalog import ModelCatalog
from image_core.domain import (
    STANDARD_RATIOS,
    AspectRatio,
    BackendImage,
    BackendRequest,
    CostBasis,
    CostEstimate,
    DailySpend,
    EncodedImage,
    GalleryPage,
    Generation,
    GenerationRequest,
    GenerationResult,
    GenerationStatus,
    Grounding,
    Identity,
    ImageSize,
    TokenUsage,
    UsageReport,
)
from image_core.errors import (
    BackendError,
    BackendMisconfigured,
    BackendRefused,
    BackendUnavailable,
    InvalidImage,
    InvalidRequest,
    NotAllowed,
    NotAllowedReason,
    ReferenceNotFound,
    StorageError,
    UnknownModel,
    UnsupportedByModel,
)
from image_core.names import parse_image_name
from image_core.ports import ImageBackend, ImageStore, OpenedFile, PublicImageFiles
from image_core.service import MAX_PAGE_SIZE, ImageService
from image_core.testing import (
    FakeImageBackend,
    FixedClock,
    InMemoryImageStore,
    InMemoryMetadataRepository,
    InMemoryPrefStore,
    PassthroughImageCodec,
    ProcessedWhenWhole,
    SequentialIds,
    make_png,
    png_size,
)
from image_server.model_settings import catalog_from_environment
from image_server.references import reference_name

ALICE = Identity("alice@example.com", email_verified=True)
BOB = Identity("bob@example.com", email_verified=True)
ADMIN = Identity("admin@example.com", email_verified=True)
STRANGER = Identity("mallory@example.com", email_verified=True)
UNVERIFIED_ALICE = Identity("alice@example.com", email_verified=False)

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FIRST_ID = uuid.UUID(int=1, version=4)
KNOWN = uuid.UUID("0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The service uses asyncio.to_thread, so only asyncio is supported."""
    return "asyncio"


class FailingMetadataRepository(InMemoryMetadataRepository):
    """A metadata repository whose disk is full."""

    def add(self, generation: Generation) -> None:
        """Always fail like a full disk."""
        raise StorageError("No space left on the data volume.")


class FailingImageStore(InMemoryImageStore):
    """An image store that cannot write."""

    def put(self, image_id: uuid.UUID, png: bytes, thumbnail: EncodedImage | None) -> None:
        """Always fail like a full disk."""
        raise StorageError("No space left on the data volume.")


class LegacyImageStore:
    """An ``ImageStore`` for images that predate thumbnails: ``put`` keeps only the PNG."""

    def __init__(self, *, refuse_thumbnails: bool = False) -> None:
        self.pngs: dict[uuid.UUID, bytes] = {}
        self.thumbnails: dict[uuid.UUID, EncodedImage] = {}
        self.refuse_thumbnails = refuse_thumbnails
        self.thumbnails_put = 0

    def put(self, image_id: uuid.UUID, png: bytes, thumbnail: EncodedImage | None) -> None:
        """Keep the PNG, drop the thumbnail."""
        self.pngs[image_id] = png

    def predate_thumbnails(self) -> None:
        """Forget the thumbnails generation made, as if the images were older than them."""
        self.thumbnails.clear()
        self.thumbnails_put = 0

    def get(self, image_id: uuid.UUID) -> bytes | None:
        """The PNG or None."""
        return self.pngs.get(image_id)

    def get_thumbnail(self, image_id: uuid.UUID) -> EncodedImage | None:
        """The cached thumbnail or None."""
        return self.thumbnails.get(image_id)

    def put_thumbnail(self, image_id: uuid.UUID, thumbnail: EncodedImage) -> None:
        """Count cache writes, optionally failing them."""
        self.thumbnails_put += 1
        if self.refuse_thumbnails:
            raise StorageError("Read-only volume.")
        self.thumbnails[image_id] = thumbnail

    def exists(self, image_id: uuid.UUID) -> bool:
        """Whether the PNG is kept."""
        return image_id in self.pngs

    def delete(self, image_id: uuid.UUID) -> None:
        """Forget both."""
        self.pngs.pop(image_id, None)
        self.thumbnails.pop(image_id, None)


_: type[ImageStore] = LegacyImageStore


class CountingCodec(PassthroughImageCodec):
    """A passthrough codec that counts thumbnails made on demand."""

    def __init__(self) -> None:
        self.thumbnails_made = 0

    def thumbnail(self, png: bytes, max_side: int) -> EncodedImage:
        """Make a recognisably different thumbnail."""
        self.thumbnails_made += 1
        png_size(png)
        return EncodedImage(b"thumb:" + png[:8], "image/webp")


class TinyImageBackend(FakeImageBackend):
    """The scripted fake, but always a 4x4 PNG: for tests about money, not pixels."""

    async def generate(self, request: BackendRequest) -> BackendImage:
        """Record the request, wait ``delay_seconds``, then fail or return a tiny PNG."""
        self.requests.append(request)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.failures:
            raise self.failures.pop(0)
        grounding = self.grounding if request.search_grounding else None
        return BackendImage(make_png(4, 4), "image/png", self.token_usage, self.text, grounding)


@attrs.define
class JunkBackend:
    """A backend that answers with bytes that are not an image."""

    requests: list[BackendRequest] = attrs.field(factory=list)
    name: str = "junk"

    async def generate(self, request: BackendRequest) -> BackendImage:
        """Return garbage."""
        self.requests.append(request)
        return BackendImage(b"<html>oops</html>", "text/html")


@attrs.define
class World:
    """One service and the doubles behind it, so tests can look behind the curtain."""

    service: ImageService
    images: ImageStore
    metadata: InMemoryMetadataRepository
    prefs: InMemoryPrefStore
    backend: FakeImageBackend
    clock: FixedClock
    ids: SequentialIds

    def requests(self) -> list[BackendRequest]:
        """What reached the backend."""
        return self.backend.requests

    def nothing_stored(self) -> bool:
        """No metadata, no cost and no image under the first id the service would use."""
        usage = self.metadata.usage()
        return (
            self.metadata.users() == []
            and usage.total_count == 0
            and usage.total_cost == CostEstimate.zero()
            and not self.images.exists(FIRST_ID)
        )


def make_world(
    *,
    policy: AccessPolicy | None = None,
    catalog: ModelCatalog | None = None,
    images: ImageStore | None = None,
    metadata: InMemoryMetadataRepository | None = None,
    backend: ImageBackend | None = None,
    codec: PassthroughImageCodec | None = None,
    step: timedelta = timedelta(minutes=1),
    tiny: bool = False,
    usage: TokenUsage | None = None,
) -> World:
    """A service wired to fresh in-memory doubles (``tiny``: skip real-size PNGs).

    The backend reports ``usage`` with every image; without it, costs are list prices.
    """
    world_images = images or InMemoryImageStore()
    world_metadata = metadata or InMemoryMetadataRepository()
    prefs = InMemoryPrefStore()
    kind = TinyImageBackend if tiny else FakeImageBackend
    fake = kind(token_usage=usage)
    clock = FixedClock(START, step)
    ids = SequentialIds()
    service = ImageService(
        catalog=catalog or ModelCatalog(),
        policy=policy
        or AccessPolicy(
            allowed=frozenset({ALICE.email, BOB.email}), admins=frozenset({ADMIN.email})
        ),
        images=world_images,
        metadata=world_metadata,
        prefs=prefs,
        backend=backend or fake,
        codec=codec or PassthroughImageCodec(),
        clock=clock,
        ids=ids,
    )
    return World(service, world_images, world_metadata, prefs, fake, clock, ids)


@pytest.fixture
def world() -> World:
    """The default world: Alice and Bob allowed, one admin, tiny PNGs."""
    return make_world(tiny=True)


async def generate(
    world: World,
    identity: Identity | None = ALICE,
    prompt: str = "a red fox",
    *,
    aspect_ratio: str | None = None,
    image_size: str | None = None,
    model: str | None = None,
    references: list[str] | None = None,
) -> GenerationResult:
    """Generate through the same parse path the MCP tool uses (URLs reduced by the shell)."""
    request = GenerationRequest.parse(
        prompt,
        aspect_ratio=aspect_ratio,
        image_size=image_size,
        model=model,
        references=[reference_name(r) for r in references] if references else None,
    )
    return await world.service.generate(identity, request)


# --- the happy path ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_generate_stores_the_png_and_its_record_and_returns_the_public_name() -> None:
    """One call: PNG stored, metadata recorded, the result names {uuid}.png."""
    world = make_world()
    result = await generate(world, aspect_ratio="16:9", image_size="2K")
    generation = result.generation
    assert generation.id == FIRST_ID
    assert generation.file_name == f"{FIRST_ID}.png"
    stored = world.images.get(FIRST_ID)
    assert stored is not None
    assert png_size(stored) == (2048, 1152)
    assert world.images.get_thumbnail(FIRST_ID) == EncodedImage(stored, "image/png")
    assert result.preview == EncodedImage(stored, "image/png")
    assert world.metadata.get(FIRST_ID) == generation


@pytest.mark.anyio
async def test_the_record_holds_who_what_when_which_model_and_the_cost() -> None:
    """Everything the dashboard needs is in the stored generation."""
    world = make_world(usage=TokenUsage(5, 6, 7, 18))
    result = await generate(world, prompt="  a fox  ", aspect_ratio="3:4", image_size="2k")
    generation = result.generation
    assert generation.email == "alice@example.com"
    assert generation.prompt == "  a fox  "
    assert generation.model_alias == "flash"
    assert generation.model_id == "gemini-3.1-flash-image"
    assert generation.image_size is ImageSize.S2K
    assert generation.aspect_ratio is AspectRatio.R3_4
    assert generation.created_at == START
    # 5 input tokens at $0.50, 6 image tokens at $60, 7 thinking at $3 per million.
    assert generation.cost.usd == Decimal("0.000384")
    assert generation.cost_basis is CostBasis.USAGE
    assert generation.estimate == CostEstimate(Decimal("0.101"))
    assert generation.token_usage == TokenUsage(5, 6, 7, 18)
    assert generation.backend == "fake"
    assert (generation.width, generation.height) == (1536, 2048)
    assert generation.reference_ids == ()


@pytest.mark.anyio
async def test_the_backend_receives_exactly_the_request(world: World) -> None:
    """Prompt, configured model id, size and ratio reach the backend unchanged."""
    await generate(world, prompt="a fox", model="pro", aspect_ratio="21:9", image_size="2K")
    assert world.requests() == [
        BackendRequest("gemini-3-pro-image", "a fox", ImageSize.S2K, AspectRatio.R21_9, ())
    ]


@pytest.mark.anyio
async def test_the_owner_email_is_stored_normalised(world: World) -> None:
    """A login in capitals is stored (and later queried) in lower case."""
    result = await generate(world, Identity("ALICE@Example.COM", email_verified=True))
    assert result.generation.email == "alice@example.com"
    assert world.metadata.users() == ["alice@example.com"]


@pytest.mark.anyio
async def test_every_generation_gets_a_fresh_id(world: World) -> None:
    """Two generations never share a file."""
    first = await generate(world)
    second = await generate(world)
    assert first.generation.id != second.generation.id
    assert world.images.exists(first.generation.id)
    assert world.images.exists(second.generation.id)


@pytest.mark.anyio
async def test_the_open_policy_lets_an_anonymous_caller_generate_as_local() -> None:
    """With auth disabled, generations are owned by local@localhost."""
    world = make_world(policy=AccessPolicy.open_policy())
    result = await generate(world, None)
    assert result.generation.email == "local@localhost"


# --- choosing the model ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_without_any_choice_flash_is_used(world: World) -> None:
    """No explicit model and no default: flash."""
    result = await generate(world)
    assert result.generation.model_alias == "flash"
    assert world.requests()[0].model_id == "gemini-3.1-flash-image"


@pytest.mark.anyio
async def test_the_users_default_beats_flash(world: World) -> None:
    """A saved default applies when the request names no model."""
    await world.service.set_default_model(ALICE, "pro")
    result = await generate(world)
    assert result.generation.model_alias == "pro"
    assert world.requests()[0].model_id == "gemini-3-pro-image"


@pytest.mark.anyio
async def test_an_explicit_model_beats_the_users_default(world: World) -> None:
    """The model named in the request wins."""
    await world.service.set_default_model(ALICE, "pro")
    result = await generate(world, model="flash")
    assert result.generation.model_alias == "flash"


@pytest.mark.anyio
async def test_one_users_default_does_not_apply_to_another(world: World) -> None:
    """Bob's choice of pro leaves Alice on flash."""
    await world.service.set_default_model(BOB, "pro")
    assert (await generate(world, ALICE)).generation.model_alias == "flash"
    assert (await generate(world, BOB)).generation.model_alias == "pro"


@pytest.mark.anyio
async def test_a_stale_default_alias_falls_back_to_flash(world: World) -> None:
    """A default naming a model that no longer exists is ignored, not an error."""
    world.prefs.set_default_model(ALICE.email, "ultra")
    result = await generate(world)
    assert result.generation.model_alias == "flash"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "alias", "sent"),
    [
        ("Nano Banana Pro", "pro", "gemini-3-pro-image"),
        ("gemini-3-pro-image-preview", "pro", "gemini-3-pro-image"),
        ("GEMINI-3.1-FLASH-IMAGE-PREVIEW", "flash", "gemini-3.1-flash-image"),
        ("nano banana 2", "flash", "gemini-3.1-flash-image"),
    ],
)
async def test_any_spelling_of_a_model_sends_the_configured_id(
    world: World, name: str, alias: str, sent: str
) -> None:
    """Display names and retired ids are resolved; the dead preview id is never sent."""
    result = await generate(world, model=name)
    assert result.generation.model_alias == alias
    assert result.generation.model_id == sent
    assert world.requests()[0].model_id == sent


@pytest.mark.anyio
async def test_an_unknown_model_is_refused_before_the_backend(world: World) -> None:
    """UnknownModel lists the choices and nothing is sent or stored."""
    with pytest.raises(UnknownModel, match="Valid choices"):
        await generate(world, model="gemini-2.0-flash")
    assert world.requests() == []
    assert world.nothing_stored()


@pytest.mark.anyio
async def test_configured_overrides_decide_the_id_sent_and_the_cost() -> None:
    """IMG_MODEL_FLASH and IMG_COST_FLASH_1K flow through to the backend and the record."""
    catalog = catalog_from_environment(
        {"IMG_MODEL_FLASH": "gemini-4-flash-image", "IMG_COST_FLASH_1K": "$0.05"}
    )
    world = make_world(catalog=catalog)
    result = await generate(world, model="gemini-3.1-flash-image-preview")
    assert world.requests()[0].model_id == "gemini-4-flash-image"
    assert result.generation.model_id == "gemini-4-flash-image"
    assert result.generation.cost.usd == Decimal("0.05")


# --- cost --------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "size", "price"),
    [
        ("flash", "1K", "0.067"),
        ("flash", "2K", "0.101"),
        ("flash", "4K", "0.151"),
        ("pro", "1K", "0.134"),
        ("pro", "2K", "0.134"),
        ("pro", "4K", "0.24"),
    ],
)
async def test_the_cost_is_the_list_price_of_the_chosen_model_at_the_size(
    model: str, size: str, price: str
) -> None:
    """Each generation is charged its model's price for its size."""
    world = make_world(tiny=True)
    result = await generate(world, model=model, image_size=size)
    assert result.generation.cost == CostEstimate(Decimal(price))
    assert (await world.service.usage_for(ALICE)).total_cost == CostEstimate(Decimal(price))


# --- model capabilities ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("ratio", ["1:4", "4:1", "1:8", "8:1"])
async def test_a_ratio_pro_does_not_support_is_refused_listing_pros_ratios(
    world: World, ratio: str
) -> None:
    """The message names the model and lists exactly the ratios it does take."""
    with pytest.raises(InvalidRequest) as caught:
        await generate(world, model="pro", aspect_ratio=ratio)
    message = caught.value.message
    assert "pro" in message
    assert ratio in message
    listed = message.rsplit("supports:", 1)[1].strip(" .").split(", ")
    assert listed == ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
    assert {AspectRatio(r) for r in listed} == STANDARD_RATIOS
    assert world.requests() == []
    assert world.nothing_stored()


@pytest.mark.anyio
async def test_a_users_default_of_pro_also_refuses_extreme_ratios(world: World) -> None:
    """The capability check applies to the model actually chosen, not only explicit ones."""
    await world.service.set_default_model(ALICE, "pro")
    with pytest.raises(InvalidRequest, match="1:8"):
        await generate(world, aspect_ratio="1:8")
    assert world.requests() == []


@pytest.mark.anyio
async def test_flash_takes_the_extreme_ratios() -> None:
    """1:8 on flash is generated at 128x1024."""
    world = make_world()
    result = await generate(world, aspect_ratio="1:8")
    assert (result.generation.width, result.generation.height) == (128, 1024)


# --- access ------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("identity", "hint", "reason"),
    [
        (
            STRANGER,
            "mallory@example.com is signed in but not on this server's allow-list.",
            NotAllowedReason.NOT_LISTED,
        ),
        (
            UNVERIFIED_ALICE,
            "The account alice@example.com has no verified email address.",
            NotAllowedReason.UNVERIFIED,
        ),
        (
            None,
            "Sign in with an account that has an email address to generate images.",
            NotAllowedReason.NOT_SIGNED_IN,
        ),
        (
            Identity("\u212alice@example.com", email_verified=True),
            "allow-list",
            NotAllowedReason.NOT_LISTED,
        ),
    ],
)
async def test_a_caller_who_may_not_generate_gets_not_allowed_and_nothing_happens(
    world: World, identity: Identity | None, hint: str, reason: NotAllowedReason
) -> None:
    """Refused with a clear message in domain words; nothing sent, nothing stored, no id used."""
    with pytest.raises(NotAllowed) as caught:
        await generate(world, identity)
    assert hint in caught.value.message
    assert caught.value.reason is reason
    assert caught.value.email == (identity.email if identity else None)
    assert not any(word in caught.value.message for word in ("IMG_", "Google", "/i/"))
    assert world.requests() == []
    assert world.nothing_stored()
    assert world.ids.counter == 0


@pytest.mark.anyio
async def test_access_is_checked_before_the_model_name(world: World) -> None:
    """A stranger learns nothing about the catalog from an error message."""
    with pytest.raises(NotAllowed):
        await generate(world, STRANGER, model="no-such-model")


@pytest.mark.anyio
async def test_access_is_checked_before_references_are_read(world: World) -> None:
    """A stranger cannot probe which image names exist."""
    first = await generate(world)
    with pytest.raises(NotAllowed):
        await generate(world, STRANGER, references=[first.generation.file_name])
    with pytest.raises(NotAllowed):
        await generate(world, STRANGER, references=["nope.png"])
    assert len(world.requests()) == 1


# --- reference images --------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "spelling",
    [
        "{id}.png",
        "{id}",
        "  {id}.png  ",
    ],
)
async def test_a_reference_by_name_or_uuid_reaches_the_backend_as_bytes(
    world: World, spelling: str
) -> None:
    """The earlier PNG itself is sent, and the new record remembers where it came from."""
    first = await generate(world)
    first_png = world.images.get(first.generation.id)
    second = await generate(
        world, prompt="same, at night", references=[spelling.format(id=first.generation.id)]
    )
    sent = world.requests()[-1].references
    assert len(sent) == 1
    assert sent[0].id == first.generation.id
    assert sent[0].data == first_png
    assert sent[0].mime_type == "image/png"
    assert second.generation.reference_ids == (first.generation.id,)


@pytest.mark.anyio
async def test_several_references_keep_their_order(world: World) -> None:
    """References are sent in the order given."""
    one = (await generate(world)).generation.id
    two = (await generate(world)).generation.id
    await generate(world, references=[f"{two}.png", str(one)])
    assert [r.id for r in world.requests()[-1].references] == [two, one]


def _store_known_image(world: World) -> bytes:
    """Put an earlier generation's PNG under KNOWN (an id with hex letters in it)."""
    png = make_png(8, 8)
    world.images.put(KNOWN, png, EncodedImage(png, "image/png"))
    return png


_KNOWN = str(KNOWN)
BAD_REFERENCE_NAMES = [
    "cat.png",
    "not a name",
    "5a0c6a2e-0d4b-4c1e-9f3a-7b2d1e0c9a88.png",
    "5a0c6a2e-0d4b-4c1e-9f3a-7b2d1e0c9a88",
    f"{_KNOWN.upper()}.png",
    _KNOWN.upper(),
    f"{_KNOWN}.PNG",
    f"{_KNOWN}.json",
    f"{_KNOWN}.png.png",
    f"{_KNOWN}.png/",
    f"{_KNOWN}.png\x00",
    f"{_KNOWN}.png?raw=1",
    f"{_KNOWN.replace('-', '')}.png",
    f"{{{_KNOWN}}}.png",
    f"urn:uuid:{_KNOWN}",
    "3e603488-e82d-11f1-a0c6-02fc00000001.png",
    f"{_KNOWN[:-1]}.png",
    "../../etc/passwd",
    "..\\..\\prefs.json",
    f"..\\{_KNOWN}.png",
    "/etc/passwd",
    "prefs.json",
    "https://images.example.com/i/",
    f"https://images.example.com/i/{_KNOWN}.jpg",
    "%2e%2e%2fprefs.json",
]


@pytest.mark.anyio
@pytest.mark.parametrize("name", BAD_REFERENCE_NAMES)
async def test_a_reference_that_is_not_an_earlier_generation_is_refused_before_the_backend(
    world: World, name: str
) -> None:
    """Unknown, malformed, upper-case and traversal names: ReferenceNotFound, nothing sent."""
    assert _KNOWN.upper() != _KNOWN
    _store_known_image(world)
    with pytest.raises(ReferenceNotFound):
        await generate(world, references=[f"{_KNOWN}.png", name])
    assert world.requests() == []
    assert world.metadata.users() == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "template",
    [
        "../{id}.png",
        "../../../etc/{id}.png",
        "{id}.json/../{id}",
        "/srv/images/{id}.png",
        "file:///srv/images/{id}.png",
    ],
)
async def test_a_path_wrapped_around_an_existing_image_name_is_refused(
    world: World, template: str
) -> None:
    """Only a name or a bare uuid is accepted by the core, never a file-system path."""
    _store_known_image(world)
    with pytest.raises(ReferenceNotFound):
        await generate(world, references=[template.format(id=KNOWN)])
    assert world.requests() == []


@pytest.mark.anyio
async def test_a_stored_file_that_is_not_an_image_is_refused_as_a_reference(world: World) -> None:
    """A reference whose bytes fail the codec check is InvalidImage, before the backend."""
    broken = uuid.uuid4()
    world.images.put(broken, b"definitely not a png", EncodedImage(b"", "image/png"))
    with pytest.raises(InvalidImage, match=str(broken)):
        await generate(world, references=[f"{broken}.png"])
    assert world.requests() == []


def test_parse_image_name_accepts_only_lower_case_uuid4_names() -> None:
    """The two accepted spellings give the uuid; anything else (a URL too) gives None."""
    value = uuid.UUID("0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09")
    assert parse_image_name(f"{value}.png") == value
    assert parse_image_name(str(value)) == value
    assert parse_image_name(f"https://x.example/i/{value}.png") is None
    assert parse_image_name(f"{value}".upper()) is None
    assert parse_image_name(str(uuid.uuid1())) is None
    assert parse_image_name("") is None


# --- failures leave nothing behind ---------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [
        BackendRefused("The prompt was blocked by the safety filter."),
        BackendUnavailable("Gemini is overloaded; try again in a minute."),
        BackendMisconfigured("Model not found: set IMG_MODEL_FLASH to the current id."),
        BackendError("No image in the answer."),
    ],
)
async def test_a_backend_error_propagates_and_nothing_is_stored(
    world: World, failure: BackendError
) -> None:
    """The same error reaches the caller; no PNG, no record, no cost."""
    world.backend.failures.append(failure)
    with pytest.raises(BackendError) as caught:
        await generate(world)
    assert caught.value is failure
    assert len(world.requests()) == 1
    assert world.nothing_stored()
    assert (await world.service.usage_for(ADMIN)).total_cost == CostEstimate.zero()


@pytest.mark.anyio
async def test_a_full_disk_before_the_call_sends_nothing_and_keeps_nothing() -> None:
    """The pending record cannot be written: the request is never sent, so nothing is owed."""
    world = make_world(metadata=FailingMetadataRepository())
    with pytest.raises(StorageError, match="No space"):
        await generate(world)
    assert world.requests() == []
    assert world.nothing_stored()


@pytest.mark.anyio
async def test_a_failed_image_write_records_the_paid_call_as_failed() -> None:
    """Disk full while writing the PNG: no image, but the call was paid, so it is counted."""
    world = make_world(images=FailingImageStore())
    with pytest.raises(StorageError):
        await generate(world)
    assert not world.images.exists(FIRST_ID)
    record = world.metadata.get(FIRST_ID)
    assert record is not None
    assert record.status is GenerationStatus.FAILED
    assert record.failure is not None
    assert "No space" in record.failure
    usage = world.metadata.usage()
    assert usage.total_count == 0
    assert usage.total_cost == CostEstimate(Decimal("0.067"))
    assert world.metadata.page_for_user(ALICE.email, 0, 10).items == ()


@pytest.mark.anyio
async def test_an_unusable_backend_image_is_a_backend_error_not_the_callers_fault() -> None:
    """Bytes the codec rejects become BackendError (not InvalidRequest); the paid call counts."""
    backend = JunkBackend()
    world = make_world(backend=backend)
    with pytest.raises(BackendError) as caught:
        await generate(world)
    assert not isinstance(caught.value, InvalidRequest)
    assert "unusable image" in caught.value.message
    assert len(backend.requests) == 1
    assert not world.images.exists(FIRST_ID)
    record = world.metadata.get(FIRST_ID)
    assert record is not None
    assert record.status is GenerationStatus.FAILED
    assert world.metadata.usage().total_count == 0
    assert world.metadata.usage().total_cost == CostEstimate(Decimal("0.067"))


@pytest.mark.anyio
async def test_a_failure_does_not_spoil_the_next_generation(world: World) -> None:
    """After a transient error the next call works normally."""
    world.backend.failures.append(BackendUnavailable("busy"))
    with pytest.raises(BackendUnavailable):
        await generate(world)
    result = await generate(world)
    assert world.metadata.get(result.generation.id) == result.generation


# --- queries and visibility ----------------------------------------------------------------------


async def _populate(world: World) -> None:
    """Alice: two flash 1K; Bob: one pro 4K."""
    await generate(world, ALICE, prompt="one")
    await generate(world, ALICE, prompt="two")
    await generate(world, BOB, prompt="three", model="pro", image_size="4K")


@pytest.mark.anyio
async def test_an_admin_sees_everyones_usage_largest_spend_first(world: World) -> None:
    """Bob's $0.24 row comes before Alice's $0.134; the total is exact."""
    await _populate(world)
    report = await world.service.usage_for(ADMIN)
    assert [(r.email, r.image_count, r.cost.usd) for r in report.rows] == [
        ("bob@example.com", 1, Decimal("0.24")),
        ("alice@example.com", 2, Decimal("0.134")),
    ]
    assert report.total_count == 3
    assert report.total_cost.usd == Decimal("0.374")


@pytest.mark.anyio
async def test_a_user_sees_only_their_own_usage(world: World) -> None:
    """Alice's report has one row: hers."""
    await _populate(world)
    report = await world.service.usage_for(ALICE)
    assert [r.email for r in report.rows] == ["alice@example.com"]
    assert report.total_cost.usd == Decimal("0.134")


@pytest.mark.anyio
@pytest.mark.parametrize("viewer", [STRANGER, UNVERIFIED_ALICE, None])
async def test_a_viewer_who_is_not_allowed_sees_no_usage_spend_or_users(
    world: World, viewer: Identity | None
) -> None:
    """Strangers, unverified logins and anonymous viewers see nothing at all."""
    await _populate(world)
    assert (await world.service.usage_for(viewer)).rows == ()
    assert await world.service.daily_spend_for(viewer) == []
    assert await world.service.visible_users(viewer) == []


@pytest.mark.anyio
async def test_visible_users_are_everyone_for_an_admin_and_oneself_for_a_user(
    world: World,
) -> None:
    """Admins list every user with images; a user lists only themself."""
    await _populate(world)
    assert await world.service.visible_users(ADMIN) == ["alice@example.com", "bob@example.com"]
    assert await world.service.visible_users(BOB) == ["bob@example.com"]


@pytest.mark.anyio
async def test_daily_spend_respects_visibility_and_the_day_window() -> None:
    """Spend is per UTC day and person, within the window, limited to what the viewer may see."""
    world = make_world(step=timedelta(days=1), tiny=True)
    await generate(world, ALICE)  # day 0
    await generate(world, BOB, model="pro")  # day 1
    await generate(world, ALICE, image_size="2K")  # day 2
    world.clock.step = timedelta(0)  # "now" is day 3
    everything = await world.service.daily_spend_for(ADMIN)
    assert [(d.day, d.email, d.cost.usd) for d in everything] == [
        ("2026-11-24", "alice@example.com", Decimal("0.067")),
        ("2026-11-25", "bob@example.com", Decimal("0.134")),
        ("2026-11-26", "alice@example.com", Decimal("0.101")),
    ]
    mine = await world.service.daily_spend_for(ALICE)
    assert {d.email for d in mine} == {"alice@example.com"}
    assert len(mine) == 2
    recent = await world.service.daily_spend_for(ADMIN, days=2)
    assert [d.day for d in recent] == ["2026-11-26"]


@pytest.mark.anyio
async def test_a_user_reads_their_own_gallery_newest_first(world: World) -> None:
    """Prompts come back in reverse order of generation."""
    await _populate(world)
    page = await world.service.gallery(ALICE, "alice@example.com")
    assert [g.prompt for g in page.items] == ["two", "one"]
    assert page.total == 2
    assert not page.has_next


@pytest.mark.anyio
async def test_the_gallery_owner_is_matched_case_insensitively(world: World) -> None:
    """ "ALICE@Example.com" is Alice's gallery."""
    await _populate(world)
    assert (await world.service.gallery(ALICE, "ALICE@Example.com")).total == 2


@pytest.mark.anyio
@pytest.mark.parametrize("viewer", [BOB, STRANGER, UNVERIFIED_ALICE, None])
async def test_nobody_but_alice_and_admins_reads_alices_gallery(
    world: World, viewer: Identity | None
) -> None:
    """Another user's gallery is NotAllowed, whatever the query."""
    await _populate(world)
    with pytest.raises(NotAllowed):
        await world.service.gallery(viewer, "alice@example.com")
    with pytest.raises(NotAllowed):
        await world.service.gallery(viewer, "Alice@Example.com", offset=-1, limit=0)


@pytest.mark.anyio
async def test_an_admin_reads_any_gallery(world: World) -> None:
    """Admins see everyone's images."""
    await _populate(world)
    assert [g.prompt for g in (await world.service.gallery(ADMIN, "bob@example.com")).items] == [
        "three"
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0), (0, -5), (0, MAX_PAGE_SIZE + 1)])
async def test_gallery_paging_outside_the_limits_is_an_invalid_request(
    world: World, offset: int, limit: int
) -> None:
    """Pages start at 0 and hold 1 to 200 images."""
    with pytest.raises(InvalidRequest, match=str(MAX_PAGE_SIZE)):
        await world.service.gallery(ALICE, "alice@example.com", offset=offset, limit=limit)


@pytest.mark.anyio
async def test_gallery_pages_slice_the_newest_first_list(world: World) -> None:
    """Five images in pages of two: 2, 2, 1, then an empty page past the end."""
    for i in range(5):
        await generate(world, prompt=f"p{i}")
    service = world.service
    pages = [
        await service.gallery(ALICE, "alice@example.com", offset=o, limit=2) for o in (0, 2, 4, 6)
    ]
    assert [[g.prompt for g in p.items] for p in pages] == [["p4", "p3"], ["p2", "p1"], ["p0"], []]
    assert [p.has_next for p in pages] == [True, True, False, False]
    assert all(p.total == 5 for p in pages)
    assert (await service.gallery(ALICE, "alice@example.com", limit=MAX_PAGE_SIZE)).total == 5


# --- thumbnails -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_thumbnail_stored_at_generation_is_served_as_is() -> None:
    """No work is done when the thumbnail already exists."""
    codec = CountingCodec()
    world = make_world(codec=codec)
    result = await generate(world)
    assert await world.service.thumbnail(ALICE, result.generation.id) == world.images.get_thumbnail(
        result.generation.id
    )
    assert codec.thumbnails_made == 0


@pytest.mark.anyio
async def test_a_missing_thumbnail_is_made_once_then_cached() -> None:
    """Images that predate thumbnails get one on first view, reused afterwards."""
    codec = CountingCodec()
    store = LegacyImageStore()
    world = make_world(codec=codec, images=store)
    image_id = (await generate(world)).generation.id
    store.predate_thumbnails()
    assert store.get_thumbnail(image_id) is None
    first = await world.service.thumbnail(ALICE, image_id)
    second = await world.service.thumbnail(ADMIN, image_id)
    assert first is not None
    assert first.mime_type == "image/webp"
    assert first == second
    assert codec.thumbnails_made == 1
    assert store.thumbnails_put == 1
    assert store.get_thumbnail(image_id) == first


@pytest.mark.anyio
async def test_a_thumbnail_that_cannot_be_cached_is_still_served() -> None:
    """Serving matters more than caching: a failing cache write is swallowed."""
    codec = CountingCodec()
    world = make_world(codec=codec, images=LegacyImageStore(refuse_thumbnails=True))
    image_id = (await generate(world)).generation.id
    assert await world.service.thumbnail(ALICE, image_id) is not None
    assert await world.service.thumbnail(ALICE, image_id) is not None
    assert codec.thumbnails_made == 2


@pytest.mark.anyio
@pytest.mark.parametrize("viewer", [BOB, STRANGER, None])
async def test_another_users_thumbnail_is_not_served(world: World, viewer: Identity | None) -> None:
    """Thumbnails follow the same visibility as galleries."""
    image_id = (await generate(world, ALICE)).generation.id
    assert await world.service.thumbnail(viewer, image_id) is None


@pytest.mark.anyio
async def test_a_thumbnail_of_an_unknown_image_is_none(world: World) -> None:
    """Unknown ids yield nothing rather than an error."""
    assert await world.service.thumbnail(ADMIN, uuid.uuid4()) is None


@pytest.mark.anyio
async def test_a_thumbnail_whose_png_is_gone_is_none() -> None:
    """A record without its PNG (and no cached thumbnail) yields nothing."""
    store = LegacyImageStore()
    world = make_world(images=store)
    image_id = (await generate(world)).generation.id
    store.predate_thumbnails()
    store.pngs.clear()
    assert await world.service.thumbnail(ALICE, image_id) is None


# --- default model --------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("spelling", "alias"),
    [
        ("pro", "pro"),
        (" PRO ", "pro"),
        ("Nano Banana Pro", "pro"),
        ("gemini-3-pro-image", "pro"),
        ("gemini-3-pro-image-preview", "pro"),
        ("nano banana 2", "flash"),
        ("gemini-3.1-flash-image-preview", "flash"),
    ],
)
async def test_set_default_model_stores_the_alias_for_any_spelling(
    world: World, spelling: str, alias: str
) -> None:
    """Whatever spelling is chosen, prefs keep the stable alias."""
    spec = await world.service.set_default_model(ALICE, spelling)
    assert spec.alias == alias
    assert world.prefs.get_default_model("alice@example.com") == alias
    assert (await world.service.default_model_for("alice@example.com")).alias == alias


@pytest.mark.anyio
async def test_set_default_model_keys_prefs_by_normalised_email(world: World) -> None:
    """A capitalised login and its lower-case form share one preference."""
    await world.service.set_default_model(Identity("Alice@EXAMPLE.com", email_verified=True), "pro")
    assert world.prefs.get_default_model("alice@example.com") == "pro"


@pytest.mark.anyio
@pytest.mark.parametrize("identity", [STRANGER, UNVERIFIED_ALICE, None])
async def test_set_default_model_requires_an_allowed_identity(
    world: World, identity: Identity | None
) -> None:
    """Only people who may generate may choose a default; nothing is stored otherwise."""
    with pytest.raises(NotAllowed):
        await world.service.set_default_model(identity, "pro")
    assert world.prefs.get_default_model("alice@example.com") is None
    assert world.prefs.get_default_model("mallory@example.com") is None
    assert world.prefs.get_default_model("local@localhost") is None


@pytest.mark.anyio
async def test_set_default_model_refuses_an_unknown_model_and_keeps_the_old_choice(
    world: World,
) -> None:
    """UnknownModel, and the previous default survives."""
    await world.service.set_default_model(ALICE, "pro")
    with pytest.raises(UnknownModel):
        await world.service.set_default_model(ALICE, "ultra")
    assert world.prefs.get_default_model("alice@example.com") == "pro"


# --- properties ------------------------------------------------------------------------------

_CALLS = st.lists(
    st.tuples(
        st.sampled_from([ALICE, BOB, ADMIN]),
        st.sampled_from(["flash", "pro", "Nano Banana Pro", "gemini-3.1-flash-image-preview"]),
        st.sampled_from(["1K", "2K", "4K", "2k"]),
    ),
    max_size=12,
)


@pytest.mark.anyio
@settings(max_examples=40, deadline=None)
@given(calls=_CALLS)
async def test_usage_totals_equal_the_sum_of_generated_costs(
    calls: list[tuple[Identity, str, str]],
) -> None:
    """For any sequence of generations, every user's row and the total add up exactly."""
    world = make_world(tiny=True)
    expected_cost: dict[str, Decimal] = defaultdict(Decimal)
    expected_count: dict[str, int] = defaultdict(int)
    for identity, model, size in calls:
        result = await generate(world, identity, model=model, image_size=size)
        spec = ModelCatalog().resolve(model)
        assert result.generation.cost == spec.price(ImageSize(size.upper()))
        expected_cost[identity.email] += result.generation.cost.usd
        expected_count[identity.email] += 1
    report = await world.service.usage_for(ADMIN)
    assert {r.email: r.cost.usd for r in report.rows} == dict(expected_cost)
    assert {r.email: r.image_count for r in report.rows} == dict(expected_count)
    assert report.total_cost.usd == sum(expected_cost.values(), Decimal(0))
    assert report.total_count == len(calls)
    costs = [r.cost.usd for r in report.rows]
    assert costs == sorted(costs, reverse=True)
    for identity in (ALICE, BOB):
        own = await world.service.usage_for(identity)
        assert own.total_cost.usd == expected_cost.get(identity.email, Decimal(0))


# --- email normalisation has one owner: the service ------------------------------------------


class EmailRecordingMetadata(InMemoryMetadataRepository):
    """Remembers every email the service hands to the metadata port."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def add(self, generation: Generation) -> None:
        """Note the record's owner, then store it."""
        self.seen.append(generation.email)
        super().add(generation)

    def page_for_user(
        self, email: str, offset: int, limit: int, containing: str | None = None
    ) -> GalleryPage:
        """Note the owner asked for."""
        self.seen.append(email)
        return super().page_for_user(email, offset, limit, containing)

    def usage(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> UsageReport:
        """Note the emails asked for."""
        self.seen.extend(emails or ())
        return super().usage(emails, period)

    def daily_spend(self, since: date, emails: Collection[str] | None = None) -> list[DailySpend]:
        """Note the emails asked for."""
        self.seen.extend(emails or ())
        return super().daily_spend(since, emails)


class EmailRecordingPrefs(InMemoryPrefStore):
    """Remembers every email the service hands to the pref port."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def get_default_model(self, email: str) -> str | None:
        """Note the email, then look it up."""
        self.seen.append(email)
        return super().get_default_model(email)

    def set_default_model(self, email: str, alias: str) -> None:
        """Note the email, then store the choice."""
        self.seen.append(email)
        super().set_default_model(email, alias)


@pytest.mark.anyio
async def test_every_email_reaching_a_port_is_already_normalised() -> None:
    """Mixed-case logins and queries reach the metadata and pref ports in lower case."""
    metadata, prefs = EmailRecordingMetadata(), EmailRecordingPrefs()
    world = make_world(tiny=True, metadata=metadata)
    service = attrs.evolve(world.service, prefs=prefs)
    shouting = Identity("  ALICE@Example.COM ", email_verified=True)
    await service.set_default_model(shouting, "pro")
    result = await service.generate(shouting, GenerationRequest.parse("a fox"))
    assert result.generation.model_alias == "pro"
    assert (await service.default_model_for("Alice@EXAMPLE.com")).alias == "pro"
    assert (await service.gallery(shouting, " ALICE@example.com")).total == 1
    await service.usage_for(shouting)
    await service.daily_spend_for(shouting)
    assert set(metadata.seen) == {"alice@example.com"}
    assert set(prefs.seen) == {"alice@example.com"}
    assert len(metadata.seen) >= 4
    assert len(prefs.seen) >= 3


@pytest.mark.anyio
async def test_the_default_model_is_found_whatever_the_spelling_of_the_email(
    world: World,
) -> None:
    """One person, however their email is capitalised or padded, has one default."""
    alice = Identity("Alice@Example.com", email_verified=True)
    await world.service.set_default_model(alice, "pro")
    for spelling in ("alice@example.com", " ALICE@EXAMPLE.COM ", "aLiCe@example.com"):
        assert (await world.service.default_model_for(spelling)).alias == "pro"


# --- the small queries drivers ask instead of reading the ports -----------------------------


def test_the_offered_models_are_the_catalog_in_order(world: World) -> None:
    """The picker and the tool text list exactly the catalog's models, in its order."""
    assert world.service.offered_models() == tuple(ModelCatalog())


def test_today_is_the_clocks_utc_date() -> None:
    """The chart's right edge comes from the service's clock."""
    world = make_world(step=timedelta(0))
    assert world.service.today() == START.date()


@pytest.mark.parametrize(
    ("identity", "may", "admin"),
    [(ALICE, True, False), (ADMIN, True, True), (STRANGER, False, False), (None, False, False)],
)
def test_the_access_decisions_a_view_needs_follow_the_policy(
    world: World, identity: Identity | None, may: bool, admin: bool
) -> None:
    """``may_generate`` and ``is_admin`` answer as the policy does."""
    assert world.service.may_generate(identity) is may
    assert world.service.is_admin(identity) is admin
    assert world.service.access_is_open is False


class OneFile:
    """A ``PublicImageFiles`` double that records the names asked for."""

    def __init__(self, opened: OpenedFile | None) -> None:
        self.opened = opened
        self.asked: list[str] = []

    def open_png(self, name: str) -> OpenedFile | None:
        """The scripted answer."""
        self.asked.append(name)
        return self.opened


_files: type[PublicImageFiles] = OneFile


@pytest.mark.anyio
async def test_open_public_image_hands_back_what_the_public_files_opened() -> None:
    """The route streams exactly what the store's opener returned; the name is passed as is."""
    opened = (7, os.stat(__file__))
    files = OneFile(opened)
    service = attrs.evolve(make_world().service, public_files=files)
    assert await service.open_public_image(f"{KNOWN}.png") == opened
    assert files.asked == [f"{KNOWN}.png"]


@pytest.mark.anyio
async def test_open_public_image_is_none_without_public_files_or_a_file() -> None:
    """A library service without a file store, or a name the store refuses, serves nothing."""
    assert await make_world().service.open_public_image(f"{KNOWN}.png") is None
    service = attrs.evolve(make_world().service, public_files=OneFile(None))
    assert await service.open_public_image("../prefs.json") is None


# --- the lineup: who can do what, and models that are gone ---------------------------------


@pytest.mark.anyio
async def test_a_chosen_default_that_cannot_do_it_says_so_and_names_who_can(world: World) -> None:
    """Default pro, 1:8 asked: the error is marked as the person's choice and names flash."""
    await world.service.set_default_model(ALICE, "pro")
    with pytest.raises(UnsupportedByModel) as caught:
        await generate(world, aspect_ratio="1:8")
    assert caught.value.chosen_default
    assert caught.value.message.startswith("Your default model pro (gemini-3-pro-image)")
    assert "'flash' (Nano Banana 2) can: pass model 'flash', or change your default" in (
        caught.value.message
    )
    assert world.requests() == []


@pytest.mark.anyio
async def test_a_named_model_that_cannot_do_it_is_not_called_a_default(world: World) -> None:
    """pro asked for 512 by name: flash is named; nothing about a default."""
    with pytest.raises(UnsupportedByModel) as caught:
        await generate(world, model="pro", image_size="512")
    assert not caught.value.chosen_default
    assert "image size 512 ('flash' (Nano Banana 2) can" in caught.value.message
    assert "use 1K, 2K, 4K" in caught.value.message
    assert "default" not in caught.value.message


@pytest.mark.anyio
async def test_the_catalog_default_is_not_the_persons_choice() -> None:
    """No preference: lite asked by nobody, flash is the catalog's default, not theirs."""
    catalog = ModelCatalog(default_alias="lite")
    lite_world = make_world(catalog=catalog, tiny=True)
    with pytest.raises(UnsupportedByModel) as caught:
        await generate(lite_world, image_size="2K")
    assert not caught.value.chosen_default
    assert "'flash' (Nano Banana 2) or 'pro' (Nano Banana Pro) can" in caught.value.message


FLASH_ID = "gemini-3.1-flash-image"


@attrs.frozen
class GoneModels:
    """A ``ModelAvailability`` whose last check found ``gone`` missing."""

    gone: frozenset[str]

    def missing(self, model_id: str) -> str | None:
        return f"{model_id} is gone: set IMG_MODEL_FLASH" if model_id in self.gone else None


@pytest.mark.anyio
async def test_a_model_the_last_check_found_gone_fails_before_any_call() -> None:
    """The hint is the error; nothing is sent, recorded or billed; other models still run."""
    world = make_world(tiny=True)
    service = attrs.evolve(world.service, availability=GoneModels(frozenset({FLASH_ID})))
    world = attrs.evolve(world, service=service)
    with pytest.raises(BackendMisconfigured, match="gemini-3.1-flash-image is gone"):
        await generate(world)
    assert world.requests() == []
    assert world.nothing_stored()
    result = await generate(world, model="pro")
    assert result.generation.model_alias == "pro"


class WatchedCodec(PassthroughImageCodec):
    """Keeps each processing it begins, to see what a backend wrote into it."""

    def __init__(self) -> None:
        self.begun: list[ProcessedWhenWhole] = []

    def begin(self, preview_max_side: int, thumbnail_max_side: int) -> ProcessedWhenWhole:
        processing = ProcessedWhenWhole(
            lambda data: self.process(data, preview_max_side, thumbnail_max_side)
        )
        self.begun.append(processing)
        return processing


@attrs.define
class PlainBackend:
    """A backend with ``generate`` only, as library users write them."""

    name: str = "plain"

    async def generate(self, request: BackendRequest) -> BackendImage:
        return BackendImage(make_png(8, 8), "image/png")


@pytest.mark.anyio
@pytest.mark.parametrize("streams", [True, False])
async def test_a_streaming_backend_feeds_the_codec_and_a_plain_one_still_works(
    streams: bool,
) -> None:
    codec = WatchedCodec()
    backend: ImageBackend = FakeImageBackend() if streams else PlainBackend()
    service = ImageService(
        catalog=ModelCatalog(),
        policy=AccessPolicy.open_policy(),
        images=InMemoryImageStore(),
        metadata=InMemoryMetadataRepository(),
        prefs=InMemoryPrefStore(),
        backend=backend,
        codec=codec,
        clock=FixedClock(),
        ids=SequentialIds(),
    )
    result = await service.generate(
        Identity("ada@example.com", email_verified=True), GenerationRequest.parse("a fox")
    )
    [processing] = codec.begun
    assert processing.written == (len(result.preview.data) if streams else 0)
    assert processing.closed


@pytest.mark.anyio
async def test_a_stale_preference_is_not_called_the_persons_choice() -> None:
    """A remembered alias the catalog no longer has: the catalog default applies, and says so."""
    world = make_world(catalog=ModelCatalog(default_alias="lite"), tiny=True)
    world.prefs.set_default_model("alice@example.com", "retired-alias")
    with pytest.raises(UnsupportedByModel) as caught:
        await generate(world, image_size="4K")
    assert not caught.value.chosen_default
    assert caught.value.message.startswith("Lite (gemini-3.1-flash-lite-image)")


class CountingPrefs(InMemoryPrefStore):
    """Counts reads: on a real deployment each is a read of the preferences file."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_default_model(self, email: str) -> str | None:
        self.reads += 1
        return super().get_default_model(email)


@pytest.mark.anyio
async def test_a_generation_reads_the_persons_preferences_once() -> None:
    """The default is looked up to pick the model; whose it was only for a refusal."""
    prefs = CountingPrefs()
    prefs.set_default_model("ada@example.com", "pro")
    service = ImageService(
        catalog=ModelCatalog(),
        policy=AccessPolicy.open_policy(),
        images=InMemoryImageStore(),
        metadata=InMemoryMetadataRepository(),
        prefs=prefs,
        backend=FakeImageBackend(),
        codec=PassthroughImageCodec(),
        clock=FixedClock(),
        ids=SequentialIds(),
    )
    ada = Identity("ada@example.com", email_verified=True)
    result = await service.generate(ada, GenerationRequest.parse("a fox"))
    assert result.generation.model_alias == "pro"
    assert prefs.reads == 1


# --- the true cost -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_cost_comes_from_the_token_counts_with_the_list_price_beside_it() -> None:
    """flash 1K: 1290 input tokens at $0.50 and 1120 image tokens at $60 per million."""
    usage = TokenUsage(1290, 1120, None, 2410, image_output_tokens=1120)
    world = make_world(usage=usage, tiny=True)
    result = await generate(world)
    g = result.generation
    assert g.cost == CostEstimate(Decimal("0.067845"))
    assert g.estimate == CostEstimate(Decimal("0.067"))
    assert g.cost_basis is CostBasis.USAGE
    assert world.metadata.get(g.id) == g
    assert world.metadata.usage().total_cost == CostEstimate(Decimal("0.067845"))


@pytest.mark.anyio
async def test_without_token_counts_the_list_price_is_the_cost_and_says_so() -> None:
    """No usage came back: the estimate is what counts, marked as a list price."""
    world = make_world(tiny=True)
    g = (await generate(world, image_size="4K")).generation
    assert g.cost == g.estimate == CostEstimate(Decimal("0.151"))
    assert g.cost_basis is CostBasis.LIST_PRICE


@pytest.mark.anyio
async def test_grounded_queries_are_counted_once_in_the_true_cost() -> None:
    """Two queries at $0.014 are added to the token cost, and to the estimate, once each."""
    usage = TokenUsage(1290, 1120, None, 2452, image_output_tokens=1120, tool_use_prompt_tokens=42)
    world = make_world(usage=usage, tiny=True)
    world.backend.grounding = Grounding(queries=("lighthouse dusk", "lighthouse photo"))
    request = GenerationRequest.parse("a lighthouse", search_grounding=True)
    g = (await world.service.generate(ALICE, request)).generation
    # (1290 + 42) * 0.5 + 1120 * 60 per million, plus 2 * 0.014.
    assert g.cost == CostEstimate(Decimal("0.000666") + Decimal("0.0672") + Decimal("0.028"))
    assert g.estimate == CostEstimate(Decimal("0.067") + Decimal("0.028"))


@pytest.mark.anyio
async def test_an_image_that_could_not_be_stored_keeps_its_true_cost() -> None:
    """The answer came and was billed by its tokens; the failed record says so."""
    usage = TokenUsage(1290, 1120, None, 2410, image_output_tokens=1120)
    world = make_world(images=FailingImageStore(), usage=usage, tiny=True)
    with pytest.raises(StorageError):
        await generate(world)
    failed = world.metadata.get(FIRST_ID)
    assert failed is not None
    assert failed.status is GenerationStatus.FAILED
    assert failed.cost == CostEstimate(Decimal("0.067845"))
    assert failed.cost_basis is CostBasis.USAGE
    assert failed.estimate == CostEstimate(Decimal("0.067"))
