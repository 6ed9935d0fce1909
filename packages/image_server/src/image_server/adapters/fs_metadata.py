"""Generation records: JSON sidecars are the truth, a SQLite index answers the queries.

Each generation is ``{uuid}.json`` next to its PNG, so the data volume alone (a backup,
a copy) holds everything. ``index.sqlite3`` is derived and disposable: it is rebuilt on
open when missing, corrupt, of another version, or out of step with the sidecars, so
no query ever scans thousands of files. Costs are indexed as integer micro-dollars so
SQLite sums them exactly; the rare finer amount is added from its exact text instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from image_core.access import normalise_email
from image_core.domain import (
    CostEstimate,
    DailySpend,
    GalleryPage,
    Generation,
    UsageReport,
    UserUsage,
)
from image_core.errors import CorruptRecord, StorageError
from image_core.ports import MetadataRepository
from image_core.serialization import RecordCodec
from image_server.adapters.atomic_files import (
    FileLock,
    fsync_dir,
    read_regular_file,
    remove_quietly,
    storage_error,
    write_atomic,
)
from image_server.adapters.fs_images import check_image_id

log = logging.getLogger("image_server.metadata")

INDEX_NAME = "index.sqlite3"
INDEX_VERSION = 1
SIDECAR_NAME = re.compile(
    r"([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})\.json"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = 1_000_000
_MAX_MICROS = 10**15  # per row; keeps every SUM far from SQLite's 64-bit overflow
_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB

_TABLES = (
    "DROP TABLE IF EXISTS generations",
    "DROP TABLE IF EXISTS skipped",
    "DROP TABLE IF EXISTS meta",
    """CREATE TABLE generations (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_us INTEGER NOT NULL,
        day TEXT NOT NULL, cost_micro INTEGER, cost TEXT NOT NULL, record BLOB NOT NULL)""",
    "CREATE TABLE skipped (id TEXT PRIMARY KEY)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
_INDEXES = (
    "CREATE INDEX by_owner_time ON generations (owner, created_us DESC, id DESC)",
    "CREATE INDEX by_day ON generations (day, owner)",
)
_INSERT = "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?)"
_SET_MTIME = """INSERT INTO meta VALUES ('max_mtime_ns', ?)
    ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"""

Row = tuple[str, str, int, str, int | None, str, bytes]


class FilesystemMetadataRepository:
    """``MetadataRepository`` over sidecar files and a SQLite index; call ``close()``."""

    def __init__(self, root: Path, codec: RecordCodec | None = None) -> None:
        self._root = root
        self._codec = codec or RecordCodec()
        self._index_path = root / INDEX_NAME
        self._lock = threading.RLock()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error("create the data folder", exc) from exc
        self._file_lock = FileLock(root / ".index.lock")
        with self._file_lock:
            self._conn = self._open_index()

    def close(self) -> None:
        """Close the index connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> FilesystemMetadataRepository:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def add(self, generation: Generation) -> None:
        """Write the sidecar (never over an existing one), then index it; undo on failure."""
        name = f"{check_image_id(generation.id)}.json"
        try:
            data = self._codec.dump_generation(generation)
        except ValueError as exc:  # UnicodeEncodeError: an unpaired surrogate in the text
            raise StorageError(
                f"Generation {generation.id} could not be recorded: its text is not valid Unicode."
            ) from exc
        path = self._root / name
        try:
            info = write_atomic(path, data, overwrite=False)
        except FileExistsError:
            raise StorageError(f"Generation {generation.id} is already recorded.") from None
        except OSError as exc:
            raise storage_error(f"record generation {generation.id}", exc) from exc
        try:
            self._insert(_row(generation, data), info.st_mtime_ns)
        except BaseException as exc:
            remove_quietly(path)
            with suppress(OSError):
                fsync_dir(self._root)
            if isinstance(exc, sqlite3.Error):
                raise StorageError(
                    f"Could not record generation {generation.id}: the index refused it."
                ) from exc
            raise

    def get(self, generation_id: uuid.UUID) -> Generation | None:
        """One record, or ``None``."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT record FROM generations WHERE id = ?", (str(generation_id),)
            ).fetchone()
        return self._decode(row[0]) if row else None

    def page_for_user(self, email: str, offset: int, limit: int) -> GalleryPage:
        """A page of one person's generations, newest first, ties broken by id."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must not be negative")
        owner = _owner(email)
        with self._reading() as conn:
            (total,) = conn.execute(
                "SELECT COUNT(*) FROM generations WHERE owner = ?", (owner,)
            ).fetchone()
            rows = conn.execute(
                "SELECT record FROM generations WHERE owner = ? "
                "ORDER BY created_us DESC, id DESC LIMIT ? OFFSET ?",
                (owner, limit, offset),
            ).fetchall()
        return GalleryPage(tuple(self._decode(r[0]) for r in rows), total, offset, limit)

    def usage(self, emails: Collection[str] | None = None) -> UsageReport:
        """Image count and exact cost per person, largest spend first, then by email."""
        groups = self._totals("owner", *_owner_filter(emails))
        rows = [UserUsage(owner, count, cost) for (owner,), (count, cost) in groups.items()]
        rows.sort(key=lambda r: (-r.cost.usd, r.email))
        return UsageReport(tuple(rows))

    def daily_spend(self, since: date, emails: Collection[str] | None = None) -> list[DailySpend]:
        """Spend per UTC day and person from ``since`` on, oldest day first."""
        where, params = _owner_filter(emails)
        where = f"{where} AND day >= ?" if where else "WHERE day >= ?"
        groups = self._totals("day, owner", where, (*params, since.isoformat()))
        return [
            DailySpend(day, owner, count, cost)
            for (day, owner), (count, cost) in sorted(groups.items())
        ]

    def users(self) -> list[str]:
        """Every owner with at least one generation, sorted."""
        with self._reading() as conn:
            rows = conn.execute("SELECT DISTINCT owner FROM generations ORDER BY owner")
            return [r[0] for r in rows]

    def rebuild_index(self) -> int:
        """Rebuild the index from the sidecars now; returns how many records it holds."""
        with self._file_lock, self._lock:
            try:
                return self._rebuild(self._conn)
            except sqlite3.Error as exc:
                raise StorageError("The generation index could not be rebuilt.") from exc
            except OSError as exc:
                raise storage_error("read the generation records", exc) from exc

    def _totals(
        self, keys: str, where: str, params: tuple[Any, ...]
    ) -> dict[tuple[str, ...], tuple[int, CostEstimate]]:
        """Count and exact cost per group: SQL sums the micro-dollars, Python the rest.

        ``keys`` and ``where`` are fixed text from this module; values travel as parameters.
        """
        sums = f"SELECT {keys}, COUNT(*), COALESCE(SUM(cost_micro), 0), COUNT(cost_micro)"
        fine_where = f"{where} AND cost_micro IS NULL" if where else "WHERE cost_micro IS NULL"
        with self._reading() as conn:
            found = conn.execute(f"{sums} FROM generations {where} GROUP BY {keys}", params)
            groups = {tuple(r[:-3]): (r[-3], r[-2], r[-1]) for r in found}
            fine: dict[tuple[str, ...], Decimal] = {}
            if any(count != exact for count, _, exact in groups.values()):
                sql = f"SELECT {keys}, cost FROM generations {fine_where}"  # noqa: S608
                for *key, cost in conn.execute(sql, params):
                    fine[tuple(key)] = fine.get(tuple(key), Decimal(0)) + Decimal(cost)
        return {
            key: (count, CostEstimate(_from_micros(micros) + fine.get(key, Decimal(0))))
            for key, (count, micros, _) in groups.items()
        }

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, alone and in one snapshot; index failures become ``StorageError``."""
        with self._lock:
            try:
                with _Transaction(self._conn, "BEGIN"):
                    yield self._conn
            except sqlite3.Error as exc:
                raise StorageError("The generation index could not be read.") from exc

    def _decode(self, record: bytes) -> Generation:
        return self._codec.load_generation(record)

    def _insert(self, row: Row, mtime_ns: int) -> None:
        with self._lock, _Transaction(self._conn, "BEGIN IMMEDIATE"):
            self._conn.execute(_INSERT, row)
            self._conn.execute("DELETE FROM skipped WHERE id = ?", (row[0],))
            self._conn.execute(_SET_MTIME, (mtime_ns,))

    def _open_index(self) -> sqlite3.Connection:
        """Connect, and rebuild if stale; a corrupt file is discarded and rebuilt."""
        try:
            return self._connect_fresh_enough()
        except sqlite3.Error as exc:
            if exc.sqlite_errorcode & 0xFF not in _CORRUPT_CODES:
                raise StorageError("The generation index could not be opened.") from exc
            log.warning("%s is damaged (%s); rebuilding it from the sidecars.", INDEX_NAME, exc)
        except OSError as exc:
            raise storage_error("read the generation records", exc) from exc
        for suffix in ("", "-wal", "-shm", "-journal"):
            remove_quietly(self._index_path.with_name(INDEX_NAME + suffix))
        try:
            return self._connect_fresh_enough()
        except sqlite3.Error as exc:
            raise StorageError("The generation index could not be rebuilt.") from exc
        except OSError as exc:
            raise storage_error("read the generation records", exc) from exc

    def _connect_fresh_enough(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._index_path, timeout=30, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # the index is derived: speed over fsync
            if self._is_stale(conn):
                self._rebuild(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _is_stale(self, conn: sqlite3.Connection) -> bool:
        if conn.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
            return True
        known = {
            r[0] for r in conn.execute("SELECT id FROM generations UNION SELECT id FROM skipped")
        }
        row = conn.execute("SELECT value FROM meta WHERE key = 'max_mtime_ns'").fetchone()
        names, newest = self._scan()
        return names != known or newest > (row[0] if row else 0)

    def _scan(self) -> tuple[set[str], int]:
        """Ids of every ``{uuid}.json`` in the root and the newest modification time."""
        names: set[str] = set()
        newest = 0
        with os.scandir(self._root) as entries:
            for entry in entries:
                match = SIDECAR_NAME.fullmatch(entry.name)
                if match:
                    names.add(match[1])
                    with suppress(FileNotFoundError):
                        newest = max(newest, entry.stat(follow_symlinks=False).st_mtime_ns)
        return names, newest

    def _rebuild(self, conn: sqlite3.Connection) -> int:
        """Replace the index with the sidecars' contents in one transaction."""
        with _Transaction(conn, "BEGIN IMMEDIATE"):
            for statement in _TABLES:
                conn.execute(statement)
            names, newest = self._scan()  # inside the write lock: no add slips between
            skipped: list[str] = []
            conn.executemany(_INSERT, self._load_rows(sorted(names), skipped))
            conn.executemany("INSERT INTO skipped VALUES (?)", ((s,) for s in skipped))
            for statement in _INDEXES:
                conn.execute(statement)
            conn.execute(_SET_MTIME, (newest,))
            conn.execute(f"PRAGMA user_version = {INDEX_VERSION}")
        indexed = len(names) - len(skipped)
        log.info("Indexed %d generations (%d unreadable sidecars skipped).", indexed, len(skipped))
        return indexed

    def _load_rows(self, ids: list[str], skipped: list[str]) -> Iterator[Row]:
        """Rows for every readable sidecar; unreadable ones are logged and left out."""
        dir_fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for id_text in ids:
                try:
                    yield self._read_sidecar(id_text, dir_fd)
                except (CorruptRecord, OSError) as exc:
                    reason = exc.message if isinstance(exc, CorruptRecord) else exc.strerror
                    log.warning("Skipping sidecar %s.json: %s", id_text, reason)
                    skipped.append(id_text)
        finally:
            os.close(dir_fd)

    def _read_sidecar(self, id_text: str, dir_fd: int) -> Row:
        name = f"{id_text}.json"
        data = read_regular_file(name, dir_fd=dir_fd)
        if data is None:
            raise CorruptRecord(f"{name} is not a regular file")
        generation = self._codec.load_generation(data, source=name)
        if str(generation.id) != id_text:
            raise CorruptRecord(f"{name} holds the record of {generation.id}")
        return _row(generation, data)


