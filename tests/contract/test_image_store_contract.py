"""The shipped ImageStore contract, run against the in-memory and the filesystem adapter."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from image_core.contracts import AdapterFactory, ImageStoreContract, fresh
from image_core.ports import ImageStore
from image_core.testing import InMemoryImageStore
from image_server.adapters.fs_images import FilesystemImageStore
from tests.contract.conftest import fresh_dir


class TestInMemoryImageStore(ImageStoreContract):
    """The double library users test with."""

    @pytest.fixture
    def image_store_factory(self) -> AdapterFactory[ImageStore]:
        return lambda: fresh(InMemoryImageStore())


@contextlib.contextmanager
def _filesystem_store() -> Iterator[ImageStore]:
    with fresh_dir() as root:
        yield FilesystemImageStore(root)


class TestFilesystemImageStore(ImageStoreContract):
    """PNG files and thumbnails in a fresh folder."""

    @pytest.fixture
    def image_store_factory(self) -> AdapterFactory[ImageStore]:
        return _filesystem_store
