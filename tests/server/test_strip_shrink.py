"""Shrinking band by band: the same bytes however the rows come, and a true area average."""

from __future__ import annotations

import random

import pytest
from PIL import Image, ImageChops, ImageStat

from image_server.adapters.strip_shrink import BandShrink, fit_size, shrink
from tests.support.photos import draw_photo

SIZES = [
    (1024, 1024, 768),  # 1K preview: no whole factor, bands only
    (2048, 2048, 768),  # 2K: reduce by 2, then bands
    (4096, 4096, 384),  # 4K thumbnail: reduce by 10
    (1344, 768, 768),  # 16:9
    (768, 1344, 256),
    (1365, 1001, 333),  # nothing divides
    (5, 300, 17),
]


def photo(width: int, height: int) -> Image.Image:
    return draw_photo(width, height, seed=3).convert("RGB")


@pytest.mark.parametrize(("width", "height", "side"), SIZES)
def test_rows_handed_over_in_any_steps_give_the_same_bytes(
    width: int, height: int, side: int
) -> None:
    image = photo(width, height)
    whole = shrink(image, side)
    for seed in range(3):
        bands = BandShrink(image, fit_size(image.size, side))
        steps, rows = random.Random(seed), 0
        while rows < height:
            assert not bands.done
            rows = min(height, rows + steps.randint(1, 300))
            bands.advance(rows)
        assert bands.done
        assert bands.result().tobytes() == whole.tobytes()


@pytest.mark.parametrize(("width", "height", "side"), SIZES)
def test_the_result_is_the_average_pillow_makes(width: int, height: int, side: int) -> None:
    """Pillow's box filter after a whole-factor reduce, as the codec used before bands."""
    image = photo(width, height)
    ours = shrink(image, side)
    assert ours.size == fit_size(image.size, side)
    pillows = image.resize(ours.size, Image.Resampling.BOX, reducing_gap=1.0)
    mean_difference = ImageStat.Stat(ImageChops.difference(ours, pillows)).mean
    assert max(mean_difference) < 1.0  # out of 255: the same picture


def test_a_band_waits_for_the_rows_it_reads() -> None:
    """No band is made from rows the decoder has not written yet.

    The first band (32 output rows at 4:3) reads source rows 0 to 43: with 45 final it
    is made, and the rows below are still garbage until they are written afterwards.
    """
    final = photo(64, 64)
    image = final.copy()
    image.paste((255, 0, 255), (0, 45, 64, 64))  # not decoded yet
    bands = BandShrink(image, (48, 48))
    bands.advance(45)
    assert not bands.done
    image.paste(final.crop((0, 45, 64, 64)), (0, 45))
    bands.advance(64)
    assert bands.result().tobytes() == shrink(final, 48).tobytes()


def test_transparency_is_averaged_premultiplied() -> None:
    """A transparent black border must not darken the edge of a white shape."""
    image = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    image.paste((255, 255, 255, 255), (0, 0, 52, 100))
    small = shrink(image, 30)
    assert small.mode == "RGBA"
    row = [small.getpixel((x, 15)) for x in range(30)]
    edge = [pixel for pixel in row if 0 < pixel[3] < 255]  # type: ignore[index]
    assert edge  # the shape's edge is partly transparent
    assert all(pixel[:3] == (255, 255, 255) for pixel in edge)  # type: ignore[index]


def test_an_image_already_small_enough_is_itself() -> None:
    image = photo(200, 100)
    assert shrink(image, 300) is image
    bands = BandShrink(image, image.size)
    bands.advance(100)
    assert bands.result() is image


def test_the_result_is_refused_before_every_row_is_in() -> None:
    bands = BandShrink(photo(100, 100), (50, 50))
    bands.advance(60)
    with pytest.raises(RuntimeError):
        bands.result()
