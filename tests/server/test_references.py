"""The shell reduces URLs of its own /i/ route to the file name the core accepts."""

from __future__ import annotations

import uuid

import pytest

from image_core.names import parse_image_name
from image_server.references import image_url, reference_name

VALUE = uuid.UUID("0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09")


@pytest.mark.parametrize(
    "url",
    [
        f"https://images.example.com/i/{VALUE}.png",
        f"http://localhost:8766/i/{VALUE}.png",
        f"  https://images.example.com/i/{VALUE}.png  ",
        f"https://images.example.com/i/{VALUE}",
    ],
)
def test_a_url_of_the_image_route_becomes_the_name(url: str) -> None:
    """The part after /i/ is what the core then parses to the id."""
    name = reference_name(url)
    assert "/" not in name
    assert parse_image_name(name) == VALUE


@pytest.mark.parametrize(
    "text",
    [
        f"{VALUE}.png",
        str(VALUE),
        f"  {VALUE}.png  ",
        "cat.png",
        f"../{VALUE}.png",
        f"/srv/images/{VALUE}.png",
        f"file:///srv/images/{VALUE}.png",
        f"https://images.example.com/i/{VALUE}.png?raw=1",
        f"https://images.example.com/x/{VALUE}.png",
        f"https://images.example.com/i/a/{VALUE}.png",
        f"https://images.example.com/i/{VALUE}.jpg",
        "https://images.example.com/i/",
        f"//images.example.com/i/{VALUE}.png",
    ],
)
def test_anything_else_is_left_exactly_as_written(text: str) -> None:
    """Names, paths and foreign URLs pass through untouched, so the core refuses them as given."""
    assert reference_name(text) == text


def test_the_public_url_of_an_image() -> None:
    """Base URL, the image route, the file name."""
    assert image_url("https://h.example", f"{VALUE}.png") == f"https://h.example/i/{VALUE}.png"
