"""What only the filesystem adapters can get wrong: paths, symlinks, full disks, crashes
and the SQLite index that must always agree with the sidecars."""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import sqlite3
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core.domain import CostEstimate, EncodedImage, Generation
from image_core.errors import CorruptRecord, StorageError
from image_core.names import parse_public_name as resolve_public_name
from image_core.serialization import IndexedFields, Prefs, RecordCodec
from image_server.adapters import atomic_files
from image_server.adapters.atomic_files import remove_stale_temps, write_atomic
from image_server.adapters.fs_images import FilesystemImageStore
from image_server.adapters.fs_metadata import INDEX_NAME, FilesystemMetadataRepository
from image_server.adapters.fs_prefs import FilesystemPrefStore
from image_server.adapters.fs_sidecars import SidecarFiles
from image_server.adapters.sqlite_index import SqliteIndex
from tests.contract.conftest import NOON, PNG, make_generation, thumbnail
from tests.support.bad_records import BAD_SIDECARS, plant

SAMPLE_V1 = Path(__file__).resolve().parents[1] / "data" / "sidecar_v1.json"
CRASHED = 70
CODEC = RecordCodec()
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def files_in(root: Path) -> list[str]:
    """Every file under ``root`` except the index and lock files, relative and sorted."""
    ignored = {".index.lock", ".prefs.lock"}
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if not p.is_dir() and p.name not in ignored and not p.name.startswith(INDEX_NAME)
    )


def run_in_child(target: Callable[..., None], *args: object) -> int | None:
    """Run ``target`` in a fresh interpreter (spawn) and return its exit code."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join(timeout=120)
    code = process.exitcode
    process.close()
    return code


@pytest.fixture
def images(tmp_path: Path) -> FilesystemImageStore:
    """An image store on an empty folder."""
    return FilesystemImageStore(tmp_path)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[FilesystemMetadataRepository]:
    """A metadata repository on an empty folder."""
    with FilesystemMetadataRepository(tmp_path) as opened:
        yield opened


def write_sidecar(root: Path, generation: Generation) -> Path:
    """A sidecar written behind the repository's back."""
    path = root / f"{generation.id}.json"
    path.write_bytes(CODEC.dump_generation(generation))
    return path


# --- public names and paths ---------------------------------------------------------


@pytest.fixture(scope="module")
def shared_images(tmp_path_factory: pytest.TempPathFactory) -> FilesystemImageStore:
    """One store for the whole module: hypothesis runs many examples against it."""
    return FilesystemImageStore(tmp_path_factory.mktemp("images"))


def _near_misses(canonical: str) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            f"{canonical}.png",
            f"{canonical.upper()}.png",
            f"../{canonical}.png",
            f"{canonical}.png/..",
            f"{canonical}.png\x00",
            f"/{canonical}.png",
            f"{canonical}.json",
        ]
    )


@given(name=st.text() | st.uuids().map(str).flatmap(_near_misses))
def test_no_string_names_a_file_outside_the_root(
    shared_images: FilesystemImageStore, name: str
) -> None:
    """Any text resolves to nothing or to ``root/<that same name>``, never elsewhere."""
    image_id = resolve_public_name(name)
    if image_id is not None:
        path = shared_images.path_for(image_id)
        assert path.parent == shared_images.root
        assert path.name == name
        assert image_id.version == 4


@pytest.mark.parametrize(
    "name",
    [
        "",
        "3F2B8C1E-9A4D-4E7F-8B21-6C0D5E9A7F13.png",
        "3f2b8c1e-9a4d-4e7f-8b21-6c0d5e9a7f13.PNG",
        "3f2b8c1e-9a4d-4e7f-8b21-6c0d5e9a7f13.png\n",
        "3f2b8c1e-9a4d-4e7f-8b21-6c0d5e9a7f13.json",
        "3f2b8c1e-9a4d-1e7f-8b21-6c0d5e9a7f13.png",
        "3f2b8c1e-9a4d-4e7f-cb21-6c0d5e9a7f13.png",
        "3f2b8c1e9a4d4e7f8b216c0d5e9a7f13.png",
        "../3f2b8c1e-9a4d-4e7f-8b21-6c0d5e9a7f13.png",
        "thumbs/3f2b8c1e-9a4d-4e7f-8b21-6c0d5e9a7f13.webp",
        "prefs.json",
        INDEX_NAME,
        ".oauth",
        "%2e%2e%2fprefs.json",
    ],
)
def test_only_lowercase_uuid4_png_names_are_public(name: str) -> None:
    """Upper case, other versions, other files and traversal all resolve to nothing."""
    assert resolve_public_name(name) is None


