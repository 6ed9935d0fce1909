"""The ImageStore contract: what every image store must do, whatever keeps the bytes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core.contracts.samples import EXAMPLES, PNG, AdapterFactory, thumbnail
from image_core.domain import EncodedImage
from image_core.errors import StorageError
from image_core.ports import ImageStore


class ImageStoreContract:
    """Subclass as ``Test...`` and provide the ``image_store_factory`` fixture.

    The fixture returns a callable that opens one fresh, empty ``ImageStore`` in a context
    (an ``AdapterFactory``); every test, and every Hypothesis example, gets its own.
    """

    @pytest.fixture
    def image_store(self, image_store_factory: AdapterFactory[ImageStore]) -> Iterator[ImageStore]:
        """One fresh adapter for one test."""
        with image_store_factory() as adapter:
            yield adapter

    def test_a_stored_image_and_its_thumbnail_come_back_unchanged(
        self, image_store: ImageStore
    ) -> None:
        """put then get returns the same PNG bytes and the same thumbnail with its media type."""
        image_id = uuid.uuid4()
        image_store.put(image_id, PNG, thumbnail("image/webp"))
        assert image_store.get(image_id) == PNG
        assert image_store.get_thumbnail(image_id) == thumbnail("image/webp")
        assert image_store.exists(image_id)

    @pytest.mark.parametrize("mime_type", ["image/webp", "image/jpeg", "image/png"])
    def test_every_thumbnail_type_the_codecs_make_keeps_its_media_type(
        self, image_store: ImageStore, mime_type: str
    ) -> None:
        """WebP, JPEG and PNG thumbnails come back with the type they were stored with."""
        image_id = uuid.uuid4()
        image_store.put(image_id, PNG, thumbnail(mime_type))
        assert image_store.get_thumbnail(image_id) == thumbnail(mime_type)

    def test_a_missing_image_is_none_and_does_not_exist(self, image_store: ImageStore) -> None:
        """Nothing stored: no bytes, no thumbnail, not there."""
        image_id = uuid.uuid4()
        assert image_store.get(image_id) is None
        assert image_store.get_thumbnail(image_id) is None
        assert not image_store.exists(image_id)

    def test_images_are_kept_apart_by_id(self, image_store: ImageStore) -> None:
        """Two images never see each other's bytes."""
        first, second = uuid.uuid4(), uuid.uuid4()
        image_store.put(first, PNG, thumbnail(fill=b"1"))
        image_store.put(second, PNG + b"2", thumbnail(fill=b"2"))
        assert image_store.get(first) == PNG
        assert image_store.get(second) == PNG + b"2"
        assert image_store.get_thumbnail(first) == thumbnail(fill=b"1")

    def test_delete_removes_the_image_and_its_thumbnail(self, image_store: ImageStore) -> None:
        """After delete the id is as if never stored."""
        image_id = uuid.uuid4()
        image_store.put(image_id, PNG, thumbnail())
        image_store.delete(image_id)
        assert image_store.get(image_id) is None
        assert image_store.get_thumbnail(image_id) is None
        assert not image_store.exists(image_id)

    def test_delete_is_idempotent(self, image_store: ImageStore) -> None:
        """Deleting twice, or deleting what was never stored, is not an error."""
        image_id = uuid.uuid4()
        image_store.delete(image_id)
        image_store.put(image_id, PNG, thumbnail())
        image_store.delete(image_id)
        image_store.delete(image_id)
        assert not image_store.exists(image_id)

    def test_delete_leaves_other_images_alone(self, image_store: ImageStore) -> None:
        """Rolling one write back never touches another image."""
        kept, dropped = uuid.uuid4(), uuid.uuid4()
        image_store.put(kept, PNG, thumbnail())
        image_store.put(dropped, PNG, thumbnail())
        image_store.delete(dropped)
        assert image_store.get(kept) == PNG
        assert image_store.get_thumbnail(kept) == thumbnail()

    def test_a_later_thumbnail_replaces_the_first_even_of_another_type(
        self,
        image_store: ImageStore,
    ) -> None:
        """put_thumbnail swaps the thumbnail, media type included."""
        image_id = uuid.uuid4()
        image_store.put(image_id, PNG, thumbnail("image/webp", b"w"))
        image_store.put_thumbnail(image_id, thumbnail("image/jpeg", b"j"))
        assert image_store.get_thumbnail(image_id) == thumbnail("image/jpeg", b"j")
        assert image_store.get(image_id) == PNG

    def test_the_png_alone_can_be_stored_first_and_its_thumbnail_later(
        self, image_store: ImageStore
    ) -> None:
        """put without a thumbnail stores the PNG only; put_thumbnail adds it afterwards."""
        image_id = uuid.uuid4()
        image_store.put(image_id, PNG, None)
        assert image_store.exists(image_id)
        assert image_store.get(image_id) == PNG
        assert image_store.get_thumbnail(image_id) is None
        image_store.put_thumbnail(image_id, thumbnail("image/webp", b"w"))
        assert image_store.get_thumbnail(image_id) == thumbnail("image/webp", b"w")

    def test_a_thumbnail_for_an_image_that_does_not_exist_is_refused(
        self, image_store: ImageStore
    ) -> None:
        """put_thumbnail without the image is a StorageError and stores nothing."""
        image_id = uuid.uuid4()
        with pytest.raises(StorageError):
            image_store.put_thumbnail(image_id, thumbnail())
        assert image_store.get_thumbnail(image_id) is None

    @EXAMPLES
    @given(
        images=st.lists(
            st.tuples(
                st.uuids(version=4),
                st.binary(max_size=4096),
                st.sampled_from(["image/webp", "image/jpeg", "image/png"]),
                st.binary(max_size=512),
            ),
            max_size=5,
            unique_by=lambda image: image[0],
        )
    )
    def test_any_bytes_round_trip(
        self,
        image_store_factory: AdapterFactory[ImageStore],
        images: list[tuple[uuid.UUID, bytes, str, bytes]],
    ) -> None:
        """Whatever the bytes (even empty), each id returns exactly what was stored under it."""
        with image_store_factory() as store:
            for image_id, png, mime_type, thumb in images:
                store.put(image_id, png, EncodedImage(thumb, mime_type))
            for image_id, png, mime_type, thumb in images:
                assert store.get(image_id) == png
                assert store.get_thumbnail(image_id) == EncodedImage(thumb, mime_type)
