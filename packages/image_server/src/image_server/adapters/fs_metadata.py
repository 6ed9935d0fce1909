"""Generation records: JSON sidecars are the truth, a SQLite index answers the queries.

Each generation is ``{uuid}.json`` next to its PNG, so the data volume alone (a backup,
a copy) holds everything, and records are always read from their sidecar. The narrow
``index.sqlite3`` (id, owner, time, day, cost) only finds and sums them. It is derived
and disposable: rebuilt on open when missing, damaged or of another version, and
brought in step when sidecars were added or removed behind its back.

Indexing parses only the indexed fields, which keeps a rebuild of 100k sidecars fast; a
sidecar damaged elsewhere is skipped with a warning when it is read. Costs are indexed
as integer micro-dollars so SQLite sums them exactly; a finer amount is kept as text
and added in Python, so totals always equal the exact ``Decimal`` sum.
"""

from __future__ import annotations

import functools
import json
import logging
import os
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

import attrs
import cattrs

from image_core.access import owner_key
from image_core.domain import (
    CostEstimate,
    DailySpend,
    GalleryPage,
    Generation,
    UsageReport,
    UserUsage,
)
from image_core.errors import CorruptRecord, StorageError
from image_core.names import is_image_id, record_file_name, record_file_name_of, record_id_text
from image_core.ports import MetadataRepository
from image_core.serialization import RecordCodec, make_record_converter
from image_server.adapters.atomic_files import (
    FileLock,
    fsync_dir,
    read_regular_file,
    remove_quietly,
    storage_error,
    write_atomic,
)

log = logging.getLogger("image_server.metadata")

INDEX_NAME = "index.sqlite3"
INDEX_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = 1_000_000
_MAX_MICROS = 10**15  # per row; keeps every SUM far from SQLite's 64-bit overflow
_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB

_TABLES = (
    "DROP TABLE IF EXISTS generations",
    "DROP TABLE IF EXISTS skipped",
    """CREATE TABLE generations (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_us INTEGER NOT NULL,
        day TEXT NOT NULL, cost_micro INTEGER, cost_text TEXT)""",
    "CREATE TABLE skipped (id TEXT PRIMARY KEY)",
)
_INDEXES = (
    "CREATE INDEX by_owner_time ON generations (owner, created_us DESC, id DESC)",
    "CREATE INDEX by_owner_cost ON generations (owner, cost_micro)",
    "CREATE INDEX by_day ON generations (day, owner, cost_micro)",
)
_INSERT = "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?)"

Row = tuple[str, str, int, str, int | None, str | None]


@attrs.frozen
class _Indexed:
    """The fields the index needs, read with the record converter's own rules."""

    id: uuid.UUID
    email: str
    created_at: datetime
    cost: CostEstimate


