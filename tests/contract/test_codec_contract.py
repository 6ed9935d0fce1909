"""The shipped ImageCodec contract, run against Pillow and the PNG-only test double."""

from __future__ import annotations

import pytest

from image_core.contracts import DecodingImageCodecContract, ImageCodecContract
from image_core.ports import ImageCodec
from image_core.testing import PassthroughImageCodec
from image_server.adapters.pillow_codec import PillowImageCodec


class TestPillowImageCodec(DecodingImageCodecContract):
    """The server's codec, with its default limits."""

    @pytest.fixture
    def codec(self) -> ImageCodec:
        return PillowImageCodec()


class TestPassthroughImageCodec(ImageCodecContract):
    """The double reads PNG headers only: the contract every codec meets, no more."""

    @pytest.fixture
    def codec(self) -> ImageCodec:
        return PassthroughImageCodec()
