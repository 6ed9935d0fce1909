"""The SQLite index beside the sidecars: it finds, sums and exports records, never holds them.

``index.sqlite3`` (id, owner, time, day, cost, list price, cost basis, status, model, size
and a shortened prompt: what the money views and the CSV export need, so no listing reads
a sidecar) is derived and disposable: rebuilt on open when missing, damaged, of another
version or of a foreign schema (any table, column, index or trigger that is not exactly
ours), and brought in step when sidecars were added or removed behind its back (reading
only the new ones). Only a folder (or a link, a device) in its place stops start-up: it
is never removed for us. Costs are indexed as integer micro-dollars so SQLite sums them
exactly; a finer amount is kept as text and added in Python, so totals always equal the
exact ``Decimal`` sum.

A full rebuild of more than a few thousand sidecars runs in a background thread: the
index opens at once, empty, and fills a batch at a time (the source parses ahead, in
worker processes of its own) while the server answers from what is there
(``rebuilding()`` says how far it is, so pages can say their figures are partial).
Rows the server writes meanwhile win over what the rebuild read, and a last pass
brings the index in step with the folder; the version is written only at the end, so a
rebuild cut short (a crash, a stop) starts again at the next open.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from contextlib import closing, contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

import attrs

from image_core.access import owner_key
from image_core.budgets import Period
from image_core.domain import (
    CostBasis,
    CostEstimate,
    DailySpend,
    GenerationStatus,
    ImageSize,
    UsageReport,
    UserUsage,
)
from image_core.errors import StorageError
from image_core.ledger import CostRow, PersonSpend, RebuildProgress, short_prompt
from image_core.serialization import IndexedFields
from image_server.adapters.atomic_files import FileLock, remove_quietly, storage_error

log = logging.getLogger("image_server.metadata")

INDEX_NAME = "index.sqlite3"
INDEX_VERSION = 3  # 2: the status column; 3: what the money views and the CSV export need
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = 1_000_000
_MAX_MICROS = 10**15  # per row; keeps every SUM far from SQLite's 64-bit overflow
_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
#: A full rebuild of more sidecars than this runs in the background.
BACKGROUND_REBUILD_FROM = 2000
_REBUILD_BATCH = 1000
_EXPORT_BATCH = 500

_DONE = GenerationStatus.DONE.value
_RENDERING = GenerationStatus.RENDERING.value
#: Costs count once a record is settled (done, or failed and maybe billed).
_SETTLED = f"status != '{_RENDERING}'"

_TABLES = (
    "DROP TABLE IF EXISTS generations",
    "DROP TABLE IF EXISTS skipped",
    """CREATE TABLE generations (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_us INTEGER NOT NULL,
        day TEXT NOT NULL, cost_micro INTEGER, cost_text TEXT, status TEXT NOT NULL,
        list_micro INTEGER, list_text TEXT, basis TEXT NOT NULL, model TEXT NOT NULL,
        size TEXT NOT NULL, prompt TEXT NOT NULL)""",
    "CREATE TABLE skipped (id TEXT PRIMARY KEY)",
    "DROP TABLE IF EXISTS daily",
    # What the money views sum, kept per UTC day and person by the triggers below, so a
    # total of any period reads days times people rows, never every record. ``fine``
    # counts the records whose cost or list price is finer than a micro-dollar (kept as
    # text on their row and added from there).
    """CREATE TABLE daily (
        day TEXT NOT NULL, owner TEXT NOT NULL, records INTEGER NOT NULL,
        images INTEGER NOT NULL, cost_micro INTEGER NOT NULL, list_micro INTEGER NOT NULL,
        fine INTEGER NOT NULL, PRIMARY KEY (day, owner)) WITHOUT ROWID""",
    """CREATE TRIGGER counted AFTER INSERT ON generations WHEN NEW.status != 'rendering' BEGIN
        INSERT INTO daily VALUES (NEW.day, NEW.owner, 1, NEW.status = 'done',
            COALESCE(NEW.cost_micro, 0), COALESCE(NEW.list_micro, 0),
            NEW.cost_micro IS NULL OR NEW.list_micro IS NULL)
        ON CONFLICT (day, owner) DO UPDATE SET records = records + 1,
            images = images + excluded.images, cost_micro = cost_micro + excluded.cost_micro,
            list_micro = list_micro + excluded.list_micro, fine = fine + excluded.fine;
    END""",
    """CREATE TRIGGER uncounted AFTER DELETE ON generations WHEN OLD.status != 'rendering' BEGIN
        UPDATE daily SET records = records - 1, images = images - (OLD.status = 'done'),
            cost_micro = cost_micro - COALESCE(OLD.cost_micro, 0),
            list_micro = list_micro - COALESCE(OLD.list_micro, 0),
            fine = fine - (OLD.cost_micro IS NULL OR OLD.list_micro IS NULL)
        WHERE day = OLD.day AND owner = OLD.owner;
        DELETE FROM daily WHERE day = OLD.day AND owner = OLD.owner AND records = 0;
    END""",
)
# Each query has an index that holds every column it reads (sums never touch the table):
# galleries by owner; per-person sums of any period; server sums and the chart by day;
# the export in time order, for everyone or for one person.
_INDEXES = (
    "CREATE INDEX by_owner_time ON generations (owner, status, created_us DESC, id DESC)",
    "CREATE INDEX by_owner_day ON generations (owner, day, status, cost_micro, list_micro)",
    "CREATE INDEX by_day ON generations (day, owner, status, cost_micro, list_micro)",
    "CREATE INDEX by_time ON generations (created_us, id)",
    "CREATE INDEX by_owner_created ON generations (owner, created_us, id)",
)
# A row is replaced by a delete and an insert, so the triggers take the old one out of
# ``daily`` and count the new one (REPLACE would delete without firing them).
_INSERT = "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_OLDER = "INSERT OR IGNORE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_EXPORT_COLUMNS = (
    "id, owner, created_us, cost_micro, cost_text, status, list_micro, list_text, basis, "
    "model, size, prompt"
)
_FILES = ("", "-wal", "-shm", "-journal")  # the index and SQLite's files beside it

Row = tuple[
    str, str, int, str, int | None, str | None, str, int | None, str | None, str, str, str, str
]
Schema = frozenset[tuple[str, str, str, str | None]]
_T = TypeVar("_T")


class _ForeignIndex(Exception):
    """The file is a database, but not our index: another schema lives in it."""


@functools.cache
def _our_schema(*, finished: bool = True) -> Schema:
    """What ``sqlite_master`` of a freshly built index holds, built once in memory.

    Unfinished (a background rebuild under way or cut short): the tables, no indexes yet.
    """
    conn = sqlite3.connect(":memory:")
    try:
        for statement in (*_TABLES, *(_INDEXES if finished else ())):
            conn.execute(statement)
        return _schema_of(conn)
    finally:
        conn.close()


def _check_schema(conn: sqlite3.Connection, version: int) -> bool:
    """Whether the file is still empty; ``_ForeignIndex`` unless it holds exactly our schema
    (or, marked unfinished, what a background rebuild leaves until it is done)."""
    schema = _schema_of(conn)
    unfinished = version == 0 and schema == _our_schema(finished=False)
    if schema and schema != _our_schema() and not unfinished:
        raise _ForeignIndex
    return not schema


def _schema_of(conn: sqlite3.Connection) -> Schema:
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
    return frozenset((kind, name, table, sql) for kind, name, table, sql in rows)


class RecordSource(Protocol):
    """Where the records live: their ids, and a value made of the indexed fields of some."""

    def ids(self) -> set[str]:
        """Every record id present, as text."""
        ...

    def index_rows(
        self, ids: list[str], skipped: list[str], row: Callable[[IndexedFields], _T]
    ) -> Generator[_T]:
        """``row`` of the indexed fields of each readable record of ``ids``, in that order;
        unreadable ones are appended to ``skipped``. ``row`` may run in another process:
        it is a module-level function whose values pickle. Closing it ends the reading."""
        ...


class SqliteIndex:
    """``index.sqlite3`` in ``root``, in step with ``source`` once built; call ``close()``.

    A full rebuild of more than ``background_from`` records runs in a thread of its own
    (see the module's text). Raises ``OSError`` when the folder cannot be read; index
    failures are ``StorageError``.
    """

    def __init__(
        self, root: Path, source: RecordSource, *, background_from: int = BACKGROUND_REBUILD_FROM
    ) -> None:
        self._source = source
        self._path = root / INDEX_NAME
        self._lock = threading.RLock()
        self._file_lock = FileLock(root / ".index.lock")
        self._background_from = background_from
        self._progress: RebuildProgress | None = None
        self._stop = threading.Event()
        self._builder: threading.Thread | None = None
        self._file_lock.__enter__()
        try:
            self._conn, todo = self._open()
        except BaseException:
            self._file_lock.__exit__(None, None, None)
            raise
        if todo is None:
            self._file_lock.__exit__(None, None, None)
            return
        # The file lock goes with the rebuild: another process opening meanwhile waits.
        self._progress = RebuildProgress(0, len(todo))
        self._builder = threading.Thread(
            target=self._build, args=(todo,), name="index-rebuild", daemon=True
        )
        self._builder.start()

    def close(self) -> None:
        """Stop a rebuild in progress (the next open starts it again), close the connection."""
        self._stop.set()
        if self._builder is not None:
            self._builder.join()
        with self._lock:
            self._conn.close()

    def rebuilding(self) -> RebuildProgress | None:
        """How far the background rebuild is, while one runs."""
        return self._progress

    def wait_until_built(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild to end; whether none is running any more."""
        if self._builder is not None:
            self._builder.join(timeout)
        return self._progress is None

    def add(self, fields: IndexedFields) -> None:
        """Index one new record (and forget it was ever unreadable)."""
        try:
            self._write(_row(fields))
        except sqlite3.Error as exc:
            raise StorageError(
                f"Could not record generation {fields.id}: the index refused it."
            ) from exc

    def _write(self, row: Row) -> None:
        with self._lock, _Transaction(self._conn, "BEGIN IMMEDIATE"):
            self._conn.execute("DELETE FROM generations WHERE id = ?", (row[0],))
            self._conn.execute(_INSERT, row)
            self._conn.execute("DELETE FROM skipped WHERE id = ?", (row[0],))

    def remove(self, id_text: str) -> None:
        """Forget one record's row."""
        try:
            with self._lock, _Transaction(self._conn, "BEGIN IMMEDIATE"):
                self._conn.execute("DELETE FROM generations WHERE id = ?", (id_text,))
        except sqlite3.Error as exc:
            raise StorageError(f"Could not forget generation {id_text}.") from exc

    def rendering(self) -> list[str]:
        """Ids of the records still rendering (of those indexed so far, during a rebuild)."""
        with self._reading() as conn:
            rows = conn.execute("SELECT id FROM generations WHERE status = ?", (_RENDERING,))
            return [id_text for (id_text,) in rows]

    def page(self, email: str, offset: int, limit: int) -> tuple[int, list[str]]:
        """How many finished images ``email`` has, and the ids of one page, newest first."""
        with self._reading() as conn:
            (total,) = conn.execute(
                "SELECT COUNT(*) FROM generations WHERE owner = ? AND status = ?", (email, _DONE)
            ).fetchone()
            ids = conn.execute(
                "SELECT id FROM generations WHERE owner = ? AND status = ? "
                "ORDER BY created_us DESC, id DESC LIMIT ? OFFSET ?",
                (email, _DONE, limit, offset),
            ).fetchall()
        return int(total), [id_text for (id_text,) in ids]

    def prompts(self, email: str) -> list[tuple[str, str]]:
        """``(id, prompt)`` of each finished image of ``email``, newest first.

        The prompt as indexed (its first characters, see ``PROMPT_CHARS``): enough to
        search a person's images without reading their records.
        """
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT id, prompt FROM generations WHERE owner = ? AND status = ? "
                "ORDER BY created_us DESC, id DESC",
                (email, _DONE),
            ).fetchall()
        return [(str(i), str(p)) for i, p in rows]

    def usage(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> UsageReport:
        """Image count and exact cost per person, largest spend first, then by email.

        With ``period``, only records of its UTC days (the ``day`` column) count.
        """
        rows = [UserUsage(s.email, s.image_count, s.cost) for s in self.spend(emails, period)]
        return UsageReport(tuple(rows))

    def spend(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> list[PersonSpend]:
        """``usage`` with each person's list-price figure beside the exact cost."""
        groups = self._totals("owner", emails, period)
        rows = [
            PersonSpend(owner, count, cost, list_price)
            for (owner,), (count, cost, list_price) in groups.items()
        ]
        rows.sort(key=lambda r: (-r.cost.usd, r.email))
        return rows

    def daily_spend(self, since: date, emails: Collection[str] | None = None) -> list[DailySpend]:
        """Spend per UTC day and person from ``since`` on, oldest day first."""
        groups = self._totals("day, owner", emails, Period(start=since))
        return [
            DailySpend(day, owner, count, cost)
            for (day, owner), (count, cost, _) in sorted(groups.items())
        ]

    def cost_rows(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> Iterator[CostRow]:
        """Settled records of ``period`` (of ``emails``), oldest first, a batch per read.

        Each batch is its own short read (keyed on the last row's time and id), so a slow
        reader never holds the index, and the order stays total across batches.
        """
        where, params = _owner_filter(emails)
        if period is not None and period.start is not None:
            where, params = f"{where} AND created_us >= ?", (*params, _micros_at(period.start))
        if period is not None and period.end is not None:
            where, params = f"{where} AND created_us < ?", (*params, _micros_at(period.end))
        # Fixed text of this module; every value travels as a parameter.
        sql = (
            f"SELECT {_EXPORT_COLUMNS} FROM generations {where} "  # noqa: S608
            "AND (created_us, id) > (?, ?) ORDER BY created_us, id LIMIT ?"
        )
        after: tuple[int, str] = (-(2**63), "")
        while True:
            with self._reading() as conn:
                batch = conn.execute(sql, (*params, *after, _EXPORT_BATCH)).fetchall()
            for found in batch:
                yield _cost_row(found)
            if len(batch) < _EXPORT_BATCH:
                return
            after = (batch[-1][2], batch[-1][0])

    def users(self) -> list[str]:
        """Every owner with at least one record, sorted."""
        with self._reading() as conn:
            rows = conn.execute("SELECT DISTINCT owner FROM generations ORDER BY owner")
            return [r[0] for r in rows]

    def rebuild(self) -> int:
        """Rebuild the whole index from the source now; the number of records indexed."""
        self.wait_until_built()
        try:
            with self._file_lock, self._lock:
                return self._sync(self._conn, full=True)
        except sqlite3.Error as exc:
            raise StorageError("The generation index could not be rebuilt.") from exc
        except OSError as exc:
            raise storage_error("read the generation records", exc) from exc

    def _totals(
        self, keys: str, emails: Collection[str] | None, period: Period | None
    ) -> dict[tuple[str, ...], tuple[int, CostEstimate, CostEstimate]]:
        """Count, exact cost and list price per group, from ``daily``; finer amounts from
        their rows, in Python. ``keys`` is fixed text from this module ("owner" or
        "day, owner"); values travel as parameters.
        """
        conditions, params = _group_filter(emails, period)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sums = (
            f"SELECT {keys}, SUM(images), SUM(cost_micro), SUM(list_micro), SUM(fine) "  # noqa: S608
            f"FROM daily {where} GROUP BY {keys} HAVING SUM(records) > 0"
        )
        with self._reading() as conn:
            groups = {tuple(r[:-4]): r[-4:] for r in conn.execute(sums, params)}
            fine: dict[tuple[str, ...], tuple[Decimal, Decimal]] = {}
            if any(finer for *_, finer in groups.values()):
                rows = " AND ".join(
                    [_SETTLED, "(cost_micro IS NULL OR list_micro IS NULL)", *conditions]
                )
                sql = (
                    f"SELECT {keys}, cost_micro, cost_text, list_micro, list_text "  # noqa: S608
                    f"FROM generations WHERE {rows}"
                )
                for *key, cost_micro, cost, list_micro, list_price in conn.execute(sql, params):
                    cost_sum, list_sum = fine.get(tuple(key), (Decimal(0), Decimal(0)))
                    fine[tuple(key)] = (
                        cost_sum + (Decimal(cost) if cost_micro is None else 0),
                        list_sum + (Decimal(list_price) if list_micro is None else 0),
                    )
        zero = (Decimal(0), Decimal(0))
        return {
            key: (
                count,
                CostEstimate(_from_micros(micros) + fine.get(key, zero)[0]),
                CostEstimate(_from_micros(list_micros) + fine.get(key, zero)[1]),
            )
            for key, (count, micros, list_micros, _) in groups.items()
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

    def _open(self) -> tuple[sqlite3.Connection, list[str] | None]:
        """Connect and sync; a damaged or foreign file is discarded and rebuilt from the source.

        Also returns the ids a background rebuild still has to read (``None``: none).
        """
        self._refuse_what_is_not_a_file()
        try:
            return self._connect_and_sync()
        except _ForeignIndex:
            log.warning("%s holds another schema; rebuilding it from the sidecars.", INDEX_NAME)
        except sqlite3.Error as exc:
            if exc.sqlite_errorcode & 0xFF not in _CORRUPT_CODES:
                raise StorageError("The generation index could not be opened.") from exc
            log.warning("%s is damaged (%s); rebuilding it from the sidecars.", INDEX_NAME, exc)
        except OSError as exc:
            raise storage_error("read the generation records", exc) from exc
        for suffix in _FILES:
            remove_quietly(self._path.with_name(INDEX_NAME + suffix))
        try:
            return self._connect_and_sync()
        except sqlite3.Error as exc:
            raise StorageError("The generation index could not be rebuilt.") from exc
        except OSError as exc:
            raise storage_error("read the generation records", exc) from exc

    def _refuse_what_is_not_a_file(self) -> None:
        """A folder (or a link, a device) where the index lives is someone's: never removed.

        Start-up stops with its full path and what to do, for the person running it.
        """
        for suffix in _FILES:
            path = self._path.with_name(INDEX_NAME + suffix)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(mode):
                kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
                raise StorageError(
                    f"{path} is {kind}, so the generation index cannot be kept there. "
                    "Move it out of the data folder and start again: the index is "
                    "rebuilt from the sidecars."
                )

    def _connect_and_sync(self) -> tuple[sqlite3.Connection, list[str] | None]:
        conn = sqlite3.connect(
            self._path, timeout=30, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # the index is derived: speed over fsync
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            empty = _check_schema(conn, version)
            full = version != INDEX_VERSION or empty
            todo = self._start_rebuild(conn) if full else None
            if todo is not None and len(todo) <= self._background_from:
                self._sync(conn, full=True)
                todo = None
            elif todo is None:
                self._sync(conn, full=False)
        except BaseException:
            conn.close()
            raise
        return conn, todo

    def _start_rebuild(self, conn: sqlite3.Connection) -> list[str]:
        """An empty index of our schema (version 0: unfinished), and the ids to read into it."""
        with _Transaction(conn, "BEGIN IMMEDIATE"):
            # The indexes come at the end: inserting into them in id order is ten times
            # slower than building them once the rows are in.
            for statement in _TABLES:
                conn.execute(statement)
            conn.execute("PRAGMA user_version = 0")
        return sorted(self._source.ids())

    def _build(self, todo: list[str]) -> None:
        """The background rebuild: read ``todo`` a batch at a time, then a last sync."""
        started = time.monotonic()
        try:
            read = 0
            skipped: list[str] = []
            # One pass over the sidecars (their parsing runs ahead), written a batch at a
            # time; closing it ends the parsing (and any worker process) on every way out.
            parsed = self._source.index_rows(todo, skipped, _row_or_refusal)
            with closing(parsed), closing(_rows(parsed, skipped)) as found:
                while read < len(todo):
                    if self._stop.is_set():
                        log.info("Index rebuild stopped; the next start begins it again.")
                        return
                    before = len(skipped)
                    rows = list(itertools.islice(found, _REBUILD_BATCH))
                    with self._lock, _Transaction(self._conn, "BEGIN IMMEDIATE"):
                        # Rows the server wrote meanwhile are newer than what was read here.
                        self._conn.executemany(_INSERT_OLDER, rows)
                        self._conn.executemany(
                            "INSERT OR IGNORE INTO skipped VALUES (?)",
                            ((s,) for s in skipped[before:]),
                        )
                    read += len(rows) + len(skipped) - before
                    self._progress = RebuildProgress(min(read, len(todo)), len(todo))
                    if not rows and len(skipped) == before:
                        break
            with self._lock:
                with _Transaction(self._conn, "BEGIN IMMEDIATE"):
                    for statement in _INDEXES:
                        self._conn.execute(statement)
                indexed = self._sync(self._conn, full=False)
                self._conn.execute(f"PRAGMA user_version = {INDEX_VERSION}")
            log.info(
                "Index rebuilt in the background: %d generations in %.1f s.",
                indexed,
                time.monotonic() - started,
            )
        except (sqlite3.Error, OSError):
            log.exception("The index rebuild failed; it is tried again at the next start.")
        finally:
            self._progress = None
            self._file_lock.__exit__(None, None, None)

    def _sync(self, conn: sqlite3.Connection, *, full: bool) -> int:
        """Make the index hold exactly the records present, reading only the new ones.

        Runs in one write transaction that also covers the folder scan, so an ``add``
        from another process lands either in the scan or after the commit.
        """
        with _Transaction(conn, "BEGIN IMMEDIATE"):
            if full:
                for statement in _TABLES:
                    conn.execute(statement)
            known = {r[0] for r in conn.execute("SELECT id FROM generations")}
            known |= {r[0] for r in conn.execute("SELECT id FROM skipped")}
            present = self._source.ids()
            gone = [(i,) for i in known - present]
            conn.executemany("DELETE FROM generations WHERE id = ?", gone)
            conn.executemany("DELETE FROM skipped WHERE id = ?", gone)
            skipped: list[str] = []
            parsed = self._source.index_rows(sorted(present - known), skipped, _row_or_refusal)
            with closing(parsed), closing(_rows(parsed, skipped)) as rows:
                conn.executemany(_INSERT_OLDER, rows)
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
    """Settled records, of ``emails`` only when given."""
    if emails is None:
        return f"WHERE {_SETTLED}", ()
    if len(emails) == 1:  # one person: the indexes that start with the owner serve in order
        return f"WHERE {_SETTLED} AND owner = ?", (next(iter(emails)),)
    wanted = json.dumps(sorted(set(emails)))
    # _SETTLED is fixed text of this module; the emails travel as a parameter.
    return f"WHERE {_SETTLED} AND owner IN (SELECT value FROM json_each(?))", (wanted,)  # noqa: S608


def _group_filter(
    emails: Collection[str] | None, period: Period | None
) -> tuple[list[str], tuple[Any, ...]]:
    """Conditions on ``owner`` and ``day`` (columns of both tables) for ``emails`` and
    ``period``'s UTC days; fixed text, the values as parameters."""
    conditions: list[str] = []
    params: tuple[Any, ...] = ()
    if emails is not None and len(emails) == 1:
        conditions.append("owner = ?")
        params = (next(iter(emails)),)
    elif emails is not None:
        conditions.append("owner IN (SELECT value FROM json_each(?))")
        params = (json.dumps(sorted(set(emails))),)
    if period is not None and period.start is not None:
        conditions.append("day >= ?")
        params = (*params, period.start.isoformat())
    if period is not None and period.end is not None:
        conditions.append("day < ?")
        params = (*params, period.end.isoformat())
    return conditions, params


def _micros_at(day: date) -> int:
    """Microseconds from the epoch to midnight UTC of ``day`` (the ``created_us`` scale)."""
    return (datetime.combine(day, datetime.min.time(), UTC) - _EPOCH) // timedelta(microseconds=1)


def _from_micros(micros: int) -> Decimal:
    return Decimal(micros) / _MICROS if micros else Decimal(0)


@functools.lru_cache(maxsize=65536)
def _amount(micros: int | None, text: str | None) -> CostEstimate:
    """The amount a row holds (an export meets the same few prices over and over)."""
    return CostEstimate(_from_micros(micros) if micros is not None else Decimal(text or 0))


_STATUSES = {s.value: s for s in GenerationStatus}
_BASES = {b.value: b for b in CostBasis}
_SIZES = {s.value: s for s in ImageSize}


def _cost_row(found: tuple[Any, ...]) -> CostRow:
    """An export line from a row of ``_EXPORT_COLUMNS``."""
    id_text, owner, created_us, cost_micro, cost_text, status, list_micro, list_text = found[:8]
    basis, model, size, prompt = found[8:]
    return CostRow(
        id=uuid.UUID(id_text),
        created_at=_EPOCH + timedelta(microseconds=created_us),
        email=owner,
        model_alias=model,
        image_size=_SIZES[size],
        status=_STATUSES[status],
        cost=_amount(cost_micro, cost_text),
        cost_basis=_BASES[basis],
        list_price=_amount(list_micro, list_text),
        prompt=prompt,
    )


@attrs.frozen
class _Refusal:
    """A record that cannot be a row (``_row_or_refusal``): its id and why."""

    id_text: str
    why: str


def _row_or_refusal(fields: IndexedFields) -> Row | _Refusal:
    """The row of a bulk insert, made where the sidecar is parsed (maybe another process)."""
    try:
        return _row(fields)
    except (ArithmeticError, ValueError) as exc:
        return _Refusal(str(fields.id), repr(exc))


def _rows(found: Iterable[Row | _Refusal], skipped: list[str]) -> Generator[Row]:
    """The rows of a bulk insert; one record that cannot be a row is skipped, not fatal."""
    for one in found:
        if isinstance(one, _Refusal):
            log.warning("Skipping sidecar %s.json: it cannot be indexed (%s)", one.id_text, one.why)
            skipped.append(one.id_text)
        else:
            yield one


def _micro_or_text(amount: CostEstimate) -> tuple[int | None, str | None]:
    """Whole micro-dollars (summed by SQL), or the exact text when finer or too large."""
    micros = amount.usd.scaleb(6)
    if micros == micros.to_integral_value() and micros < _MAX_MICROS:
        return int(micros), None
    return None, str(amount.usd)


def _row(fields: IndexedFields) -> Row:
    cost_micro, cost_text = _micro_or_text(fields.cost)
    list_micro, list_text = _micro_or_text(fields.list_price_estimate)
    return (
        str(fields.id),
        _owner(fields.email),
        (fields.created_at - _EPOCH) // timedelta(microseconds=1),
        fields.created_at.astimezone(UTC).date().isoformat(),
        cost_micro,
        cost_text,
        fields.status.value,
        list_micro,
        list_text,
        fields.cost_basis.value,
        fields.model_alias,
        fields.image_size.value,
        short_prompt(fields.prompt),
    )