class FilesystemMetadataRepository:
    """``MetadataRepository`` over sidecar files and a SQLite index; call ``close()``."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._codec = RecordCodec()
        self._converter = make_record_converter()
        self._index_path = root / INDEX_NAME
        self._lock = threading.RLock()
        self._file_lock = FileLock(root / ".index.lock")
        try:
            root.mkdir(parents=True, exist_ok=True)
            with self._file_lock:
                self._conn = self._open_index()
        except OSError as exc:
            raise storage_error("open the generation records", exc) from exc

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
        path = self._sidecar_path(generation.id)
        try:
            data = self._codec.dump_generation(generation)
        except ValueError as exc:  # UnicodeEncodeError: an unpaired surrogate in the text
            raise StorageError(
                f"Generation {generation.id} could not be recorded: its text is not valid Unicode."
            ) from exc
        try:
            write_atomic(path, data, overwrite=False)
        except FileExistsError:
            raise StorageError(f"Generation {generation.id} is already recorded.") from None
        except OSError as exc:
            raise storage_error(f"record generation {generation.id}", exc) from exc
        try:
            self._index(generation)
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
        """The record read from its sidecar; ``None`` when missing or unreadable."""
        if not is_image_id(generation_id):
            return None
        return self._load(str(generation_id))

    def page_for_user(self, email: str, offset: int, limit: int) -> GalleryPage:
        """A page of one person's generations, newest first, ties broken by id."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must not be negative")
        with self._reading() as conn:
            (total,) = conn.execute(
                "SELECT COUNT(*) FROM generations WHERE owner = ?", (email,)
            ).fetchone()
            ids = conn.execute(
                "SELECT id FROM generations WHERE owner = ? "
                "ORDER BY created_us DESC, id DESC LIMIT ? OFFSET ?",
                (email, limit, offset),
            ).fetchall()
        items = tuple(g for (id_text,) in ids if (g := self._load(id_text)) is not None)
        return GalleryPage(items, total, offset, limit)

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
        """Rebuild the whole index from the sidecars now (after editing them by hand)."""
        try:
            with self._file_lock, self._lock:
                return self._sync(self._conn, full=True)
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
                sql = f"SELECT {keys}, cost_text FROM generations {fine_where}"  # noqa: S608
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

    def _sidecar_path(self, generation_id: uuid.UUID) -> Path:
        return self._root / record_file_name(generation_id)

    def _load(self, id_text: str) -> Generation | None:
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

    def _index(self, generation: Generation) -> None:
        row = _row(generation.id, generation.email, generation.created_at, generation.cost)
        with self._lock, _Transaction(self._conn, "BEGIN IMMEDIATE"):
            self._conn.execute(_INSERT, row)
            self._conn.execute("DELETE FROM skipped WHERE id = ?", (row[0],))

    def _open_index(self) -> sqlite3.Connection:
        """Connect and sync; a damaged file is discarded and rebuilt from the sidecars."""
        try:
            return self._connect_and_sync()
        except sqlite3.Error as exc:
            if exc.sqlite_errorcode & 0xFF not in _CORRUPT_CODES:
                raise StorageError("The generation index could not be opened.") from exc
            log.warning("%s is damaged (%s); rebuilding it from the sidecars.", INDEX_NAME, exc)
        except OSError as exc:
            raise storage_error("read the generation records", exc) from exc
        for suffix in ("", "-wal", "-shm", "-journal"):
            remove_quietly(self._index_path.with_name(INDEX_NAME + suffix))
        try:
            return self._connect_and_sync()
        except sqlite3.Error as exc:
            raise StorageError("The generation index could not be rebuilt.") from exc
        except OSError as exc:
            raise storage_error("read the generation records", exc) from exc

    def _connect_and_sync(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._index_path, timeout=30, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # the index is derived: speed over fsync
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._sync(conn, full=version != INDEX_VERSION)
        except BaseException:
            conn.close()
            raise
        return conn

    def _sync(self, conn: sqlite3.Connection, *, full: bool) -> int:
        """Make the index hold exactly the sidecars present, reading only the new ones.

        Runs in one write transaction that also covers the folder scan, so an ``add``
        from another process lands either in the scan or after the commit.
        """
        with _Transaction(conn, "BEGIN IMMEDIATE"):
            if full:
                for statement in _TABLES:
                    conn.execute(statement)
            known = {r[0] for r in conn.execute("SELECT id FROM generations")}
            known |= {r[0] for r in conn.execute("SELECT id FROM skipped")}
            present = self._scan()
            gone = [(i,) for i in known - present]
            conn.executemany("DELETE FROM generations WHERE id = ?", gone)
            conn.executemany("DELETE FROM skipped WHERE id = ?", gone)
            skipped: list[str] = []
            conn.executemany(_INSERT, self._index_rows(sorted(present - known), skipped))
            conn.executemany("INSERT INTO skipped VALUES (?)", ((s,) for s in skipped))
            if full:
                for statement in _INDEXES:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {INDEX_VERSION}")
            (indexed,) = conn.execute("SELECT COUNT(*) FROM generations").fetchone()
        if full or gone or present - known:
            log.info(
                "Index holds %d generations: %d sidecars added, %d gone, %d unreadable.",
                indexed,
                len(present - known) - len(skipped),
                len(gone),
                len(skipped),
            )
        return int(indexed)

    def _scan(self) -> set[str]:
        """Ids of every ``{uuid}.json`` in the root (names only: no stat per file)."""
        with os.scandir(self._root) as entries:
            return {i for e in entries if (i := record_id_text(e.name)) is not None}

    def _index_rows(self, ids: list[str], skipped: list[str]) -> Iterator[Row]:
        """Index rows of the given sidecars; unreadable ones are logged and listed."""
        dir_fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for id_text in ids:
                try:
                    yield self._index_row(id_text, dir_fd)
                except (CorruptRecord, OSError) as exc:
                    reason = exc.message if isinstance(exc, CorruptRecord) else exc.strerror
                    log.warning("Skipping sidecar %s.json: %s", id_text, reason)
                    skipped.append(id_text)
        finally:
            os.close(dir_fd)

    def _index_row(self, id_text: str, dir_fd: int) -> Row:
        name = record_file_name_of(id_text)
        data = read_regular_file(name, dir_fd=dir_fd)
        if data is None:
            raise CorruptRecord("not a regular file")
        fields = self._indexed_fields(data)
        if str(fields.id) != id_text:
            raise CorruptRecord(f"it holds the record of {fields.id}")
        return _row(fields.id, fields.email, fields.created_at, fields.cost)

    def _indexed_fields(self, raw: bytes) -> _Indexed:
        """The indexed fields, checked as strictly as ``RecordCodec.load_generation`` does."""
        try:
            data = json.loads(raw)
        except ValueError:
            raise CorruptRecord("not valid JSON") from None
        if not isinstance(data, dict):
            raise CorruptRecord("not a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise CorruptRecord("no usable schema_version")
        try:
            fields = self._converter.structure(data, _Indexed)
        except cattrs.BaseValidationError as exc:
            raise CorruptRecord("; ".join(cattrs.transform_error(exc))) from None
        except (ValueError, TypeError) as exc:
            raise CorruptRecord(str(exc)) from None
        if fields.id.version != 4:
            raise CorruptRecord("its id is not a uuid4")
        return fields


class _Transaction:
    """``BEGIN`` ... ``COMMIT``, or ``ROLLBACK`` when the block or the commit fails."""

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
            if self._conn.in_transaction:
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")


# The owner column of a stored record: sidecars written before emails were normalised
# by the service (the v1 sample) are grouped by the same key. A rebuild meets the same
# few emails over and over. Query arguments arrive normalised and are used as given.
_owner = functools.lru_cache(maxsize=4096)(owner_key)


def _owner_filter(emails: Collection[str] | None) -> tuple[str, tuple[Any, ...]]:
    if emails is None:
        return "", ()
    wanted = json.dumps(sorted(set(emails)))
    return "WHERE owner IN (SELECT value FROM json_each(?))", (wanted,)


def _from_micros(micros: int) -> Decimal:
    return Decimal(micros) / _MICROS if micros else Decimal(0)


def _row(generation_id: uuid.UUID, email: str, created_at: datetime, cost: CostEstimate) -> Row:
    micros = cost.usd.scaleb(6)
    exact = micros == micros.to_integral_value() and micros < _MAX_MICROS
    return (
        str(generation_id),
        _owner(email),
        (created_at - _EPOCH) // timedelta(microseconds=1),
        created_at.astimezone(UTC).date().isoformat(),
        int(micros) if exact else None,
        None if exact else str(cost.usd),
    )


_: type[MetadataRepository] = FilesystemMetadataRepository
