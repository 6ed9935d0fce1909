"""Lifts the PNG images out of a Gemini JSON answer while the answer arrives.

Gemini sends each image as base64 inside the JSON (``"inlineData": {"data": "iVBOR..."}``):
2 MB of text at 1K, 29 MB at 4K. Read whole, nothing can start until the last byte is
in, and the SDK then parses a 29 MB string and decodes it again. Here every PNG value is
base64-decoded piece by piece as it arrives and handed to an ``ImageSink`` (the codec
starts decoding during the download); the JSON keeps a short marker in its place, which
the SDK parses as usual and the adapter swaps back for the image.

Only values that begin like a PNG are lifted; anything else (JPEG, a thought signature,
an odd layout) stays in the JSON untouched, so the worst case is the old, slower path,
never a lost image. A lifted value that is not valid base64 fails the answer as
unreadable, as the SDK would have.
"""

from __future__ import annotations

import binascii
import ctypes
import ctypes.util
import functools
import re
from collections.abc import Callable
from typing import Any, Final, cast

from image_core.ports import ImageSink

MARKER_PREFIX: Final = b"image-mcp lifted image "
"""What the SDK finds as the image's bytes; ``marker(n)`` names the n-th lifted image."""

_VALUE_START: Final = re.compile(rb'(?<![\\\w])"data"[ \t\r\n]{0,16}:[ \t\r\n]{0,16}"')
# Longest text a split key can leave at a chunk's end: the key, both gaps, the quote.
_KEEP_TAIL: Final = 6 + 16 + 1 + 16 + 1
_PNG_BASE64: Final = b"iVBORw0KGgo"  # the PNG signature, base64-encoded
_ESCAPE: Final = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|(.))", re.DOTALL)
_SIMPLE_ESCAPES: Final = {b"/": b"/", b"n": b"", b"r": b"", b"t": b""}
_URL_SAFE: Final = bytes.maketrans(b"-_", b"+/")
_STEP: Final = 1 << 16  # base64 characters decoded at a time (a multiple of 4)


class UnreadableAnswer(ValueError):
    """The answer broke off inside an image, or an image was not valid base64."""


def marker(index: int) -> bytes:
    """The bytes that stand for the ``index``-th lifted image in the parsed answer."""
    return MARKER_PREFIX + str(index).encode()


def lifted_index(data: bytes) -> int | None:
    """Which lifted image ``data`` stands for, or ``None`` when it is a real image."""
    if not data.startswith(MARKER_PREFIX) or len(data) > len(MARKER_PREFIX) + 6:
        return None
    digits = data[len(MARKER_PREFIX) :]
    return int(digits) if digits.isdigit() else None


class _Base64Stream:
    """Base64 text in, bytes out to ``sink``, in pieces of any length."""

    def __init__(self, sink: ImageSink) -> None:
        self._sink = sink
        self._carry = b""  # fewer than 4 characters, or a cut escape
        self._url_safe = False

    def text(self, piece: bytes) -> None:
        piece, self._carry = self._carry + piece, b""
        if b"\\" in piece:
            piece = self._unescape(piece)
        usable = len(piece) - len(piece) % 4
        if usable < len(piece):
            self._carry = piece[usable:] + self._carry
        for start in range(0, usable, _STEP):
            self._decode(piece[start : min(usable, start + _STEP)])

    def end(self) -> None:
        if b"\\" in self._carry:
            raise UnreadableAnswer("an image ends inside an escape")
        rest = self._carry.rstrip(b"=")
        self._carry = b""
        if len(rest) % 4 == 1:
            raise UnreadableAnswer("an image's base64 has a stray character at its end")
        if rest:
            self._decode(rest + b"=" * (-len(rest) % 4))

    def _unescape(self, piece: bytes) -> bytes:
        """JSON escapes inside base64 (``\\/``, ``\\u003d``, line breaks) to plain text."""
        cut = piece.rfind(b"\\")
        cut_short = cut == len(piece) - 1 or (
            piece[cut + 1 : cut + 2] == b"u" and len(piece) - cut < 6
        )
        if cut >= 0 and cut_short:
            self._carry = piece[cut:]  # the escape continues in the next piece
            piece = piece[:cut]

        def plain(match: re.Match[bytes]) -> bytes:
            if match[1] is not None:
                char = chr(int(match[1], 16))
                if not char.isascii():
                    raise UnreadableAnswer("an image's base64 holds a non-ASCII character")
                return char.encode()
            found = _SIMPLE_ESCAPES.get(match[2])
            if found is None:
                raise UnreadableAnswer("an image's base64 holds an unexpected escape")
            return found

        return _ESCAPE.sub(plain, piece)

    def _decode(self, text: bytes) -> None:
        if self._url_safe:
            text = text.translate(_URL_SAFE)
        try:
            data = decode_base64(text)
        except binascii.Error:
            if self._url_safe:
                raise UnreadableAnswer("an image is not valid base64") from None
            self._url_safe = True  # Google also accepts (and may send) the URL-safe alphabet
            self._decode(text)
            return
        self._sink.write(data)


