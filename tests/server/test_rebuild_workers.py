"""A large index rebuild parses the sidecars in worker processes, and never leaves one behind.

The workers are real processes of this interpreter; the functions they run for each
record live in this module (importable there, as the server's own are).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from image_core.contracts.samples import NOON, make_generation
from image_core.serialization import IndexedFields, RecordCodec
from image_server.adapters import fs_sidecars, sqlite_index
from image_server.adapters.fs_metadata import INDEX_NAME, FilesystemMetadataRepository
from image_server.adapters.fs_sidecars import SidecarFiles
from tests.support.bad_records import BAD_SIDECARS, plant

CODEC = RecordCodec()
CRASH = "crash@example.com"
PARENT = "IMAGE_MCP_TEST_PARENT_PID"
WORKER_MODULE = "image_server.adapters.sidecar_worker"


def _write(root: Path, count: int, email: str = "ann@example.com") -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    ids = []
    for n in range(count):
        generation = make_generation(email, at=NOON - timedelta(minutes=n), cost="0.1")
        (root / f"{generation.id}.json").write_bytes(CODEC.dump_generation(generation))
        ids.append(str(generation.id))
    return ids


def id_and_process(fields: IndexedFields) -> tuple[str, int]:
    """A record's id and the process that parsed it."""
    return str(fields.id), os.getpid()


def crash_in_a_worker(fields: IndexedFields) -> str:
    """A parser that dies (as on a fatal signal) on one record, in a worker only."""
    if fields.email == CRASH and os.getpid() != int(os.environ[PARENT]):
        os._exit(3)
    return str(fields.id)


def chatty(fields: IndexedFields) -> str:
    """Prints on the way, as a stray library might, in text and in bytes."""
    print("parsing", fields.id)
    sys.stdout.flush()
    os.write(1, b"\x80\x05garbage")
    return str(fields.id)


def _sidecar_workers() -> list[int]:
    """The pids of this process's children that are sidecar workers (or dead, unreaped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid() and (WORKER_MODULE.encode() in cmdline or state == "Z"):
            found.append(int(entry))
    return found


def _files(root: Path, processes: int) -> SidecarFiles:
    return SidecarFiles(root, processes=processes, processes_from=1)


def test_worker_processes_parse_a_large_rebuild_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes other than this one parse the chunks; the values come in id order."""
    monkeypatch.setattr(fs_sidecars, "_PROCESS_CHUNK", 25)
    ids = sorted(_write(tmp_path, 200))
    skipped: list[str] = []
    found = list(_files(tmp_path, 2).index_rows(ids, skipped, id_and_process))
    assert [i for i, _ in found] == ids
    parsers = {pid for _, pid in found}
    assert len(parsers) == 2
    assert os.getpid() not in parsers
    assert skipped == []
    assert _sidecar_workers() == []


def test_what_a_worker_prints_never_mixes_with_what_it_hands_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Its standard output goes to the server's standard error; the rows arrive whole."""
    monkeypatch.setattr(fs_sidecars, "_PROCESS_CHUNK", 10)
    ids = sorted(_write(tmp_path, 40))
    with caplog.at_level(logging.WARNING, "image_server.metadata"):
        found = list(_files(tmp_path, 2).index_rows(ids, [], chatty))
    assert found == ids
    assert "process stopped" not in caplog.text


