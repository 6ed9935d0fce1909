"""The JSON sidecars: one ``{uuid}.json`` per generation, the records' source of truth.

Each record is written atomically beside its PNG and never over an existing one, so
the data volume alone (a backup, a copy) holds everything. A damaged sidecar is
logged once by name (never the folder's path) and treated as absent.

Parsing is what a rebuild of the index spends its time on, and it is pure Python, so
threads cannot share it out: many sidecars are parsed in a few worker processes
(``sidecar_worker``, started afresh with this interpreter: never a ``fork`` of a
threaded server, nor a re-run of its main module), which are ended before the reading
returns, however it ends.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

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

_T = TypeVar("_T")
#: Sidecars to read before worker processes parse them (fewer: parsed here).
PROCESSES_FROM = 2000


MAX_PARSE_PROCESSES = 4
"""More workers gain nothing against the inserts they feed, and each holds about 30 MB."""
_CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def usable_cpus() -> int:
    """How many worker processes may parse at once: the CPUs this process may run on
    (its affinity), no more than a container's CPU quota gives, at most four."""
    count = os.cpu_count() or 1
    with suppress(AttributeError, OSError):
        count = len(os.sched_getaffinity(0))
    with suppress(OSError):
        quota = cpu_quota(Path(_CGROUP_CPU_MAX).read_text())
        if quota is not None:
            count = min(count, quota)
    return max(1, min(count, MAX_PARSE_PROCESSES))


