"""The tool's ratio and size choices are the core's values, not a second list."""

from __future__ import annotations

from typing import get_args

from image_core.domain import AspectRatio, ImageSize
from image_server.mcp import SIZE_SPELLINGS, AspectRatioChoice, SizeChoice


def test_the_tools_hand_written_choices_equal_the_cores_values() -> None:
    """The choices are the core's values, plus the other spellings of a size (0.5K is 512)."""
    assert get_args(AspectRatioChoice) == tuple(r.value for r in AspectRatio)
    assert get_args(SizeChoice) == (*(s.value for s in ImageSize), *SIZE_SPELLINGS)
    assert all(ImageSize.parse(spelling) for spelling in SIZE_SPELLINGS)
