"""prefs.json under contention: concurrent choices from processes and threads lose none."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from image_core.serialization import RecordCodec
from image_server.adapters.fs_prefs import FilesystemPrefStore

PROCESSES = 4
PER_PROCESS = 250
THREADS = 8
PER_THREAD = 40


def email_of(writer: int, number: int) -> str:
    """A distinct address per write, in mixed case: the store keeps each key exactly."""
    return f"Writer{writer}.User{number}@Example.com"


def alias_of(writer: int, number: int) -> str:
    """The alias that write chose."""
    return ("flash", "pro")[(writer + number) % 2]


def _choose_many(root: str, writer: int, count: int, start: Barrier) -> None:
    """One writer: its own store instance, ``count`` distinct people choosing."""
    store = FilesystemPrefStore(Path(root))
    start.wait(timeout=120)
    for number in range(count):
        store.set_default_model(email_of(writer, number), alias_of(writer, number))


def assert_every_choice_kept(root: Path, writers: int, per_writer: int) -> None:
    """prefs.json holds exactly one entry per write, each with the right alias."""
    prefs = RecordCodec().load_prefs((root / "prefs.json").read_bytes())
    assert len(prefs.default_models) == writers * per_writer
    store = FilesystemPrefStore(root)
    wrong = [
        (w, n)
        for w in range(writers)
        for n in range(per_writer)
        if store.get_default_model(email_of(w, n)) != alias_of(w, n)
    ]
    assert wrong == []


@pytest.mark.slow
def test_four_processes_writing_a_thousand_choices_lose_none(tmp_path: Path) -> None:
    """1,000 read-modify-writes from 4 spawned processes at once: all 1,000 survive."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    processes = [
        context.Process(target=_choose_many, args=(str(tmp_path), w, PER_PROCESS, start))
        for w in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    codes = [process.exitcode for process in processes]
    for process in processes:
        process.close()
    assert codes == [0] * PROCESSES
    assert_every_choice_kept(tmp_path, PROCESSES, PER_PROCESS)


def test_threads_sharing_one_store_or_using_their_own_lose_nothing(tmp_path: Path) -> None:
    """Half the threads share an instance, half open their own: no choice is lost."""
    shared = FilesystemPrefStore(tmp_path)
    start = threading.Barrier(THREADS)

    def work(writer: int) -> None:
        store = shared if writer % 2 else FilesystemPrefStore(tmp_path)
        start.wait(timeout=60)
        for number in range(PER_THREAD):
            store.set_default_model(email_of(writer, number), alias_of(writer, number))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(work, range(THREADS)))
    assert_every_choice_kept(tmp_path, THREADS, PER_THREAD)
