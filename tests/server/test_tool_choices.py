"""The tool's ratio and size choices are the core's values, not a second list."""

from __future__ import annotations

from typing import get_args

from image_core.domain import AspectRatio, ImageSize
from image_server.mcp import AspectRatioChoice, SizeChoice


def test_the_tools_hand_written_choices_equal_the_cores_values() -> None:
    """Until mcp.py derives its choices from AspectRatio/ImageSize (issue 9), they agree."""
    assert get_args(AspectRatioChoice) == tuple(r.value for r in AspectRatio)
    assert get_args(SizeChoice) == tuple(s.value for s in ImageSize)
