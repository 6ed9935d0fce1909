"""A plain PNG decoded on three threads as it arrives: the same pixels Pillow gives.

The stream path (``adapters/png_stream.py``) replaces Pillow's one-pass decode for the
PNGs image models send. What it must show: the image and its shrunk copies are exactly
what Pillow and ``shrink`` make, however the bytes arrive; anything that is not a plain
PNG is left to Pillow; damaged, short or overlong data is refused; its threads end.
"""

from __future__ import annotations

import io
import random
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Sequence

import pytest
from PIL import Image

from image_core.errors import InvalidImage
from image_server.adapters import png_stream
from image_server.adapters.arriving_file import ArrivingFile
from image_server.adapters.strip_shrink import fit_size, shrink
from tests.support.photos import draw_photo, photo_bytes

STREAM_THREADS = ("png-early-rows", "png-early-shrink")


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in STREAM_THREADS]


def no_stream_threads_left() -> None:
    deadline = time.monotonic() + 10
    while stream_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream_threads() == []


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def ihdr(width: int, height: int, depth: int = 8, colour: int = 2, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))


def png_of(head: bytes, data: bytes, pieces: int = 1, after: bytes = b"") -> bytes:
    """A PNG with ``data`` as its compressed image data, split into ``pieces`` chunks."""
    size = max(1, -(-len(data) // pieces))
    idats = b"".join(chunk(b"IDAT", data[i : i + size]) for i in range(0, len(data), size))
    return b"\x89PNG\r\n\x1a\n" + head + idats + after + chunk(b"IEND", b"")


def grey_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    draw_photo(width, height, seed=4).convert("L").save(buffer, "PNG")
    return buffer.getvalue()


def arriving(data: bytes, seed: int = 0) -> ArrivingFile:
    """A file fed by another thread in random pieces, as a download feeds it."""
    file = ArrivingFile()
    pieces = random.Random(seed)

    def feed() -> None:
        at = 0
        while at < len(data):
            step = pieces.randint(1, 90_000)
            file.append(data[at : at + step])
            at += step
        file.end()

    threading.Thread(target=feed, daemon=True).start()
    return file


def sides(size: tuple[int, int]) -> Sequence[tuple[int, int]]:
    return [fit_size(size, 768), fit_size(size, 256)]


def decode(
    data: bytes,
    check: Callable[[tuple[int, int]], None] = lambda size: None,
    seed: int = 0,
) -> png_stream.Decoded | None:
    try:
        return png_stream.decode(arriving(data, seed), check, sides)
    finally:
        no_stream_threads_left()


def pillow(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    "data",
    [
        photo_bytes(1024, 1024, seed=2),
        photo_bytes(1344, 768, seed=3),
        photo_bytes(333, 517, seed=5),
        photo_bytes(1, 1, seed=6),
        grey_png(600, 401),
    ],
    ids=["1K", "16:9", "odd", "one-pixel", "grey"],
)
def test_a_plain_png_decodes_to_what_pillow_decodes(data: bytes) -> None:
    for seed in range(3):  # different ways of arriving, the same result
        decoded = decode(data, seed=seed)
        assert decoded is not None
        expected = pillow(data)
        assert decoded.image.mode == expected.mode
        assert decoded.image.tobytes() == expected.tobytes()
        for shrunk, side in zip(decoded.shrunk, (768, 256), strict=True):
            assert shrunk.tobytes() == shrink(expected, side).tobytes()


def test_image_data_in_many_chunks_and_bytes_past_its_end() -> None:
    """Encoders split the data at any size; zlib may leave bytes after its stream."""
    rows = draw_photo(200, 150, seed=7).convert("RGB").tobytes()
    raw = b"".join(b"\x04" + rows[y * 600 : (y + 1) * 600] for y in range(150))  # Paeth
    packed = zlib.compress(raw, 9)
    data = png_of(ihdr(200, 150), packed + b"trailing", pieces=97)
    decoded = decode(data)
    assert decoded is not None
    assert decoded.image.tobytes() == pillow(data).tobytes()


@pytest.mark.parametrize(("side", "level"), [(1024, 6), (2048, 9)])
def test_a_flat_image_that_compresses_to_almost_nothing_decodes(side: int, level: int) -> None:
    """The inflater may take in all its input yet hold output back: it is drained."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (255, 255, 255)).save(buffer, "PNG", compress_level=level)
    data = buffer.getvalue()
    decoded = decode(data)
    assert decoded is not None
    assert decoded.image.tobytes() == pillow(data).tobytes()


def test_when_no_helper_thread_can_be_had_pillow_decodes_it_and_nothing_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A machine out of threads: the stream path steps aside instead of leaving one waiting."""
    start = threading.Thread.start

    def start_unless_shrinking(thread: threading.Thread) -> None:
        if thread.name == "png-early-shrink":
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_unless_shrinking)
    assert decode(photo_bytes(64, 64, seed=1)) is None


@pytest.mark.parametrize(
    "head",
    [
        ihdr(10, 10, colour=6),  # RGBA
        ihdr(10, 10, colour=3) + chunk(b"PLTE", bytes(30)),  # palette
        ihdr(10, 10, depth=16),  # 16-bit
        ihdr(10, 10, interlace=1),  # Adam7
        ihdr(10, 10) + chunk(b"tRNS", bytes(6)),  # a transparent colour
        chunk(b"tEXt", b"a\x00b") + ihdr(10, 10),  # IHDR not first
    ],
    ids=["rgba", "palette", "16-bit", "interlaced", "transparent-colour", "ihdr-late"],
)
def test_a_png_that_is_not_plain_is_left_to_pillow(head: bytes) -> None:
    data = png_of(head, zlib.compress(bytes(10 * 41)))
    assert decode(data) is None


def test_what_is_not_a_png_is_left_to_pillow() -> None:
    assert decode(b"GIF89a" + bytes(100)) is None


def test_the_size_is_checked_before_anything_is_decoded() -> None:
    def refuse(size: tuple[int, int]) -> None:
        raise InvalidImage(f"{size[0]}x{size[1]} is too large")

    with pytest.raises(InvalidImage, match="1024x1024 is too large"):
        decode(photo_bytes(1024, 1024, seed=2), refuse)


def test_damaged_image_data_is_refused() -> None:
    data = bytearray(photo_bytes(512, 512, seed=8))
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    with pytest.raises(InvalidImage):
        decode(bytes(data))


def test_an_image_cut_short_is_refused() -> None:
    data = photo_bytes(512, 512, seed=8)
    with pytest.raises(InvalidImage, match="ends in the middle"):
        decode(data[: len(data) * 2 // 3])


def test_image_data_for_fewer_rows_than_the_size_is_refused() -> None:
    raw = bytes(31 * 5)  # five rows of a 10x10 RGB image
    with pytest.raises(InvalidImage, match="incomplete"):
        decode(png_of(ihdr(10, 10), zlib.compress(raw)))


def test_data_that_inflates_past_the_size_is_refused_without_inflating_it_all() -> None:
    """A 1 MB stream that would inflate to 1 GB stops at the image's own size."""
    bomb = zlib.compress(bytes(1 << 30), 9)
    data = png_of(ihdr(100, 100), bomb)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidImage, match="more pixel data"):
            decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024


def test_a_file_dropped_halfway_ends_every_thread() -> None:
    """The download is abandoned: the decode stops at its next read and its threads end."""
    data = photo_bytes(1024, 1024, seed=2)
    file = ArrivingFile()
    file.append(data[: len(data) // 2])
    failed: list[BaseException] = []

    def run() -> None:
        try:
            png_stream.decode(file, lambda size: None, sides)
        except InvalidImage as exc:
            failed.append(exc)

    decoding = threading.Thread(target=run)
    decoding.start()
    deadline = time.monotonic() + 10
    while len(stream_threads()) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(stream_threads()) == 2  # rows and shrinking run beside the inflating
    file.drop()
    decoding.join(10)
    assert not decoding.is_alive()
    assert failed
    no_stream_threads_left()
