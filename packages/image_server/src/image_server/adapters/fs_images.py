"""Full-size PNGs and gallery thumbnails on the data volume.

``{uuid}.png`` sits directly in the root because ``/i/{name}`` serves exactly those;
thumbnails live in ``thumbs/{uuid}.{webp|jpg|png}``, the extension recording the
media type. Every path is built from a validated uuid4, never from caller text, so
no input can name a file outside the root; reads never follow symlinks.
"""

from __future__ import annotations

import logging
import os
import stat
import uuid
from pathlib import Path

from image_core.domain import EncodedImage
from image_core.errors import StorageError
from image_core.names import image_file_name, parse_public_name
from image_core.ports import ImageStore
from image_server.adapters.atomic_files import (
    is_regular_file,
    open_regular_file,
    read_regular_file,
    remove_files,
    remove_quietly,
    remove_stale_temps,
    storage_error,
    write_atomic,
)
from image_server.adapters.thumbnail_files import (
    THUMBNAIL_EXTENSIONS,
    read_thumbnail,
    thumbnail_path,
    thumbnail_paths,
)

log = logging.getLogger("image_server.images")

THUMBS_DIR = "thumbs"
# Read order when looking a thumbnail up; the extension is the stored media type.
PUBLIC_FILE_MODE = 0o644


class FilesystemImageStore:
    """``ImageStore`` on a folder; safe for many threads and processes at once."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._thumbs = root / THUMBS_DIR
        try:
            root.mkdir(parents=True, exist_ok=True)
            self._thumbs.mkdir(exist_ok=True)
        except OSError as exc:
            raise storage_error("create the image folders", exc) from exc
        if not stat.S_ISDIR(os.lstat(self._thumbs).st_mode):
            raise StorageError(f"{THUMBS_DIR} in the data folder must be a folder, not a link.")
        remove_stale_temps(root)
        remove_stale_temps(self._thumbs)

    @property
    def root(self) -> Path:
        """The folder holding the PNGs."""
        return self._root

    def path_for(self, image_id: uuid.UUID) -> Path:
        """Where the PNG of ``image_id`` lives (``ValueError`` unless it is a uuid4)."""
        return self._root / image_file_name(image_id)

    def open_png(self, name: str) -> tuple[int, os.stat_result] | None:
        """Open a public ``{uuid}.png`` for serving: a descriptor the caller must close.

        Anything but a regular file reached without a symlink is ``None`` (a 404), and
        so is an unreadable file: the route must never turn a file problem into a 500.
        A file with more than one name is refused too (logged): a hard link is no
        symlink, so ``O_NOFOLLOW`` cannot see it, yet it may be a second name for a
        sidecar or a file outside the folder. Every PNG this store writes has one name.
        """
        image_id = parse_public_name(name)
        if image_id is None:
            return None
        try:
            opened = open_regular_file(self.path_for(image_id))
        except OSError as exc:
            log.warning("Cannot open %s: %s", name, exc.strerror)
            return None
        if opened is not None and opened[1].st_nlink != 1:
            os.close(opened[0])
            log.warning("Not serving %s: it has %d hard links", name, opened[1].st_nlink)
            return None
        return opened

    def put(self, image_id: uuid.UUID, png: bytes, thumbnail: EncodedImage | None) -> None:
        """Write the PNG, then the thumbnail; if either fails, neither is left."""
        png_path = self.path_for(image_id)
        if thumbnail is not None:  # an unknown media type is refused before anything is written
            self._thumbnail_path(image_id, thumbnail.mime_type)
        try:
            write_atomic(png_path, png, mode=PUBLIC_FILE_MODE)
        except OSError as exc:
            raise storage_error(f"save image {png_path.name}", exc) from exc
        if thumbnail is None:
            return
        try:
            self._write_thumbnail(
                self._thumbnail_path(image_id, thumbnail.mime_type), thumbnail.data
            )
        except BaseException:
            remove_quietly(png_path)
            raise

    def get(self, image_id: uuid.UUID) -> bytes | None:
        """The PNG bytes, or ``None`` when missing (or not a regular file)."""
        path = self.path_for(image_id)
        try:
            return read_regular_file(path)
        except OSError as exc:
            raise storage_error(f"read image {path.name}", exc) from exc

    def get_thumbnail(self, image_id: uuid.UUID) -> EncodedImage | None:
        """The stored thumbnail with the media type its extension records."""
        return read_thumbnail(self._thumbs, image_id)

    def put_thumbnail(self, image_id: uuid.UUID, thumbnail: EncodedImage) -> None:
        """Store a thumbnail made later; the image itself must already exist."""
        path = self._thumbnail_path(image_id, thumbnail.mime_type)
        if not self.exists(image_id):
            raise StorageError("There is no image to attach this thumbnail to.")
        self._write_thumbnail(path, thumbnail.data)

    def exists(self, image_id: uuid.UUID) -> bool:
        """Whether the PNG is stored as a regular file."""
        return is_regular_file(self.path_for(image_id))

    def delete(self, image_id: uuid.UUID) -> None:
        """Remove the PNG and every thumbnail variant; missing files are fine."""
        paths = [self.path_for(image_id)]
        paths += list(thumbnail_paths(self._thumbs, image_id))
        remove_files(paths)

    def _thumbnail_path(self, image_id: uuid.UUID, mime_type: str) -> Path:
        return thumbnail_path(self._thumbs, image_id, mime_type)

    def _write_thumbnail(self, path: Path, data: bytes) -> None:
        """Write one variant, then drop the others so a lookup finds only the new one."""
        try:
            write_atomic(path, data, mode=PUBLIC_FILE_MODE)
        except OSError as exc:
            raise storage_error(f"save thumbnail {path.name}", exc) from exc
        stem = path.name.removesuffix(path.suffix)
        for extension in THUMBNAIL_EXTENSIONS.values():
            if extension != path.suffix:
                remove_quietly(self._thumbs / f"{stem}{extension}")


_: type[ImageStore] = FilesystemImageStore