def cpu_quota(cpu_max: str) -> int | None:
    """The whole CPUs a cgroup v2 ``cpu.max`` (``"<quota> <period>"``) allows, rounded
    up; ``None`` for no limit (``"max ..."``) or text it cannot read."""
    parts = cpu_max.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[1]) == 0:
        return None
    return max(1, -(-int(parts[0]) // int(parts[1])))


class SidecarFiles:
    """Reads, writes and lists the sidecars in one folder, through the record codec."""

    def __init__(
        self,
        root: Path,
        codec: RecordCodec | None = None,
        *,
        processes: int | None = None,
        processes_from: int = PROCESSES_FROM,
    ) -> None:
        """``processes`` parse ``index_rows`` of ``processes_from`` sidecars or more
        (``None``: one per usable CPU; below two, all is parsed in this process)."""
        self._root = root
        self._codec = codec or RecordCodec()
        self._processes = usable_cpus() if processes is None else processes
        self._processes_from = processes_from

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

    def index_rows(
        self, ids: list[str], skipped: list[str], row: Callable[[IndexedFields], _T]
    ) -> Generator[_T]:
        """``row`` of the indexed fields of each readable sidecar of ``ids``, in that order.

        Unreadable ones are logged and listed in ``skipped``. From ``processes_from``
        sidecars on, worker processes read and parse them, each every n-th chunk, and
        hand back only what ``row`` made (so ``row`` is a module-level function and its
        values pickle) while the caller uses the chunks before. The workers are ended
        when this is (exhausted, closed, or failing); should one stop or never start,
        the sidecars not yet handed back are read here.
        """
        chunks = [ids[i : i + _PROCESS_CHUNK] for i in range(0, len(ids), _PROCESS_CHUNK)]
        count = min(self._processes, len(chunks))
        if count < 2 or len(ids) < self._processes_from or not sys.executable:
            yield from (row(fields) for fields in self.indexed_fields(ids, skipped))
            return
        workers: list[_Worker] = []
        try:
            try:
                for n in range(count):  # each kept as soon as it runs, to be ended
                    worker = _Worker(str(self._root), chunks[n::count], row)
                    workers.append(worker)
            except OSError as exc:
                log.warning("No sidecar parsing process could start (%s); reading here.", exc)
                yield from (row(fields) for fields in self.indexed_fields(ids, skipped))
                return
            for k in range(len(chunks)):
                parsed = workers[k % count].next_chunk()
                if parsed is None:
                    log.warning("A sidecar parsing process stopped; the rest is read here.")
                    rest = [i for chunk in chunks[k:] for i in chunk]
                    yield from (row(fields) for fields in self.indexed_fields(rest, skipped))
                    return
                values, refused = parsed
                for id_text, why in refused:
                    log.warning("Skipping sidecar %s", why)
                    skipped.append(id_text)
                yield from values
        finally:
            for worker in workers:
                worker.end()

    def indexed_fields(self, ids: list[str], skipped: list[str]) -> Iterator[IndexedFields]:
        """The indexed fields of the given sidecars, parsed here; unreadable ones are
        logged and listed.

        A few threads read the files ahead of the parsing, 64 to a task (reads wait on
        the disk, not on the interpreter, and one task per file would cost more than it
        saves): 10k sidecars in 0.5 s warm, 1.2 s with a cold file cache (1.9 s alone).
        """
        dir_fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for id_text, fields in _parsed(ids, dir_fd, self._indexed_fields_of):
                if isinstance(fields, IndexedFields):
                    yield fields
                else:
                    log.warning("Skipping sidecar %s", fields)
                    skipped.append(id_text)
        finally:
            os.close(dir_fd)

    def _indexed_fields_of(self, id_text: str, data: bytes | OSError | None) -> IndexedFields | str:
        return _indexed_fields_of(self._codec, id_text, data)


def _indexed_fields_of(
    codec: RecordCodec, id_text: str, data: bytes | OSError | None
) -> IndexedFields | str:
    """One sidecar's indexed fields, or why it is skipped (``"{name}: what is wrong"``)."""
    name = record_file_name_of(id_text)
    if isinstance(data, OSError):
        return f"{name}: {data.strerror}"
    if data is None:
        return f"{name}: not a regular file"
    try:
        fields = codec.load_indexed_fields(data, source=name)
    except CorruptRecord as exc:
        return exc.message
    if str(fields.id) != id_text:
        return f"{name}: it holds the record of {fields.id}"
    return fields


def _parsed(
    ids: list[str],
    dir_fd: int,
    parse: Callable[[str, bytes | OSError | None], IndexedFields | str],
) -> Iterator[tuple[str, IndexedFields | str]]:
    """Each id with its sidecar's indexed fields or why not, read ahead by a few threads.

    One more thread first asks the kernel to fetch every file (``POSIX_FADV_WILLNEED``,
    which returns at once): with a cold file cache the reads then find most of them in
    memory, rather than each waiting its turn on the disk.
    """
    chunks = [ids[i : i + _READ_CHUNK] for i in range(0, len(ids), _READ_CHUNK)]
    pool = ThreadPoolExecutor(_READERS + 1, thread_name_prefix="sidecar-read")
    done = threading.Event()
    try:
        if _ADVISE:
            pool.submit(_advise, ids, dir_fd, done)
        read = functools.partial(_read_sidecars, dir_fd=dir_fd)
        for chunk, datas in zip(chunks, pool.map(read, chunks), strict=True):
            for id_text, data in zip(chunk, datas, strict=True):
                yield id_text, parse(id_text, data)
    finally:  # left early (a rebuild stopped): the reads not begun are dropped
        done.set()
        pool.shutdown(wait=True, cancel_futures=True)


#: What a worker hands back per chunk: the values made, and ``(id, why)`` of each skipped.
Parsed = tuple[list[Any], list[tuple[str, str]]]
#: A worker's job: the folder, its chunks of ids, and what makes a value of each record.
Job = tuple[str, list[list[str]], Callable[[IndexedFields], Any]]


def parse_chunks(job: Job) -> Iterator[Parsed]:
    """In a worker process: each chunk's values and skipped sidecars, in order (a
    worker logs nothing: the server logs what was skipped)."""
    root, chunks, row = job
    parse = functools.partial(_indexed_fields_of, RecordCodec())
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        found = _parsed([i for chunk in chunks for i in chunk], dir_fd, parse)
        for chunk in chunks:
            values: list[Any] = []
            refused: list[tuple[str, str]] = []
            for id_text, fields in itertools.islice(found, len(chunk)):
                if isinstance(fields, IndexedFields):
                    values.append(row(fields))
                else:
                    refused.append((id_text, fields))
            yield values, refused
    finally:
        os.close(dir_fd)


# ``-P`` and then the server's own ``sys.path``: the worker finds the modules the server
# uses (those ``row`` comes from), never one planted in its working folder.
_WORKER_START = (
    "import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); "
    "from image_server.adapters.sidecar_worker import main; main()"
)


_WORKER_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
"""What a worker keeps of the server's environment: nothing of its settings or secrets
(the Gemini key, the OAuth secrets), which parsing records never needs."""


def _worker_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in _WORKER_VARIABLES if name in os.environ}


class _Worker:
    """One ``sidecar_worker`` process, and a thread receiving its chunks a few ahead."""

    def __init__(
        self, root: str, chunks: list[list[str]], row: Callable[[IndexedFields], Any]
    ) -> None:
        self._process = subprocess.Popen(  # this interpreter, a module of ours
            [sys.executable, "-P", "-c", _WORKER_START],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_worker_environment(),
        )
        self._received: queue.Queue[Parsed | None] = queue.Queue(_CHUNKS_AHEAD)
        self._ending = threading.Event()
        job: Job = (root, chunks, row)
        self._thread = threading.Thread(
            target=self._receive, args=(job,), name="sidecar-worker", daemon=True
        )
        self._thread.start()

    def next_chunk(self) -> Parsed | None:
        """The next chunk parsed, or ``None``: the process stopped before handing it."""
        return self._received.get()

    def _receive(self, job: Job) -> None:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None  # both are pipes
        assert stdout is not None
        try:
            with stdin:
                pickle.dump(sys.path, stdin, pickle.HIGHEST_PROTOCOL)
                pickle.dump(job, stdin, pickle.HIGHEST_PROTOCOL)
            for _ in job[1]:
                self._put(pickle.load(stdout))  # noqa: S301 - what our own worker wrote
        except Exception:  # however it failed, the caller reads the rest itself
            self._put(None)

    def _put(self, parsed: Parsed | None) -> None:
        """Queue ``parsed`` for the caller, unless the worker is being ended."""
        while not self._ending.is_set():
            with suppress(queue.Full):
                self._received.put(parsed, timeout=0.05)
                return

    def end(self) -> None:
        """Stop the process (done or not); wait for it and for the thread to end."""
        self._ending.set()
        with suppress(OSError):
            self._process.kill()
        self._process.wait()
        self._thread.join()
        if self._process.stdout is not None:
            self._process.stdout.close()


_READERS = 3
_READ_CHUNK = 64
_PROCESS_CHUNK = 500  # sidecars a worker hands back at a time (a few tens of ms)
_CHUNKS_AHEAD = 4  # chunks received ahead per worker, so none waits for the caller


_ADVISE = hasattr(os, "posix_fadvise")
_ADVISE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _advise(ids: list[str], dir_fd: int, done: threading.Event) -> None:
    """Ask the kernel to read each sidecar ahead (a missing one is left to the reading)."""
    for id_text in ids:
        if done.is_set():
            return
        try:
            fd = os.open(record_file_name_of(id_text), _ADVISE_FLAGS, dir_fd=dir_fd)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def _read_sidecars(ids: list[str], *, dir_fd: int) -> list[bytes | OSError | None]:
    """Each sidecar's bytes (``None``: not a regular file), or the error reading it."""
    found: list[bytes | OSError | None] = []
    for id_text in ids:
        try:
            found.append(read_regular_file(record_file_name_of(id_text), dir_fd=dir_fd))
        except OSError as exc:
            found.append(exc)
    return found
