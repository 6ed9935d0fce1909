"""Adapter fixtures for the port contracts: every test runs on every adapter of its port.

Function-scoped fixtures (``image_store``, ``metadata_repo``, ``pref_store``) give one
fresh adapter per test; session-scoped factories give hypothesis a fresh one per
example (a new temporary folder for the filesystem adapters).
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Generic, TypeVar

import attrs
import pytest
from hypothesis import strategies as st

from image_core.domain import (
    AspectRatio,
    CostEstimate,
    EncodedImage,
    Generation,
    ImageSize,
    TokenUsage,
)
from image_core.ports import ImageStore, MetadataRepository, PrefStore
from image_core.testing import (
    InMemoryImageStore,
    InMemoryMetadataRepository,
    InMemoryPrefStore,
    make_png,
)
from image_server.adapters.fs_images import FilesystemImageStore
from image_server.adapters.fs_metadata import FilesystemMetadataRepository
from image_server.adapters.fs_prefs import FilesystemPrefStore

T = TypeVar("T")
ADAPTERS = ["memory", "filesystem"]
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@attrs.frozen
class AdapterFactory(Generic[T]):
    """Opens a fresh adapter in a context; ``kind`` names the technology for test ids."""

    kind: str
    open: Callable[[], AbstractContextManager[T]]


@contextlib.contextmanager
def _fresh_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="image-mcp-contract-") as folder:
        yield Path(folder)


@contextlib.contextmanager
def open_image_store(kind: str) -> Iterator[ImageStore]:
    """A fresh image store of ``kind``."""
    if kind == "memory":
        yield InMemoryImageStore()
        return
    with _fresh_dir() as root:
        yield FilesystemImageStore(root)


@contextlib.contextmanager
def open_metadata_repo(kind: str) -> Iterator[MetadataRepository]:
    """A fresh metadata repository of ``kind``, closed afterwards."""
    if kind == "memory":
        yield InMemoryMetadataRepository()
        return
    with _fresh_dir() as root, FilesystemMetadataRepository(root) as repo:
        yield repo


@contextlib.contextmanager
def open_pref_store(kind: str) -> Iterator[PrefStore]:
    """A fresh pref store of ``kind``."""
    if kind == "memory":
        yield InMemoryPrefStore()
        return
    with _fresh_dir() as root:
        yield FilesystemPrefStore(root)


@pytest.fixture(params=ADAPTERS)
def image_store(request: pytest.FixtureRequest) -> Iterator[ImageStore]:
    """Each image store adapter in turn."""
    with open_image_store(request.param) as store:
        yield store


@pytest.fixture(params=ADAPTERS)
def metadata_repo(request: pytest.FixtureRequest) -> Iterator[MetadataRepository]:
    """Each metadata repository adapter in turn."""
    with open_metadata_repo(request.param) as repo:
        yield repo


@pytest.fixture(params=ADAPTERS)
def pref_store(request: pytest.FixtureRequest) -> Iterator[PrefStore]:
    """Each pref store adapter in turn."""
    with open_pref_store(request.param) as store:
        yield store


@pytest.fixture(params=ADAPTERS, scope="session")
def image_store_factory(request: pytest.FixtureRequest) -> AdapterFactory[ImageStore]:
    """Opens fresh image stores of one kind, for hypothesis examples."""
    kind: str = request.param
    return AdapterFactory(kind, lambda: open_image_store(kind))


@pytest.fixture(params=ADAPTERS, scope="session")
def metadata_factory(request: pytest.FixtureRequest) -> AdapterFactory[MetadataRepository]:
    """Opens fresh metadata repositories of one kind, for hypothesis examples."""
    kind: str = request.param
    return AdapterFactory(kind, lambda: open_metadata_repo(kind))


@pytest.fixture(params=ADAPTERS, scope="session")
def pref_factory(request: pytest.FixtureRequest) -> AdapterFactory[PrefStore]:
    """Opens fresh pref stores of one kind, for hypothesis examples."""
    kind: str = request.param
    return AdapterFactory(kind, lambda: open_pref_store(kind))


def make_generation(
    email: str = "ann@example.com",
    *,
    at: datetime = NOON,
    cost: str | Decimal = "0.067",
    generation_id: uuid.UUID | None = None,
    prompt: str = "a fox in the snow",
) -> Generation:
    """A complete, valid generation with the parts a test cares about set."""
    return Generation(
        id=generation_id or uuid.uuid4(),
        email=email,
        prompt=prompt,
        model_alias="flash",
        model_id="gemini-3.1-flash-image",
        image_size=ImageSize.S1K,
        aspect_ratio=AspectRatio.R16_9,
        created_at=at,
        cost=CostEstimate(Decimal(cost)),
        reference_ids=(uuid.uuid4(),),
        token_usage=TokenUsage(1290, 1120, None, 2410),
        backend="gemini",
        width=1344,
        height=768,
    )


def thumbnail(mime_type: str = "image/webp", fill: bytes = b"t") -> EncodedImage:
    """Stand-in thumbnail bytes: stores keep bytes and media type, they never decode."""
    return EncodedImage(fill * 64, mime_type)


PNG = make_png(3, 2)

# Emails as the service hands them to the ports: normalised, plus two that cannot be
# normalised (kept as given, so they differ only in case and must stay apart).
EMAILS = st.sampled_from(
    ["ann@example.com", "bob@example.org", "zoë@example.com", "Zoë@example.com"]
)
# A few shared instants force ties, which must be broken by id.
TIMES = st.sampled_from([NOON, datetime(2026, 11, 24, 23, 59, 59, 999999, tzinfo=UTC)]) | (
    st.datetimes(
        min_value=datetime(2025, 12, 30),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2026, 1, 3),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
)
# List prices, arbitrary milli-dollars and amounts finer than a micro-dollar.
COSTS = st.sampled_from(["0.067", "0.134", "0.24", "0", "0.0000001", "1.23456789"]).map(
    Decimal
) | st.decimals(min_value=0, max_value=5, places=3, allow_nan=False, allow_infinity=False)
GENERATIONS = st.builds(
    make_generation, EMAILS, at=TIMES, cost=COSTS, generation_id=st.uuids(version=4)
)
GENERATION_LISTS = st.lists(GENERATIONS, max_size=12, unique_by=lambda g: g.id)
