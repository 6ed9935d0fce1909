"""What an uploaded photo becomes before it is kept: upright, sRGB, with no metadata.

Phone photos come sideways with an orientation tag, in colour spaces other than sRGB,
with GPS positions and camera data inside; they are also untrusted bytes, refused as
every image is when damaged, disguised or built to exhaust memory.
"""

from __future__ import annotations

import io
import time

import pytest
from PIL import ExifTags, Image, PngImagePlugin

from image_core.contracts.pictures import bomb_png
from image_core.errors import InvalidImage
from image_server.adapters.pillow_codec import PillowImageCodec
from tests.support.photos import camera_jpeg, draw_photo, linear_rgb_profile, photo_bytes

MAX_SIDE = 4096
THUMB = 384
RED = (255, 0, 0)


@pytest.fixture
def codec() -> PillowImageCodec:
    return PillowImageCodec()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def sideways_phone_jpeg() -> bytes:
    """A 1200x900 photo stored sideways (orientation 6), a red mark in its stored top
    left corner, with GPS, camera make and XMP inside."""
    photo = draw_photo(1200, 900, seed=3)
    photo.paste(RED, (0, 0, 200, 200))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "SecretPhoneMaker"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 1.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>SecretXmpNote</rdf:RDF></x:xmpmeta>'
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=92, exif=exif, xmp=xmp)
    return out.getvalue()


def test_a_sideways_phone_jpeg_is_kept_upright_without_exif_gps_or_xmp(
    codec: PillowImageCodec,
) -> None:
    """Orientation 6 is applied to the pixels; nothing but pixels is kept."""
    data = sideways_phone_jpeg()
    assert opened(data).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the input has GPS
    kept = codec.normalise_upload(data, MAX_SIDE, THUMB)
    assert kept.image.mime_type == "image/jpeg"
    assert (kept.width, kept.height) == (900, 1200)
    image = opened(kept.image.data)
    assert image.size == (900, 1200)
    # Turned a quarter clockwise: the stored top left corner is now the top right one.
    assert image.getpixel((850, 50)) == pytest.approx(RED, abs=8)
    assert image.getpixel((50, 50)) != pytest.approx(RED, abs=8)
    assert not image.getexif()
    assert "exif" not in image.info
    assert "xmp" not in image.info
    assert "icc_profile" not in image.info
    for secret in (b"Exif", b"SecretPhoneMaker", b"SecretXmpNote", b"http://ns.adobe.com"):
        assert secret not in kept.image.data


def test_a_photo_in_another_colour_space_is_converted_to_srgb_and_keeps_no_profile(
    codec: PillowImageCodec,
) -> None:
    """Linear-RGB mid grey (128) is about 188 in sRGB: converted, not just relabelled."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (128, 128, 128)).save(out, "PNG", icc_profile=linear_rgb_profile())
    kept = codec.normalise_upload(out.getvalue(), MAX_SIDE, THUMB)
    image = opened(kept.image.data)
    assert image.getpixel((32, 24)) == pytest.approx((188, 188, 188), abs=3)
    assert "icc_profile" not in image.info
    assert b"Linear RGB" not in kept.image.data


def test_a_cmyk_jpeg_is_kept_as_an_rgb_jpeg(codec: PillowImageCodec) -> None:
    """Print-shop CMYK becomes RGB (no image model takes CMYK)."""
    out = io.BytesIO()
    draw_photo(320, 240, seed=4).convert("CMYK").save(out, "JPEG", quality=90)
    kept = codec.normalise_upload(out.getvalue(), MAX_SIDE, THUMB)
    image = opened(kept.image.data)
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (320, 240))


def test_text_chunks_of_a_png_are_dropped(codec: PillowImageCodec) -> None:
    """tEXt, iTXt and zTXt hold comments, authors, software: none of it is kept."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "SecretComment")
    info.add_itxt("Author", "SecretAuthor")
    info.add_text("Software", "SecretSoftware", zip=True)
    out = io.BytesIO()
    draw_photo(300, 200, seed=5).save(out, "PNG", pnginfo=info)
    kept = codec.normalise_upload(out.getvalue(), MAX_SIDE, THUMB)
    assert kept.image.mime_type == "image/jpeg"  # opaque: kept as a photo
    for secret in (b"SecretComment", b"SecretAuthor", b"tEXt", b"iTXt", b"zTXt"):
        assert secret not in kept.image.data


