"""Uploaded photos in the core: names, display names, the caps, and who may use them.

Run against the in-memory adapters of image_core.testing; the codec is the PNG-only
double, wrapped to count what it was asked to decode.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core import names
from image_core.access import AccessPolicy
from image_core.catalog import ModelCatalog
from image_core.domain import GenerationRequest, Identity, NormalisedPhoto
from image_core.errors import (
    CorruptRecord,
    InvalidImage,
    InvalidRequest,
    LimitReached,
    LimitReason,
    NotAllowed,
    ReferenceNotFound,
)
from image_core.serialization import RecordCodec
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
from image_core.uploads import MIB, clean_file_name

ALICE = Identity("alice@example.com", email_verified=True)
BOB = Identity("bob@example.com", email_verified=True)
ADMIN = Identity("admin@example.com", email_verified=True)
STRANGER = Identity("mallory@example.com", email_verified=True)
PHOTO = make_png(40, 30, (10, 200, 30))
UID = "0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


class CountingCodec(PassthroughImageCodec):
    """The PNG-only double, counting the photos it was asked to decode."""

    def __init__(self) -> None:
        self.decoded = 0
        self.together: threading.Barrier | None = None
        """When set, each decode waits until that many are under way at once."""

    def normalise_upload(
        self, data: bytes, max_side: int, thumbnail_max_side: int
    ) -> NormalisedPhoto:
        self.decoded += 1
        if self.together is not None:
            self.together.wait()
        return super().normalise_upload(data, max_side, thumbnail_max_side)


@attrs.define
class World:
    service: ImageService
    store: InMemoryUploadStore
    codec: CountingCodec
    backend: FakeImageBackend


def world(*, per_person: int = 3, max_bytes: int = MIB, store: bool = True) -> World:
    uploads = InMemoryUploadStore()
    codec = CountingCodec()
    backend = FakeImageBackend()
    service = ImageService(
        catalog=ModelCatalog(),
        policy=AccessPolicy(allowed={ALICE.email, BOB.email}, admins={ADMIN.email}),
        images=InMemoryImageStore(),
        metadata=InMemoryMetadataRepository(),
        prefs=InMemoryPrefStore(),
        backend=backend,
        codec=codec,
        clock=FixedClock(),
        ids=SequentialIds(),
        uploads=uploads if store else None,
        upload_max_bytes=max_bytes,
        uploads_per_person=per_person,
    )
    return World(service, uploads, codec, backend)


# --- names ----------------------------------------------------------------------------


def test_an_upload_is_named_by_its_id_and_stored_type() -> None:
    """``upload-{uuid}.jpg`` for JPEG, ``.png`` for PNG; each parses back to the id."""
    upload_id = uuid.UUID(UID)
    assert names.upload_name(upload_id, "image/jpeg") == f"upload-{UID}.jpg"
    assert names.upload_name(upload_id, "image/png") == f"upload-{UID}.png"
    for spelling in (f"upload-{UID}", f"upload-{UID}.jpg", f"upload-{UID}.png"):
        assert names.parse_upload_name(spelling) == upload_id


@pytest.mark.parametrize(
    "text",
    [
        f"{UID}.png",
        f"UPLOAD-{UID}.jpg",
        f"upload-{UID.upper()}.jpg",
        f"upload-{UID}.gif",
        f"uploads/{UID}.jpg",
        f"../upload-{UID}.jpg",
        f" upload-{UID}.jpg",
        f"upload-{UID}.jpg.png",
        "upload-0b9f4a3e-2c1d-1e8f-9a6b-7c5d3e2f1a09.jpg",  # a uuid1
    ],
)
def test_only_the_canonical_upload_names_parse(text: str) -> None:
    """Paths, other cases, other suffixes and other uuid versions are not upload names."""
    assert names.parse_upload_name(text) is None


@given(st.text(max_size=60))
def test_no_text_but_an_upload_name_parses_and_no_upload_name_is_public(text: str) -> None:
    """Whatever parses is exactly one of the three spellings; /i/ never takes one."""
    upload_id = names.parse_upload_name(text)
    if upload_id is not None:
        assert text in {f"upload-{upload_id}{suffix}" for suffix in ("", ".jpg", ".png")}
    assert names.parse_public_name(f"upload-{UID}.png") is None


@pytest.mark.parametrize(
    ("given_name", "kept"),
    [
        ("beach.jpg", "beach.jpg"),
        ("C:\\Users\\ann\\Pictures\\beach.jpg", "beach.jpg"),
        ("/home/ann/../etc/passwd", "passwd"),
        ("sun\u202eset.jpg", "sunset.jpg"),  # a text-direction override
        ("tab\there\nnew\u00a0line.png", "tab here new line.png"),
        ("\u200b\u0000", None),
        ("   ", None),
        (None, None),
        ("x" * 300, "x" * 200),
    ],
)
def test_the_display_name_keeps_only_what_is_safe_to_show(
    given_name: str | None, kept: str | None
) -> None:
    """No folders, no control or formatting characters, at most 200 characters."""
    assert clean_file_name(given_name) == kept


# --- uploading ------------------------------------------------------------------------


async def test_an_allowed_person_uploads_a_photo_kept_under_their_normalised_email() -> None:
    """The upload is theirs, named, sized, and listed."""
    w = world()
    upload = await w.service.upload_photo(
        Identity("Alice@Example.COM", email_verified=True), PHOTO, "me.png"
    )
    assert upload.email == "alice@example.com"
    assert (upload.width, upload.height, upload.size_bytes) == (40, 30, len(PHOTO))
    assert upload.name == f"upload-{upload.id}.png"
    assert upload.file_name == "me.png"
    assert await w.service.uploads_of(ALICE, "alice@example.com") == [upload]


@pytest.mark.parametrize("who", [None, STRANGER, Identity("alice@example.com")])
async def test_only_people_who_may_generate_may_upload(who: Identity | None) -> None:
    """Signed out, not listed, or unverified: refused before anything is read."""
    w = world()
    with pytest.raises(NotAllowed):
        await w.service.upload_photo(who, PHOTO)
    assert w.codec.decoded == 0


async def test_a_photo_over_the_cap_is_refused_naming_the_cap_before_it_is_decoded() -> None:
    """Said in MB; the codec never sees it and nothing is kept."""
    w = world(max_bytes=2 * MIB)
    with pytest.raises(InvalidRequest, match=r"2\.5 MB; uploads are limited to 2 MB"):
        await w.service.upload_photo(ALICE, PHOTO + b"\0" * (5 * MIB // 2))
    assert w.codec.decoded == 0
    assert w.store.count_for("alice@example.com") == 0


async def test_what_is_not_an_image_is_refused_and_nothing_is_kept() -> None:
    """The codec's refusal reaches the caller; no record is left."""
    w = world()
    with pytest.raises(InvalidImage):
        await w.service.upload_photo(ALICE, b"definitely not a photo")
    assert w.store.count_for("alice@example.com") == 0


