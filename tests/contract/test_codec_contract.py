"""The shipped ImageCodec contract, run against Pillow and the PNG-only test double."""

from __future__ import annotations

from typing import ClassVar

import pytest

from image_core.contracts import ImageCodecContract
from image_core.ports import ImageCodec
from image_core.testing import PassthroughImageCodec
from image_server.adapters.pillow_codec import PillowImageCodec


class TestPillowImageCodec(ImageCodecContract):
    """The server's codec, with its default limits."""

    @pytest.fixture
    def codec(self) -> ImageCodec:
        return PillowImageCodec()


class TestPassthroughImageCodec(ImageCodecContract):
    """The double reads PNG headers only, so the decoding tests are skipped for it."""

    decodes: ClassVar[bool] = False

    @pytest.fixture
    def codec(self) -> ImageCodec:
        return PassthroughImageCodec()
