"""Photo-like test images at the sizes Gemini really returns.

Flat colours compress to almost nothing and decode in no time, so a test built on them
passes where a real 15 MB 4K photo would fail. These images have what photos have:
smooth gradients, soft shapes and a little sensor noise, so a PNG of one is about
1.5 MB at 1K, 6 MB at 2K and 20 MB at 4K. Deterministic for a given seed, and quick to
make (about half a second at 4K): shapes are drawn at a quarter of the size, blurred and
scaled up, then noise is added at full size.
"""

from __future__ import annotations

import functools
import io
import random
import struct

from PIL import Image, ImageChops, ImageDraw, ImageFilter

NOISE_BITS = 2
"""Noise amplitude (0..3 per channel): what keeps the PNG as large as a photo's."""


def draw_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB photo-like image of exactly ``width`` x ``height`` pixels."""
    small = (max(1, width // 4), max(1, height // 4))
    red = Image.linear_gradient("L").resize(small)
    green = Image.radial_gradient("L").resize(small)
    blue = red.transpose(Image.Transpose.ROTATE_90).resize(small)
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    side = max(2, min(small) // 5)
    shuffle = random.Random(seed)
    for _ in range(14):
        x, y = shuffle.randrange(small[0]), shuffle.randrange(small[1])
        colour = (shuffle.randrange(256), shuffle.randrange(256), shuffle.randrange(256))
        draw.ellipse((x - side // 2, y - side // 2, x + side, y + side), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(max(1.0, max(small) / 300)))
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    mask = (1 << NOISE_BITS) - 1
    noise = Image.frombytes("RGB", (width, height), shuffle.randbytes(width * height * 3))
    return ImageChops.add(image, noise.point(lambda value: value & mask), 1.0, 0)


@functools.lru_cache(maxsize=32)
def photo_bytes(width: int, height: int, seed: int = 0, fmt: str = "PNG") -> bytes:
    """``draw_photo`` encoded as PNG (fast zlib level, as image services do) or JPEG."""
    out = io.BytesIO()
    image = draw_photo(width, height, seed)
    if fmt == "PNG":
        image.save(out, format="PNG", compress_level=1)
    else:
        image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


@functools.cache
def linear_rgb_profile() -> bytes:
    """An ICC v2 profile that is not sRGB: sRGB's primaries with a linear tone curve.

    A photo tagged with it looks brighter once converted (mid grey 128 becomes about
    188 in sRGB), so a test can see whether the profile was applied or just dropped.
    """
    text = b"Linear RGB\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 79
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0100) + b"\0\0"
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", _xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", _xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0none\0\0\0\0"),
    ]
    start = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for signature, data in tags:
        table += signature + struct.pack(">II", start + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    header = (
        struct.pack(">I", start + len(body))
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"\0" * 48
    )
    return header + table + body


@functools.lru_cache(maxsize=8)
def camera_jpeg(width: int, height: int, seed: int = 0, grain: int = 24) -> bytes:
    """A photo-like JPEG as a phone camera saves one (quality 95, visible sensor grain):
    about 3 MB at 12 megapixels, where ``photo_bytes``' JPEGs compress to a fraction."""
    image = draw_photo(width, height, seed)
    shuffle = random.Random(seed + 1)
    noise = Image.frombytes("RGB", (width, height), shuffle.randbytes(width * height * 3))
    grainy = ImageChops.add(image, noise.point(lambda value: value % grain), 1.0, 0)
    out = io.BytesIO()
    grainy.save(out, format="JPEG", quality=95)
    return out.getvalue()