def test_when_no_worker_can_start_the_sidecars_are_parsed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No interpreter to start (a frozen or odd install): the same values, said once."""
    monkeypatch.setattr(fs_sidecars, "_PROCESS_CHUNK", 10)
    ids = sorted(_write(tmp_path, 40))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with caplog.at_level(logging.WARNING, "image_server.metadata"):
        found = list(_files(tmp_path, 2).index_rows(ids, [], id_and_process))
    assert found == [(i, os.getpid()) for i in ids]
    assert "No sidecar parsing process could start" in caplog.text
    assert _sidecar_workers() == []


def test_a_module_planted_in_the_working_folder_is_never_run_by_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server running in a writable folder (the data folder, say): a ``pickle.py``
    or ``image_server`` planted there is not what its workers import."""
    monkeypatch.setattr(fs_sidecars, "_PROCESS_CHUNK", 25)
    ids = sorted(_write(tmp_path / "data", 100))
    planted = tmp_path / "ran"
    for name in ("pickle.py", "image_server/__init__.py", "tests/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"open({str(planted)!r}, 'w').close()\nraise SystemExit(9)\n")
    monkeypatch.chdir(tmp_path)
    found = list(_files(tmp_path / "data", 2).index_rows(ids, [], id_and_process))
    assert [i for i, _ in found] == ids
    assert os.getpid() not in {pid for _, pid in found}
    assert not planted.exists()


def test_damaged_sidecars_are_skipped_and_named_as_when_parsed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Every kind of damage: the same values, the same skipped ids, the same warnings."""
    monkeypatch.setattr(fs_sidecars, "_PROCESS_CHUNK", 7)
    good = _write(tmp_path, 30)
    bad = [plant(tmp_path, case).stem for case in BAD_SIDECARS]
    not_json, folder = str(uuid.uuid4()), str(uuid.uuid4())
    (tmp_path / f"{not_json}.json").write_bytes(b"{ not json")
    (tmp_path / f"{folder}.json").mkdir()
    bad += [not_json, folder]
    ids = sorted(SidecarFiles(tmp_path).ids())
    assert len(ids) == len(good) + len(bad)
    outcomes = []
    for processes in (1, 2):
        caplog.clear()
        skipped: list[str] = []
        with caplog.at_level(logging.WARNING, "image_server.metadata"):
            rows = list(_files(tmp_path, processes).index_rows(ids, skipped, sqlite_index._row))
        outcomes.append((rows, sorted(skipped), sorted(r.getMessage() for r in caplog.records)))
    assert outcomes[0] == outcomes[1]
    rows, skipped, warnings = outcomes[1]
    assert sorted(r[0] for r in rows) == sorted(good)
    assert skipped == sorted(bad)
    assert all(any(s in w for w in warnings) for s in skipped)
    assert not any(str(tmp_path) in w for w in warnings)
    assert _sidecar_workers() == []


def test_a_worker_that_dies_leaves_the_rest_to_be_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A parser crash kills only its worker: every record still comes, none twice."""
    monkeypatch.setattr(fs_sidecars, "_PROCESS_CHUNK", 10)
    monkeypatch.setenv(PARENT, str(os.getpid()))
    ids = _write(tmp_path, 60) + _write(tmp_path, 1, CRASH) + _write(tmp_path, 60)
    ids.sort()
    with caplog.at_level(logging.WARNING, "image_server.metadata"):
        found = list(_files(tmp_path, 2).index_rows(ids, [], crash_in_a_worker))
    assert found == ids
    assert "parsing process stopped" in caplog.text
    assert _sidecar_workers() == []


@pytest.fixture
def held_rebuild(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The rebuild, through worker processes, waits after its first chunk until set."""
    opened = threading.Event()
    monkeypatch.setattr(fs_sidecars, "_PROCESS_CHUNK", 10)
    real = fs_sidecars._Worker.next_chunk
    handed = 0

    def held(self: fs_sidecars._Worker) -> fs_sidecars.Parsed | None:
        nonlocal handed
        handed += 1
        if handed == 2:
            assert opened.wait(10), "the test never let the rebuild go on"
        return real(self)

    monkeypatch.setattr(fs_sidecars._Worker, "next_chunk", held)
    yield opened
    opened.set()


def test_a_rebuild_stopped_by_shutdown_leaves_no_worker_process(
    tmp_path: Path, held_rebuild: threading.Event
) -> None:
    """Closing mid-rebuild ends the workers (none left, none a zombie); the next open
    completes the index."""
    _write(tmp_path, 2000)
    repo = FilesystemMetadataRepository(
        tmp_path, background_rebuild_from=20, parse_processes=2, processes_from=20
    )
    assert repo.rebuilding() is not None
    for _ in range(200):
        if len(_sidecar_workers()) == 2:
            break
        threading.Event().wait(0.05)
    assert len(_sidecar_workers()) == 2
    closing = threading.Thread(target=repo.close)
    closing.start()
    held_rebuild.set()
    closing.join(10)
    assert not closing.is_alive()
    assert _sidecar_workers() == []
    with sqlite3.connect(tmp_path / INDEX_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    with FilesystemMetadataRepository(
        tmp_path, background_rebuild_from=20, parse_processes=2, processes_from=20
    ) as again:
        assert again.wait_until_built(30)
        assert again.usage().total_count == 2000
    assert _sidecar_workers() == []


def test_a_rebuild_through_workers_fills_the_index_while_it_answers(tmp_path: Path) -> None:
    """The whole rebuild path: progress while it runs, every record at the end."""
    _write(tmp_path, 2500)
    with FilesystemMetadataRepository(
        tmp_path, background_rebuild_from=20, parse_processes=2, processes_from=20
    ) as repo:
        progress = repo.rebuilding()
        assert progress is not None
        assert progress.total == 2500
        assert repo.usage().total_count <= 2500
        assert repo.wait_until_built(30)
        assert repo.rebuilding() is None
        assert repo.usage().total_count == 2500
    with sqlite3.connect(tmp_path / INDEX_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_index.INDEX_VERSION
    assert _sidecar_workers() == []


def test_a_worker_inherits_none_of_the_servers_secrets(
    tmp_path: Path, held_rebuild: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker only parses records: the Gemini key and the OAuth secret stay behind."""
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key-that-must-stay-home")
    monkeypatch.setenv("GOOGLE_OAUTH_CLIENT_SECRET", "oauth-secret-that-must-stay-home")
    _write(tmp_path, 2000)
    repo = FilesystemMetadataRepository(
        tmp_path, background_rebuild_from=20, parse_processes=2, processes_from=20
    )
    try:
        for _ in range(200):
            if len(_sidecar_workers()) == 2:
                break
            threading.Event().wait(0.05)
        workers = _sidecar_workers()
        assert len(workers) == 2
        for pid in workers:
            environment = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"must-stay-home" not in environment
            assert b"GEMINI_API_KEY" not in environment
    finally:
        held_rebuild.set()
        repo.close()


def test_workers_follow_a_containers_cpu_quota_and_stay_few() -> None:
    """A 2-CPU container on a 64-core host starts two workers, not 64."""
    assert fs_sidecars.cpu_quota("200000 100000\n") == 2
    assert fs_sidecars.cpu_quota("150000 100000") == 2
    assert fs_sidecars.cpu_quota("50000 100000") == 1
    assert fs_sidecars.cpu_quota("max 100000") is None
    assert fs_sidecars.cpu_quota("") is None
    assert 1 <= fs_sidecars.usable_cpus() <= fs_sidecars.MAX_PARSE_PROCESSES