def decode_base64(text: bytes) -> bytes:
    """Base64 (whole 4-character groups) to bytes; ``binascii.Error`` if it is not base64.

    OpenSSL's decoder, when the process has it, runs about five times faster than
    ``binascii`` and lets other threads run meanwhile (ctypes releases the GIL), so the
    download no longer holds up the thread decoding the PNG. Its checks are looser
    (a ``=`` inside is let through); what it lets through still fails the image's
    checksums later.
    """
    block = _openssl_decoder()
    if block is None or not text:
        return binascii.a2b_base64(text, strict_mode=True)
    out = ctypes.create_string_buffer(len(text) // 4 * 3)
    written = block(out, text, len(text))
    if written < 0:
        raise binascii.Error("not base64")
    padding = len(text) - len(text.rstrip(b"="))
    return out.raw[: written - padding]


@functools.cache
def _openssl_decoder() -> Callable[[Any, bytes, int], int] | None:
    """``EVP_DecodeBlock`` from the libcrypto Python's own ssl module uses, if found."""
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).EVP_DecodeBlock
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    function.restype = ctypes.c_int
    return cast("Callable[[Any, bytes, int], int]", function)


class InlineImageLifter:
    """Feed it an answer's bytes in order; it returns the JSON to keep, images lifted.

    ``open_image`` is called once per lifted image, in order, and returns where that
    image's bytes go.
    """

    def __init__(self, open_image: Callable[[int], ImageSink]) -> None:
        self._open_image = open_image
        self._held = b""  # answer text not yet returned: a possible key cut in two
        self._inside: _Base64Stream | None = None
        self._count = 0

    @property
    def lifted(self) -> int:
        """How many images were lifted so far."""
        return self._count

    def feed(self, chunk: bytes) -> bytes:
        """The part of the answer that can be passed on now."""
        kept: list[bytes] = []
        text = self._held + chunk
        self._held = b""
        while text:
            if self._inside is not None:
                text = self._continue_value(text, kept)
                continue
            found = _VALUE_START.search(text)
            if found is None:
                cut = max(0, len(text) - _KEEP_TAIL)
                kept.append(text[:cut])
                self._held = text[cut:]
                break
            value = text[found.end() :]
            if len(value) < len(_PNG_BASE64) and _PNG_BASE64.startswith(value):
                kept.append(text[: found.start()])
                self._held = text[found.start() :]  # too short to tell yet
                break
            kept.append(text[: found.end()])
            if value.startswith(_PNG_BASE64):
                kept.append(marker_text(self._count))
                self._inside = _Base64Stream(self._open_image(self._count))
                self._count += 1
            text = value
        return b"".join(kept)

    def close(self) -> bytes:
        """The rest of the answer; raises ``UnreadableAnswer`` if it ended inside an image."""
        if self._inside is not None:
            raise UnreadableAnswer("the answer ended inside an image")
        rest, self._held = self._held, b""
        return rest

    def _continue_value(self, text: bytes, kept: list[bytes]) -> bytes:
        """Pass the image text on; at its closing quote, go back to plain JSON."""
        assert self._inside is not None
        end = _closing_quote(text)
        if end is None:
            self._inside.text(text)
            return b""
        self._inside.text(text[:end])
        self._inside.end()
        self._inside = None
        return text[end:]


def marker_text(index: int) -> bytes:
    """The marker as base64 text, as it stands in the JSON kept for the SDK."""
    return binascii.b2a_base64(marker(index), newline=False)


def _closing_quote(text: bytes) -> int | None:
    """Where the string value ends in ``text`` (an unescaped quote), if it does.

    ``bytes.find`` rather than a regular expression: this scans megabytes per image.
    """
    pos = 0
    while True:
        quote = text.find(b'"', pos)
        escape = text.find(b"\\", pos, len(text) if quote < 0 else quote)
        if escape < 0:
            return None if quote < 0 else quote
        pos = escape + 2  # skip the escaped character
        if pos >= len(text):
            return None


__all__ = ["InlineImageLifter", "UnreadableAnswer", "lifted_index", "marker", "marker_text"]
