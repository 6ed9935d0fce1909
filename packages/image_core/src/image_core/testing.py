"""In-memory adapters and scripted fakes for every port, public for library users.

The in-memory adapters are complete implementations (they pass the same contract
suite as the filesystem ones), so tests that use them exercise real behaviour.
``make_png`` builds genuine PNG files with the standard library only.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta

import attrs

from image_core import png as _png
from image_core.budgets import Period
from image_core.domain import (
    BackendImage,
    BackendRequest,
    CostEstimate,
    DailySpend,
    EncodedImage,
    GalleryPage,
    Generation,
    Grounding,
    NormalisedPhoto,
    ProcessedImage,
    TokenUsage,
    Upload,
    UsageReport,
    UserUsage,
    prompt_matches,
)
from image_core.errors import BackendError, InvalidImage, StorageError
from image_core.ledger import CostRow, PersonSpend, RebuildProgress
from image_core.ports import ImageProcessing, ImageSink

PNG_SIGNATURE = _png.PNG_SIGNATURE
png_size = _png.png_size


def make_png(width: int, height: int, rgb: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    """A valid, solid-colour RGB PNG of the given size."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@attrs.define
class ProcessedWhenWhole:
    """An ``ImageProcessing`` that ignores what arrives early and processes at ``finish``.

    It also counts the bytes written, so tests can see that a backend fed its sink.
    """

    process: Callable[[bytes], ProcessedImage]
    written: int = 0
    closed: bool = False

    def write(self, chunk: bytes) -> None:
        """Count the bytes; nothing else happens before ``finish``."""
        self.written += len(chunk)

    def start_over(self) -> None:
        """Count again from nothing."""
        self.written = 0

    def finish(self, data: bytes) -> ProcessedImage:
        """``process(data)``."""
        return self.process(data)

    def close(self) -> None:
        """Nothing to let go."""
        self.closed = True


class PassthroughImageCodec:
    """An ``ImageCodec`` for PNG input only: stores and previews the bytes unchanged."""

    def process(
        self, data: bytes, preview_max_side: int, thumbnail_max_side: int
    ) -> ProcessedImage:
        """Check the PNG header and reuse the bytes for preview and thumbnail."""
        width, height = png_size(data)
        encoded = EncodedImage(data, "image/png")
        return ProcessedImage(data, width, height, encoded, encoded)

    def begin(self, preview_max_side: int, thumbnail_max_side: int) -> ImageProcessing:
        """Processing that waits for the whole image, then runs ``process``."""
        return ProcessedWhenWhole(
            lambda data: self.process(data, preview_max_side, thumbnail_max_side)
        )

    def thumbnail(self, png: bytes, max_side: int) -> EncodedImage:
        """The PNG itself."""
        png_size(png)
        return EncodedImage(png, "image/png")

    def preview(self, png: bytes, max_side: int) -> EncodedImage:
        """The PNG itself."""
        png_size(png)
        return EncodedImage(png, "image/png")

    def prepare_reference(self, data: bytes, max_bytes: int) -> EncodedImage:
        """Any PNG within ``max_bytes``, unchanged (this double cannot re-encode)."""
        png_size(data)
        if len(data) > max_bytes:
            raise InvalidImage(f"The reference image is over {max_bytes} bytes.")
        return EncodedImage(data, "image/png")

    def normalise_upload(
        self, data: bytes, max_side: int, thumbnail_max_side: int
    ) -> NormalisedPhoto:
        """A PNG kept as it is (this double cannot decode pixels or strip metadata)."""
        width, height = png_size(data)
        encoded = EncodedImage(data, "image/png")
        return NormalisedPhoto(encoded, width, height, encoded)


