"""Thinking and search grounding through the real google-genai client to the fake Gemini.

What the adapter sends (``thinkingConfig.thinkingLevel``, the ``googleSearch`` tool) is
read off the wire the fake recorded; what it reads back (``groundingMetadata``) comes
from the fake's answer, shaped like Google's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from google.genai import types

from image_core.domain import BackendRequest, GroundingSource, ImageSize
from image_server.adapters.gemini import MAX_SOURCES, GeminiImageBackend, grounding_of
from tests.fakes.fake_gemini import FakeGemini

KEY = "AIzaSyFAKE-controls-key-0123456789"
FLASH = "gemini-3.1-flash-image"
PROMPT = "the tallest lighthouse in Brittany at dusk"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as server:
        yield server


@pytest.fixture
async def backend(fake: FakeGemini) -> AsyncIterator[GeminiImageBackend]:
    async with GeminiImageBackend(api_key=KEY, base_url=fake.base_url) as gemini:
        yield gemini


def ask(**controls: object) -> BackendRequest:
    return BackendRequest(FLASH, PROMPT, ImageSize.S1K, None, (), **controls)  # type: ignore[arg-type]


def thinking_sent(fake: FakeGemini) -> object:
    """The level sent: the SDK writes ``thinking_level``; Google's parser takes either case."""
    config = fake.requests[0].config["thinkingConfig"]
    assert set(config) <= {"thinkingLevel", "thinking_level"}
    return config.get("thinkingLevel", config.get("thinking_level"))


async def test_a_thinking_level_is_sent_as_the_sdk_spells_it(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    image = await backend.generate(ask(thinking_level="high"))
    assert image.data.startswith(b"\x89PNG")
    assert thinking_sent(fake) == "HIGH"


async def test_without_controls_neither_thinking_nor_tools_are_sent(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    image = await backend.generate(ask())
    sent = fake.requests[0]
    assert "thinkingConfig" not in sent.config
    assert "tools" not in sent.body
    assert image.grounding is None


async def test_grounding_sends_google_search_and_reads_queries_and_sources(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    image = await backend.generate(ask(search_grounding=True))
    assert fake.requests[0].body["tools"] == [{"googleSearch": {}}]
    assert image.data.startswith(b"\x89PNG")
    assert image.grounding is not None
    assert image.grounding.queries == ("the tallest lighthouse in Brittany at",)
    assert image.grounding.sources == (
        GroundingSource("https://example.org/source-1", "example.org"),
        GroundingSource("https://example.com/source-2", "example.com"),
    )


async def test_grounding_and_thinking_go_together(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    image = await backend.generate(ask(search_grounding=True, thinking_level="minimal"))
    assert thinking_sent(fake) == "MINIMAL"
    assert image.grounding is not None
    assert len(image.grounding.queries) == 1


def test_what_grounding_keeps_is_bounded() -> None:
    """Every query counts (each is billed); what is kept of the text and the pages is capped."""
    metadata = types.GroundingMetadata(
        web_search_queries=["q" * 5000, "second"],
        grounding_chunks=[
            types.GroundingChunk(
                web=types.GroundingChunkWeb(uri=f"https://e.org/{i}", title="t" * 900)
            )
            for i in range(50)
        ],
    )
    grounding = grounding_of(metadata)
    assert grounding is not None
    assert len(grounding.queries) == 2
    assert max(len(q) for q in grounding.queries) <= 200
    assert len(grounding.sources) == MAX_SOURCES
    assert all(len(s.title or "") <= 200 for s in grounding.sources)
