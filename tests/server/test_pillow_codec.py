"""PillowImageCodec: format detection, PNG normalisation, previews and hostile input."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFile, WebPImagePlugin

from image_core.domain import AspectRatio, EncodedImage, ImageSize
from image_core.errors import InvalidImage
from image_core.ports import ImageCodec
from image_server.adapters.pillow_codec import (
    DEFAULT_MAX_PREVIEW_BYTES,
    MAX_JPEG_SCANS,
    PillowImageCodec,
)
from tests.support.photos import photo_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LIMIT = 7 * 1024 * 1024
"""The per-reference budget the service uses by default."""
PILLOW_DEFAULT_MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3


# --- helpers -------------------------------------------------------------------------


def encode(image: Image.Image, format_name: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_name, **options)
    return buffer.getvalue()


def noise(width: int, height: int, mode: str = "RGB", seed: int = 1) -> Image.Image:
    rgba = Image.frombytes(
        "RGBA", (width, height), random.Random(seed).randbytes(width * height * 4)
    )
    return rgba.convert("RGB") if mode == "RGB" else rgba.convert(mode)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def handmade_png(width: int, height: int, idat: bytes) -> bytes:
    """An 8-bit RGB PNG whose header says ``width`` x ``height``, whatever ``idat`` holds."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def fast_noisy_png(width: int, height: int, seed: int = 4) -> bytes:
    """Random RGB pixels in a stored (uncompressed) PNG: valid, and quick to build."""
    stride = 3 * width
    pixels = random.Random(seed).randbytes(stride * height)
    raw = b"".join(b"\0" + pixels[row : row + stride] for row in range(0, len(pixels), stride))
    return handmade_png(width, height, zlib.compress(raw, 0))


def png_bomb(width: int, height: int) -> bytes:
    """A few hundred bytes claiming ``width`` x ``height``: one zero row of image data."""
    return handmade_png(width, height, zlib.compress(b"\0" * (1 + 3 * min(width, 4096)), 9))


def webp_vp8x(width: int, height: int) -> bytes:
    """A WebP header (extended format) claiming a ``width`` x ``height`` canvas."""
    payload = (
        b"VP8X"
        + struct.pack("<I", 10)
        + b"\0\0\0\0"
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
    return b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"WEBP" + payload


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real tiny baseline JPEG whose SOF0 header is patched to claim another size."""
    data = encode(Image.new("RGB", (8, 8), "red"), "JPEG")
    start = data.index(b"\xff\xc0")
    return data[: start + 5] + struct.pack(">HH", height, width) + data[start + 9 :]


@pytest.fixture(scope="module")
def codec() -> PillowImageCodec:
    return PillowImageCodec()


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any pixel data is decoded (or a WebP canvas allocated)."""

    def refuse(*_: object) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "load", refuse)
    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "_open", refuse)


# --- the protocol --------------------------------------------------------------------


def test_satisfies_the_port() -> None:
    port: ImageCodec = PillowImageCodec()
    sent = port.prepare_reference(encode(Image.new("RGB", (4, 4)), "PNG"), 10_000)
    assert sent.mime_type == "image/png"


def test_never_changes_pillows_global_limit(codec: PillowImageCodec) -> None:
    with pytest.raises(InvalidImage):
        codec.prepare_reference(png_bomb(50_000, 50_000), LIMIT)
    assert Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT_MAX_PIXELS


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_pixels": 0},
        {"max_preview_bytes": -1},
        {"preview_quality": 0},
        {"thumbnail_quality": 101},
        {"png_compress_level": 10},
    ],
)
def test_rejects_nonsense_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PillowImageCodec(**kwargs)


# --- process: formats ----------------------------------------------------------------


def test_valid_png_is_stored_byte_for_byte(codec: PillowImageCodec) -> None:
    data = encode(noise(300, 200), "PNG", compress_level=9)
    result = codec.process(data, 128, 64)
    assert result.png == data
    assert (result.width, result.height) == (300, 200)


def test_bytes_after_iend_are_dropped(codec: PillowImageCodec) -> None:
    data = encode(noise(40, 30), "PNG")
    result = codec.process(data + b"PK\x03\x04 appended zip", 128, 64)
    assert result.png == data


