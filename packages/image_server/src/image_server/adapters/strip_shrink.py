"""Shrinking an image band by band, so a preview can be made while the image decodes.

A preview or thumbnail is an area average: first a box reduce by the largest whole
factor (each output pixel the mean of a block), then a box resize to the exact size.
Both are done here in fixed bands of output rows, each read only from source rows
that are already final. A decoder can then hand over rows as it writes them, and when
its last row is in only the last band is left to do.

The bands are the same whether the rows come one at a time or all at once, so an image
shrunk during its decode and one shrunk afterwards are the same, byte for byte.
"""

from __future__ import annotations

import math
from typing import Final

from PIL import Image

BAND_ROWS: Final = 32
"""Output rows resized at a time: small enough to follow a decode closely."""
_MARGIN: Final = 2
"""Source rows past a band's box that Pillow's rounding may still read."""
_BOX: Final = Image.Resampling.BOX
_PREMULTIPLIED: Final = {"RGBA": "RGBa", "LA": "La"}
"""Alpha modes are averaged premultiplied (as Pillow's own resize does), then turned back."""
_BANDED_MODES: Final = frozenset({"RGB", "L", "RGBa", "La"})


def fit_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` scaled down (never up) so that its longer side is at most ``max_side``."""
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


class BandShrink:
    """``source`` shrunk to ``target``, built as the source's rows become final.

    ``advance(rows)`` says the first ``rows`` source rows will not change any more;
    each call does all the work those rows allow. The source must be in a mode Pillow
    averages directly (``RGB``, ``L``, ``RGBa``, ``La``).
    """

    def __init__(self, source: Image.Image, target: tuple[int, int]) -> None:
        if source.mode not in _BANDED_MODES:
            raise ValueError(f"cannot shrink mode {source.mode} in bands")
        width, height = source.size
        self._source = source
        self._target = target
        self._factor = (max(1, width // target[0]), max(1, height // target[1]))
        if self._factor == (1, 1):
            self._reduced = source
        else:
            reduced_size = (math.ceil(width / self._factor[0]), math.ceil(height / self._factor[1]))
            # Not filled (None): every pixel is written before it is read.
            self._reduced = Image.new(source.mode, reduced_size, None)
        # Nothing to shrink: the source itself is the result once it is complete.
        unchanged = target == source.size
        self._result = source if unchanged else Image.new(source.mode, target, None)
        self._reduced_rows = 0  # rows of ``_reduced`` made so far
        self._bands_done = 0
        self._bands = 0 if unchanged else math.ceil(target[1] / BAND_ROWS)

    @property
    def done(self) -> bool:
        return self._bands_done == self._bands

    def advance(self, rows: int) -> None:
        """Shrink what the first ``rows`` final source rows allow."""
        if self.done:
            return
        rows = min(rows, self._source.height)
        ready = self._reduce(rows) if self._reduced is not self._source else rows
        last = ready >= self._reduced.height
        # The box covers the source's own extent: a partial last block counts for its share.
        span_x = self._source.width / self._factor[0]
        scale = self._source.height / self._factor[1] / self._target[1]
        while self._bands_done < self._bands:
            top = self._bands_done * BAND_ROWS
            bottom = min(self._target[1], top + BAND_ROWS)
            if not last and math.ceil(bottom * scale) + _MARGIN > ready:
                return
            box = (0.0, top * scale, span_x, bottom * scale)
            band = self._reduced.resize((self._target[0], bottom - top), _BOX, box=box)
            self._result.paste(band, (0, top))
            self._bands_done += 1

    def result(self) -> Image.Image:
        """The shrunk image; every source row must have been handed over."""
        if not self.done:
            raise RuntimeError("the source is not complete yet")
        return self._result

    def _reduce(self, rows: int) -> int:
        """Reduce whole blocks of final rows (the last, partial block at the end)."""
        step = self._factor[1]
        blocks = self._reduced.height if rows >= self._source.height else rows // step
        if blocks > self._reduced_rows:
            box = (0, self._reduced_rows * step, self._source.width, min(rows, blocks * step))
            self._reduced.paste(self._source.reduce(self._factor, box=box), (0, self._reduced_rows))
            self._reduced_rows = blocks
        return self._reduced_rows


def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` with its longer side at most ``max_side``, averaged as ``BandShrink`` does."""
    return shrink_to(image, fit_size(image.size, max_side))


def shrink_to(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """``image`` averaged down to exactly ``target`` (no larger than the image)."""
    if target == image.size:
        return image
    premultiplied = _PREMULTIPLIED.get(image.mode)
    source = image.convert(premultiplied) if premultiplied else image
    if source.mode not in _BANDED_MODES:
        return image.resize(target, _BOX, reducing_gap=1.0)
    bands = BandShrink(source, target)
    bands.advance(image.height)
    shrunk = bands.result()
    return shrunk.convert(image.mode) if premultiplied else shrunk