def test_a_transparent_png_stays_a_png_with_its_transparency_and_no_text(
    codec: PillowImageCodec,
) -> None:
    """Transparency would be lost in JPEG, so such a photo is kept as PNG."""
    picture = draw_photo(200, 100, seed=6).convert("RGBA")
    picture.putalpha(Image.linear_gradient("L").resize((200, 100)))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "SecretComment")
    out = io.BytesIO()
    picture.save(out, "PNG", pnginfo=info)
    kept = codec.normalise_upload(out.getvalue(), MAX_SIDE, THUMB)
    assert kept.image.mime_type == "image/png"
    image = opened(kept.image.data)
    assert image.mode == "RGBA"
    assert min(image.getchannel("A").tobytes()) < 16  # the gradient's clear end is kept
    assert b"SecretComment" not in kept.image.data


def test_a_photo_larger_than_the_long_side_is_shrunk_to_it_with_its_shape(
    codec: PillowImageCodec,
) -> None:
    """What an image model takes as a reference, and no more; the thumbnail is small."""
    kept = codec.normalise_upload(photo_bytes(1600, 1200, 7, "JPEG"), 800, THUMB)
    assert (kept.width, kept.height) == (800, 600)
    assert opened(kept.image.data).size == (800, 600)
    assert max(opened(kept.thumbnail.data).size) == THUMB
    assert kept.thumbnail.mime_type == "image/webp"


def test_a_several_megabyte_phone_photo_is_normalised_in_a_few_seconds_at_most(
    codec: PillowImageCodec,
) -> None:
    """A 4000x3000 photo-like JPEG, as phones take them, at a bearable cost."""
    data = camera_jpeg(4000, 3000, 8)
    assert len(data) > 3_000_000
    started = time.monotonic()
    kept = codec.normalise_upload(data, MAX_SIDE, THUMB)
    assert time.monotonic() - started < 4.0  # about 0.2 s on an idle core
    assert (kept.width, kept.height) == (4000, 3000)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (photo_bytes(600, 400, 9, "JPEG")[:20_000], "damaged or truncated JPEG"),
        (photo_bytes(600, 400, 9)[:30_000], "truncated PNG"),
        (b"just some text, not a photo at all", "not a PNG, JPEG or WebP"),
        (b"GIF89a" + b"\0" * 64, "GIF"),
        (b"", "empty"),
    ],
    ids=["truncated-jpeg", "truncated-png", "text", "gif", "empty"],
)
def test_damaged_or_unsupported_files_are_refused_saying_what_they_are(
    codec: PillowImageCodec, data: bytes, says: str
) -> None:
    """A clear InvalidImage naming the photo, never a crash or a half-grey image."""
    with pytest.raises(InvalidImage, match=says) as refused:
        codec.normalise_upload(data, MAX_SIDE, THUMB)
    assert refused.value.message.startswith("The photo")
    # What a person can do about it: a photo is exported again, never "regenerated".
    assert "regenerate" not in refused.value.message
    if says not in ("empty",):
        assert "photo app" in refused.value.message


def test_a_decompression_bomb_is_refused_from_its_header_at_once(
    codec: PillowImageCodec,
) -> None:
    """50,000 x 50,000 pixels claimed: refused before any pixel is decoded."""
    started = time.monotonic()
    with pytest.raises(InvalidImage, match="megapixels"):
        codec.normalise_upload(bomb_png(), MAX_SIDE, THUMB)
    assert time.monotonic() - started < 0.5
