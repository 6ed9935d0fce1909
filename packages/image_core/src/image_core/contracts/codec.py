"""The ImageCodec contract: untrusted bytes in, a clear ``InvalidImage`` or a good PNG out.

Every input a codec meets comes from a user or a remote API, so whatever arrives (empty,
truncated, oversized, not an image, a decompression bomb) must end in ``InvalidImage``
with a message, promptly: never another exception, never a hang. A photo-like PNG or
JPEG becomes a PNG of the same size, with a preview and a thumbnail that fit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from image_core.contracts.pictures import (
    PHOTO_JPEG,
    PHOTO_JPEG_SIZE,
    PNG_SIGNATURE,
    bomb_png,
    image_dimensions,
    photo_png,
)
from image_core.domain import EncodedImage, ProcessedImage
from image_core.errors import InvalidImage
from image_core.ports import ImageCodec

T = TypeVar("T")

PREVIEW_MAX_SIDE = 256
THUMBNAIL_MAX_SIDE = 96
REFERENCE_BUDGET = 7 * 1024 * 1024
"""What one reference may weigh as sent, as the service asks by default."""
SECONDS_ALLOWED = 30.0
"""Per call: generous for a slow machine, short of a hang."""

NOT_IMAGES = {
    "text": b"a lighthouse at dusk",
    "html": b"<!doctype html><html><body><img src=x></body></html>",
    "json": b'{"error": {"code": 500, "message": "internal"}}',
    "noise": bytes(range(256)) * 16,
    "gif": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    "pdf": b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF",
    "png-signature-only": PNG_SIGNATURE,
}


def within_time(call: Callable[[], T]) -> T:
    """Run ``call`` in a worker thread and fail the test if it does not return in time."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed back to the test thread
            failure.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(SECONDS_ALLOWED)
    if worker.is_alive():
        pytest.fail(f"the codec did not answer within {SECONDS_ALLOWED:.0f} s")
    if failure:
        raise failure[0]
    return outcome[0]


def refuses(call: Callable[[], object]) -> InvalidImage:
    """The ``InvalidImage`` that ``call`` raises (promptly), with a message to show."""
    with pytest.raises(InvalidImage) as caught:
        within_time(call)
    assert caught.value.message.strip()
    return caught.value


def fits(image: EncodedImage, max_side: int) -> tuple[int, int]:
    """The dimensions of an encoded image, checked to be within ``max_side``."""
    assert image.mime_type.startswith("image/")
    width, height = image_dimensions(image.data)
    assert 0 < max(width, height) <= max_side
    return width, height


def same_shape(size: tuple[int, int], original: tuple[int, int]) -> bool:
    """Whether ``size`` has the aspect ratio of ``original``, to a pixel's rounding."""
    (width, height), (full_width, full_height) = size, original
    return abs(width * full_height - height * full_width) <= max(full_width, full_height)


