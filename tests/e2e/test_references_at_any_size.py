"""Iterating on any stored image, at any size: what reaches Gemini fits its limits.

The real service, codec and google-genai client against the fake Gemini, which returns
photo-like PNGs at the real sizes (about 22 MB at 4K, three times Gemini's inline limit
for one image).
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from PIL import Image

from image_core.domain import GenerationRequest, Identity, ImageSize
from image_core.service import ImageService
from image_server.adapters.gemini import GeminiImageBackend
from image_server.app import build_service
from image_server.settings import load_settings
from tests.fakes.fake_gemini import FakeGemini

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

GEMINI_INLINE_LIMIT = 7 * 1024 * 1024
GEMINI_REQUEST_LIMIT = 20 * 1000 * 1000
ADA = Identity(email="ada@example.com", email_verified=True)


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key="key") as fake:
        yield fake


@pytest.fixture
async def service(tmp_path: Path, gemini: FakeGemini) -> AsyncIterator[ImageService]:
    settings = load_settings(
        {"IMG_ROOT": str(tmp_path), "IMG_AUTH_DISABLED": "1", "GEMINI_API_KEY": "key"}
    )
    backend = GeminiImageBackend(api_key="key", base_url=gemini.base_url, max_attempts=1)
    async with backend:
        yield build_service(settings, backend=backend)


def request(prompt: str, *references: str, size: ImageSize = ImageSize.S1K) -> GenerationRequest:
    return GenerationRequest.parse(prompt, image_size=size.value, references=list(references))


def sent_images(gemini: FakeGemini) -> list[bytes]:
    """The inline images of the last request, as the fake decoded them from the wire."""
    return [image.data for image in gemini.requests[-1].images]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_4k_result_works_as_a_reference_and_stays_untouched(
    service: ImageService, gemini: FakeGemini, tmp_path: Path
) -> None:
    """A 22 MB PNG is sent as a copy under the inline limit; the stored file never changes."""
    first = await service.generate(ADA, request("a harbour at dusk", size=ImageSize.S4K))
    stored = tmp_path / first.generation.file_name
    assert stored.stat().st_size > 15 * 1024 * 1024, "the fixture must be a real-size 4K photo"
    before = digest(stored)

    await service.generate(ADA, request("the same harbour at night", first.generation.file_name))

    (sent,) = sent_images(gemini)
    assert len(sent) <= GEMINI_INLINE_LIMIT
    with Image.open(io.BytesIO(sent)) as image:
        assert image.format in {"PNG", "JPEG", "WEBP"}
        ratio = image.width / image.height
    width, height = first.generation.width, first.generation.height
    assert width is not None
    assert height is not None
    assert ratio == pytest.approx(width / height, rel=0.01)
    assert digest(stored) == before


async def test_a_small_reference_is_sent_exactly_as_stored(
    service: ImageService, gemini: FakeGemini, tmp_path: Path
) -> None:
    """Nothing is re-encoded when the file already fits."""
    first = await service.generate(ADA, request("a lighthouse"))
    await service.generate(ADA, request("the lighthouse in fog", first.generation.file_name))
    sent = [hashlib.sha256(image).hexdigest() for image in sent_images(gemini)]
    assert sent == [digest(tmp_path / first.generation.file_name)]


async def test_fourteen_4k_references_fit_in_one_request(
    service: ImageService, gemini: FakeGemini
) -> None:
    """The most references Gemini takes, each a 4K photo: the request stays under 20 MB."""
    made = [
        await service.generate(ADA, request(f"scene {n}", size=ImageSize.S4K)) for n in range(2)
    ]
    names = [made[n % 2].generation.file_name for n in range(14)]
    await service.generate(ADA, request("all of them as a collage", *names))

    sent = sent_images(gemini)
    assert len(sent) == 14
    assert all(len(image) <= GEMINI_INLINE_LIMIT for image in sent)
    wire = sum(len(base64.b64encode(image)) for image in sent)
    assert wire < GEMINI_REQUEST_LIMIT