class _Transaction:
    """``BEGIN`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises."""

    def __init__(self, conn: sqlite3.Connection, begin: str) -> None:
        self._conn = conn
        self._begin = begin

    def __enter__(self) -> None:
        self._conn.execute(self._begin)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self._conn.execute("COMMIT")
        finally:
            if self._conn.in_transaction:  # the block or the COMMIT itself failed
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")


def _owner(email: str) -> str:
    """The key records are grouped by: the normalised email, else the text as given."""
    return normalise_email(email) or email


def _owner_filter(emails: Collection[str] | None) -> tuple[str, tuple[Any, ...]]:
    if emails is None:
        return "", ()
    return "WHERE owner IN (SELECT value FROM json_each(?))", (
        json.dumps(sorted({_owner(e) for e in emails})),
    )


def _from_micros(micros: int) -> Decimal:
    return Decimal(micros) / _MICROS if micros else Decimal(0)


def _row(generation: Generation, record: bytes) -> Row:
    micros = generation.cost.usd.scaleb(6)
    exact = micros == micros.to_integral_value() and micros < _MAX_MICROS
    return (
        str(generation.id),
        _owner(generation.email),
        (generation.created_at - _EPOCH) // timedelta(microseconds=1),
        generation.created_at.astimezone(UTC).date().isoformat(),
        int(micros) if exact else None,
        str(generation.cost.usd),
        record,
    )


_: type[MetadataRepository] = FilesystemMetadataRepository
