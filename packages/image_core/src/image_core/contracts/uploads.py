"""The UploadStore contract: what every store of uploaded photos must do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from image_core.contracts.samples import NOON, PNG, AdapterFactory, thumbnail
from image_core.domain import Upload
from image_core.ports import UploadStore

JPEG = b"\xff\xd8\xff\xe0 a stored photo \xff\xd9"


def make_upload(
    email: str = "ann@example.com",
    *,
    minutes: int = 0,
    mime_type: str = "image/jpeg",
    file_name: str | None = "beach.jpg",
) -> Upload:
    """A valid upload record, ``minutes`` after noon."""
    return Upload(
        id=uuid.uuid4(),
        email=email,
        created_at=NOON + timedelta(minutes=minutes),
        width=40,
        height=30,
        size_bytes=len(JPEG),
        mime_type=mime_type,
        file_name=file_name,
    )


class UploadStoreContract:
    """Subclass as ``Test...`` and provide the ``upload_store_factory`` fixture."""

    @pytest.fixture
    def upload_store(
        self, upload_store_factory: AdapterFactory[UploadStore]
    ) -> Iterator[UploadStore]:
        """One fresh adapter for one test."""
        with upload_store_factory() as adapter:
            yield adapter

    def test_a_kept_upload_comes_back_whole(self, upload_store: UploadStore) -> None:
        """The record, the image bytes and the thumbnail with its media type."""
        upload = make_upload()
        upload_store.put(upload, JPEG, thumbnail("image/webp"))
        assert upload_store.get(upload.id) == upload
        assert upload_store.read(upload) == JPEG
        assert upload_store.thumbnail(upload) == thumbnail("image/webp")

    def test_a_png_upload_and_one_without_a_display_name_are_kept_too(
        self, upload_store: UploadStore
    ) -> None:
        """Transparent photos are PNG; the display name is optional."""
        upload = make_upload(mime_type="image/png", file_name=None)
        upload_store.put(upload, PNG, thumbnail("image/png"))
        assert upload_store.get(upload.id) == upload
        assert upload_store.read(upload) == PNG

    def test_an_unknown_upload_is_none(self, upload_store: UploadStore) -> None:
        """Nothing kept: no record, no bytes, no thumbnail, nobody's list."""
        upload = make_upload()
        assert upload_store.get(upload.id) is None
        assert upload_store.read(upload) is None
        assert upload_store.thumbnail(upload) is None
        assert upload_store.list_for(upload.email) == []
        assert upload_store.count_for(upload.email) == 0

    def test_each_person_lists_only_their_own_newest_first(self, upload_store: UploadStore) -> None:
        """Lists and counts are per owner, newest first."""
        older = make_upload(minutes=1)
        newer = make_upload(minutes=5)
        theirs = make_upload("bob@example.com", minutes=3)
        for upload in (older, theirs, newer):
            upload_store.put(upload, JPEG, thumbnail())
        assert upload_store.list_for("ann@example.com") == [newer, older]
        assert upload_store.list_for("bob@example.com") == [theirs]
        assert upload_store.count_for("ann@example.com") == 2
        assert upload_store.count_for("carol@example.com") == 0

    def test_delete_removes_everything_and_is_idempotent(self, upload_store: UploadStore) -> None:
        """After delete the upload is as if never kept; deleting again is no error."""
        upload = make_upload()
        upload_store.put(upload, JPEG, thumbnail())
        upload_store.delete(upload)
        upload_store.delete(upload)
        assert upload_store.get(upload.id) is None
        assert upload_store.read(upload) is None
        assert upload_store.thumbnail(upload) is None
        assert upload_store.count_for(upload.email) == 0