def test_a_canonical_name_resolves_to_its_uuid() -> None:
    """The name this product hands out maps back to the id."""
    image_id = uuid.uuid4()
    assert resolve_public_name(f"{image_id}.png") == image_id


@pytest.mark.parametrize(
    "bad_id",
    [
        uuid.uuid1(),
        uuid.UUID(int=0),
        uuid.uuid5(uuid.NAMESPACE_DNS, "example.com"),
        "3f2b8c1e-9a4d-4e7f-8b21-6c0d5e9a7f13",
        "../../etc/passwd",
    ],
    ids=["uuid1", "nil", "uuid5", "str", "traversal"],
)
def test_ids_other_than_uuid4_are_refused_before_any_path_is_built(
    images: FilesystemImageStore, bad_id: object
) -> None:
    """Every method raises ValueError for anything but a uuid4 value."""
    weird = cast(Any, bad_id)
    calls: list[Callable[[], object]] = [
        lambda: images.path_for(weird),
        lambda: images.put(weird, PNG, thumbnail()),
        lambda: images.get(weird),
        lambda: images.get_thumbnail(weird),
        lambda: images.put_thumbnail(weird, thumbnail()),
        lambda: images.exists(weird),
        lambda: images.delete(weird),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="uuid4"):
            call()


def test_the_metadata_get_of_a_non_uuid4_is_none(repo: FilesystemMetadataRepository) -> None:
    """A query never builds a path from a bad id; it simply finds nothing."""
    assert repo.get(cast(Any, "../prefs")) is None
    assert repo.get(uuid.uuid1()) is None


def test_thumbnails_are_stored_apart_with_their_type_in_the_extension(
    images: FilesystemImageStore, tmp_path: Path
) -> None:
    """The PNG sits in the root (served); thumbnails in thumbs/, one variant at a time."""
    image_id = uuid.uuid4()
    images.put(image_id, PNG, thumbnail("image/webp"))
    assert files_in(tmp_path) == [f"{image_id}.png", f"thumbs/{image_id}.webp"]
    images.put_thumbnail(image_id, thumbnail("image/jpeg"))
    assert files_in(tmp_path) == [f"{image_id}.png", f"thumbs/{image_id}.jpg"]


def test_a_thumbnail_type_without_an_extension_is_refused_before_writing(
    images: FilesystemImageStore, tmp_path: Path
) -> None:
    """An unknown media type is a StorageError and leaves no file."""
    with pytest.raises(StorageError, match="image/gif"):
        images.put(uuid.uuid4(), PNG, EncodedImage(b"GIF89a", "image/gif"))
    assert files_in(tmp_path) == []


# --- symlinks and odd files -----------------------------------------------------------


def test_a_symlinked_png_pointing_outside_is_never_read_or_served(
    images: FilesystemImageStore, tmp_path: Path
) -> None:
    """get, exists and open_png all treat a planted link as absent."""
    secret = tmp_path.parent / f"{tmp_path.name}-secret.txt"
    secret.write_text("top secret")
    image_id = uuid.uuid4()
    images.path_for(image_id).symlink_to(secret)
    assert images.get(image_id) is None
    assert not images.exists(image_id)
    assert images.open_png(f"{image_id}.png") is None
    assert secret.read_text() == "top secret"


def test_a_symlinked_thumbnail_is_never_read(images: FilesystemImageStore, tmp_path: Path) -> None:
    """A link in thumbs/ is as good as no thumbnail."""
    image_id = uuid.uuid4()
    images.put(image_id, PNG, thumbnail("image/webp"))
    link = tmp_path / "thumbs" / f"{image_id}.webp"
    link.unlink()
    link.symlink_to(images.path_for(image_id))
    assert images.get_thumbnail(image_id) is None


