"""The ImageBackend contract: an image the codec accepts, or one of the core's typed errors.

A backend is what the service trusts least (a remote API), so the suite checks what it
returns (a ``BackendImage`` whose bytes the server's codec accepts, at the requested
dimensions when the backend promises them) and how it fails (``BackendRefused`` when
it will not draw the prompt, ``BackendUnavailable`` when it cannot answer now).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import ClassVar

import pytest

from image_core.contracts.pictures import photo_png
from image_core.domain import (
    AspectRatio,
    BackendImage,
    BackendRequest,
    ImageSize,
    ProcessedImage,
    ReferenceImage,
    TokenUsage,
)
from image_core.errors import BackendError, BackendRefused, BackendUnavailable
from image_core.ports import ImageBackend, ImageCodec
from image_core.testing import PassthroughImageCodec

BackendFactory = Callable[[], AbstractAsyncContextManager[ImageBackend]]
"""Opens one backend in an ``async with`` (entered inside the test's event loop)."""

MODEL_ID = "gemini-3.1-flash-image"
REQUESTS = {
    "1K square": (ImageSize.S1K, AspectRatio.R1_1),
    "1K 16:9": (ImageSize.S1K, AspectRatio.R16_9),
    "1K 9:16": (ImageSize.S1K, AspectRatio.R9_16),
    "2K 3:2": (ImageSize.S2K, AspectRatio.R3_2),
    "1K no ratio": (ImageSize.S1K, None),
}


def request(
    size: ImageSize = ImageSize.S1K,
    ratio: AspectRatio | None = AspectRatio.R1_1,
    references: tuple[ReferenceImage, ...] = (),
) -> BackendRequest:
    """A plain request for the suite's model."""
    return BackendRequest(MODEL_ID, "a lighthouse at dusk, oil painting", size, ratio, references)


def generate(factory: BackendFactory, wanted: BackendRequest) -> BackendImage:
    """Open a backend, generate once and close it, all in one event loop."""

    async def run() -> BackendImage:
        async with factory() as backend:
            return await backend.generate(wanted)

    return asyncio.run(run())


class ImageBackendContract:
    """Subclass as ``Test...`` and provide the ``backend_factory`` fixture.

    Optional fixture: ``codec`` (the codec the backend's images must pass; the PNG-only
    ``PassthroughImageCodec`` by default). Set ``honours_dimensions = True`` when the
    backend promises the exact ``AspectRatio.dimensions`` of each request. A backend that
    can refuse or be down (a remote API) subclasses ``FailingImageBackendContract``.
    """

    honours_dimensions: ClassVar[bool] = False

    @pytest.fixture
    def codec(self) -> ImageCodec:
        """The codec that must accept what the backend returns."""
        return PassthroughImageCodec()

    def test_the_backend_has_a_short_stable_name(self, backend_factory: BackendFactory) -> None:
        """Each generation records it: a short word, the same every time it is read."""

        async def names() -> tuple[str, str]:
            async with backend_factory() as backend:
                return backend.name, backend.name

        first, again = asyncio.run(names())
        assert isinstance(first, str)
        assert first == again
        assert 0 < len(first) <= 32
        assert first.split() == [first]

    @pytest.mark.parametrize("shape", sorted(REQUESTS))
    def test_an_image_comes_back_that_the_codec_accepts(
        self, backend_factory: BackendFactory, codec: ImageCodec, shape: str
    ) -> None:
        """Bytes with an image media type, optional token counts, and the codec takes it."""
        size, ratio = REQUESTS[shape]
        image = generate(backend_factory, request(size, ratio))
        assert isinstance(image, BackendImage)
        assert image.data
        assert image.mime_type.startswith("image/")
        assert image.token_usage is None or isinstance(image.token_usage, TokenUsage)
        processed = codec.process(image.data, 256, 96)
        assert isinstance(processed, ProcessedImage)
        assert processed.width > 0
        assert processed.height > 0

    @pytest.mark.parametrize("shape", sorted(k for k, (_, r) in REQUESTS.items() if r))
    def test_the_image_has_the_requested_shape(
        self, backend_factory: BackendFactory, codec: ImageCodec, shape: str
    ) -> None:
        """The requested ratio (to 2 %), and exactly its dimensions when the backend promises."""
        size, ratio = REQUESTS[shape]
        assert ratio is not None
        processed = codec.process(generate(backend_factory, request(size, ratio)).data, 256, 96)
        if self.honours_dimensions:
            assert (processed.width, processed.height) == ratio.dimensions(size)
        wide, high = ratio.parts
        assert processed.width / processed.height == pytest.approx(wide / high, rel=0.02)

    def test_a_request_with_references_still_gets_an_image(
        self, backend_factory: BackendFactory, codec: ImageCodec
    ) -> None:
        """Iterating on earlier images (photo-like references) is an ordinary request."""
        references = tuple(
            ReferenceImage(uuid.UUID(int=seed, version=4), photo_png(160, 120, seed), "image/png")
            for seed in (1, 2)
        )
        image = generate(backend_factory, request(references=references))
        assert codec.process(image.data, 256, 96).width > 0


class FailingImageBackendContract(ImageBackendContract):
    """For a backend that can refuse a prompt or be down: how it says so.

    Provide ``refusing_backend_factory`` and ``unavailable_backend_factory`` too (a
    backend scripted to refuse the next prompt, and one that cannot answer now).
    """

    def test_a_refusal_is_backend_refused_with_a_message(
        self, refusing_backend_factory: BackendFactory
    ) -> None:
        """Not drawing a prompt is the person's to fix: BackendRefused, with words."""
        with pytest.raises(BackendRefused) as caught:
            generate(refusing_backend_factory, request())
        assert caught.value.message.strip()

    def test_an_outage_is_backend_unavailable_with_a_message(
        self, unavailable_backend_factory: BackendFactory
    ) -> None:
        """A backend that cannot answer says so as BackendUnavailable: try again later."""
        with pytest.raises(BackendUnavailable) as caught:
            generate(unavailable_backend_factory, request())
        assert caught.value.message.strip()
        assert isinstance(caught.value, BackendError)
