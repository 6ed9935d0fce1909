"""What an uploaded photo goes through before it is kept: upright, sRGB, no metadata.

Phones store photos sideways with an EXIF orientation tag, often in a wide-gamut or
CMYK colour space described by an embedded ICC profile, and full of metadata (GPS
position, camera serials, XMP, text chunks). An image model sees pixels only, so the
pixels are turned upright and converted to sRGB, and everything else is dropped. The
decoding itself (and its guards against bombs and damaged files) is the codec's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import struct
import zlib
from typing import Final

from PIL import Image, ImageCms, ImageOps

from image_server.adapters.encoded_bytes import encoded

_log = logging.getLogger("image_server.codec")

JPEG_QUALITY: Final = 92
"""High enough that a photo kept as a reference loses nothing a model would notice."""
_CONVERTIBLE: Final = frozenset({"RGB", "RGBA", "CMYK"})
_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# Malformed EXIF is common in edited photos; it costs the orientation, not the photo.
_EXIF_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    struct.error,
    zlib.error,
    Warning,
)


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation tag says (unchanged without one)."""
    with contextlib.suppress(*_EXIF_ERRORS):
        turned = ImageOps.exif_transpose(image)
        if turned is not None:
            return turned
    return image


def in_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """The pixels converted from their embedded profile to sRGB (RGB or RGBA).

    Without a profile RGB is taken to be sRGB already; CMYK (or a profile that cannot
    be read) is converted the plain way, so the colours may shift a little but the
    photo is still kept.
    """
    if icc_profile and image.mode in _CONVERTIBLE:
        target = "RGBA" if image.mode == "RGBA" else "RGB"
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=target)
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            _log.debug("an uploaded photo's colour profile was not used: %s", exc)
        else:
            if converted is not None:
                return converted
    if image.mode == "CMYK":
        return image.convert("RGB")
    return image


def is_transparent(image: Image.Image) -> bool:
    """Whether any pixel is less than opaque (only then is the photo kept as PNG)."""
    if image.mode not in ("RGBA", "LA"):
        return False
    extrema = image.getchannel("A").getextrema()
    return isinstance(extrema[0], int | float) and extrema[0] < 255


def without_metadata(image: Image.Image) -> Image.Image:
    """The same pixels with nothing else: no EXIF, XMP, ICC profile or text.

    The encoders write what ``info`` holds unless told otherwise, so a fresh image is
    made from the pixels alone.
    """
    bare = Image.new(image.mode, image.size)
    bare.paste(image)
    return bare


def encode_kept(image: Image.Image, *, png_compress_level: int) -> tuple[bytes, str]:
    """The bytes to keep and their media type: PNG with transparency, else JPEG."""
    if is_transparent(image):
        return encoded(image, "PNG", compress_level=png_compress_level), "image/png"
    opaque = image.convert("L" if image.mode in ("L", "LA") else "RGB")
    return encoded(opaque, "JPEG", quality=JPEG_QUALITY), "image/jpeg"