class InMemoryImageStore:
    """``ImageStore`` in a dict; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._images: dict[uuid.UUID, bytes] = {}
        self._thumbnails: dict[uuid.UUID, EncodedImage] = {}

    def put(self, image_id: uuid.UUID, png: bytes, thumbnail: EncodedImage | None) -> None:
        """Store both together (or only the PNG)."""
        with self._lock:
            self._images[image_id] = png
            if thumbnail is not None:
                self._thumbnails[image_id] = thumbnail

    def get(self, image_id: uuid.UUID) -> bytes | None:
        """The PNG or ``None``."""
        with self._lock:
            return self._images.get(image_id)

    def get_thumbnail(self, image_id: uuid.UUID) -> EncodedImage | None:
        """The thumbnail or ``None``."""
        with self._lock:
            return self._thumbnails.get(image_id)

    def put_thumbnail(self, image_id: uuid.UUID, thumbnail: EncodedImage) -> None:
        """Store a thumbnail for an existing image."""
        with self._lock:
            if image_id not in self._images:
                raise StorageError("There is no image to attach this thumbnail to.")
            self._thumbnails[image_id] = thumbnail

    def exists(self, image_id: uuid.UUID) -> bool:
        """Whether the PNG is stored."""
        with self._lock:
            return image_id in self._images

    def delete(self, image_id: uuid.UUID) -> None:
        """Forget the image and thumbnail."""
        with self._lock:
            self._images.pop(image_id, None)
            self._thumbnails.pop(image_id, None)


class InMemoryUploadStore:
    """``UploadStore`` in a dict; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[uuid.UUID, tuple[Upload, bytes, EncodedImage]] = {}

    def put(self, upload: Upload, image: bytes, thumbnail: EncodedImage) -> None:
        """Keep all three together."""
        with self._lock:
            self._kept[upload.id] = (upload, image, thumbnail)

    def get(self, upload_id: uuid.UUID) -> Upload | None:
        """The record or ``None``."""
        with self._lock:
            kept = self._kept.get(upload_id)
        return kept[0] if kept else None

    def read(self, upload: Upload) -> bytes | None:
        """The image or ``None``."""
        with self._lock:
            kept = self._kept.get(upload.id)
        return kept[1] if kept else None

    def thumbnail(self, upload: Upload) -> EncodedImage | None:
        """The thumbnail or ``None``."""
        with self._lock:
            kept = self._kept.get(upload.id)
        return kept[2] if kept else None

    def list_for(self, email: str) -> list[Upload]:
        """``email``'s uploads, newest first."""
        with self._lock:
            mine = [u for u, _, _ in self._kept.values() if u.email == email]
        return sorted(mine, key=lambda u: (u.created_at, u.id.int), reverse=True)

    def count_for(self, email: str) -> int:
        """How many ``email`` keeps."""
        return len(self.list_for(email))

    def delete(self, upload: Upload) -> None:
        """Forget all three."""
        with self._lock:
            self._kept.pop(upload.id, None)


def _wanted(emails: Collection[str] | None) -> set[str] | None:
    return None if emails is None else set(emails)


def newest_first(generations: Iterable[Generation]) -> list[Generation]:
    """Newest first, ties broken by id so the order is total."""
    return sorted(generations, key=lambda g: (g.created_at, str(g.id)), reverse=True)


def summarise_usage(generations: Iterable[Generation]) -> UsageReport:
    """Per-user counts and costs, largest spend first, then by (already normalised) email."""
    counts: dict[str, int] = defaultdict(int)
    costs: dict[str, CostEstimate] = defaultdict(CostEstimate.zero)
    for g in generations:
        if not g.is_settled:
            continue
        counts[g.email] += int(g.is_done)
        costs[g.email] = costs[g.email] + g.cost
    rows = [UserUsage(email, counts[email], costs[email]) for email in counts]
    rows.sort(key=lambda r: (-r.cost.usd, r.email))
    return UsageReport(tuple(rows))


