"""The shipped PrefStore contract, run against the in-memory and the filesystem adapter."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from image_core.contracts import AdapterFactory, PrefStoreContract, fresh
from image_core.ports import PrefStore
from image_core.testing import InMemoryPrefStore
from image_server.adapters.fs_prefs import FilesystemPrefStore
from tests.contract.conftest import fresh_dir


class TestInMemoryPrefStore(PrefStoreContract):
    """The double library users test with."""

    @pytest.fixture
    def pref_store_factory(self) -> AdapterFactory[PrefStore]:
        return lambda: fresh(InMemoryPrefStore())


@contextlib.contextmanager
def _filesystem_prefs() -> Iterator[PrefStore]:
    with fresh_dir() as root:
        yield FilesystemPrefStore(root)


class TestFilesystemPrefStore(PrefStoreContract):
    """prefs.json in a fresh folder."""

    @pytest.fixture
    def pref_store_factory(self) -> AdapterFactory[PrefStore]:
        return _filesystem_prefs
