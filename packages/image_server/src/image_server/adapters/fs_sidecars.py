"""The JSON sidecars: one ``{uuid}.json`` per generation, the records' source of truth.

Each record is written atomically beside its PNG and never over an existing one, so
the data volume alone (a backup, a copy) holds everything. A damaged sidecar is
logged once by name (never the folder's path) and treated as absent.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

from image_core.domain import Generation
from image_core.errors import CorruptRecord, StorageError
from image_core.names import record_file_name, record_file_name_of, record_id_text
from image_core.serialization import IndexedFields, RecordCodec
from image_server.adapters.atomic_files import (
    fsync_dir,
    read_regular_file,
    remove_quietly,
    storage_error,
    write_atomic,
)

log = logging.getLogger("image_server.metadata")


class SidecarFiles:
    """Reads, writes and lists the sidecars in one folder, through the record codec."""

    def __init__(self, root: Path, codec: RecordCodec | None = None) -> None:
        self._root = root
        self._codec = codec or RecordCodec()

    def write_new(self, generation: Generation) -> None:
        """Write the sidecar of a new generation; an existing one is never replaced."""
        path = self._root / record_file_name(generation.id)
        try:
            write_atomic(path, self._dump(generation), overwrite=False)
        except FileExistsError:
            raise StorageError(f"Generation {generation.id} is already recorded.") from None
        except OSError as exc:
            raise storage_error(f"record generation {generation.id}", exc) from exc

    def overwrite(self, generation: Generation) -> None:
        """Replace the sidecar of a recorded generation atomically (its status changed)."""
        path = self._root / record_file_name(generation.id)
        data = self._dump(generation)
        if read_regular_file(path) is None:
            raise StorageError(f"Generation {generation.id} was never recorded.")
        try:
            write_atomic(path, data, overwrite=True)
        except OSError as exc:
            raise storage_error(f"record generation {generation.id}", exc) from exc

    def _dump(self, generation: Generation) -> bytes:
        try:
            return self._codec.dump_generation(generation)
        except ValueError as exc:  # UnicodeEncodeError: an unpaired surrogate in the text
            raise StorageError(
                f"Generation {generation.id} could not be recorded: its text is not valid Unicode."
            ) from exc

    def remove(self, generation_id: uuid.UUID) -> None:
        """Take a just-written sidecar back (its index row failed); never raises."""
        remove_quietly(self._root / record_file_name(generation_id))
        with suppress(OSError):
            fsync_dir(self._root)

    def load(self, id_text: str) -> Generation | None:
        """Read and fully check one sidecar; a damaged one is logged and treated as absent."""
        name = record_file_name_of(id_text)
        try:
            data = read_regular_file(self._root / name)
            if data is None:
                return None
            generation = self._codec.load_generation(data, source=name)
        except OSError as exc:
            raise storage_error(f"read {name}", exc) from exc
        except CorruptRecord as exc:
            log.warning("Skipping sidecar %s", exc.message)
            return None
        if str(generation.id) != id_text:
            log.warning("Skipping sidecar %s: it holds the record of %s", name, generation.id)
            return None
        return generation

    def ids(self) -> set[str]:
        """Ids of every ``{uuid}.json`` in the folder (names only: no stat per file)."""
        with os.scandir(self._root) as entries:
            return {i for e in entries if (i := record_id_text(e.name)) is not None}

    def indexed_fields(self, ids: list[str], skipped: list[str]) -> Iterator[IndexedFields]:
        """The indexed fields of the given sidecars; unreadable ones are logged and listed.

        A few threads read the files ahead of the parsing, 64 to a task (reads wait on
        the disk, not on the interpreter, and one task per file would cost more than it
        saves): 10k sidecars in 0.5 s warm, 1.2 s with a cold file cache (1.9 s alone).
        """
        dir_fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        chunks = [ids[i : i + _READ_CHUNK] for i in range(0, len(ids), _READ_CHUNK)]
        try:
            with ThreadPoolExecutor(_READERS, thread_name_prefix="sidecar-read") as pool:
                read = functools.partial(_read_sidecars, dir_fd=dir_fd)
                for chunk, datas in zip(chunks, pool.map(read, chunks), strict=True):
                    for id_text, data in zip(chunk, datas, strict=True):
                        try:
                            yield self._indexed_fields_of(id_text, data)
                        except CorruptRecord as exc:
                            log.warning("Skipping sidecar %s", exc.message)
                            skipped.append(id_text)
                        except OSError as exc:
                            log.warning("Skipping sidecar %s.json: %s", id_text, exc.strerror)
                            skipped.append(id_text)
        finally:
            os.close(dir_fd)

    def _indexed_fields_of(self, id_text: str, data: bytes | OSError | None) -> IndexedFields:
        name = record_file_name_of(id_text)
        if isinstance(data, OSError):
            raise data
        if data is None:
            raise CorruptRecord(f"{name}: not a regular file")
        fields = self._codec.load_indexed_fields(data, source=name)
        if str(fields.id) != id_text:
            raise CorruptRecord(f"{name}: it holds the record of {fields.id}")
        return fields


_READERS = 3
_READ_CHUNK = 64


def _read_sidecars(ids: list[str], *, dir_fd: int) -> list[bytes | OSError | None]:
    """Each sidecar's bytes (``None``: not a regular file), or the error reading it."""
    found: list[bytes | OSError | None] = []
    for id_text in ids:
        try:
            found.append(read_regular_file(record_file_name_of(id_text), dir_fd=dir_fd))
        except OSError as exc:
            found.append(exc)
    return found