async def test_a_person_keeps_at_most_the_limit_and_is_told_it() -> None:
    """The next one is refused with the limit, before it is decoded; others still may."""
    w = world(per_person=2)
    for _ in range(2):
        await w.service.upload_photo(ALICE, PHOTO)
    with pytest.raises(LimitReached, match=r"keep 2 uploaded photos.*\(2\)") as refused:
        await w.service.upload_photo(ALICE, PHOTO)
    assert refused.value.reason is LimitReason.UPLOADS
    assert w.codec.decoded == 2
    assert w.store.count_for("alice@example.com") == 2
    await w.service.upload_photo(BOB, PHOTO)


async def test_uploads_at_the_same_moment_cannot_both_take_the_last_place() -> None:
    """The count is checked again under a lock just before the write.

    All six are held inside the decode until every one of them has passed the first
    count, so each finds the place free then; only the second count can tell them apart.
    """
    w = world(per_person=1)
    w.codec.together = threading.Barrier(6, timeout=10)
    results = await asyncio.gather(
        *(w.service.upload_photo(ALICE, PHOTO) for _ in range(6)), return_exceptions=True
    )
    kept = [r for r in results if not isinstance(r, BaseException)]
    assert len(kept) == 1
    assert all(isinstance(r, LimitReached) for r in results if r not in kept)
    assert w.store.count_for("alice@example.com") == 1


@pytest.mark.parametrize(("store", "per_person"), [(False, 3), (True, 0)])
async def test_with_uploads_switched_off_nothing_is_accepted(store: bool, per_person: int) -> None:
    """No store, or a limit of 0: the service says uploads are off."""
    w = world(store=store, per_person=per_person)
    assert not w.service.accepts_uploads
    with pytest.raises(InvalidRequest, match="switched off"):
        await w.service.upload_photo(ALICE, PHOTO)


# --- who may use and see an upload ----------------------------------------------------


async def test_the_owner_uses_an_upload_as_a_reference_and_the_backend_gets_its_bytes() -> None:
    """Any of its spellings works; what is sent is the kept (normalised) photo."""
    w = world()
    upload = await w.service.upload_photo(ALICE, PHOTO)
    for name in (upload.name, f"upload-{upload.id}"):
        request = GenerationRequest.parse("the same, at night", references=[name])
        await w.service.generate(ALICE, request)
    sent = w.backend.requests[-1].references
    assert [r.data for r in sent] == [PHOTO]
    assert sent[0].id == upload.id


