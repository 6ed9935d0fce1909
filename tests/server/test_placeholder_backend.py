"""PlaceholderImageBackend: offline, deterministic, exact sizes, clearly labelled."""

from __future__ import annotations

import io
import threading
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from image_core.domain import (
    AspectRatio,
    BackendImage,
    BackendRequest,
    ImageSize,
    ReferenceImage,
)
from image_core.ports import ImageBackend
from image_server.adapters import placeholder
from image_server.adapters.placeholder import (
    BANNER_COLOUR,
    BANNER_TEXT_COLOUR,
    PlaceholderImageBackend,
    render_placeholder,
)

MODEL = "gemini-3-pro-image-preview"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def request(
    prompt: str = "a lighthouse in a storm",
    *,
    ratio: AspectRatio | None = AspectRatio.R1_1,
    size: ImageSize = ImageSize.S1K,
    references: int = 0,
) -> BackendRequest:
    refs = tuple(ReferenceImage(uuid.UUID(int=i, version=4), b"png") for i in range(references))
    return BackendRequest(MODEL, prompt, size, ratio, refs)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image


def banner_height(image: Image.Image) -> int:
    """Rows from the top that start with the banner colour."""
    height = 0
    while height < image.height and image.getpixel((0, height)) == BANNER_COLOUR:
        height += 1
    return height


def assert_labelled(image: Image.Image) -> None:
    """A full-width band of banner colour across the top, with dark text on it."""
    band_height = banner_height(image)
    assert band_height >= max(10, image.height // 25)
    band = image.crop((0, 0, image.width, band_height)).convert("RGB")
    counts = {colour: n for n, colour in band.getcolors(band.width * band_height) or []}
    assert counts.get(BANNER_COLOUR, 0) > band.width * band_height // 2
    assert counts.get(BANNER_TEXT_COLOUR, 0) > 0  # the words are actually drawn
    assert image.getpixel((image.width - 1, 0)) == BANNER_COLOUR


def test_satisfies_the_port() -> None:
    backend: ImageBackend = PlaceholderImageBackend()
    assert backend.name == "placeholder"


@pytest.mark.anyio
@pytest.mark.parametrize("ratio", list(AspectRatio))
async def test_every_ratio_at_1k_has_exact_dimensions_and_a_banner(ratio: AspectRatio) -> None:
    result = await PlaceholderImageBackend().generate(request(ratio=ratio))
    assert isinstance(result, BackendImage)
    assert result.mime_type == "image/png"
    assert result.token_usage is None
    image = decode(result.data)
    assert image.size == ratio.dimensions(ImageSize.S1K)
    assert image.mode == "RGB"
    assert_labelled(image)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ratio", "size"),
    [
        (AspectRatio.R16_9, ImageSize.S4K),
        (AspectRatio.R1_8, ImageSize.S4K),
        (AspectRatio.R3_4, ImageSize.S2K),
    ],
)
async def test_large_sizes_have_exact_dimensions(ratio: AspectRatio, size: ImageSize) -> None:
    result = await PlaceholderImageBackend().generate(request(ratio=ratio, size=size))
    image = decode(result.data)
    assert image.size == ratio.dimensions(size)
    assert_labelled(image)


@pytest.mark.anyio
async def test_no_ratio_means_square() -> None:
    result = await PlaceholderImageBackend().generate(request(ratio=None))
    assert decode(result.data).size == (1024, 1024)


@pytest.mark.anyio
async def test_same_request_gives_identical_bytes() -> None:
    first = await PlaceholderImageBackend().generate(request(references=2))
    second = await PlaceholderImageBackend().generate(request(references=2))
    assert first.data == second.data


def _background(data: bytes) -> object:
    image = decode(data)
    return image.getpixel((image.width - 2, image.height // 2))  # inside the right margin


def test_prompts_change_the_colour_and_the_bytes() -> None:
    prompts = ["a red fox", "a blue whale", "a green frog", "a lighthouse in a storm"]
    renders = [render_placeholder(request(p)) for p in prompts]
    assert len(set(renders)) == len(prompts)
    colours = {_background(r) for r in renders}
    assert len(colours) == len(prompts)
    assert BANNER_COLOUR not in colours


def test_references_are_mentioned() -> None:
    without = render_placeholder(request())
    with_two = render_placeholder(request(references=2))
    assert without != with_two
    assert decode(with_two).size == decode(without).size


def test_prompt_text_is_drawn() -> None:
    short = decode(render_placeholder(request("a")))
    long = decode(render_placeholder(request("a " + "word " * 60)))
    background = _background(render_placeholder(request("a")))

    def ink(image: Image.Image) -> int:
        body = image.crop((0, image.height // 6, image.width, image.height * 3 // 4))
        colours = body.getcolors(body.width * body.height) or []
        return sum(n for n, colour in colours if colour != background)

    assert ink(long) > ink(short) > 0


@pytest.mark.parametrize(
    "prompt",
    [
        pytest.param("x" * 32_000, id="one-32k-word"),
        pytest.param("word " * 6_400, id="32k-of-words"),
        pytest.param("\n" * 32_000, id="only-newlines"),
        pytest.param("\u0301" * 32_000, id="combining-marks"),
        pytest.param("猫 🐱 مرحبا café Ωμέγα \u202e reversed \x00\x07\t tab", id="mixed-scripts"),
        pytest.param("\ud800 lone surrogate", id="lone-surrogate"),
        pytest.param("    ", id="blank"),
    ],
)
@pytest.mark.parametrize("ratio", [AspectRatio.R1_1, AspectRatio.R8_1, AspectRatio.R1_8])
def test_odd_prompts_render_quickly(prompt: str, ratio: AspectRatio) -> None:
    started = time.perf_counter()
    image = decode(render_placeholder(request(prompt, ratio=ratio)))
    assert time.perf_counter() - started < 5
    assert image.size == ratio.dimensions(ImageSize.S1K)
    assert_labelled(image)


@settings(max_examples=40, deadline=None)
@given(prompt=st.text(min_size=1, max_size=400))
def test_any_text_renders(prompt: str) -> None:
    image = decode(render_placeholder(request(prompt, ratio=AspectRatio.R4_1)))
    assert image.size == (1024, 256)


@pytest.mark.anyio
async def test_rendering_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    real = placeholder.render_placeholder

    def spy(req: BackendRequest) -> bytes:
        threads.append(threading.get_ident())
        return real(req)

    monkeypatch.setattr(placeholder, "render_placeholder", spy)
    await PlaceholderImageBackend().generate(request())
    assert threads
    assert threads != [threading.get_ident()]


@pytest.mark.anyio
async def test_delay_simulates_latency() -> None:
    started = time.perf_counter()
    await PlaceholderImageBackend(delay_seconds=0.2).generate(request(ratio=AspectRatio.R8_1))
    assert time.perf_counter() - started >= 0.2


@pytest.mark.parametrize("delay", [-1.0, float("nan"), float("inf")])
def test_rejects_nonsense_delay(delay: float) -> None:
    with pytest.raises(ValueError, match="delay_seconds"):
        PlaceholderImageBackend(delay_seconds=delay)