@pytest.mark.parametrize(
    ("format_name", "options"),
    [
        ("JPEG", {"quality": 90}),
        ("WEBP", {"quality": 80}),
        ("WEBP", {"lossless": True}),
    ],
)
def test_jpeg_and_webp_become_png_of_the_same_size(
    codec: PillowImageCodec, format_name: str, options: dict[str, object]
) -> None:
    data = encode(noise(321, 123), format_name, **options)
    result = codec.process(data, 256, 64)
    assert result.png.startswith(PNG_SIGNATURE)
    stored = decode(result.png)
    assert stored.format == "PNG"
    assert stored.size == (321, 123) == (result.width, result.height)


def test_lossless_webp_pixels_survive(codec: PillowImageCodec) -> None:
    original = noise(50, 40, "RGBA")
    result = codec.process(encode(original, "WEBP", lossless=True, exact=True), 64, 32)
    assert decode(result.png).tobytes() == original.tobytes()


def test_claimed_type_is_irrelevant_only_bytes_count(codec: PillowImageCodec) -> None:
    jpeg = encode(noise(20, 20), "JPEG")
    assert codec.prepare_reference(jpeg, LIMIT).mime_type == "image/jpeg"
    assert codec.prepare_reference(encode(noise(20, 20), "WEBP"), LIMIT).mime_type == "image/webp"
    assert codec.prepare_reference(encode(noise(20, 20), "PNG"), LIMIT).mime_type == "image/png"


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (64, 48), 1)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    return encode(image, "PNG", transparency=1)


def _sixteen_bit_grey() -> bytes:
    image = Image.new("I;16", (64, 48))
    image.putdata([x * 1000 for x in range(64)] * 48)
    return encode(image, "PNG")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encode(noise(64, 48, "RGBA"), "PNG"), id="RGBA"),
        pytest.param(encode(noise(64, 48, "LA"), "PNG"), id="LA"),
        pytest.param(encode(noise(64, 48, "L"), "PNG"), id="L"),
        pytest.param(encode(noise(64, 48, "1"), "PNG"), id="1"),
        pytest.param(encode(noise(64, 48, "P"), "PNG"), id="P"),
        pytest.param(_palette_with_transparency(), id="P+tRNS"),
        pytest.param(_sixteen_bit_grey(), id="I;16"),
        pytest.param(encode(noise(64, 48, "L"), "JPEG"), id="JPEG-L"),
        pytest.param(encode(noise(64, 48, "CMYK"), "JPEG"), id="JPEG-CMYK"),
        pytest.param(encode(noise(64, 48, "RGBA"), "WEBP"), id="WebP-RGBA"),
    ],
)
def test_every_mode_gives_png_rgb_jpeg_preview_and_webp_thumbnail(
    codec: PillowImageCodec, data: bytes
) -> None:
    result = codec.process(data, 32, 16)
    stored = decode(result.png)
    assert stored.format == "PNG"
    assert stored.size == (64, 48)
    preview = decode(result.preview.data)
    assert (result.preview.mime_type, preview.format, preview.mode) == ("image/jpeg", "JPEG", "RGB")
    assert preview.size == (32, 24)
    thumbnail = decode(result.thumbnail.data)
    assert (result.thumbnail.mime_type, thumbnail.format) == ("image/webp", "WEBP")
    assert thumbnail.size == (16, 12)


def test_sixteen_bit_grey_is_scaled_not_clipped(codec: PillowImageCodec) -> None:
    preview = decode(codec.process(_sixteen_bit_grey(), 64, 16).preview.data)
    left, _, _ = preview.getpixel((2, 5))  # type: ignore[misc]
    right, _, _ = preview.getpixel((preview.width - 3, 5))  # type: ignore[misc]
    assert left < 40 < 200 < right


def test_transparency_is_flattened_onto_white(codec: PillowImageCodec) -> None:
    clear = Image.new("RGBA", (100, 100), (255, 0, 0, 0))
    result = codec.process(encode(clear, "PNG"), 50, 20)
    preview = decode(result.preview.data)
    assert all(channel > 245 for channel in preview.getpixel((25, 25)))  # type: ignore[union-attr]
    thumbnail = decode(result.thumbnail.data).convert("RGB")
    assert all(channel > 245 for channel in thumbnail.getpixel((10, 10)))  # type: ignore[union-attr]


