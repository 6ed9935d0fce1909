"""The true cost end to end: Gemini's usage metadata, read by the real google-genai client,
priced at the catalog's token prices, equals the cost worked out by hand."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from image_core.catalog import ModelCatalog
from image_core.domain import BackendRequest, ImageSize, ReferenceImage, TokenUsage
from image_core.errors import BackendRefused
from image_core.pricing import cost_from_usage
from image_server.adapters.gemini import GeminiImageBackend
from tests.fakes.fake_gemini import FakeGemini, render

pytestmark = pytest.mark.anyio

KEY = "AIzaSyFAKE-true-cost-0123456789abcdef"
PROMPT = "a lighthouse at dusk, oil painting"  # 34 characters: 8 tokens in the fake
CATALOG = ModelCatalog()
FLASH = CATALOG.resolve("flash")
PRO = CATALOG.resolve("pro")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as server:
        yield server


@pytest.fixture
async def backend(fake: FakeGemini) -> AsyncIterator[GeminiImageBackend]:
    async with GeminiImageBackend(
        api_key=KEY,
        base_url=fake.base_url,
        timeout_seconds=60.0,
        max_attempts=1,
        initial_backoff_seconds=0.001,
        max_backoff_seconds=0.01,
    ) as gemini:
        yield gemini


def ask(model_id: str, **extra: Any) -> BackendRequest:
    return BackendRequest(
        model_id=model_id, prompt=PROMPT, image_size=ImageSize.S1K, aspect_ratio=None, **extra
    )


def modalities(**counts: int) -> list[dict[str, Any]]:
    return [{"modality": m, "tokenCount": n} for m, n in counts.items()]


async def test_every_count_gemini_reports_is_priced(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """Pro, grounded, with a reference image, thinking and a line of text."""
    fake.script_usage(
        {
            "promptTokenCount": 1850,
            "promptTokensDetails": modalities(TEXT=730, IMAGE=1120),
            "candidatesTokenCount": 1150,
            "candidatesTokensDetails": modalities(IMAGE=1120, TEXT=30),
            "thoughtsTokenCount": 240,
            "toolUsePromptTokenCount": 410,
            "totalTokenCount": 3650,
        }
    )
    reference = ReferenceImage(uuid.uuid4(), render("earlier", "1:1", None, "PNG"))

    image = await backend.generate(
        ask(PRO.model_id, references=(reference,), search_grounding=True)
    )

    assert image.token_usage == TokenUsage(
        prompt_tokens=1850,
        output_tokens=1150,
        thoughts_tokens=240,
        total_tokens=3650,
        image_output_tokens=1120,
        text_output_tokens=30,
        image_input_tokens=1120,
        tool_use_prompt_tokens=410,
    )
    assert image.grounding is not None
    queries = len(image.grounding.queries)
    assert queries == 1
    # input (1850 + 410) * $2, image 1120 * $120, text and thinking (30 + 240) * $12,
    # per million: 0.00452 + 0.1344 + 0.00324; one search query $0.014.
    priced = cost_from_usage(PRO, image.token_usage, queries)
    assert priced is not None
    assert priced.usd == Decimal("0.15616")


async def test_the_fakes_own_counts_price_like_gemini_would(backend: GeminiImageBackend) -> None:
    """Flash 1K unscripted: 8 prompt tokens, 1120 image tokens and 8 of text."""
    image = await backend.generate(ask(FLASH.model_id))

    priced = cost_from_usage(FLASH, image.token_usage)

    # 8 * $0.50 + 1120 * $60 + 8 * $3, per million
    assert priced is not None
    assert priced.usd == Decimal("0.000004") + Decimal("0.0672") + Decimal("0.000024")


async def test_an_answer_without_a_breakdown_prices_its_output_as_the_image(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """Answers that only give totals: 1290 * $0.50 + 1120 * $60 per million = $0.067845."""
    fake.script_usage(
        {"promptTokenCount": 1290, "candidatesTokenCount": 1120, "totalTokenCount": 2410}
    )

    image = await backend.generate(ask(FLASH.model_id))

    assert image.token_usage == TokenUsage(1290, 1120, None, 2410)
    priced = cost_from_usage(FLASH, image.token_usage)
    assert priced is not None
    assert priced.usd == Decimal("0.067845")


async def test_a_refusal_in_words_has_a_true_cost_too(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """The prompt and the words of a text-only answer are billed: 40 * $0.50 + 90 * $3."""
    fake.script("text_only")
    fake.script_usage(
        {
            "promptTokenCount": 40,
            "promptTokensDetails": modalities(TEXT=40),
            "candidatesTokenCount": 90,
            "candidatesTokensDetails": modalities(TEXT=90),
            "totalTokenCount": 130,
        }
    )

    with pytest.raises(BackendRefused) as caught:
        await backend.generate(ask(FLASH.model_id))

    usage = caught.value.token_usage
    assert usage == TokenUsage(40, 90, None, 130, text_output_tokens=90)
    priced = cost_from_usage(FLASH, usage, image_came=False)
    assert priced is not None
    assert priced.usd == Decimal("0.00029")


async def test_an_answer_without_usage_has_no_true_cost(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """The caller keeps the list-price estimate then."""
    fake.script_usage(None)

    image = await backend.generate(ask(FLASH.model_id))

    assert image.token_usage is None
    assert cost_from_usage(FLASH, image.token_usage) is None
    assert fake.requests[0].behaviour == "ok"


async def test_output_of_no_stated_modality_is_text(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """Unspecified (or absent) modality counts as text, as the SDK documents; entries add up."""
    fake.script_usage(
        {
            "promptTokenCount": 10,
            "candidatesTokenCount": 1128,
            "candidatesTokensDetails": [
                {"modality": "IMAGE", "tokenCount": 1120},
                {"modality": "MODALITY_UNSPECIFIED", "tokenCount": 5},
                {"tokenCount": 3},
            ],
            "totalTokenCount": 1138,
        }
    )

    image = await backend.generate(ask(FLASH.model_id))

    assert image.token_usage is not None
    assert (image.token_usage.image_output_tokens, image.token_usage.text_output_tokens) == (
        1120,
        8,
    )