def summarise_daily(generations: Iterable[Generation], since: date) -> list[DailySpend]:
    """Spend per UTC day and person from ``since`` on, oldest day first."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    costs: dict[tuple[str, str], CostEstimate] = defaultdict(CostEstimate.zero)
    for g in generations:
        day = g.created_at.astimezone(UTC).date()
        if day >= since and g.is_settled:
            key = (day.isoformat(), g.email)
            counts[key] += int(g.is_done)
            costs[key] = costs[key] + g.cost
    return [
        DailySpend(day, email, counts[(day, email)], costs[(day, email)])
        for day, email in sorted(counts)
    ]


class InMemoryMetadataRepository:
    """``MetadataRepository`` in a dict; thread-safe; emails arrive normalised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[uuid.UUID, Generation] = {}

    def _select(self, emails: Collection[str] | None) -> list[Generation]:
        wanted = _wanted(emails)
        with self._lock:
            records = list(self._records.values())
        return [g for g in records if wanted is None or g.email in wanted]

    def add(self, generation: Generation) -> None:
        """Record it; adding the same id twice is a storage error."""
        with self._lock:
            if generation.id in self._records:
                raise StorageError(f"Generation {generation.id} is already recorded.")
            self._records[generation.id] = generation

    def replace(self, generation: Generation) -> None:
        """Overwrite an existing record; an unknown id is a storage error."""
        with self._lock:
            if generation.id not in self._records:
                raise StorageError(f"Generation {generation.id} was never recorded.")
            self._records[generation.id] = generation

    def unsettled(self) -> list[Generation]:
        """Records still rendering."""
        return [g for g in self._select(None) if not g.is_settled]

    def remove(self, generation_id: uuid.UUID) -> None:
        """Forget a record, if present."""
        with self._lock:
            self._records.pop(generation_id, None)

    def get(self, generation_id: uuid.UUID) -> Generation | None:
        """One record or ``None``."""
        with self._lock:
            return self._records.get(generation_id)

    def page_for_user(
        self, email: str, offset: int, limit: int, containing: str | None = None
    ) -> GalleryPage:
        """A slice of the person's finished generations, newest first."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must not be negative")
        mine = newest_first(
            g
            for g in self._select([email])
            if g.is_done and (containing is None or prompt_matches(g.prompt, containing))
        )
        return GalleryPage(tuple(mine[offset : offset + limit]), len(mine), offset, limit)

    def usage(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> UsageReport:
        """Per-user totals, of the records created within ``period`` when given."""
        chosen = self._select(emails)
        if period is not None:
            chosen = [g for g in chosen if period.holds(g.created_at.astimezone(UTC).date())]
        return summarise_usage(chosen)

    def daily_spend(self, since: date, emails: Collection[str] | None = None) -> list[DailySpend]:
        """Per-day, per-user totals."""
        return summarise_daily(self._select(emails), since)

    def users(self) -> list[str]:
        """Everyone with a generation."""
        return sorted({g.email for g in self._select(None)})

    def _settled_in(
        self, emails: Collection[str] | None, period: Period | None
    ) -> list[Generation]:
        chosen = [g for g in self._select(emails) if g.is_settled]
        if period is None:
            return chosen
        return [g for g in chosen if period.holds(g.created_at.astimezone(UTC).date())]

    def spend(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> list[PersonSpend]:
        """``usage`` with each person's list-price figure."""
        chosen = self._settled_in(emails, period)
        list_prices: dict[str, CostEstimate] = defaultdict(CostEstimate.zero)
        for g in chosen:
            list_prices[g.email] = list_prices[g.email] + g.list_price_estimate
        return [
            PersonSpend(row.email, row.image_count, row.cost, list_prices[row.email])
            for row in summarise_usage(chosen).rows
        ]

    def cost_rows(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> Iterator[CostRow]:
        """The settled records of the period, oldest first (ties by id)."""
        chosen = self._settled_in(emails, period)
        for g in sorted(chosen, key=lambda g: (g.created_at, str(g.id))):
            yield CostRow.of(g)

    def rebuilding(self) -> RebuildProgress | None:
        """Never: there is no index to rebuild."""
        return None


class InMemoryPrefStore:
    """``PrefStore`` in a dict; thread-safe; emails arrive normalised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._defaults: dict[str, str] = {}

    def get_default_model(self, email: str) -> str | None:
        """The stored alias or ``None``."""
        with self._lock:
            return self._defaults.get(email)

    def set_default_model(self, email: str, alias: str) -> None:
        """Remember the alias."""
        with self._lock:
            self._defaults[email] = alias


@attrs.define
class FakeImageBackend:
    """A scripted ``ImageBackend``: returns PNGs of the requested size or raises queued errors.

    ``failures`` are raised one per call before any image is returned; every request is
    kept in ``requests`` so tests can assert exactly what would have been sent.
    """

    failures: list[BackendError] = attrs.field(factory=list)
    requests: list[BackendRequest] = attrs.field(factory=list)
    token_usage: TokenUsage | None = None
    name: str = "fake"
    delay_seconds: float = 0.0
    text: str | None = None
    grounding: Grounding | None = None
    """What a request with ``search_grounding`` gets back as the search's findings."""

    async def generate(self, request: BackendRequest) -> BackendImage:
        """Record the request, wait ``delay_seconds``, then fail or return a solid PNG."""
        self.requests.append(request)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.failures:
            raise self.failures.pop(0)
        ratio = request.aspect_ratio
        width, height = ratio.dimensions(request.image_size) if ratio else (1024, 1024)
        grounding = self.grounding if request.search_grounding else None
        png = make_png(width, height)
        return BackendImage(png, "image/png", self.token_usage, self.text, grounding)

    async def generate_streaming(self, request: BackendRequest, sink: ImageSink) -> BackendImage:
        """``generate`` (or a subclass's), then its image to ``sink`` in two pieces."""
        image = await self.generate(request)
        sink.write(image.data[:64])
        sink.write(image.data[64:])
        return image


@attrs.define
class FixedClock:
    """A ``Clock`` that returns ``current``, moved on by ``step`` at every call."""

    current: datetime = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    step: timedelta = timedelta(0)

    def now(self) -> datetime:
        """The current fake time."""
        value = self.current
        self.current = value + self.step
        return value


@attrs.define
class SequentialIds:
    """An ``IdSource`` yielding predictable, valid uuid4 values."""

    counter: int = 0

    def new_id(self) -> uuid.UUID:
        """The next id."""
        self.counter += 1
        return uuid.UUID(int=self.counter, version=4)