# --- process: previews and thumbnails ------------------------------------------------


@pytest.mark.parametrize("size", [(1000, 250), (250, 1000), (2000, 2000)])
def test_preview_and_thumbnail_fit_and_keep_the_aspect_ratio(
    codec: PillowImageCodec, size: tuple[int, int]
) -> None:
    result = codec.process(fast_noisy_png(*size), 400, 100)
    preview = decode(result.preview.data)
    thumbnail = decode(result.thumbnail.data)
    assert max(preview.size) == 400
    assert max(thumbnail.size) == 100
    ratio = size[0] / size[1]
    assert preview.size[0] / preview.size[1] == pytest.approx(ratio, rel=0.02)
    assert thumbnail.size[0] / thumbnail.size[1] == pytest.approx(ratio, rel=0.02)


def test_small_images_are_not_upscaled(codec: PillowImageCodec) -> None:
    """Nothing grows; the preview is still smaller than the image (three quarters)."""
    result = codec.process(encode(noise(30, 20), "PNG"), 1024, 256)
    assert decode(result.preview.data).size == (22, 15)
    assert decode(result.thumbnail.data).size == (30, 20)


def test_thumbnail_larger_than_preview_comes_from_the_full_image(
    codec: PillowImageCodec,
) -> None:
    result = codec.process(encode(noise(600, 300), "PNG"), 100, 300)
    assert decode(result.preview.data).size == (100, 50)
    assert decode(result.thumbnail.data).size == (300, 150)


@pytest.fixture(scope="module")
def noisy_4k_png() -> bytes:
    return fast_noisy_png(4096, 4096)


def test_4k_noise_preview_is_compact(codec: PillowImageCodec, noisy_4k_png: bytes) -> None:
    result = codec.process(noisy_4k_png, 1024, 256)
    assert result.png == noisy_4k_png
    assert (result.width, result.height) == (4096, 4096)
    assert result.preview.mime_type == "image/jpeg"
    assert len(result.preview.data) < 300_000
    assert decode(result.preview.data).size == (1024, 1024)
    assert decode(result.thumbnail.data).size == (256, 256)


def test_preview_stays_under_the_byte_budget_even_for_pure_noise(
    codec: PillowImageCodec,
) -> None:
    # Full-resolution noise at quality 80 is about 650 KB: the budget must step in.
    result = codec.process(fast_noisy_png(1024, 1024), 1024, 256)
    assert len(result.preview.data) <= DEFAULT_MAX_PREVIEW_BYTES
    assert decode(result.preview.data).format == "JPEG"


def test_an_impossible_preview_budget_still_returns_a_small_jpeg() -> None:
    result = PillowImageCodec(max_preview_bytes=1).process(fast_noisy_png(400, 300), 400, 64)
    preview = decode(result.preview.data)
    assert preview.format == "JPEG"
    assert max(preview.size) < 400


def test_thumbnail_of_stored_png(codec: PillowImageCodec) -> None:
    thumb = codec.thumbnail(encode(noise(800, 400), "PNG"), 200)
    assert thumb.mime_type == "image/webp"
    assert decode(thumb.data).size == (200, 100)


def test_thumbnail_of_jpeg_uses_a_reduced_decode(codec: PillowImageCodec) -> None:
    thumb = codec.thumbnail(encode(noise(2000, 1000), "JPEG"), 128)
    assert decode(thumb.data).size == (128, 64)


MARKER_TOP_LEFT = (230, 30, 30)
MARKER_BOTTOM_RIGHT = (30, 60, 230)


