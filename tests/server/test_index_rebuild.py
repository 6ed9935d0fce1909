"""A full index rebuild runs in the background: the server answers while it fills."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from starlette.testclient import TestClient

from image_core.budgets import Period
from image_core.contracts.samples import NOON, make_generation
from image_core.domain import CostEstimate, Generation, GenerationStatus
from image_core.serialization import IndexedFields, RecordCodec
from image_core.testing import InMemoryMetadataRepository
from image_server.adapters import sqlite_index
from image_server.adapters.fs_metadata import INDEX_NAME, FilesystemMetadataRepository
from image_server.adapters.fs_sidecars import SidecarFiles
from tests.dashboard.support import dashboard_config, make_service, outer_app

CODEC = RecordCodec()
PEOPLE = ("ann@example.com", "bob@example.org")


def _write(root: Path, count: int) -> list[Generation]:
    made = [
        make_generation(PEOPLE[n % 2], at=NOON - timedelta(minutes=n), cost="0.1")
        for n in range(count)
    ]
    root.mkdir(parents=True, exist_ok=True)
    for generation in made:
        (root / f"{generation.id}.json").write_bytes(CODEC.dump_generation(generation))
    return made


@attrs.define
class Gate:
    """Holds the rebuild after its first batch until ``release``."""

    first_done: threading.Event = attrs.Factory(threading.Event)
    opened: threading.Event = attrs.Factory(threading.Event)

    def release(self) -> None:
        self.opened.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """The rebuild writes ten rows at a time; after the first ten it waits for the gate."""
    gate = Gate()
    monkeypatch.setattr(sqlite_index, "_REBUILD_BATCH", 10)
    real = SidecarFiles.indexed_fields

    def gated(self: SidecarFiles, ids: list[str], skipped: list[str]) -> Iterator[IndexedFields]:
        rebuilding = threading.current_thread().name == "index-rebuild"
        for count, fields in enumerate(real(self, ids, skipped)):
            if rebuilding and count == 10 and not gate.opened.is_set():
                gate.first_done.set()
                assert gate.opened.wait(10), "the test never opened the gate"
            yield fields

    monkeypatch.setattr(SidecarFiles, "indexed_fields", gated)
    yield gate
    gate.release()


def _open(root: Path) -> FilesystemMetadataRepository:
    return FilesystemMetadataRepository(root, background_rebuild_from=20)


def test_a_large_rebuild_fills_in_the_background_while_queries_answer(
    tmp_path: Path, gate: Gate
) -> None:
    """Opening returns at once; usage, galleries and writes work meanwhile; then all is in."""
    made = _write(tmp_path, 60)
    with _open(tmp_path) as repo:
        assert gate.first_done.wait(10)
        progress = repo.rebuilding()
        assert progress is not None
        assert (progress.read, progress.total) == (10, 60)
        assert repo.usage().total_count == 10  # what is there so far
        fresh = make_generation("cleo@example.com", status=GenerationStatus.RENDERING)
        repo.add(fresh)
        late = made[-1]  # not read yet: the server's newer row must win over the sidecar
        repo.replace(attrs.evolve(late, status=GenerationStatus.FAILED, failure="x"))
        assert repo.page_for_user("cleo@example.com", 0, 5).total == 0
        gate.release()
        assert repo.wait_until_built(10)
        assert repo.rebuilding() is None
        assert repo.usage().total_count == 59 + 0
        assert {g.id for g in repo.unsettled()} == {fresh.id}
        assert len(list(repo.cost_rows())) == 60
        assert next(r for r in repo.cost_rows() if r.id == late.id).status is (
            GenerationStatus.FAILED
        )
    with sqlite3.connect(tmp_path / INDEX_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_index.INDEX_VERSION


def test_a_rebuild_cut_short_starts_again_at_the_next_open(tmp_path: Path, gate: Gate) -> None:
    """Closing mid-rebuild leaves the index marked unfinished; the next open completes it."""
    _write(tmp_path, 40)
    repo = _open(tmp_path)
    assert gate.first_done.wait(10)
    stopper = threading.Thread(target=repo.close)
    stopper.start()
    gate.release()
    stopper.join(10)
    with sqlite3.connect(tmp_path / INDEX_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    with _open(tmp_path) as again:
        assert again.wait_until_built(10)
        assert again.usage().total_count == 40


def test_a_small_folder_is_rebuilt_before_opening_returns(tmp_path: Path) -> None:
    """Up to the threshold the rebuild is done in place: nothing is ever partial."""
    _write(tmp_path, 15)
    with _open(tmp_path) as repo:
        assert repo.rebuilding() is None
        assert repo.usage().total_count == 15


def test_pages_answer_during_a_rebuild_and_say_their_figures_are_partial(
    tmp_path: Path, gate: Gate
) -> None:
    """The overview is a 200 with the notice; the CSV waits (503) and is whole afterwards."""
    _write(tmp_path, 50)
    with _open(tmp_path) as repo:
        assert gate.first_done.wait(10)
        seeded = make_service(open_policy=True, metadata=repo, user_images=0)
        config = dashboard_config(auth_disabled=True, public_url="http://127.0.0.1:8766")
        with TestClient(outer_app(seeded, config), base_url="http://127.0.0.1:8766") as client:
            during = client.get("/ui/?period=all")
            export = client.get("/ui/costs.csv?period=all")
            gallery = client.get(f"/ui/gallery/{PEOPLE[0]}")
            gate.release()
            assert repo.wait_until_built(10)
            after = client.get("/ui/?period=all")
            whole = client.get("/ui/costs.csv?period=all")
    assert during.status_code == 200
    assert "being rebuilt" in during.text
    assert gallery.status_code == 200
    assert export.status_code == 503
    assert "being rebuilt" not in after.text
    assert whole.status_code == 200
    owners = {PEOPLE[0], PEOPLE[1]}
    lines = whole.text.splitlines()[1:]
    assert len(lines) == 50 + len([g for gs in seeded.by_owner.values() for g in gs])
    assert all(any(o in line for o in owners | set(seeded.by_owner)) for line in lines)


def test_the_day_totals_the_index_keeps_match_every_record_after_any_writes(
    tmp_path: Path,
) -> None:
    """Adds, replaces (status and cost changed) and removes, sub-micro amounts included:
    every period's sums equal the in-memory repository's, before and after a rebuild."""
    rng = random.Random(3)
    fs, memory = FilesystemMetadataRepository(tmp_path), InMemoryMetadataRepository()
    made = []
    for _ in range(200):
        generation = make_generation(
            rng.choice(PEOPLE),
            at=NOON - timedelta(hours=rng.randint(0, 2000)),
            cost=rng.choice(["0.067", "0.0000001", "1000000", "0", "0.1234567"]),
            status=rng.choice(list(GenerationStatus)),
        )
        if rng.random() < 0.5:
            generation = attrs.evolve(generation, estimate=usd(rng.choice(["0.067", "1e-8"])))
        fs.add(generation)
        memory.add(generation)
        made.append(generation)
    for generation in rng.sample(made, 60):
        changed = attrs.evolve(
            generation,
            status=rng.choice(list(GenerationStatus)),
            cost=usd(rng.choice(["0.5", "0.00000003"])),
        )
        fs.replace(changed)
        memory.replace(changed)
    for generation in rng.sample(made, 20):
        fs.remove(generation.id)
        memory.remove(generation.id)
    since = NOON.date() - timedelta(days=90)
    try:
        for _ in ("written", "rebuilt"):
            for period in (
                None,
                Period(),
                Period.month_of(NOON.date()),
                Period.day_of(NOON.date()),
            ):
                assert fs.spend(period=period) == memory.spend(period=period)
                assert fs.usage(period=period) == memory.usage(period=period)
                assert fs.spend([PEOPLE[0]], period) == memory.spend([PEOPLE[0]], period)
            assert fs.daily_spend(since) == memory.daily_spend(since)
            assert list(fs.cost_rows()) == list(memory.cost_rows())
            fs.rebuild_index()
    finally:
        fs.close()


def usd(text: str) -> CostEstimate:
    """Dollars from text."""
    return CostEstimate(Decimal(text))
