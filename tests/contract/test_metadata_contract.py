"""The shipped MetadataRepository contract, run against the in-memory and filesystem adapter."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from image_core.contracts import AdapterFactory, MetadataRepositoryContract, fresh
from image_core.ports import MetadataRepository
from image_core.testing import InMemoryMetadataRepository
from image_server.adapters.fs_metadata import FilesystemMetadataRepository
from tests.contract.conftest import fresh_dir


class TestInMemoryMetadataRepository(MetadataRepositoryContract):
    """The double library users test with."""

    @pytest.fixture
    def metadata_repo_factory(self) -> AdapterFactory[MetadataRepository]:
        return lambda: fresh(InMemoryMetadataRepository())


@contextlib.contextmanager
def _filesystem_repo() -> Iterator[MetadataRepository]:
    with fresh_dir() as root, FilesystemMetadataRepository(root) as repo:
        yield repo


class TestFilesystemMetadataRepository(MetadataRepositoryContract):
    """Sidecars and the SQLite index in a fresh folder, closed afterwards."""

    @pytest.fixture
    def metadata_repo_factory(self) -> AdapterFactory[MetadataRepository]:
        return _filesystem_repo
