"""Everyone's default model in one small ``prefs.json`` on the data volume.

One file is shared by every person, so each change is a read-modify-write under a lock
held across threads and processes, then an atomic replace: no one's choice is lost and
a crash leaves the old or the new file. A damaged file is never overwritten, because
rewriting it would silently drop every other person's choice.
"""

from __future__ import annotations

import logging
from pathlib import Path

from image_core.errors import CorruptRecord
from image_core.ports import PrefStore
from image_core.serialization import Prefs, RecordCodec
from image_server.adapters.atomic_files import (
    FileLock,
    read_regular_file,
    storage_error,
    write_atomic,
)

log = logging.getLogger("image_server.prefs")

PREFS_NAME = "prefs.json"


class FilesystemPrefStore:
    """``PrefStore`` backed by ``root/prefs.json``; emails arrive normalised by the service."""

    def __init__(self, root: Path) -> None:
        self._path = root / PREFS_NAME
        self._codec = RecordCodec()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error("create the data folder", exc) from exc
        self._lock = FileLock(root / ".prefs.lock")

    def get_default_model(self, email: str) -> str | None:
        """The stored alias, or ``None`` (also when the file is damaged: it is logged)."""
        try:
            prefs = self._load()
        except CorruptRecord as exc:
            log.warning("Ignoring %s: %s", PREFS_NAME, exc.message)
            return None
        return prefs.default_models.get(email)

    def set_default_model(self, email: str, alias: str) -> None:
        """Remember ``alias`` for ``email``, keeping everyone else's choice."""
        try:
            with self._lock:
                current = self._load()
                chosen = {**current.default_models, email: alias}
                write_atomic(self._path, self._codec.dump_prefs(Prefs(chosen)))
        except OSError as exc:
            raise storage_error("save the default model", exc) from exc

    def _load(self) -> Prefs:
        try:
            raw = read_regular_file(self._path)
        except OSError as exc:
            raise storage_error(f"read {PREFS_NAME}", exc) from exc
        if raw is None:
            return Prefs()
        try:
            return self._codec.load_prefs(raw, source=PREFS_NAME)
        except CorruptRecord as exc:
            raise CorruptRecord(
                f"{exc.message}. It was left unchanged: repair or remove it to save choices again."
            ) from exc


_: type[PrefStore] = FilesystemPrefStore
