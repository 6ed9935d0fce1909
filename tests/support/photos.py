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
