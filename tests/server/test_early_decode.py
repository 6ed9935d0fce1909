"""The Pillow codec decodes a PNG in its own thread while the PNG arrives.

What is observable: ``finish`` does not decode again when the early decode succeeded,
the thread always ends (finished, closed or refused), and a busy codec simply decodes
at ``finish`` as before.
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator

import pytest
from PIL import Image

from image_core.contracts.pictures import bomb_png
from image_core.domain import ProcessedImage
from image_core.errors import InvalidImage
from image_server.adapters.encoded_bytes import encoded
from image_server.adapters.pillow_codec import PillowImageCodec
from image_server.adapters.strip_shrink import shrink
from tests.support.photos import photo_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PHOTO_2K = photo_bytes(2048, 2048, seed=6)
STEP = 64 * 1024


HELPERS = ("png-early-rows", "png-early-shrink")
"""The threads a plain PNG's early decode runs beside its own (``png_stream``)."""


def early_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "png-early-decode"]


def helper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in HELPERS]


def all_early_threads_end() -> None:
    deadline = time.monotonic() + 20
    while (early_threads() or helper_threads()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert early_threads() == []
    assert helper_threads() == []


@pytest.fixture
def codec() -> Iterator[PillowImageCodec]:
    yield PillowImageCodec(max_concurrent_decodes=4)  # two early decodes at once
    all_early_threads_end()


class CountingCodec(PillowImageCodec):
    """Counts whole-image decodes (``process``), which the early path avoids."""

    def __init__(self, max_concurrent_decodes: int = 2) -> None:
        super().__init__(max_concurrent_decodes=max_concurrent_decodes)
        self.whole_decodes = 0

    def process(
        self, data: bytes, preview_max_side: int, thumbnail_max_side: int
    ) -> ProcessedImage:
        self.whole_decodes += 1
        return super().process(data, preview_max_side, thumbnail_max_side)


def arrive(processing: object, data: bytes) -> None:
    for start in range(0, len(data), STEP):
        processing.write(data[start : start + STEP])  # type: ignore[attr-defined]


def test_a_png_that_arrived_in_pieces_is_not_decoded_a_second_time() -> None:
    codec = CountingCodec()
    processing = codec.begin(768, 256)
    arrive(processing, PHOTO_2K[: len(PHOTO_2K) // 2])
    assert len(early_threads()) == 1  # decoding while the bytes come
    deadline = time.monotonic() + 10
    while len(helper_threads()) < len(HELPERS) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert sorted(t.name for t in helper_threads()) == sorted(HELPERS)  # on three threads
    arrive(processing, PHOTO_2K[len(PHOTO_2K) // 2 :])
    finished = processing.finish(PHOTO_2K)
    processing.close()
    assert codec.whole_decodes == 0
    reference = PillowImageCodec().process(PHOTO_2K, 768, 256)
    assert finished == reference
    all_early_threads_end()


def test_closing_halfway_ends_the_decoding_thread(codec: PillowImageCodec) -> None:
    processing = codec.begin(768, 256)
    arrive(processing, PHOTO_2K[: len(PHOTO_2K) // 2])
    assert len(early_threads()) == 1
    processing.close()
    all_early_threads_end()
    # The slot it held is free again: two decodes at once still start early.
    first, second = codec.begin(768, 256), codec.begin(768, 256)
    first.write(PHOTO_2K[:STEP])
    second.write(PHOTO_2K[:STEP])
    assert len(early_threads()) == 2
    first.close()
    second.close()


def test_a_busy_codec_decodes_at_finish_instead() -> None:
    codec = CountingCodec()  # two decode slots, so one early decode at a time
    held = codec.begin(768, 256)
    held.write(PHOTO_2K[:STEP])
    second = codec.begin(768, 256)
    arrive(second, PHOTO_2K)
    assert len(early_threads()) == 1  # the second did not start a thread
    held.close()
    assert second.finish(PHOTO_2K).width == 2048
    assert codec.whole_decodes == 1
    all_early_threads_end()


def test_a_bomb_is_refused_from_its_header_and_its_thread_ends(codec: PillowImageCodec) -> None:
    bomb = bomb_png()
    processing = codec.begin(768, 256)
    processing.write(bomb)
    all_early_threads_end()  # refused from the header, not after inflating anything
    with pytest.raises(InvalidImage, match="megapixels"):
        processing.finish(bomb)
    processing.close()


def test_a_corrupt_pixel_stream_is_refused_at_finish(codec: PillowImageCodec) -> None:
    broken = bytearray(PHOTO_2K)
    middle = len(broken) // 2
    broken[middle : middle + 64] = bytes(64)  # image data damaged, checksum now wrong
    processing = codec.begin(768, 256)
    arrive(processing, bytes(broken))
    with pytest.raises(InvalidImage):
        processing.finish(bytes(broken))
    processing.close()


def test_downloads_decoding_early_never_hold_up_other_image_work() -> None:
    """A stalled download holds no slot that thumbnails and whole decodes need."""
    codec = PillowImageCodec(max_concurrent_decodes=1)
    stalled = [codec.begin(768, 256)]
    for processing in stalled:
        processing.write(PHOTO_2K[: len(PHOTO_2K) // 2])
    assert len(early_threads()) == 1
    small = photo_bytes(300, 200, seed=1)
    other_work = threading.Thread(
        target=lambda: (codec.thumbnail(small, 96), codec.process(small, 256, 96))
    )
    other_work.start()
    other_work.join(10)
    finished_while_stalled = not other_work.is_alive()
    for processing in stalled:
        processing.close()
    other_work.join(10)
    assert finished_while_stalled  # it did not wait for the downloads
    all_early_threads_end()


def test_a_draft_then_the_image_decodes_the_image_early() -> None:
    """The backend starts over when a second image follows a draft."""
    codec = CountingCodec()
    draft = photo_bytes(64, 64, seed=9)
    processing = codec.begin(768, 256)
    arrive(processing, draft)
    processing.start_over()
    arrive(processing, PHOTO_2K)
    finished = processing.finish(PHOTO_2K)
    processing.close()
    assert codec.whole_decodes == 0
    assert (finished.width, finished.height) == (2048, 2048)
    all_early_threads_end()


def test_closing_while_bytes_arrive_from_another_thread_leaks_no_slot() -> None:
    """The transport thread may still write when the service closes: no thread is left."""
    codec = PillowImageCodec(max_concurrent_decodes=4)
    for round_ in range(30):
        processing = codec.begin(768, 256)
        pieces = [PHOTO_2K[start : start + STEP] for start in range(0, 40 * STEP, STEP)]
        writer = threading.Thread(target=lambda p=processing, q=pieces: [p.write(x) for x in q])
        writer.start()
        time.sleep(0.0005 * (round_ % 7))
        processing.close()
        writer.join(10)
    all_early_threads_end()
    taken = [codec.early_slot_free() for _ in range(2)]
    assert taken == [True, True]  # every early slot came back
    for _ in taken:
        codec.release_early_slot()


def png_with(extra: bytes, *, after_the_data: bool = False, then: bytes = b"") -> bytes:
    """A small RGB PNG with ``extra`` (whole chunks) before IDAT, or after it; ``then``
    comes after ``extra`` (more chunks, another IDAT)."""
    width, height = 64, 48
    rows = b"".join(b"\0" + bytes([y, 100, 200]) * width for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    before, after = (b"", extra) if after_the_data else (extra, b"")
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + before
        + chunk(b"IDAT", zlib.compress(rows))
        + after
        + then
        + chunk(b"IEND", b"")
    )


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


REFUSED_BEFORE_THE_DATA = {
    "a chunk type that is not four letters": chunk(b"\x00\x01\x02\x03", b"abc"),
    "a colour profile in an unknown compression": chunk(
        b"iCCP", b"profile\x00\x01" + zlib.compress(b"x" * 100)
    ),
    "an animation frame with no width": chunk(b"acTL", struct.pack(">II", 1, 0))
    + chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 0, 0, 0, 0, 1, 1, 0, 0)),
    "a text chunk that inflates past Pillow's limit": chunk(
        b"zTXt", b"k\x00\x00" + zlib.compress(b"a" * (2 << 20))
    ),
}


def outcome(call: Callable[[], ProcessedImage]) -> str:
    """What became of a PNG: the PNG stored with its preview and thumbnail, or the
    refusal's words."""
    try:
        made = call()
    except InvalidImage as exc:
        return f"refused: {exc.message}"
    parts = (made.png, made.preview.data, made.thumbnail.data)
    return "stored " + " ".join(hashlib.sha256(part).hexdigest() for part in parts)


def verdicts(codec: PillowImageCodec, data: bytes) -> tuple[str, str]:
    """The outcome of a whole decode, then of a decode while the PNG arrived."""
    whole = outcome(lambda: codec.process(data, 768, 256))
    processing = codec.begin(768, 256)
    try:
        arrive(processing, data)
        early = outcome(lambda: processing.finish(data))
    finally:
        processing.close()
    return whole, early


@pytest.mark.parametrize("where", ["before", "after", "between"])
@pytest.mark.parametrize("case", sorted(REFUSED_BEFORE_THE_DATA))
def test_a_png_arriving_in_pieces_meets_the_verdict_a_whole_decode_gives(
    codec: PillowImageCodec, case: str, where: str
) -> None:
    """Before the image data, after it, or between two runs of data chunks."""
    extra = REFUSED_BEFORE_THE_DATA[case]
    data = png_with(
        extra,
        after_the_data=where != "before",
        then=chunk(b"IDAT", b"") if where == "between" else b"",
    )
    whole, early = verdicts(codec, data)
    assert early == whole
    if where == "before":  # Pillow reads every chunk before the data
        assert whole.startswith("refused")


def test_pillow_stops_reading_at_a_chunk_it_cannot_name_and_so_does_the_check(
    codec: PillowImageCodec,
) -> None:
    """A damaged chunk past one Pillow cannot read is never read by either decode."""
    data = png_with(
        chunk(b"ab-d", b"x"),
        after_the_data=True,
        then=chunk(b"IDAT", b"") + chunk(b"gAMA", b""),
    )
    whole, early = verdicts(codec, data)
    assert whole.startswith("stored")
    assert early == whole


def test_transparency_given_after_the_data_shows_as_a_whole_decode_shows_it(
    codec: PillowImageCodec,
) -> None:
    key = chunk(b"tRNS", struct.pack(">HHH", 0, 100, 200))  # the first row's colour
    whole, early = verdicts(codec, png_with(key, after_the_data=True))
    assert whole.startswith("stored")
    assert early == whole


def test_an_image_whose_preview_is_its_thumbnail_gets_each_encoding(
    codec: PillowImageCodec,
) -> None:
    """At 512 px the preview (384) is the thumbnail's size too: one image, two encodes,
    each with its own format and quality however the two threads interleave."""
    data = photo_bytes(512, 512, seed=1)
    with Image.open(io.BytesIO(data)) as opened:
        preview = shrink(opened.convert("RGB"), 384)
    jpeg = encoded(preview.copy(), "JPEG", quality=70, optimize=True)
    webp = encoded(preview.copy(), "WEBP", quality=75, method=0)
    for attempt in range(12):
        processing = codec.begin(768, 384)
        try:
            if attempt % 2:
                arrive(processing, data)
            result = processing.finish(data)
        finally:
            processing.close()
        assert (result.preview.data == jpeg, result.thumbnail.data == webp) == (True, True)


def test_a_4k_photo_with_text_after_its_data_is_stored_as_a_whole_decode_stores_it(
    codec: PillowImageCodec,
) -> None:
    """At the real size (about 20 MB, hundreds of data chunks) the chunk check finds the
    end of the data and reads what follows, as Pillow does."""
    photo = photo_bytes(4096, 4096, seed=2)
    end = photo.rindex(b"IEND") - 4
    note = chunk(b"iTXt", b"Comment\x00\x00\x00\x00\x00" + b"made by a model")
    data = photo[:end] + note + photo[end:]
    whole, early = verdicts(codec, data)
    assert whole.startswith("stored")
    assert early == whole
