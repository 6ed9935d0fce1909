"""The roles the core needs filled, as structural protocols.

Adapters in the server (filesystem, Gemini, Pillow) and the doubles in
``image_core.testing`` implement these without inheriting from them.
Storage ports are synchronous: the service moves them off the event loop.
Every email a port receives (in a ``Generation`` or as an argument) has already been
normalised by the service with ``image_core.access.owner_key``; ports compare emails
exactly and never normalise them again.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Iterator
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from image_core.budgets import Period
from image_core.domain import (
    BackendImage,
    BackendRequest,
    DailySpend,
    EncodedImage,
    GalleryPage,
    Generation,
    NormalisedPhoto,
    ProcessedImage,
    Upload,
    UsageReport,
)
from image_core.ledger import CostRow, PersonSpend, RebuildProgress


class ImageStore(Protocol):
    """Keeps the full-size PNG and its gallery thumbnail, keyed by generation id."""

    def put(self, image_id: uuid.UUID, png: bytes, thumbnail: EncodedImage | None) -> None:
        """Store both files atomically; on failure leave neither (raise ``StorageError``).

        With ``thumbnail=None`` only the PNG is stored (its thumbnail comes later, through
        ``put_thumbnail``, or is made on first view).
        """
        ...

    def get(self, image_id: uuid.UUID) -> bytes | None:
        """The PNG bytes, or ``None`` when there is no such image."""
        ...

    def get_thumbnail(self, image_id: uuid.UUID) -> EncodedImage | None:
        """The stored thumbnail, or ``None`` when it was never made."""
        ...

    def put_thumbnail(self, image_id: uuid.UUID, thumbnail: EncodedImage) -> None:
        """Store a thumbnail made later (for images that predate thumbnails)."""
        ...

    def exists(self, image_id: uuid.UUID) -> bool:
        """Whether the PNG is stored."""
        ...

    def delete(self, image_id: uuid.UUID) -> None:
        """Remove the PNG and thumbnail if present; used to roll back a failed write."""
        ...


#: An open descriptor of a regular file and what ``fstat`` said about it; the caller closes it.
OpenedFile = tuple[int, os.stat_result]


class PublicImageFiles(Protocol):
    """Opens a stored PNG by its public name for streaming, never through a link."""

    def open_png(self, name: str) -> OpenedFile | None:
        """The opened ``{uuid}.png`` (a regular file, no symlink, one hard link), or ``None``."""
        ...


class MetadataRepository(Protocol):
    """Remembers who generated what, when, with which model and at what cost."""

    def add(self, generation: Generation) -> None:
        """Record a generation atomically (raise ``StorageError`` and keep nothing on failure)."""
        ...

    def replace(self, generation: Generation) -> None:
        """Overwrite the record of an already recorded id atomically (its new status).

        Raises ``StorageError`` when the id was never recorded or the write fails; on
        failure the earlier record stays whole.
        """
        ...

    def unsettled(self) -> list[Generation]:
        """Every record still ``RENDERING`` (start-up resolves those of an earlier run)."""
        ...

    def remove(self, generation_id: uuid.UUID) -> None:
        """Forget a record (a pending one whose request was refused while the caller waited)."""
        ...

    def get(self, generation_id: uuid.UUID) -> Generation | None:
        """One record, or ``None``."""
        ...

    def page_for_user(
        self, email: str, offset: int, limit: int, containing: str | None = None
    ) -> GalleryPage:
        """A page of one person's ``DONE`` generations (``email`` normalised), newest first.

        With ``containing``, only those whose prompt holds each of its words, ignoring
        case (``domain.prompt_matches``); the total counts the matching ones.
        """
        ...

    def usage(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> UsageReport:
        """Image count and cost per person (only the normalised ``emails`` when given).

        Largest spend first. The count is of ``DONE`` images; the cost adds ``DONE`` and
        ``FAILED`` records (a failure may have been billed); ``RENDERING`` counts nothing.
        With ``period``, only records created on its UTC days count.
        """
        ...

    def daily_spend(self, since: date, emails: Collection[str] | None = None) -> list[DailySpend]:
        """Spend per person per UTC day from ``since`` on (counted as ``usage`` counts)."""
        ...

    def users(self) -> list[str]:
        """Every email with at least one generation, sorted."""
        ...

    def spend(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> list[PersonSpend]:
        """``usage`` with each person's list-price figure beside the cost, in its order."""
        ...

    def cost_rows(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> Iterator[CostRow]:
        """The settled records (of ``emails``, of ``period``'s UTC days), oldest first.

        Ties are broken by id, so the order is total. Streamed: rows are read a batch at
        a time as the iterator is consumed, so an export of any size holds little memory
        and never keeps the records locked while its reader is slow.
        """
        ...

    def rebuilding(self) -> RebuildProgress | None:
        """How far a rebuild of the index is, while one runs (answers are partial then)."""
        ...


class PrefStore(Protocol):
    """Each person's default model alias, keyed by normalised email."""

    def get_default_model(self, email: str) -> str | None:
        """The alias chosen by ``email`` (normalised), or ``None``."""
        ...

    def set_default_model(self, email: str, alias: str) -> None:
        """Remember ``alias`` for ``email`` (normalised) without losing anyone else's choice."""
        ...


class ImageSink(Protocol):
    """Takes an image's bytes, in order, while they arrive."""

    def write(self, chunk: bytes) -> None:
        """The next bytes of the image."""
        ...

    def start_over(self) -> None:
        """What was written was not the image (a draft came first): the image follows."""
        ...


class ImageBackend(Protocol):
    """Something that turns a prompt (and reference images) into an image."""

    @property
    def name(self) -> str:
        """Short name recorded in each generation, e.g. ``gemini`` or ``placeholder``."""
        ...

    async def generate(self, request: BackendRequest) -> BackendImage:
        """Produce one image, or raise a ``BackendError`` subclass."""
        ...


@runtime_checkable
class StreamingImageBackend(ImageBackend, Protocol):
    """A backend that can hand an image over while it downloads (optional for backends).

    The service prefers ``generate_streaming`` when a backend has it, so decoding starts
    before the last byte is in.
    """

    async def generate_streaming(self, request: BackendRequest, sink: ImageSink) -> BackendImage:
        """As ``generate``; the image's bytes also go to ``sink``, in order, as they arrive.

        The returned ``BackendImage`` still holds the whole image. Writing to ``sink`` is
        allowed to stop short (or not start) where the answer cannot be streamed.
        """
        ...


class ImageProcessing(ImageSink, Protocol):
    """One image being processed: bytes written as they arrive, then ``finish``.

    Always ``close`` it, finished or not, so that work started early is let go.
    """

    def finish(self, data: bytes) -> ProcessedImage:
        """What ``ImageCodec.process`` returns for ``data``, the whole image.

        Work already done on the written bytes is used only when they are exactly
        ``data``; anything else is processed from ``data`` afresh.
        """
        ...

    def close(self) -> None:
        """Let go of whatever was started; harmless after ``finish`` or twice."""
        ...


class ImageCodec(Protocol):
    """Decodes, checks and re-encodes images (PNG for storage, small previews)."""

    def process(
        self, data: bytes, preview_max_side: int, thumbnail_max_side: int
    ) -> ProcessedImage:
        """Normalise any supported image to PNG and derive preview and thumbnail.

        Raises ``InvalidImage`` for corrupt, empty or oversized input.
        """
        ...

    def begin(self, preview_max_side: int, thumbnail_max_side: int) -> ImageProcessing:
        """Start processing an image whose bytes are still arriving (see ``process``)."""
        ...

    def thumbnail(self, png: bytes, max_side: int) -> EncodedImage:
        """A small gallery thumbnail of a stored PNG."""
        ...

    def preview(self, png: bytes, max_side: int) -> EncodedImage:
        """The small inline preview of a stored PNG, as ``process`` makes it."""
        ...

    def prepare_reference(self, data: bytes, max_bytes: int) -> EncodedImage:
        """Check an image about to be sent as a reference; return what to send.

        The image itself when it fits in ``max_bytes``, else a smaller copy in a format
        the backend accepts (PNG, JPEG or WebP). Raises ``InvalidImage`` for corrupt,
        empty or oversized input.
        """
        ...

    def normalise_upload(
        self, data: bytes, max_side: int, thumbnail_max_side: int
    ) -> NormalisedPhoto:
        """A person's photo checked as every image is, then made safe to keep.

        Turned upright (its orientation tag applied), converted to sRGB, stripped of
        every piece of metadata (EXIF with GPS, XMP, ICC profile, text), shrunk so its
        long side is at most ``max_side``, re-encoded (JPEG, or PNG when it has
        transparency), with a gallery thumbnail. Raises ``InvalidImage`` for corrupt,
        empty, unsupported or oversized input.
        """
        ...


class UploadStore(Protocol):
    """Keeps the photos people upload (image, thumbnail and record), keyed by upload id.

    Never the public image folder: nothing here is served at ``/i/``.
    """

    def put(self, upload: Upload, image: bytes, thumbnail: EncodedImage) -> None:
        """Store the image, its thumbnail and its record; on failure leave none of them.

        The record is written last, so an upload is listed only when it is whole.
        """
        ...

    def get(self, upload_id: uuid.UUID) -> Upload | None:
        """The record, or ``None`` when there is no such upload."""
        ...

    def read(self, upload: Upload) -> bytes | None:
        """The stored image of ``upload``, or ``None`` when it is missing."""
        ...

    def thumbnail(self, upload: Upload) -> EncodedImage | None:
        """The stored thumbnail of ``upload``, or ``None`` when it is missing."""
        ...

    def list_for(self, email: str) -> list[Upload]:
        """Every upload of ``email`` (normalised), newest first (ties by id)."""
        ...

    def count_for(self, email: str) -> int:
        """How many uploads ``email`` (normalised) keeps."""
        ...

    def delete(self, upload: Upload) -> None:
        """Remove the record, image and thumbnail; missing files are fine."""
        ...


class Clock(Protocol):
    """The current time, injectable so tests control it."""

    def now(self) -> datetime:
        """Timezone-aware UTC now."""
        ...


class IdSource(Protocol):
    """Fresh generation ids, injectable so tests control them."""

    def new_id(self) -> uuid.UUID:
        """A new random uuid4."""
        ...


class ModelAvailability(Protocol):
    """Whether Gemini still offers a model id, as the last check of its models list found."""

    def missing(self, model_id: str) -> str | None:
        """``None`` when the id is offered (or nobody knows); else what to tell the person."""
        ...
