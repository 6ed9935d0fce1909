"""The shipped ImageBackend contract: Gemini (real SDK, fake server), placeholder, fake."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import pytest

from image_core.contracts import (
    BackendFactory,
    FailingImageBackendContract,
    ImageBackendContract,
)
from image_core.errors import BackendRefused, BackendUnavailable
from image_core.ports import ImageBackend, ImageCodec
from image_core.testing import FakeImageBackend
from image_server.adapters.gemini import GeminiImageBackend
from image_server.adapters.pillow_codec import PillowImageCodec
from image_server.adapters.placeholder import PlaceholderImageBackend
from tests.fakes.fake_gemini import FakeGemini

KEY = "AIzaSyFAKE-contract-key-0123456789abcdef"


def opened(backend: ImageBackend) -> BackendFactory:
    """A factory for a backend with nothing to open or close."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[ImageBackend]:
        yield backend

    return factory


class TestFakeImageBackend(FailingImageBackendContract):
    """The scripted double: solid PNGs of the requested size, or the queued error."""

    honours_dimensions: ClassVar[bool] = True

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        return opened(FakeImageBackend())

    @pytest.fixture
    def refusing_backend_factory(self) -> BackendFactory:
        return opened(FakeImageBackend(failures=[BackendRefused("That prompt was refused.")]))

    @pytest.fixture
    def unavailable_backend_factory(self) -> BackendFactory:
        return opened(FakeImageBackend(failures=[BackendUnavailable("Try again later.")]))


class TestPlaceholderImageBackend(ImageBackendContract):
    """The offline backend never refuses and is never down: the base contract only."""

    honours_dimensions: ClassVar[bool] = True

    @pytest.fixture
    def codec(self) -> ImageCodec:
        return PillowImageCodec()

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        return opened(PlaceholderImageBackend())


class TestGeminiImageBackend(FailingImageBackendContract):
    """The real google-genai client pointed (base URL) at the fake Gemini server."""

    honours_dimensions: ClassVar[bool] = True

    @pytest.fixture
    def fake(self) -> Iterator[FakeGemini]:
        with FakeGemini(api_key=KEY) as server:
            yield server

    @pytest.fixture
    def codec(self) -> ImageCodec:
        return PillowImageCodec()

    @pytest.fixture
    def backend_factory(self, fake: FakeGemini) -> BackendFactory:
        return lambda: _gemini(fake)

    @pytest.fixture
    def refusing_backend_factory(self, fake: FakeGemini) -> BackendFactory:
        fake.script("safety_prompt")
        return lambda: _gemini(fake)

    @pytest.fixture
    def unavailable_backend_factory(self, fake: FakeGemini) -> BackendFactory:
        fake.script("server_error", "server_error", "server_error")
        return lambda: _gemini(fake)


def _gemini(fake: FakeGemini) -> GeminiImageBackend:
    return GeminiImageBackend(
        api_key=KEY,
        base_url=fake.base_url,
        timeout_seconds=60.0,
        max_attempts=3,
        initial_backoff_seconds=0.001,
        max_backoff_seconds=0.01,
    )
