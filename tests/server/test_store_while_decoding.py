"""The PNG the backend sent is written while it is decoded: what ends up on disk.

With the real codec and the filesystem store: a clean PNG is stored byte for byte, a
PNG with bytes after ``IEND`` is stored without them, a JPEG is stored converted, and a
PNG that only looks like one (its pixels do not decode) leaves no file behind, while
its cost is still counted.
"""

from __future__ import annotations

import io
import struct
import zlib
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from PIL import Image

from image_core.access import AccessPolicy
from image_core.catalog import ModelCatalog
from image_core.domain import (
    BackendImage,
    BackendRequest,
    CostEstimate,
    GenerationRequest,
    GenerationStatus,
)
from image_core.errors import BackendError
from image_core.service import ImageService
from image_core.testing import (
    FixedClock,
    InMemoryMetadataRepository,
    InMemoryPrefStore,
    SequentialIds,
)
from image_server.adapters.fs_images import FilesystemImageStore
from image_server.adapters.pillow_codec import PillowImageCodec
from tests.support.photos import photo_bytes
from tests.unit.test_service import ALICE, FIRST_ID, START

pytestmark = pytest.mark.anyio


@attrs.define
class AnswersWith:
    """A backend that answers every request with the same bytes."""

    data: bytes
    mime_type: str = "image/png"
    name: str = "fixed"

    async def generate(self, request: BackendRequest) -> BackendImage:
        """The bytes it was given."""
        return BackendImage(self.data, self.mime_type)


def service(root: Path, backend: AnswersWith) -> tuple[ImageService, InMemoryMetadataRepository]:
    metadata = InMemoryMetadataRepository()
    return (
        ImageService(
            catalog=ModelCatalog(),
            policy=AccessPolicy(allowed=frozenset({ALICE.email}), admins=frozenset()),
            images=FilesystemImageStore(root),
            metadata=metadata,
            prefs=InMemoryPrefStore(),
            backend=backend,
            codec=PillowImageCodec(),
            clock=FixedClock(START),
            ids=SequentialIds(),
        ),
        metadata,
    )


def stored(root: Path) -> bytes:
    return (root / f"{FIRST_ID}.png").read_bytes()


async def test_a_4k_photo_png_is_stored_byte_for_byte_with_its_thumbnail(tmp_path: Path) -> None:
    png = photo_bytes(4096, 4096)
    images, metadata = service(tmp_path, AnswersWith(png))
    result = await images.generate(ALICE, GenerationRequest(prompt="a harbour"))
    assert stored(tmp_path) == png
    assert (tmp_path / "thumbs" / f"{FIRST_ID}.webp").stat().st_size > 0
    assert result.preview.mime_type == "image/jpeg"
    record = metadata.get(FIRST_ID)
    assert record is not None
    assert (record.status, record.width, record.height) == (GenerationStatus.DONE, 4096, 4096)


async def test_bytes_after_the_png_end_are_not_stored(tmp_path: Path) -> None:
    png = photo_bytes(640, 480)
    images, _ = service(tmp_path, AnswersWith(png + b"trailing junk" * 100))
    await images.generate(ALICE, GenerationRequest(prompt="a harbour"))
    assert stored(tmp_path) == png


async def test_a_jpeg_answer_is_stored_as_a_png(tmp_path: Path) -> None:
    jpeg = photo_bytes(640, 480, fmt="JPEG")
    images, _ = service(tmp_path, AnswersWith(jpeg, "image/jpeg"))
    await images.generate(ALICE, GenerationRequest(prompt="a harbour"))
    with Image.open(io.BytesIO(stored(tmp_path))) as saved:
        assert (saved.format, saved.size) == ("PNG", (640, 480))


def png_whose_pixels_do_not_decode() -> bytes:
    """Valid signature, header and checksums; the image data is not a zlib stream."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"not zlib at all" * 50)
        + chunk(b"IEND", b"")
    )


async def test_a_png_that_does_not_decode_leaves_no_file_but_its_cost(tmp_path: Path) -> None:
    images, metadata = service(tmp_path, AnswersWith(png_whose_pixels_do_not_decode()))
    with pytest.raises(BackendError, match="unusable image"):
        await images.generate(ALICE, GenerationRequest(prompt="a harbour"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["thumbs"]  # noqa: ASYNC240
    record = metadata.get(FIRST_ID)
    assert record is not None
    assert record.status is GenerationStatus.FAILED
    assert metadata.usage().total_cost == CostEstimate(Decimal("0.067"))
