"""The rules of uploaded photos: how large, how many, whose, and how they are kept.

A person may upload photos of their own to use as reference images. Each is capped in
size before anything decodes it, checked and normalised like every other image (the
codec turns it upright, converts it to sRGB and strips its metadata), counted against a
per-person limit, and kept apart from the generated images: it is never public, and
only its owner (and admins) may use or see it. To anyone else an upload is exactly as
absent as a name that was never handed out.

The ``ImageService`` composes ``Uploads`` and delegates to it; these methods block
(files, Pillow) and the service runs them in worker threads.
"""

from __future__ import annotations

import threading
import unicodedata
import uuid
from typing import Final

import attrs

from image_core.domain import UPLOAD_FILE_NAME_CHARS, EncodedImage, Upload
from image_core.errors import InvalidRequest, LimitReached, LimitReason
from image_core.ports import Clock, IdSource, ImageCodec, UploadStore

MIB: Final = 1024 * 1024
DEFAULT_MAX_BYTES: Final = 20 * MIB
DEFAULT_PER_PERSON: Final = 50
DEFAULT_MAX_SIDE: Final = 4096
"""Long side of a kept photo: what an image model takes as a reference, and no more."""


def clean_file_name(text: str | None) -> str | None:
    """The name a photo had on its device, safe to show: no folders, no control or
    formatting characters (such as text-direction overrides), spaces folded, at most
    ``UPLOAD_FILE_NAME_CHARS`` characters; ``None`` when nothing is left."""
    if text is None:
        return None
    last = text.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(_shown(c) for c in last)
    folded = " ".join(kept.split())[:UPLOAD_FILE_NAME_CHARS].strip()
    return folded or None


def _shown(char: str) -> str:
    """A character as a display name keeps it: any space, tab or line break a plain
    space; other control and formatting characters dropped."""
    if char.isspace():
        return " "
    kind = unicodedata.category(char)
    if kind.startswith("C"):
        return ""
    return " " if kind.startswith("Z") else char


def megabytes(count: int) -> str:
    """``20 MB``, ``7.5 MB``: sizes as the refusals state them (1 MB is 1024 x 1024 bytes)."""
    return f"{count / MIB:.1f}".removesuffix(".0") + " MB"


@attrs.frozen
class Uploads:
    """Uploaded photos: stored through ``store``, normalised by ``codec``.

    ``store`` is ``None`` (or ``per_person`` 0) when uploads are switched off.
    """

    store: UploadStore | None
    codec: ImageCodec
    clock: Clock
    ids: IdSource
    max_bytes: int = DEFAULT_MAX_BYTES
    per_person: int = DEFAULT_PER_PERSON
    max_side: int = DEFAULT_MAX_SIDE
    thumbnail_max_side: int = 384
    _adding: threading.Lock = attrs.field(factory=threading.Lock, alias="adding")
    """Held from the last count to the write, so two uploads at once cannot both be the
    one the limit allows."""

    @property
    def enabled(self) -> bool:
        """Whether people may upload photos at all."""
        return self.store is not None and self.per_person > 0

    def check_size(self, size: int) -> None:
        """Refuse a photo over the cap before anything reads it (``InvalidRequest``)."""
        self._store()
        if size == 0:
            raise InvalidRequest("The photo is empty (0 bytes); pick the photo again.")
        if size > self.max_bytes:
            raise InvalidRequest(
                f"The photo is {megabytes(size)}; uploads are limited to "
                f"{megabytes(self.max_bytes)}. Pick a smaller photo or export it smaller."
            )

    def add(self, email: str, data: bytes, file_name: str | None) -> Upload:
        """Check, normalise and keep one photo of ``email`` (already normalised).

        Cheapest refusals first: the size, then the count, then the decode. Nothing is
        kept unless everything succeeded (the store writes all or nothing).
        """
        store = self._store()
        self.check_size(len(data))
        self._check_room(store, email)
        photo = self.codec.normalise_upload(data, self.max_side, self.thumbnail_max_side)
        upload = Upload(
            id=self.ids.new_id(),
            email=email,
            created_at=self.clock.now(),
            width=photo.width,
            height=photo.height,
            size_bytes=len(photo.image.data),
            mime_type=photo.image.mime_type,
            file_name=clean_file_name(file_name),
        )
        with self._adding:
            self._check_room(store, email)
            store.put(upload, photo.image.data, photo.thumbnail)
        return upload

    def of(self, email: str) -> list[Upload]:
        """Every upload of ``email`` (normalised), newest first; none when switched off."""
        return self.store.list_for(email) if self.store is not None else []

    def find(self, upload_id: uuid.UUID, email: str, *, admin: bool) -> Upload | None:
        """The upload if ``email`` owns it or ``admin``; else ``None``, as if absent."""
        if self.store is None:
            return None
        upload = self.store.get(upload_id)
        if upload is None or not (admin or upload.email == email):
            return None
        return upload

    def image(self, upload_id: uuid.UUID, email: str, *, admin: bool) -> EncodedImage | None:
        """The kept photo, for its owner or an admin only."""
        upload = self.find(upload_id, email, admin=admin)
        if upload is None or self.store is None:
            return None
        data = self.store.read(upload)
        return EncodedImage(data, upload.mime_type) if data is not None else None

    def thumbnail(self, upload_id: uuid.UUID, email: str, *, admin: bool) -> EncodedImage | None:
        """The photo's gallery thumbnail, for its owner or an admin only."""
        upload = self.find(upload_id, email, admin=admin)
        if upload is None or self.store is None:
            return None
        return self.store.thumbnail(upload)

    def remove(self, upload_id: uuid.UUID, email: str, *, admin: bool) -> Upload | None:
        """Delete the upload if ``email`` owns it or ``admin``; ``None`` (nothing done)
        for anyone else, as if it did not exist."""
        upload = self.find(upload_id, email, admin=admin)
        if upload is None or self.store is None:
            return None
        self.store.delete(upload)
        return upload

    def _store(self) -> UploadStore:
        if self.store is None or self.per_person < 1:
            raise InvalidRequest("Photo uploads are switched off on this server.")
        return self.store

    def _check_room(self, store: UploadStore, email: str) -> None:
        kept = store.count_for(email)
        if kept >= self.per_person:
            raise LimitReached(
                f"You already keep {kept} uploaded photos, the most one person may keep "
                f"({self.per_person}). Delete one in your gallery to make room.",
                LimitReason.UPLOADS,
                email,
                {"uploads": str(kept), "limit": str(self.per_person)},
            )