class ImageCodecContract:
    """What every codec must do, a double that reads PNG headers only included.

    Subclass as ``Test...`` and provide a ``codec`` fixture (one ``ImageCodec``). A codec
    that really decodes images subclasses ``DecodingImageCodecContract`` instead, which
    adds JPEG input, resizing, truncated bodies, bombs and re-encoded references.
    """

    def process(self, codec: ImageCodec, data: bytes) -> ProcessedImage:
        """``codec.process`` with the suite's preview and thumbnail sides, in time."""
        return within_time(lambda: codec.process(data, PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE))

    def test_empty_input_is_an_invalid_image(self, codec: ImageCodec) -> None:
        """No bytes: each method refuses with InvalidImage."""
        refuses(lambda: codec.process(b"", PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE))
        refuses(lambda: codec.thumbnail(b"", THUMBNAIL_MAX_SIDE))
        refuses(lambda: codec.prepare_reference(b"", REFERENCE_BUDGET))

    @pytest.mark.parametrize("name", sorted(NOT_IMAGES))
    def test_what_is_not_an_image_is_an_invalid_image(self, codec: ImageCodec, name: str) -> None:
        """Text, markup, an error body, noise or another format: InvalidImage, no crash."""
        data = NOT_IMAGES[name]
        refuses(lambda: codec.process(data, PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE))
        refuses(lambda: codec.thumbnail(data, THUMBNAIL_MAX_SIDE))
        refuses(lambda: codec.prepare_reference(data, REFERENCE_BUDGET))

    def test_a_png_cut_inside_its_header_is_an_invalid_image(self, codec: ImageCodec) -> None:
        """Twenty bytes of a PNG are not an image."""
        cut = photo_png()[:20]
        refuses(lambda: codec.process(cut, PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE))
        refuses(lambda: codec.prepare_reference(cut, REFERENCE_BUDGET))

    def test_a_photo_png_is_stored_as_a_png_of_its_size(self, codec: ImageCodec) -> None:
        """The stored image is a PNG with the input's dimensions, which it reports."""
        processed = self.process(codec, photo_png())
        assert processed.png.startswith(PNG_SIGNATURE)
        assert (processed.width, processed.height) == (600, 400)
        assert image_dimensions(processed.png) == (600, 400)

    def test_a_thumbnail_of_a_stored_png_is_an_image(self, codec: ImageCodec) -> None:
        """Whatever its size, a thumbnail is an image with its media type."""
        made = within_time(lambda: codec.thumbnail(photo_png(), THUMBNAIL_MAX_SIDE))
        assert made.mime_type.startswith("image/")
        assert image_dimensions(made.data)

    def test_a_preview_of_a_stored_png_is_an_image_within_its_side(self, codec: ImageCodec) -> None:
        """get_image's preview: an image with its media type, never larger than the PNG."""
        made = within_time(lambda: codec.preview(photo_png(), 200))
        assert made.mime_type.startswith("image/")
        width, height = image_dimensions(made.data)
        assert width <= 600 and height <= 400  # noqa: PT018

    def test_a_reference_within_the_budget_is_sent_unchanged(self, codec: ImageCodec) -> None:
        """A good PNG that fits is sent byte for byte, named by its real media type."""
        png = photo_png()
        sent = within_time(lambda: codec.prepare_reference(png, REFERENCE_BUDGET))
        assert sent == EncodedImage(png, "image/png")

    @pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
    def test_an_image_written_in_pieces_finishes_as_process_makes_it(
        self, codec: ImageCodec, piece: int
    ) -> None:
        """Bytes handed over while they arrive change nothing in the result."""
        png = photo_png()
        processing = codec.begin(PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE)
        try:
            for start in range(0, len(png), piece):
                processing.write(png[start : start + piece])
            finished = within_time(lambda: processing.finish(png))
        finally:
            processing.close()
        assert finished == self.process(codec, png)

    @pytest.mark.parametrize("written", ["other", "half", "nothing", "two images"])
    def test_finish_goes_by_the_whole_image_whatever_was_written(
        self, codec: ImageCodec, written: str
    ) -> None:
        """Another image, a part of it or nothing written first: ``finish`` follows its data."""
        png, other = photo_png(seed=4), photo_png(300, 200, seed=5)
        early = {
            "other": [other],
            "half": [png[: len(png) // 2]],
            "nothing": [],
            "two images": [other, png],
        }[written]
        processing = codec.begin(PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE)
        try:
            for chunk in early:
                processing.write(chunk)
            finished = within_time(lambda: processing.finish(png))
        finally:
            processing.close()
        assert finished == self.process(codec, png)

    def test_a_processing_closed_unfinished_can_be_closed_again(self, codec: ImageCodec) -> None:
        """A download that failed halfway: ``close`` lets go, twice is harmless."""
        png = photo_png()
        processing = codec.begin(PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE)
        processing.write(png[: len(png) // 3])
        processing.close()
        processing.close()
        processing.write(png[len(png) // 3 :])  # late bytes after close are ignored


class DecodingImageCodecContract(ImageCodecContract):
    """What a codec that decodes images must also do (``PillowImageCodec``, say)."""

    @pytest.mark.parametrize("kind", ["png", "jpeg"])
    def test_a_truncated_photo_is_an_invalid_image(self, codec: ImageCodec, kind: str) -> None:
        """Half a file (a dropped connection) is refused, not stored half grey."""
        whole = photo_png() if kind == "png" else PHOTO_JPEG
        cut = whole[: len(whole) // 2]
        refuses(lambda: codec.process(cut, PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE))
        arriving = codec.begin(PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE)
        arriving.write(cut)
        refuses(lambda: arriving.finish(cut))
        arriving.close()
        refuses(lambda: codec.prepare_reference(cut, REFERENCE_BUDGET))

    def test_a_decompression_bomb_is_refused_before_it_is_decoded(self, codec: ImageCodec) -> None:
        """A header claiming 50,000 x 50,000 pixels is refused promptly, in every method."""
        bomb = bomb_png()
        refuses(lambda: codec.process(bomb, PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE))
        arriving = codec.begin(PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE)
        arriving.write(bomb)
        refuses(lambda: arriving.finish(bomb))
        arriving.close()
        refuses(lambda: codec.thumbnail(bomb, THUMBNAIL_MAX_SIDE))
        refuses(lambda: codec.prepare_reference(bomb, REFERENCE_BUDGET))

    def test_a_reference_over_the_budget_is_sent_as_a_smaller_copy(self, codec: ImageCodec) -> None:
        """Too heavy to send as it is: a copy within the budget, same shape, a format
        backends take; the input bytes are not the ones sent."""
        png = photo_png()
        budget = len(png) // 3
        sent = within_time(lambda: codec.prepare_reference(png, budget))
        assert len(sent.data) <= budget
        assert sent.mime_type in {"image/png", "image/jpeg", "image/webp"}
        assert same_shape(image_dimensions(sent.data), (600, 400))

    def test_a_photo_jpeg_is_normalised_to_a_png_of_its_size(self, codec: ImageCodec) -> None:
        """Backends may answer in JPEG; what is stored is always PNG."""
        processed = self.process(codec, PHOTO_JPEG)
        assert processed.png.startswith(PNG_SIGNATURE)
        assert (processed.width, processed.height) == PHOTO_JPEG_SIZE
        assert image_dimensions(processed.png) == PHOTO_JPEG_SIZE

    def test_a_preview_of_a_stored_png_fits_its_side(self, codec: ImageCodec) -> None:
        """A decoding codec shrinks the stored image to the preview side."""
        made = within_time(lambda: codec.preview(photo_png(), 200))
        assert max(image_dimensions(made.data)) <= 200

    @pytest.mark.parametrize("kind", ["png", "jpeg"])
    def test_the_preview_fits_its_side_and_is_smaller_than_the_png(
        self, codec: ImageCodec, kind: str
    ) -> None:
        """The inline preview is bounded in pixels and lighter than the stored image."""
        processed = self.process(codec, photo_png() if kind == "png" else PHOTO_JPEG)
        fits(processed.preview, PREVIEW_MAX_SIDE)
        assert len(processed.preview.data) < len(processed.png)

    @pytest.mark.parametrize("kind", ["png", "jpeg"])
    def test_the_thumbnail_fits_its_side_and_keeps_the_aspect_ratio(
        self, codec: ImageCodec, kind: str
    ) -> None:
        """Gallery thumbnails are small and never stretched."""
        processed = self.process(codec, photo_png() if kind == "png" else PHOTO_JPEG)
        original = (processed.width, processed.height)
        assert same_shape(fits(processed.thumbnail, THUMBNAIL_MAX_SIDE), original)
        assert same_shape(fits(processed.preview, PREVIEW_MAX_SIDE), original)

    def test_a_thumbnail_of_a_stored_png_fits_and_keeps_the_aspect_ratio(
        self, codec: ImageCodec
    ) -> None:
        """Thumbnails made later, for older images, follow the same rules."""
        made = within_time(lambda: codec.thumbnail(photo_png(), THUMBNAIL_MAX_SIDE))
        assert same_shape(fits(made, THUMBNAIL_MAX_SIDE), (600, 400))

    def test_a_jpeg_reference_is_accepted_as_jpeg(self, codec: ImageCodec) -> None:
        """The type comes from the bytes, so a JPEG is sent as a JPEG."""
        sent = within_time(lambda: codec.prepare_reference(PHOTO_JPEG, REFERENCE_BUDGET))
        assert sent == EncodedImage(PHOTO_JPEG, "image/jpeg")