def test_a_thumbs_folder_that_is_a_symlink_is_refused_at_start(tmp_path: Path) -> None:
    """The store will not write thumbnails through a link to elsewhere."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "thumbs").symlink_to(elsewhere)
    with pytest.raises(StorageError, match="thumbs"):
        FilesystemImageStore(root)


def test_open_png_hands_out_the_open_file_and_its_size(images: FilesystemImageStore) -> None:
    """The route streams from the descriptor it was given, so what was checked is served."""
    image_id = uuid.uuid4()
    images.put(image_id, PNG, thumbnail())
    opened = images.open_png(f"{image_id}.png")
    assert opened is not None
    fd, info = opened
    with os.fdopen(fd, "rb") as file:
        assert file.read() == PNG
    assert info.st_size == len(PNG)


def test_open_png_refuses_folders_fifos_and_other_names(
    images: FilesystemImageStore, tmp_path: Path
) -> None:
    """Anything but a regular file is absent; a FIFO does not hang the request."""
    folder_id, fifo_id = uuid.uuid4(), uuid.uuid4()
    images.path_for(folder_id).mkdir()
    os.mkfifo(images.path_for(fifo_id))
    (tmp_path / "prefs.json").write_text("{}")
    assert images.open_png(f"{folder_id}.png") is None
    assert images.open_png(f"{fifo_id}.png") is None
    assert images.open_png(f"{uuid.uuid4()}.png") is None
    assert images.open_png("prefs.json") is None
    assert images.get(fifo_id) is None


def test_open_png_refuses_a_file_with_a_second_name(
    images: FilesystemImageStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hard link named like an image (to a sidecar, say) is absent, with a warning."""
    image_id, linked_id = uuid.uuid4(), uuid.uuid4()
    images.put(image_id, PNG, thumbnail())
    sidecar = tmp_path / f"{image_id}.json"
    sidecar.write_text('{"email": "secret@example.com"}')
    os.link(sidecar, images.path_for(linked_id))
    with caplog.at_level(logging.WARNING, "image_server.images"):
        assert images.open_png(f"{linked_id}.png") is None
    assert f"{linked_id}.png" in caplog.text
    opened = images.open_png(f"{image_id}.png")
    assert opened is not None
    os.close(opened[0])


def test_a_symlinked_sidecar_is_not_indexed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A link named like a sidecar is skipped with a warning, never followed."""
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    generation = make_generation()
    outside.write_bytes(CODEC.dump_generation(generation))
    (tmp_path / f"{generation.id}.json").symlink_to(outside)
    with (
        caplog.at_level(logging.WARNING, "image_server.metadata"),
        FilesystemMetadataRepository(tmp_path) as repo,
    ):
        assert repo.usage().rows == ()
        assert repo.get(generation.id) is None
    assert "not a regular file" in caplog.text


def test_a_symlinked_prefs_file_is_not_read_and_is_replaced_not_followed(tmp_path: Path) -> None:
    """Saving a choice swaps the link for a real file; the link's target is untouched."""
    target = tmp_path.parent / f"{tmp_path.name}-prefs-target.json"
    target.write_bytes(CODEC.dump_prefs(Prefs({"ann@example.com": "pro"})))
    before = target.read_bytes()
    (tmp_path / "prefs.json").symlink_to(target)
    store = FilesystemPrefStore(tmp_path)
    assert store.get_default_model("ann@example.com") is None
    store.set_default_model("ann@example.com", "pro")
    assert not (tmp_path / "prefs.json").is_symlink()
    assert target.read_bytes() == before


# --- full disks and failing steps --------------------------------------------------------


def fail_write_number(monkeypatch: pytest.MonkeyPatch, failing_call: int) -> None:
    """Make the n-th file write of this test hit a full disk."""
    real = atomic_files._write_all
    calls = [0]

    def write(fd: int, data: bytes) -> None:
        calls[0] += 1
        if calls[0] == failing_call:
            raise ENOSPC
        real(fd, data)

    monkeypatch.setattr(atomic_files, "_write_all", write)


@pytest.mark.parametrize("failing_call", [1, 2], ids=["png", "thumbnail"])
def test_a_full_disk_during_put_leaves_no_file_and_says_so(
    images: FilesystemImageStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing_call: int,
) -> None:
    """Whichever write fails: StorageError naming the full disk, no path, nothing kept."""
    image_id = uuid.uuid4()
    fail_write_number(monkeypatch, failing_call)
    with pytest.raises(StorageError, match="disk is full") as caught:
        images.put(image_id, PNG, thumbnail())
    assert str(tmp_path) not in caught.value.message
    assert files_in(tmp_path) == []
    assert not images.exists(image_id)


