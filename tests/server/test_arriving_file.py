"""A file read while it arrives, and a PNG read with its image data joined (arriving_file.py)."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib

import pytest
from PIL import Image, PngImagePlugin

from image_server.adapters.arriving_file import ArrivingFile, JoinedImageData
from tests.support.photos import photo_bytes


def test_a_read_waits_for_the_bytes_it_asks_for() -> None:
    file = ArrivingFile()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(file.read(6)))
    reader.start()
    file.append(b"abc")
    time.sleep(0.05)
    assert got == []  # three of six bytes: still waiting
    file.append(b"defgh")
    reader.join(5)
    assert got == [b"abcdef"]
    assert file.tell() == 6


def test_an_ended_file_gives_what_is_left_then_nothing() -> None:
    file = ArrivingFile()
    file.append(b"abc")
    file.end()
    file.append(b"ignored")
    assert file.read(10) == b"abc"
    assert file.read(10) == b""
    assert file.seek(1) == 1
    assert file.read() == b"bc"


def test_reads_across_pieces_and_seeks_see_the_bytes_in_order() -> None:
    file = ArrivingFile()
    for piece in (b"0123", b"4", b"56789"):
        file.append(piece)
    assert file.read(3) == b"012"
    assert file.read(4) == b"3456"
    file.seek(-2, io.SEEK_CUR)
    assert file.read(5) == b"56789"
    file.end()
    assert file.seek(0, io.SEEK_END) == 10
    buffer = bytearray(4)
    file.seek(2)
    assert file.readinto(buffer) == 4
    assert bytes(buffer) == b"2345"


def test_holds_compares_everything_that_arrived() -> None:
    file = ArrivingFile()
    file.append(b"abc")
    file.append(b"def")
    assert file.holds(b"abcdef")
    assert not file.holds(b"abcdeX")
    assert not file.holds(b"abcde")
    file.drop()
    assert not file.holds(b"abcdef")


def test_dropping_the_file_ends_a_waiting_read() -> None:
    file = ArrivingFile()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(file.read(100)))
    reader.start()
    file.append(b"x")
    file.drop()
    reader.join(5)
    assert not reader.is_alive()
    assert got in ([b""], [b"x"])


def rechunked(png: bytes, size: int) -> bytes:
    """The same PNG with its image data split into IDAT chunks of ``size`` bytes."""
    out, pos, data = [png[:8]], 8, []
    tail: list[bytes] = []
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind = png[pos + 4 : pos + 8]
        chunk = png[pos : pos + 12 + length]
        if kind == b"IDAT":
            data.append(png[pos + 8 : pos + 8 + length])
        elif data:
            tail.append(chunk)
        else:
            out.append(chunk)
        pos += 12 + length
    joined = b"".join(data)
    for start in range(0, len(joined), size):
        body = joined[start : start + size]
        crc = zlib.crc32(b"IDAT" + body)
        out.append(struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", crc))
    return b"".join(out + tail)


@pytest.mark.parametrize("size", [1, 100, 8192])
def test_a_png_with_small_data_chunks_decodes_the_same_through_the_joined_view(
    size: int,
) -> None:
    png = rechunked(photo_bytes(120, 80, seed=2), size)
    assert png.count(b"IDAT") > 1
    file = ArrivingFile()
    file.append(png)
    file.end()
    image = PngImagePlugin.PngImageFile(JoinedImageData(file))  # type: ignore[arg-type]
    image.decodermaxblock = 1 << 20
    image.load()
    assert image.tobytes() == Image.open(io.BytesIO(png)).tobytes()


def test_the_joined_view_ends_where_the_image_data_does() -> None:
    png = rechunked(photo_bytes(40, 30, seed=1), 64)
    file = ArrivingFile()
    file.append(png)
    file.end()
    view = JoinedImageData(file)
    everything = view.read()
    assert everything.startswith(png[:8])
    assert b"IEND" not in everything
    assert view.read(10) == b""
    with pytest.raises(OSError, match="forward only"):
        view.seek(0)
