"""Thumbnails on disk, for generations and uploaded photos alike: ``{uuid}{extension}``
in a ``thumbs`` folder, the extension recording the media type.

One home for the mapping and the lookup, so both stores name and find a thumbnail the
same way; every path starts from a validated uuid4.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from image_core.domain import EncodedImage
from image_core.errors import StorageError
from image_core.names import check_image_id, thumbnail_file_name
from image_server.adapters.atomic_files import read_regular_file, storage_error

THUMBNAIL_EXTENSIONS: Final = {"image/webp": ".webp", "image/jpeg": ".jpg", "image/png": ".png"}
"""Media types a thumbnail may have, in the order a lookup tries them."""


def thumbnail_path(folder: Path, image_id: uuid.UUID, mime_type: str) -> Path:
    """Where the thumbnail of ``image_id`` of ``mime_type`` lives in ``folder``."""
    extension = THUMBNAIL_EXTENSIONS.get(mime_type.lower())
    if extension is None:
        raise StorageError(f"Thumbnails of type {mime_type!r} cannot be stored.")
    return folder / thumbnail_file_name(image_id, extension)


def thumbnail_paths(folder: Path, image_id: uuid.UUID) -> Iterator[Path]:
    """Every place a thumbnail of ``image_id`` could be, in lookup order."""
    for mime_type in THUMBNAIL_EXTENSIONS:
        yield thumbnail_path(folder, image_id, mime_type)


def read_thumbnail(folder: Path, image_id: uuid.UUID) -> EncodedImage | None:
    """The stored thumbnail of ``image_id`` with the media type its extension records."""
    check_image_id(image_id)
    for mime_type in THUMBNAIL_EXTENSIONS:
        path = thumbnail_path(folder, image_id, mime_type)
        try:
            data = read_regular_file(path)
        except OSError as exc:
            raise storage_error(f"read thumbnail {path.name}", exc) from exc
        if data is not None:
            return EncodedImage(data, mime_type)
    return None
