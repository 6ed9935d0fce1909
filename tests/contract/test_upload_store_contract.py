"""The shipped UploadStore contract, run against the in-memory and the filesystem adapter,
and what only the filesystem adapter can get wrong: where files go and failed writes."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_core.contracts import AdapterFactory, UploadStoreContract, fresh
from image_core.contracts.samples import thumbnail
from image_core.contracts.uploads import JPEG, make_upload
from image_core.errors import StorageError
from image_core.ports import UploadStore
from image_core.testing import InMemoryUploadStore
from image_server.adapters import atomic_files
from image_server.adapters.fs_uploads import FilesystemUploadStore
from tests.contract.conftest import fresh_dir


class TestInMemoryUploadStore(UploadStoreContract):
    """The double library users test with."""

    @pytest.fixture
    def upload_store_factory(self) -> AdapterFactory[UploadStore]:
        return lambda: fresh(InMemoryUploadStore())


@contextlib.contextmanager
def _filesystem_store() -> Iterator[UploadStore]:
    with fresh_dir() as root:
        yield FilesystemUploadStore(root)


class TestFilesystemUploadStore(UploadStoreContract):
    """Photos, thumbnails and records under a fresh data folder."""

    @pytest.fixture
    def upload_store_factory(self) -> AdapterFactory[UploadStore]:
        return _filesystem_store


def test_uploads_live_in_their_own_folder_readable_by_the_server_only(tmp_path: Path) -> None:
    """Nothing lands in the data folder's root, where /i/ serves {uuid}.png files."""
    store = FilesystemUploadStore(tmp_path)
    upload = make_upload(mime_type="image/png")
    store.put(upload, JPEG, thumbnail())
    assert [p.name for p in tmp_path.iterdir()] == ["uploads"]
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(
        [
            f"uploads/thumbs/{upload.id}.webp",
            f"uploads/{upload.id}.json",
            f"uploads/{upload.id}.png",
        ]
    )
    for name in files:
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_a_write_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    """The record is written last; when it cannot be, the photo and thumbnail go too."""
    store = FilesystemUploadStore(tmp_path)
    upload = make_upload()
    # A folder where the record should go makes its atomic rename fail.
    (tmp_path / "uploads" / f"{upload.id}.json").mkdir()
    with pytest.raises(StorageError):
        store.put(upload, JPEG, thumbnail())
    assert not (tmp_path / "uploads" / f"{upload.id}.jpg").exists()
    assert not (tmp_path / "uploads" / "thumbs" / f"{upload.id}.webp").exists()
    assert store.count_for(upload.email) == 0


@pytest.mark.parametrize("failing", [1, 2, 3])
def test_a_folder_sync_failing_after_a_rename_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    """Each file's rename may succeed and the folder's sync after it fail (a full or
    failing disk): the upload is refused and none of its files stays, that one included."""
    store = FilesystemUploadStore(tmp_path)
    upload = make_upload()
    real = atomic_files.fsync_dir
    calls = 0

    def sync(directory: Path) -> None:
        nonlocal calls
        calls += 1
        if calls == failing:
            raise OSError(5, "Input/output error")
        real(directory)

    monkeypatch.setattr(atomic_files, "fsync_dir", sync)
    with pytest.raises(StorageError):
        store.put(upload, JPEG, thumbnail())
    kept = [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]
    assert kept == []
    assert store.count_for(upload.email) == 0


def test_a_thumbnail_of_an_unknown_type_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    """Refused up front: no half-kept upload."""
    store = FilesystemUploadStore(tmp_path)
    upload = make_upload()
    with pytest.raises(StorageError):
        store.put(upload, JPEG, thumbnail("image/gif"))
    assert list((tmp_path / "uploads").glob("*.*")) == []


def test_a_damaged_or_linked_record_is_skipped(tmp_path: Path) -> None:
    """A record that is not JSON, or a symlink in its place, is not an upload."""
    store = FilesystemUploadStore(tmp_path)
    kept = make_upload()
    store.put(kept, JPEG, thumbnail())
    broken = make_upload()
    (tmp_path / "uploads" / f"{broken.id}.json").write_text("{not json")
    linked = make_upload()
    (tmp_path / "uploads" / f"{linked.id}.json").symlink_to(
        tmp_path / "uploads" / f"{kept.id}.json"
    )
    assert store.list_for(kept.email) == [kept]
    assert store.get(broken.id) is None
    assert store.get(linked.id) is None


def test_a_link_in_place_of_the_uploads_folder_stops_start_up(tmp_path: Path) -> None:
    """Never write photos through a planted link."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "data"
    root.mkdir()
    (root / "uploads").symlink_to(elsewhere)
    with pytest.raises(StorageError, match="not a link"):
        FilesystemUploadStore(root)
    assert list(elsewhere.iterdir()) == []
