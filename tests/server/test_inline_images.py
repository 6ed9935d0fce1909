"""Images lifted out of a Gemini answer while it arrives (adapters/inline_images.py).

Every answer is fed in pieces of many sizes, so a key, an escape or a base64 group cut
at any byte is covered; what the SDK then parses must be the same answer with a marker
where each PNG was, and the sink must receive exactly the PNG.
"""

from __future__ import annotations

import base64
import binascii
import ctypes.util
import json
import random
from collections.abc import Iterator

import pytest

from image_server.adapters import inline_images
from image_server.adapters.inline_images import (
    InlineImageLifter,
    UnreadableAnswer,
    decode_base64,
    lifted_index,
    marker,
)
from tests.support.photos import photo_bytes

PNG = photo_bytes(96, 64, seed=3)
JPEG = photo_bytes(96, 64, seed=3, fmt="JPEG")


class Kept:
    """A sink per lifted image."""

    def __init__(self) -> None:
        self.images: list[bytearray] = []

    def open(self, index: int) -> Kept._One:
        assert index == len(self.images)
        self.images.append(bytearray())
        return Kept._One(self.images[-1])

    class _One:
        def __init__(self, into: bytearray) -> None:
            self._into = into

        def write(self, chunk: bytes) -> None:
            assert chunk, "a sink is never handed an empty piece"
            self._into += chunk


def answer(*parts: dict[str, object], indent: int | None = 2) -> bytes:
    body = {
        "candidates": [{"content": {"parts": list(parts), "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1120},
    }
    return json.dumps(body, indent=indent).encode()


def image_part(data: bytes, mime: str = "image/png", encode: bool = True) -> dict[str, object]:
    text = base64.b64encode(data).decode() if encode else data.decode()
    return {"inlineData": {"mimeType": mime, "data": text}, "thoughtSignature": "c2ln"}


def pieces(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def lift(body: bytes, size: int) -> tuple[dict[str, object], Kept]:
    kept = Kept()
    lifter = InlineImageLifter(kept.open)
    text = b"".join(lifter.feed(piece) for piece in pieces(body, size)) + lifter.close()
    return json.loads(text), kept


def datas(parsed: dict[str, object]) -> list[bytes]:
    """The bytes the SDK would see in each part's inlineData, in order."""
    parts = parsed["candidates"][0]["content"]["parts"]  # type: ignore[index]
    return [base64.b64decode(part["inlineData"]["data"]) for part in parts if "inlineData" in part]


SIZES = (1, 2, 3, 5, 7, 11, 64, 1000, 1 << 20)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("indent", [None, 2])
def test_a_png_is_lifted_whole_in_pieces_of_any_size(size: int, indent: int | None) -> None:
    body = answer({"text": "Here it is."}, image_part(PNG), indent=indent)
    parsed, kept = lift(body, size)
    assert [bytes(image) for image in kept.images] == [PNG]
    assert datas(parsed) == [marker(0)]
    assert parsed["usageMetadata"] == {"promptTokenCount": 9, "candidatesTokenCount": 1120}
    text = parsed["candidates"][0]["content"]["parts"][0]  # type: ignore[index]
    assert text == {"text": "Here it is."}


@pytest.mark.parametrize("size", SIZES)
def test_googles_escaped_padding_and_slashes_are_read(size: int) -> None:
    """Google's JSON may write '=' as \\u003d and '/' as \\/; both are still base64."""
    # Lengths 1 and 2 mod 3 give two and one padding characters.
    for png in (PNG + b"\0", PNG + b"\0\0", PNG):
        text = base64.b64encode(png).decode()
        assert "/" in text
        escaped = text.replace("=", "\\u003d").replace("/", "\\/")
        raw = answer(image_part(b"X", encode=False)).replace(b'"X"', f'"{escaped}"'.encode())
        parsed, kept = lift(raw, size)
        assert [bytes(image) for image in kept.images] == [png]
        assert datas(parsed) == [marker(0)]


@pytest.mark.parametrize("size", [3, 7, 4096])
def test_the_url_safe_alphabet_and_missing_padding_are_read(size: int) -> None:
    png = PNG + b"\xfb\xff"  # ends in characters that differ between the alphabets
    text = base64.urlsafe_b64encode(png).rstrip(b"=")
    assert b"-" in text or b"_" in text
    parsed, kept = lift(answer(image_part(text, encode=False)), size)
    assert [bytes(image) for image in kept.images] == [png]
    assert datas(parsed) == [marker(0)]


@pytest.mark.parametrize("size", [5, 4096])
def test_what_is_not_a_png_stays_in_the_answer(size: int) -> None:
    """A JPEG, a thought signature and a PNG's text quoted inside a string stay put."""
    quoted = '"data": "' + base64.b64encode(PNG).decode()[:40] + '"'
    body = answer({"text": quoted}, image_part(JPEG, "image/jpeg"), {"text": "end"})
    parsed, kept = lift(body, size)
    assert kept.images == []
    assert parsed == json.loads(body)


@pytest.mark.parametrize("size", [9, 65536])
def test_each_png_is_lifted_in_order(size: int) -> None:
    other = photo_bytes(40, 40, seed=8)
    body = answer(image_part(other), {"text": "and"}, image_part(JPEG), image_part(PNG))
    parsed, kept = lift(body, size)
    assert [bytes(image) for image in kept.images] == [other, PNG]
    assert datas(parsed) == [marker(0), JPEG, marker(1)]
    assert [lifted_index(data) for data in datas(parsed)] == [0, None, 1]


def test_an_answer_cut_inside_an_image_is_unreadable() -> None:
    body = answer(image_part(PNG))
    cut = body[: body.index(b"iVBOR") + 500]
    lifter = InlineImageLifter(Kept().open)
    lifter.feed(cut)
    with pytest.raises(UnreadableAnswer):
        lifter.close()


@pytest.mark.parametrize(
    "broken",
    ["iVBORw0KGgo!!!!AAAA", "iVBORw0KGgo\\u00e9AAA", "iVBORw0KGgo\\bAAA", "iVBORw0KGgoAA"],
)
def test_an_image_that_is_not_base64_is_unreadable(broken: str) -> None:
    body = answer(image_part(broken.encode(), encode=False))
    lifter = InlineImageLifter(Kept().open)

    def read_all() -> bytes:
        return lifter.feed(body) + lifter.close()

    with pytest.raises(UnreadableAnswer):
        read_all()


def test_a_real_image_is_never_taken_for_a_marker() -> None:
    assert lifted_index(PNG) is None
    assert lifted_index(marker(3)) == 3
    assert lifted_index(marker(3) + b"0" * 10) is None


@pytest.mark.parametrize("use_openssl", [True, False])
def test_base64_decoding_matches_the_standard_library(
    use_openssl: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline_images._openssl_decoder.cache_clear()
    if not use_openssl:
        monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    try:
        assert (inline_images._openssl_decoder() is not None) is (
            use_openssl and ctypes.util.find_library("crypto") is not None
        )
        shuffle = random.Random(5)
        for length in [*range(70), 4095, 4096, 65537]:
            data = shuffle.randbytes(length)
            assert decode_base64(base64.b64encode(data)) == data
        with pytest.raises(binascii.Error):
            decode_base64(b"ab!d")
    finally:
        inline_images._openssl_decoder.cache_clear()