def test_a_full_disk_reported_by_fsync_also_leaves_nothing(
    images: FilesystemImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delayed allocation fails at fsync: still no temp file and no image."""

    def fsync(fd: int) -> NoReturn:
        raise ENOSPC

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(StorageError, match="disk is full"):
        images.put(uuid.uuid4(), PNG, thumbnail())
    assert files_in(tmp_path) == []


def test_a_full_disk_during_add_keeps_no_sidecar_and_no_cost(
    repo: FilesystemMetadataRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is all or nothing; once space is back the same add works."""
    generation = make_generation()
    fail_write_number(monkeypatch, 1)
    with pytest.raises(StorageError, match="disk is full"):
        repo.add(generation)
    assert files_in(tmp_path) == []
    assert repo.get(generation.id) is None
    assert repo.usage().rows == ()
    repo.add(generation)
    assert repo.get(generation.id) == generation


def test_a_failed_index_insert_removes_the_sidecar(
    repo: FilesystemMetadataRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sidecar written, index refuses: StorageError and the sidecar is gone again."""
    generation = make_generation()

    def refuse(self: SqliteIndex, row: object) -> NoReturn:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(SqliteIndex, "_write", refuse)
        with pytest.raises(StorageError, match="index"):
            repo.add(generation)
    assert files_in(tmp_path) == []
    assert repo.get(generation.id) is None
    repo.add(generation)
    assert repo.usage().total_count == 1


def test_a_full_disk_while_saving_a_choice_keeps_the_old_prefs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prefs.json keeps everyone's earlier choices and no temp file remains."""
    store = FilesystemPrefStore(tmp_path)
    store.set_default_model("ann@example.com", "pro")
    fail_write_number(monkeypatch, 1)
    with pytest.raises(StorageError, match="disk is full"):
        store.set_default_model("bob@example.org", "flash")
    assert files_in(tmp_path) == ["prefs.json"]
    assert store.get_default_model("ann@example.com") == "pro"
    assert store.get_default_model("bob@example.org") is None


def test_text_that_is_not_valid_unicode_is_refused_without_a_sidecar(
    repo: FilesystemMetadataRepository, tmp_path: Path
) -> None:
    """A lone surrogate (JSON allows the escape) cannot be stored as UTF-8."""
    generation = make_generation(prompt="a fox \ud800 in the snow")
    with pytest.raises(StorageError, match="Unicode"):
        repo.add(generation)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("hard_links", [True, False], ids=["links", "no-links"])
def test_a_new_record_never_replaces_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    """overwrite=False refuses an existing target, also on volumes without hard links."""
    if not hard_links:

        def no_links(*_: object) -> NoReturn:
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))

        monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "record.json"
    write_atomic(path, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_atomic(path, b"second", overwrite=False)
    assert path.read_bytes() == b"first"
    assert files_in(tmp_path) == ["record.json"]


# --- crashes between steps (a real process dies) ------------------------------------------

OLD = b"the old contents, whole\n" * 1000
NEW = b"the new contents, whole\n" * 40_000
CRASH_STEPS = {
    "mid_write": OLD,
    "before_fsync": OLD,
    "before_replace": OLD,
    "after_replace": NEW,
}


def _crash(*_: object) -> NoReturn:
    os._exit(CRASHED)


def _crash_patch(step: str) -> AbstractContextManager[object]:
    """A patch of ``os`` that kills the process at ``step`` of an atomic write."""
    real_write, real_replace = os.write, os.replace

    def write_half(fd: int, data: bytes) -> NoReturn:
        real_write(fd, memoryview(data)[: len(data) // 2])
        _crash()

    def replace_then_crash(source: Path, target: Path) -> NoReturn:
        real_replace(source, target)
        _crash()

    fakes: dict[str, tuple[str, Callable[..., NoReturn]]] = {
        "mid_write": ("write", write_half),
        "before_fsync": ("fsync", _crash),
        "before_replace": ("replace", _crash),
        "after_replace": ("replace", replace_then_crash),
    }
    name, fake = fakes[step]
    return mock.patch.object(os, name, fake)


def _write_then_crash(path: str, step: str) -> None:
    with _crash_patch(step):
        write_atomic(Path(path), NEW)


def _choose_then_crash(root: str, step: str) -> None:
    store = FilesystemPrefStore(Path(root))
    with _crash_patch(step):
        store.set_default_model("bob@example.org", "pro")


def _add_then_crash_before_indexing(root: str, generation: Generation) -> None:
    with (
        FilesystemMetadataRepository(Path(root)) as repo,
        mock.patch.object(SqliteIndex, "add", _crash),
    ):
        repo.add(generation)


@pytest.mark.slow
@pytest.mark.parametrize("step", CRASH_STEPS)
def test_a_crash_at_any_step_leaves_the_old_or_the_new_file_whole(
    tmp_path: Path, step: str
) -> None:
    """The target is never truncated; leftovers are hidden temps that cleanup removes."""
    target = tmp_path / f"{uuid.uuid4()}.png"
    target.write_bytes(OLD)
    assert run_in_child(_write_then_crash, str(target), step) == CRASHED
    assert target.read_bytes() == CRASH_STEPS[step]
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert all(name.startswith(".") and name.endswith(".tmp") for name in leftovers)
    assert all(resolve_public_name(name) is None for name in leftovers)
    remove_stale_temps(tmp_path, older_than_seconds=-1)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.slow
@pytest.mark.parametrize("step", ["before_replace", "after_replace"])
def test_a_crash_while_saving_a_choice_keeps_prefs_valid_and_unlocked(
    tmp_path: Path, step: str
) -> None:
    """prefs.json holds the old or the new choices, and the dead writer's lock is free."""
    store = FilesystemPrefStore(tmp_path)
    store.set_default_model("ann@example.com", "flash")
    assert run_in_child(_choose_then_crash, str(tmp_path), step) == CRASHED
    assert store.get_default_model("ann@example.com") == "flash"
    expected = "pro" if step == "after_replace" else None
    assert store.get_default_model("bob@example.org") == expected
    store.set_default_model("carol@example.net", "pro")
    assert store.get_default_model("carol@example.net") == "pro"


@pytest.mark.slow
def test_a_crash_between_sidecar_and_index_is_repaired_on_the_next_open(tmp_path: Path) -> None:
    """The sidecar is the truth: the next open indexes it."""
    generation = make_generation()
    assert run_in_child(_add_then_crash_before_indexing, str(tmp_path), generation) == CRASHED
    with FilesystemMetadataRepository(tmp_path) as repo:
        assert repo.get(generation.id) == generation
        assert repo.usage().total_count == 1


# --- the index follows the sidecars -----------------------------------------------------------


def add_some(root: Path, count: int = 3) -> list[Generation]:
    """Record ``count`` generations through a repository that is then closed."""
    made = [make_generation(at=NOON + timedelta(minutes=i), cost="0.1") for i in range(count)]
    with FilesystemMetadataRepository(root) as repo:
        for generation in made:
            repo.add(generation)
    return made


def test_records_survive_a_reopen(tmp_path: Path) -> None:
    """A new repository on the same folder answers as the old one did."""
    made = add_some(tmp_path)
    with FilesystemMetadataRepository(tmp_path) as repo:
        assert repo.page_for_user("ann@example.com", 0, 10).items == tuple(made[::-1])


def test_two_open_repositories_share_one_index(tmp_path: Path) -> None:
    """Like two server processes: an add through one is seen at once by the other."""
    with (
        FilesystemMetadataRepository(tmp_path) as first,
        FilesystemMetadataRepository(tmp_path) as second,
    ):
        generation = make_generation()
        first.add(generation)
        assert second.usage().total_count == 1
        with pytest.raises(StorageError, match="already recorded"):
            second.add(generation)


def test_reopening_an_index_in_step_reads_no_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up compares names only; no sidecar is parsed when nothing changed."""
    add_some(tmp_path)

    def must_not_read(*_: object) -> NoReturn:
        raise AssertionError("a sidecar was read")

    monkeypatch.setattr(SidecarFiles, "_indexed_fields_of", must_not_read)
    with FilesystemMetadataRepository(tmp_path) as repo:
        assert repo.usage().total_count == 3


def test_a_deleted_index_is_rebuilt(tmp_path: Path) -> None:
    """Remove index.sqlite3 and everything is found again."""
    made = add_some(tmp_path)
    (tmp_path / INDEX_NAME).unlink()
    with FilesystemMetadataRepository(tmp_path) as repo:
        assert repo.usage().total_cost == CostEstimate(Decimal("0.3"))
        assert repo.page_for_user("ann@example.com", 0, 10).items == tuple(made[::-1])
    assert (tmp_path / INDEX_NAME).exists()


def test_a_garbage_index_is_discarded_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Random bytes where the database was: a warning, then a fresh index."""
    add_some(tmp_path)
    (tmp_path / INDEX_NAME).write_bytes(os.urandom(8192))
    with (
        caplog.at_level(logging.WARNING, "image_server.metadata"),
        FilesystemMetadataRepository(tmp_path) as repo,
    ):
        assert repo.usage().total_count == 3
    assert "damaged" in caplog.text


def test_an_index_of_another_version_is_rebuilt(tmp_path: Path) -> None:
    """A schema change is just a rebuild: the index is derived data."""
    add_some(tmp_path)
    with sqlite3.connect(tmp_path / INDEX_NAME) as conn:
        conn.execute("DROP TABLE generations")
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with FilesystemMetadataRepository(tmp_path) as repo:
        assert repo.usage().total_count == 3


_OURS = """CREATE TABLE generations (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_us INTEGER NOT NULL,
        day TEXT NOT NULL, cost_micro INTEGER, cost_text TEXT, status TEXT NOT NULL);
    CREATE TABLE skipped (id TEXT PRIMARY KEY);"""
FOREIGN_INDEXES = {
    "other tables": "CREATE TABLE photos (path TEXT, taken TEXT); PRAGMA user_version = 2;",
    "the right name, the wrong columns": (
        "CREATE TABLE generations (id TEXT PRIMARY KEY, owner TEXT); "
        "CREATE TABLE skipped (id TEXT PRIMARY KEY); PRAGMA user_version = 2;"
    ),
    "our tables and a trigger that refuses every row": (
        f"{_OURS} CREATE TRIGGER no_rows BEFORE INSERT ON generations "
        "BEGIN SELECT RAISE(ABORT, 'no'); END; PRAGMA user_version = 2;"
    ),
    "a view under the table's name": (
        "CREATE TABLE photos (id TEXT); CREATE VIEW generations AS SELECT id FROM photos;"
    ),
    "another table holding one of our index names": (
        "CREATE TABLE photos (day TEXT); CREATE INDEX by_day ON photos (day);"
    ),
}


@pytest.mark.parametrize("schema", FOREIGN_INDEXES)
def test_an_index_of_a_foreign_schema_is_discarded_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, schema: str
) -> None:
    """A SQLite file that is not our index (whatever its user_version says) is replaced,
    with a warning, and every record is found again; new records are indexed."""
    made = add_some(tmp_path)
    for name in (INDEX_NAME, f"{INDEX_NAME}-wal", f"{INDEX_NAME}-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    conn = sqlite3.connect(tmp_path / INDEX_NAME)
    conn.executescript(FOREIGN_INDEXES[schema])
    conn.close()
    newcomer = make_generation("bob@example.org", cost="0.24")
    write_sidecar(tmp_path, newcomer)
    with (
        caplog.at_level(logging.WARNING, "image_server.metadata"),
        FilesystemMetadataRepository(tmp_path) as repo,
    ):
        assert repo.usage().total_cost == CostEstimate(Decimal("0.54"))
        assert repo.page_for_user("ann@example.com", 0, 10).items == tuple(made[::-1])
        later = make_generation("bob@example.org")
        repo.add(later)
        assert repo.usage().total_count == 5
    assert INDEX_NAME in caplog.text
    with FilesystemMetadataRepository(tmp_path) as repo:
        assert repo.usage().total_count == 5


@pytest.mark.parametrize("name", [INDEX_NAME, f"{INDEX_NAME}-wal"])
def test_a_folder_in_place_of_the_index_stops_start_up_saying_what_to_do(
    tmp_path: Path, name: str
) -> None:
    """A folder is never removed for us: the message names it and says to move it away."""
    add_some(tmp_path)
    for stale in (INDEX_NAME, f"{INDEX_NAME}-wal", f"{INDEX_NAME}-shm"):
        (tmp_path / stale).unlink(missing_ok=True)
    (tmp_path / name).mkdir()
    (tmp_path / name / "keep.txt").write_text("someone's file")
    with pytest.raises(StorageError) as caught:
        FilesystemMetadataRepository(tmp_path)
    message = caught.value.message
    assert str(tmp_path / name) in message
    assert "move" in message.lower()
    assert (tmp_path / name / "keep.txt").read_text() == "someone's file"


def test_sidecars_added_and_removed_behind_its_back_are_picked_up(tmp_path: Path) -> None:
    """A copied-in sidecar appears and a deleted one disappears on the next open."""
    made = add_some(tmp_path)
    (tmp_path / f"{made[0].id}.json").unlink()
    newcomer = make_generation("bob@example.org", cost="0.24")
    write_sidecar(tmp_path, newcomer)
    with FilesystemMetadataRepository(tmp_path) as repo:
        assert repo.get(made[0].id) is None
        assert repo.get(newcomer.id) == newcomer
        assert repo.users() == ["ann@example.com", "bob@example.org"]
        assert repo.usage().total_cost == CostEstimate(Decimal("0.44"))


def test_rebuild_index_picks_up_a_sidecar_edited_by_hand(tmp_path: Path) -> None:
    """Names are checked on open; a changed cost needs the explicit rebuild."""
    (generation,) = add_some(tmp_path, 1)
    edited = json.loads((tmp_path / f"{generation.id}.json").read_bytes())
    edited["cost"] = "0.5"
    (tmp_path / f"{generation.id}.json").write_text(json.dumps(edited))
    with FilesystemMetadataRepository(tmp_path) as repo:
        assert repo.rebuild_index() == 1
        assert repo.usage().total_cost == CostEstimate(Decimal("0.5"))


def test_a_corrupt_sidecar_is_skipped_with_a_warning_naming_only_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Start-up survives; the others are indexed; the log names the file, not the folder."""
    add_some(tmp_path)
    broken = tmp_path / f"{uuid.uuid4()}.json"
    broken.write_bytes(b'{"schema_version": 1, "id": "trunc')
    with (
        caplog.at_level(logging.WARNING, "image_server.metadata"),
        FilesystemMetadataRepository(tmp_path) as repo,
    ):
        assert repo.usage().total_count == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert broken.name in warnings[0]
    assert str(tmp_path) not in warnings[0]


def test_a_skipped_sidecar_is_not_reread_at_every_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The index remembers unreadable names, so a restart stays quick and quiet."""
    (tmp_path / f"{uuid.uuid4()}.json").write_text("not json")
    FilesystemMetadataRepository(tmp_path).close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "image_server.metadata"):
        FilesystemMetadataRepository(tmp_path).close()
    assert caplog.records == []


def test_a_sidecar_under_another_ids_name_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A record copied to the wrong name is not indexed twice or under the wrong id."""
    generation = make_generation()
    (tmp_path / f"{uuid.uuid4()}.json").write_bytes(CODEC.dump_generation(generation))
    with (
        caplog.at_level(logging.WARNING, "image_server.metadata"),
        FilesystemMetadataRepository(tmp_path) as repo,
    ):
        assert repo.usage().rows == ()
    assert str(generation.id) in caplog.text


@pytest.mark.parametrize("when", ["first open", "reopen", "rebuild"])
@pytest.mark.parametrize("case", BAD_SIDECARS)
def test_a_bad_sidecar_is_skipped_with_a_warning_and_never_stops_the_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, when: str
) -> None:
    """At the first open (full build), a reopen (it arrived since) or an explicit rebuild,
    the others are indexed and summed; the bad one is never counted or served, and a
    warning names its file (never the folder)."""
    if when == "first open":
        bad = plant(tmp_path, case)
        add_some(tmp_path)
    else:
        add_some(tmp_path)
        bad = plant(tmp_path, case)
    with caplog.at_level(logging.WARNING, "image_server.metadata"):
        with FilesystemMetadataRepository(tmp_path) as repo:
            if when == "rebuild":
                assert repo.rebuild_index() >= 3
            usage = repo.usage()
            assert usage.total_count == 3
            assert usage.total_cost == CostEstimate(Decimal("0.3"))
            assert usage.total_cost.display() == "$0.30"
            assert repo.get(uuid.UUID(bad.stem)) is None
            assert repo.page_for_user("eve@example.com", 0, 10).items == ()
            assert repo.unsettled() == []
        # The next start is quick and still sound.
        with FilesystemMetadataRepository(tmp_path) as repo:
            assert repo.usage().total_count == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(bad.name in w for w in warnings), warnings
    assert not any(str(tmp_path) in w for w in warnings)


T = TypeVar("T")


class _Records:
    """A record source speaking ``RecordSource``: fixed fields, the way the sidecars hand them."""

    def __init__(self, *fields: IndexedFields) -> None:
        self._fields = {str(f.id): f for f in fields}

    def ids(self) -> set[str]:
        return set(self._fields)

    def index_rows(
        self, ids: list[str], skipped: list[str], row: Callable[[IndexedFields], T]
    ) -> Generator[T]:
        return (row(self._fields[i]) for i in ids)


def test_a_record_the_index_cannot_hold_is_skipped_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The codec bounds every cost; should an unscalable one still arrive, only it is lost."""
    good, bad = make_generation(cost="0.24"), make_generation()
    records = _Records(
        IndexedFields(good.id, good.email, good.created_at, good.cost),
        IndexedFields(bad.id, bad.email, bad.created_at, CostEstimate(Decimal("1e999999"))),
    )
    with caplog.at_level(logging.WARNING, "image_server.metadata"):
        index = SqliteIndex(tmp_path, records)
    try:
        assert index.usage().total_cost == good.cost
    finally:
        index.close()
    assert f"{bad.id}.json" in caplog.text


def test_the_v1_sample_sidecar_loads_and_is_indexed(tmp_path: Path) -> None:
    """The committed sample of schema version 1 is read by the codec and the repository."""
    raw = SAMPLE_V1.read_bytes()
    generation = CODEC.load_generation(raw)
    assert generation.cost == CostEstimate(Decimal("0.134"))
    (tmp_path / f"{generation.id}.json").write_bytes(raw)
    with FilesystemMetadataRepository(tmp_path) as repo:
        assert repo.get(generation.id) == generation
        assert repo.users() == ["ada.lovelace@example.com"]
        assert repo.page_for_user("ada.lovelace@example.com", 0, 5).items == (generation,)


def test_a_sidecar_with_an_unknown_future_field_loads(tmp_path: Path) -> None:
    """Fields a newer server wrote are ignored, so older servers keep working."""
    data = json.loads(SAMPLE_V1.read_bytes())
    data["schema_version"] = 2
    data["favourite_colour"] = {"name": "teal", "hex": "#008080"}
    (tmp_path / f"{data['id']}.json").write_text(json.dumps(data))
    with FilesystemMetadataRepository(tmp_path) as repo:
        loaded = repo.get(uuid.UUID(data["id"]))
        assert loaded == CODEC.load_generation(SAMPLE_V1.read_bytes())
        assert repo.usage().total_count == 1


def test_a_sidecar_without_email_is_a_clear_corrupt_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The codec names the missing field; the repository skips it with that reason."""
    data = json.loads(SAMPLE_V1.read_bytes())
    del data["email"]
    raw = json.dumps(data).encode()
    with pytest.raises(CorruptRecord, match="email"):
        CODEC.load_generation(raw)
    (tmp_path / f"{data['id']}.json").write_bytes(raw)
    with (
        caplog.at_level(logging.WARNING, "image_server.metadata"),
        FilesystemMetadataRepository(tmp_path) as repo,
    ):
        assert repo.usage().rows == ()
    assert "email" in caplog.text


def test_a_sidecar_damaged_outside_the_indexed_fields_is_never_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its cost still counts, but get and the gallery skip it with a warning."""
    data = json.loads(SAMPLE_V1.read_bytes())
    data["aspect_ratio"] = "9:7"
    (tmp_path / f"{data['id']}.json").write_text(json.dumps(data))
    with (
        caplog.at_level(logging.WARNING, "image_server.metadata"),
        FilesystemMetadataRepository(tmp_path) as repo,
    ):
        assert repo.usage().total_count == 1
        assert repo.get(uuid.UUID(data["id"])) is None
        assert repo.page_for_user(data["email"], 0, 5).items == ()
    assert "aspect_ratio" in caplog.text


# --- prefs ----------------------------------------------------------------------------------------


def test_a_corrupt_prefs_file_is_reported_and_never_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """get logs and answers None; set refuses with CorruptRecord; the file stays as it was."""
    damaged = b'{"schema_version": 1, "default_models": {"ann@example.com": "pro"'
    (tmp_path / "prefs.json").write_bytes(damaged)
    store = FilesystemPrefStore(tmp_path)
    with caplog.at_level(logging.WARNING, "image_server.prefs"):
        assert store.get_default_model("ann@example.com") is None
    assert "prefs.json" in caplog.text
    with pytest.raises(CorruptRecord, match="left unchanged"):
        store.set_default_model("bob@example.org", "flash")
    assert (tmp_path / "prefs.json").read_bytes() == damaged
