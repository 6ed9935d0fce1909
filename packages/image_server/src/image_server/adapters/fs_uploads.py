"""Uploaded photos on the data volume, in a folder of their own.

``uploads/{uuid}.jpg`` (or ``.png``) is the normalised photo, ``uploads/{uuid}.json`` its
record and ``uploads/thumbs/{uuid}.{webp|jpg|png}`` its thumbnail. None of these is a
``{uuid}.png`` in the data folder's root, so the public ``/i/`` route can never serve
one. Paths are built from validated uuid4s only; files are written atomically and
readable by this process alone; reads never follow symlinks.
"""

from __future__ import annotations

import logging
import os
import stat
import uuid
from pathlib import Path

from image_core.domain import EncodedImage, Upload
from image_core.errors import CorruptRecord, StorageError
from image_core.names import (
    check_image_id,
    record_file_name,
    record_id_text,
    upload_file_name,
)
from image_core.ports import UploadStore
from image_core.serialization import RecordCodec
from image_server.adapters.atomic_files import (
    read_regular_file,
    remove_files,
    remove_quietly,
    remove_stale_temps,
    storage_error,
    write_atomic,
)
from image_server.adapters.thumbnail_files import (
    read_thumbnail,
    thumbnail_path,
    thumbnail_paths,
)

log = logging.getLogger("image_server.uploads")

UPLOADS_DIR = "uploads"
THUMBS_DIR = "thumbs"
PRIVATE_FILE_MODE = 0o600


class FilesystemUploadStore:
    """``UploadStore`` under ``{root}/uploads``; safe for many threads at once."""

    def __init__(self, root: Path, codec: RecordCodec | None = None) -> None:
        self._folder = root / UPLOADS_DIR
        self._thumbs = self._folder / THUMBS_DIR
        self._codec = codec or RecordCodec()
        for folder in (self._folder, self._thumbs):  # checked before anything goes in
            try:
                folder.mkdir(parents=True, exist_ok=True)
                is_folder = stat.S_ISDIR(os.lstat(folder).st_mode)
            except OSError as exc:
                raise storage_error("create the uploads folder", exc) from exc
            if not is_folder:
                raise StorageError(
                    f"{folder.name} in the data folder must be a folder, not a link."
                )
            remove_stale_temps(folder)

    @property
    def folder(self) -> Path:
        """Where the photos and their records are."""
        return self._folder

    def put(self, upload: Upload, image: bytes, thumbnail: EncodedImage) -> None:
        """Photo, thumbnail, then the record; whatever fails, nothing of it is left."""
        paths = [
            (self._image_path(upload), image),
            (self._thumbnail_path(upload.id, thumbnail.mime_type), thumbnail.data),
            (self._record_path(upload.id), self._codec.dump_upload(upload)),
        ]
        written: list[Path] = []
        try:
            for path, data in paths:
                # Counted before it is written: a rename can succeed and the folder's
                # sync after it fail, and then the file must go too.
                written.append(path)
                write_atomic(path, data, mode=PRIVATE_FILE_MODE)
        except BaseException as exc:
            for path in written:
                remove_quietly(path)
            if isinstance(exc, OSError):
                raise storage_error("save the uploaded photo", exc) from exc
            raise

    def get(self, upload_id: uuid.UUID) -> Upload | None:
        """The record, or ``None`` (missing, not a regular file, or unreadable: logged)."""
        path = self._record_path(upload_id)
        try:
            raw = read_regular_file(path)
        except OSError as exc:
            raise storage_error(f"read upload record {path.name}", exc) from exc
        if raw is None:
            return None
        try:
            upload = self._codec.load_upload(raw, f"uploads/{path.name}")
        except CorruptRecord as exc:
            log.warning("ignoring a damaged upload record: %s", exc.message)
            return None
        return upload if upload.id == upload_id else None

    def read(self, upload: Upload) -> bytes | None:
        """The stored photo, or ``None`` when it is missing."""
        path = self._image_path(upload)
        try:
            return read_regular_file(path)
        except OSError as exc:
            raise storage_error(f"read uploaded photo {path.name}", exc) from exc

    def thumbnail(self, upload: Upload) -> EncodedImage | None:
        """The stored thumbnail with the media type its extension records."""
        return read_thumbnail(self._thumbs, upload.id)

    def list_for(self, email: str) -> list[Upload]:
        """Every whole upload of ``email``, newest first (ties by id)."""
        found = []
        try:
            with os.scandir(self._folder) as entries:
                ids = [record_id_text(e.name) for e in entries]
        except OSError as exc:
            raise storage_error("list the uploaded photos", exc) from exc
        for id_text in ids:
            if id_text is None:
                continue
            upload = self.get(uuid.UUID(id_text))
            if upload is not None and upload.email == email:
                found.append(upload)
        return sorted(found, key=lambda u: (u.created_at, u.id.int), reverse=True)

    def count_for(self, email: str) -> int:
        """How many whole uploads ``email`` keeps."""
        return len(self.list_for(email))

    def delete(self, upload: Upload) -> None:
        """Remove the record first (so it is no longer listed), then the files."""
        paths = [self._record_path(upload.id), self._image_path(upload)]
        paths += list(thumbnail_paths(self._thumbs, upload.id))
        remove_files(paths)

    def _image_path(self, upload: Upload) -> Path:
        return self._folder / upload_file_name(upload.id, upload.mime_type)

    def _record_path(self, upload_id: uuid.UUID) -> Path:
        return self._folder / record_file_name(check_image_id(upload_id))

    def _thumbnail_path(self, upload_id: uuid.UUID, mime_type: str) -> Path:
        return thumbnail_path(self._thumbs, upload_id, mime_type)


_: type[UploadStore] = FilesystemUploadStore
