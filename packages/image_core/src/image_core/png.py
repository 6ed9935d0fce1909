"""The size of a PNG from its header: enough to settle a record without decoding it."""

from __future__ import annotations

import struct

from image_core.errors import InvalidImage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG header, raising ``InvalidImage`` if it is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise InvalidImage("The data is not a PNG image.")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)