def photo_like(width: int, height: int, seed: int = 7) -> Image.Image:
    """Gradients under film grain, with a red top-left and a blue bottom-right corner.

    The corner markers show that nothing was cropped: a crop to another shape would
    cut one of them off.
    """
    rng = random.Random(seed)
    channels = []
    for base in (
        Image.linear_gradient("L"),
        Image.radial_gradient("L"),
        Image.linear_gradient("L").rotate(90),
    ):
        grain = Image.frombytes("L", (width, height), rng.randbytes(width * height))
        channels.append(Image.blend(base.resize((width, height)), grain, 0.3))
    image = Image.merge("RGB", channels)
    draw = ImageDraw.Draw(image)
    marker_w, marker_h = max(4, width // 6), max(4, height // 6)
    draw.rectangle((0, 0, marker_w - 1, marker_h - 1), fill=MARKER_TOP_LEFT)
    draw.rectangle(
        (width - marker_w, height - marker_h, width - 1, height - 1), fill=MARKER_BOTTOM_RIGHT
    )
    return image


def assert_same_shape_uncropped(thumbnail: Image.Image, source: tuple[int, int], side: int) -> None:
    """Longest side ``side``, the other one within rounding, both corner markers kept."""
    width, height = source
    thumb_w, thumb_h = thumbnail.size
    assert max(thumb_w, thumb_h) == side
    if width >= height:
        assert thumb_w == side
        assert abs(thumb_h - height * side / width) <= 1
    else:
        assert thumb_h == side
        assert abs(thumb_w - width * side / height) <= 1
    rgb = thumbnail.convert("RGB")
    for (x, y), colour in (
        ((0, 0), MARKER_TOP_LEFT),
        ((thumb_w - 1, thumb_h - 1), MARKER_BOTTOM_RIGHT),
    ):
        pixel = rgb.getpixel((x, y))
        assert isinstance(pixel, tuple)
        assert all(abs(a - b) < 60 for a, b in zip(pixel, colour, strict=True)), (x, y, pixel)


@pytest.mark.parametrize("ratio", list(AspectRatio), ids=str)
def test_thumbnails_keep_every_aspect_ratio_uncropped(
    codec: PillowImageCodec, ratio: AspectRatio
) -> None:
    """Each of the 14 ratios at its real 1K size: letterboxed by the page, never cut square."""
    size = ratio.dimensions(ImageSize.S1K)
    png = encode(photo_like(*size), "PNG")
    made_at_generation = decode(codec.process(png, 1024, 384).thumbnail.data)
    made_later = decode(codec.thumbnail(png, 384).data)
    from_jpeg = decode(codec.thumbnail(encode(photo_like(*size), "JPEG", quality=90), 384).data)
    for thumbnail in (made_at_generation, made_later, from_jpeg):
        assert_same_shape_uncropped(thumbnail, size, 384)


def test_thumbnail_rejects_garbage(codec: PillowImageCodec) -> None:
    with pytest.raises(InvalidImage, match="stored image"):
        codec.thumbnail(b"not an image at all", 128)


@pytest.mark.parametrize("side", [0, -5])
def test_process_rejects_nonsense_sides(codec: PillowImageCodec, side: int) -> None:
    with pytest.raises(ValueError, match="max_side"):
        codec.process(encode(noise(8, 8), "PNG"), side, 16)


# --- hostile and broken input ------------------------------------------------------------


def _truncated_idat_png() -> bytes:
    """Chunks and CRCs intact, but the compressed image data stops half-way."""
    raw = b"".join(b"\0" + random.Random(row).randbytes(3 * 64) for row in range(64))
    return handmade_png(64, 64, zlib.compress(raw)[:3000])


def _bad_crc_png() -> bytes:
    data = bytearray(encode(noise(32, 32), "PNG"))
    data[-20] ^= 0xFF  # inside the last IDAT chunk
    return bytes(data)


_GOOD_PNG = encode(noise(64, 64), "PNG")
_GOOD_JPEG = encode(noise(64, 64), "JPEG")
_GOOD_WEBP = encode(noise(64, 64), "WEBP")

BROKEN = [
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"Hello, this is a text file.\n", "looks like text", id="text"),
    pytest.param(bytes(random.Random(3).randbytes(500)), "not a PNG, JPEG or WebP", id="random"),
    pytest.param(b"GIF89a" + bytes(100), "GIF", id="gif"),
    pytest.param(_GOOD_PNG[: len(_GOOD_PNG) // 2], "truncated PNG", id="png-cut-in-half"),
    pytest.param(_GOOD_PNG[:-12], "truncated PNG", id="png-without-iend"),
    pytest.param(_GOOD_PNG[:8], "truncated PNG", id="png-signature-only"),
    pytest.param(_truncated_idat_png(), "damaged or truncated PNG", id="png-short-image-data"),
    pytest.param(_bad_crc_png(), "checksum", id="png-bad-crc"),
    pytest.param(_GOOD_JPEG[: len(_GOOD_JPEG) * 2 // 3], "truncated JPEG", id="jpeg-truncated"),
    pytest.param(_GOOD_JPEG[:20], "JPEG", id="jpeg-header-only"),
    pytest.param(_GOOD_WEBP[: len(_GOOD_WEBP) // 2], "WebP", id="webp-truncated"),
]


@pytest.mark.parametrize(("data", "expected"), BROKEN)
def test_process_refuses_broken_input(codec: PillowImageCodec, data: bytes, expected: str) -> None:
    with pytest.raises(InvalidImage, match=expected) as caught:
        codec.process(data, 64, 32)
    assert caught.value.message.startswith("The generated image")


@pytest.mark.parametrize(("data", "expected"), BROKEN)
def test_prepare_reference_refuses_broken_input(
    codec: PillowImageCodec, data: bytes, expected: str
) -> None:
    with pytest.raises(InvalidImage, match=expected) as caught:
        codec.prepare_reference(data, LIMIT)
    assert caught.value.message.startswith("The reference image")


def test_a_reference_within_the_limit_is_sent_byte_for_byte(codec: PillowImageCodec) -> None:
    """Nothing is re-encoded when the file already fits."""
    data = photo_bytes(640, 480, 3)
    assert codec.prepare_reference(data, len(data)) == EncodedImage(data, "image/png")


@pytest.mark.parametrize(("width", "height"), [(4096, 4096), (4096, 1755), (512, 4096)])
def test_a_large_photo_is_sent_as_a_copy_within_the_limit(
    codec: PillowImageCodec, width: int, height: int
) -> None:
    """A 4K photo PNG (about 20 MB) becomes a JPEG under the budget, with its shape kept."""
    data = photo_bytes(width, height, 4)
    for budget in (min(LIMIT, len(data) - 1), 1024 * 1024):
        sent = codec.prepare_reference(data, budget)
        assert len(sent.data) <= budget < len(data)
        assert sent.mime_type == "image/jpeg"
        copy = decode(sent.data)
        assert copy.width / copy.height == pytest.approx(width / height, rel=0.01)


def test_a_transparent_reference_keeps_its_alpha_in_a_webp_copy(codec: PillowImageCodec) -> None:
    data = encode(noise(300, 200, "RGBA"), "PNG")
    sent = codec.prepare_reference(data, len(data) // 4)
    assert sent.mime_type == "image/webp"
    assert len(sent.data) <= len(data) // 4
    assert decode(sent.data).mode == "RGBA"


@pytest.mark.parametrize(
    ("data", "dimensions"),
    [
        pytest.param(png_bomb(50_000, 50_000), "50000x50000", id="png-2.5-gigapixels"),
        # Below Pillow's own limit (89 MP): only our per-codec limit catches it.
        pytest.param(png_bomb(8_000, 6_000), "8000x6000", id="png-48-megapixels"),
        pytest.param(jpeg_claiming(60_000, 60_000), "60000x60000", id="jpeg"),
        pytest.param(webp_vp8x(16_384, 16_384), "16384x16384", id="webp"),
    ],
)
def test_decompression_bombs_are_refused_from_the_header(
    codec: PillowImageCodec, no_decoding: None, data: bytes, dimensions: str
) -> None:
    assert len(data) < 2000
    for call in (
        lambda d: codec.prepare_reference(d, LIMIT),
        lambda d: codec.process(d, 64, 32),
        lambda d: codec.thumbnail(d, 32),
    ):
        with pytest.raises(InvalidImage, match=rf"{dimensions} pixels .* limit is 40 megapixels"):
            call(data)


def test_pixel_limit_is_configurable(no_decoding: None) -> None:
    strict = PillowImageCodec(max_pixels=100 * 100)
    with pytest.raises(InvalidImage, match=r"101x100 pixels .* limit is 0\.01 megapixels"):
        strict.prepare_reference(encode(Image.new("RGB", (101, 100)), "PNG"), LIMIT)


def test_pillows_own_bomb_error_becomes_invalid_image() -> None:
    lax = PillowImageCodec(max_pixels=10**12)
    with pytest.raises(InvalidImage, match="decompression bomb"):
        lax.prepare_reference(webp_vp8x(16_384, 16_384), LIMIT)


def test_jpeg_with_absurd_scan_count_is_refused(codec: PillowImageCodec) -> None:
    comment = b"\xff\xda" * (MAX_JPEG_SCANS + 1)
    segment = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    data = _GOOD_JPEG[:2] + segment + _GOOD_JPEG[2:]
    with pytest.raises(InvalidImage, match=f"the limit is {MAX_JPEG_SCANS}"):
        codec.prepare_reference(data, LIMIT)


# --- properties ------------------------------------------------------------------------

_MODES_BY_FORMAT = {
    "PNG": ["RGB", "RGBA", "L", "LA", "P", "1"],
    "JPEG": ["RGB", "L", "CMYK"],
    "WEBP": ["RGB", "RGBA"],
}


@st.composite
def small_images(draw: st.DrawFn) -> tuple[bytes, tuple[int, int]]:
    format_name = draw(st.sampled_from(sorted(_MODES_BY_FORMAT)))
    mode = draw(st.sampled_from(_MODES_BY_FORMAT[format_name]))
    size = (draw(st.integers(1, 80)), draw(st.integers(1, 80)))
    image = noise(*size, mode=mode, seed=draw(st.integers(0, 2**32)))
    return encode(image, format_name), size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    image=small_images(),
    preview_side=st.integers(1, 100),
    thumbnail_side=st.integers(1, 100),
)
def test_process_keeps_the_size_and_bounds_the_derivatives(
    image: tuple[bytes, tuple[int, int]], preview_side: int, thumbnail_side: int
) -> None:
    data, size = image
    result = PillowImageCodec().process(data, preview_side, thumbnail_side)
    stored = decode(result.png)
    assert stored.format == "PNG"
    assert stored.size == size == (result.width, result.height)
    assert max(decode(result.preview.data).size) <= preview_side
    assert max(decode(result.thumbnail.data).size) <= thumbnail_side


@settings(max_examples=150, deadline=None)
@given(
    original=st.sampled_from([_GOOD_PNG, _GOOD_JPEG, _GOOD_WEBP]),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(1, 10**6),
)
def test_corrupted_files_raise_invalid_image_or_decode(
    original: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(original)
    for position, value in edits:
        data[position % len(data)] = value
    data = data[: max(1, cut % (len(data) + 1))]
    codec = PillowImageCodec()
    outcomes: list[str] = []
    for call in (lambda d: codec.prepare_reference(d, LIMIT), lambda d: codec.process(d, 32, 16)):
        try:
            call(bytes(data))
            outcomes.append("decoded")
        except InvalidImage as error:  # anything else fails the test
            outcomes.append(error.message)
    assert all(outcomes)


@pytest.mark.parametrize(
    ("width", "height"), [(1024, 1024), (2048, 2048), (4096, 4096), (1024, 576)]
)
def test_the_preview_is_smaller_than_the_image_and_within_its_byte_budget(
    codec: PillowImageCodec, width: int, height: int
) -> None:
    """Photo-like content at 1K, 2K and 4K: at most 768 px, 150 KB, and never the image again."""
    result = codec.process(photo_bytes(width, height, 5), 768, 384)
    preview = decode(result.preview.data)
    assert max(preview.size) <= 768
    assert max(preview.size) < max(width, height)
    assert len(result.preview.data) <= DEFAULT_MAX_PREVIEW_BYTES == 150_000
    assert result.preview.mime_type == "image/jpeg"


@pytest.mark.parametrize(("width", "height"), [(68, 2048), (2048, 72), (1024, 1024), (1344, 768)])
def test_a_thumbnail_made_with_the_image_has_the_size_of_one_remade_later(
    width: int, height: int
) -> None:
    """Shrunk from the preview or from the stored PNG, the gallery gets the same size."""
    codec = PillowImageCodec()
    png = photo_bytes(width, height, seed=11)
    made = codec.process(png, 768, 256).thumbnail
    remade = codec.thumbnail(png, 256)
    assert Image.open(io.BytesIO(made.data)).size == Image.open(io.BytesIO(remade.data)).size