async def test_someone_elses_upload_is_as_absent_as_a_name_never_handed_out() -> None:
    """Bob is told exactly what he would be told for an unknown upload."""
    w = world()
    upload = await w.service.upload_photo(ALICE, PHOTO)
    unknown = f"upload-{uuid.uuid4()}.png"
    answers = []
    for name in (upload.name, unknown):
        with pytest.raises(ReferenceNotFound) as refused:
            await w.service.generate(BOB, GenerationRequest.parse("a copy", references=[name]))
        answers.append(refused.value.message.replace(name, "NAME"))
    assert answers[0] == answers[1] == "Reference image NAME does not exist."
    assert await w.service.upload_thumbnail(BOB, upload.name) is None
    assert await w.service.uploaded_image(BOB, upload.name) is None
    assert w.backend.requests == []


async def test_an_admin_may_use_and_see_anyones_upload() -> None:
    """As in the dashboard, admins see everyone's."""
    w = world()
    upload = await w.service.upload_photo(ALICE, PHOTO)
    await w.service.generate(ADMIN, GenerationRequest.parse("a copy", references=[upload.name]))
    assert w.backend.requests[-1].references[0].data == PHOTO
    assert await w.service.uploads_of(ADMIN, "alice@example.com") == [upload]
    assert await w.service.upload_thumbnail(ADMIN, upload.name) is not None
    image = await w.service.uploaded_image(ADMIN, upload.name)
    assert image is not None
    assert image.data == PHOTO


async def test_a_persons_uploads_are_listed_newest_first_to_them_and_nobody_else() -> None:
    """Bob cannot list Alice's; Alice's own list is newest first."""
    w = world()
    first = await w.service.upload_photo(ALICE, PHOTO)
    second = await w.service.upload_photo(ALICE, PHOTO)
    assert await w.service.uploads_of(ALICE, "ALICE@example.com") == [second, first]
    with pytest.raises(NotAllowed):
        await w.service.uploads_of(BOB, "alice@example.com")
    assert await w.service.upload_thumbnail(ALICE, first.name) is not None
    assert await w.service.upload_thumbnail(ALICE, "../../etc/passwd") is None


# --- the record kept beside each upload -------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "upload_v1_sample.json"


def test_the_version_1_sample_upload_record_loads_and_round_trips() -> None:
    """The shipped sample reads back as the upload it describes, and writes the same."""
    codec = RecordCodec()
    upload = codec.load_upload(SAMPLE.read_bytes())
    assert upload.name == "upload-0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09.jpg"
    assert (upload.email, upload.width, upload.height) == ("ann@example.com", 3000, 4000)
    assert upload.created_at == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert json.loads(codec.dump_upload(upload)) == json.loads(SAMPLE.read_text())


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"mime_type": "image/gif"}, "not a valid record"),
        ({"id": "0b9f4a3e-2c1d-1e8f-9a6b-7c5d3e2f1a09"}, "not a valid record"),
        ({"width": 0}, "not a valid record"),
        ({"file_name": "x" * 201}, "not a valid record"),
        ({"width": "wide"}, "width"),
        ({"schema_version": None}, "schema_version"),
    ],
)
def test_a_damaged_upload_record_is_refused(change: dict[str, object], says: str) -> None:
    """A record no upload could have written is a CorruptRecord, never an upload."""
    data = {**json.loads(SAMPLE.read_text()), **change}
    with pytest.raises(CorruptRecord, match=says):
        RecordCodec().load_upload(json.dumps(data))


async def test_deleting_an_upload_makes_room_and_only_its_owner_or_an_admin_may() -> None:
    """Bob's attempt does nothing and learns nothing; Alice's frees her place."""
    w = world(per_person=1)
    upload = await w.service.upload_photo(ALICE, PHOTO)
    with pytest.raises(LimitReached, match="Delete one in your gallery"):
        await w.service.upload_photo(ALICE, PHOTO)
    assert await w.service.delete_upload(BOB, upload.name) is None
    assert await w.service.delete_upload(BOB, f"upload-{uuid.uuid4()}.png") is None
    assert w.store.get(upload.id) == upload
    assert await w.service.delete_upload(ALICE, upload.name) == upload
    assert w.store.get(upload.id) is None
    again = await w.service.upload_photo(ALICE, PHOTO)
    assert await w.service.delete_upload(ADMIN, again.name) == again
    with pytest.raises(ReferenceNotFound, match="does not exist"):
        await w.service.generate(ALICE, GenerationRequest.parse("x", references=[again.name]))
