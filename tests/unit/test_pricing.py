"""The true cost of an answer from its token counts, checked against hand computations."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core.catalog import known_models
from image_core.domain import ImageSize, ModelSpec, TokenPrices, TokenUsage
from image_core.pricing import MICRO_USD, cost_from_usage

_BY_ID = {spec.model_id: spec for spec in known_models()}
FLASH = _BY_ID["gemini-3.1-flash-image"]
PRO = _BY_ID["gemini-3-pro-image"]
LITE = _BY_ID["gemini-3.1-flash-lite-image"]


def usd(amount: str) -> Decimal:
    return Decimal(amount)


def cost(spec: ModelSpec, usage: TokenUsage | None, queries: int = 0, **kw: bool) -> Decimal:
    priced = cost_from_usage(spec, usage, queries, **kw)
    assert priced is not None
    return priced.usd


def test_a_flash_1k_image_costs_its_prompt_and_image_tokens() -> None:
    """1290 prompt tokens at $0.50/M + 1120 image tokens at $60/M = 0.000645 + 0.0672."""
    usage = TokenUsage(1290, 1120, None, 2410, image_output_tokens=1120)

    assert cost(FLASH, usage) == usd("0.067845")


def test_pro_bills_its_thinking_as_text_output() -> None:
    """Pro 1K, 240 thinking tokens: 1290*2 + 1120*120 + 240*12, per million."""
    usage = TokenUsage(1290, 1120, 240, 2650, image_output_tokens=1120, text_output_tokens=None)

    # 0.00258 + 0.1344 + 0.00288
    assert cost(PRO, usage) == usd("0.13986")


def test_text_beside_the_image_is_billed_as_text_output() -> None:
    """Flash: 20 prompt, 1120 image and 12 text tokens: 0.00001 + 0.0672 + 0.000036."""
    usage = TokenUsage(20, 1132, None, 1152, image_output_tokens=1120, text_output_tokens=12)

    assert cost(FLASH, usage) == usd("0.067246")


def test_a_grounded_image_adds_its_search_results_and_each_query() -> None:
    """Search results fed back (tool-use prompt tokens) are input; each query $0.014."""
    usage = TokenUsage(300, 1160, None, 1610, image_output_tokens=1120, text_output_tokens=40)
    usage = attrs.evolve(usage, tool_use_prompt_tokens=150)

    # (300 + 150) * 0.5 + 1120 * 60 + 40 * 3 per million, + 2 * 0.014
    # = 0.000225 + 0.0672 + 0.00012 + 0.028
    assert cost(FLASH, usage, 2) == usd("0.095545")
    assert cost(FLASH, usage, 0) == usd("0.067545")


def test_reference_images_are_counted_once_in_the_prompt() -> None:
    """Gemini's prompt count already holds the images: their share is not added again."""
    with_breakdown = TokenUsage(
        1130, 1120, None, 2250, image_output_tokens=1120, image_input_tokens=1120
    )
    without = attrs.evolve(with_breakdown, image_input_tokens=None)

    # 1130 * 0.5 + 1120 * 60, per million
    assert cost(FLASH, with_breakdown) == cost(FLASH, without) == usd("0.067765")


def test_output_without_a_breakdown_is_the_image_when_one_came() -> None:
    """Older answers only say how many output tokens: the image's, or the text's."""
    usage = TokenUsage(100, 1120, None, 1220)

    assert cost(FLASH, usage) == usd("0.00005") + usd("0.0672")
    assert cost(FLASH, usage, image_came=False) == usd("0.00005") + usd("0.00336")


def test_output_the_breakdown_leaves_unnamed_is_priced_as_text() -> None:
    """1200 output tokens of which 1120 are image: the other 80 are text (unspecified)."""
    usage = TokenUsage(0, 1200, None, 1200, image_output_tokens=1120)

    assert cost(FLASH, usage) == usd("0.0672") + usd("0.00024")


def test_a_text_only_answer_costs_its_prompt_and_its_words() -> None:
    """A refusal in words still bills: 40 prompt tokens and 90 text tokens on flash."""
    usage = TokenUsage(40, 90, None, 130, text_output_tokens=90)

    assert cost(FLASH, usage, image_came=False) == usd("0.00002") + usd("0.00027")


def test_no_usage_means_no_true_cost() -> None:
    assert cost_from_usage(FLASH, None) is None


def test_tokens_of_an_unpriced_kind_mean_no_true_cost() -> None:
    """A model with only an image price cannot price a prompt; without a prompt it can."""
    image_price_only = attrs.evolve(FLASH, token_prices=TokenPrices(image_output=Decimal(60)))
    no_prices = attrs.evolve(FLASH, token_prices=TokenPrices())

    assert cost_from_usage(image_price_only, TokenUsage(10, 1120, image_output_tokens=1120)) is None
    assert cost_from_usage(image_price_only, TokenUsage(0, 1120, 0, 1120)) is not None
    assert cost_from_usage(image_price_only, TokenUsage(None, 1120)) is not None
    assert cost_from_usage(no_prices, TokenUsage(None, 1120)) is None
    assert cost_from_usage(no_prices, TokenUsage(), 1) == cost_from_usage(FLASH, TokenUsage(), 1)


def test_a_negative_count_means_no_true_cost() -> None:
    assert cost_from_usage(FLASH, TokenUsage(-1, 1120)) is None
    assert cost_from_usage(FLASH, TokenUsage(1, 1120, tool_use_prompt_tokens=-5)) is None


def test_a_negative_number_of_queries_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="search_queries"):
        cost_from_usage(FLASH, TokenUsage(1, 1), -1)


def test_the_cost_is_kept_to_the_micro_dollar_rounding_half_up() -> None:
    """1 input token at $0.50/M is half a micro-dollar: it rounds up; 0.25/M rounds down."""
    assert cost(FLASH, TokenUsage(1, 0)) == MICRO_USD
    assert cost(FLASH, TokenUsage(3, 0)) == usd("0.000002")  # 1.5 micro-dollars
    assert cost(FLASH, TokenUsage(0, 1)) == usd("0.00006")  # not rounded to cents
    assert cost(LITE, TokenUsage(1, 0)) == usd("0")  # a quarter of a micro-dollar
    assert cost(LITE, TokenUsage(2, 0)) == MICRO_USD  # half


@pytest.mark.parametrize("spec", [s for s in known_models() if ImageSize.S1K in s.image_tokens])
def test_an_image_alone_costs_its_list_price(spec: ModelSpec) -> None:
    """The catalog's token prices agree with its list prices (to the cent shown)."""
    tokens = spec.image_tokens[ImageSize.S1K]
    priced = cost_from_usage(spec, TokenUsage(0, tokens, image_output_tokens=tokens))

    assert priced is not None
    assert priced.display() == spec.price(ImageSize.S1K).display()


def test_every_shipped_model_prices_every_kind_of_token() -> None:
    """So an answer of any shipped model has a true cost (input, text, image)."""
    for spec in known_models():
        prices = spec.token_prices
        assert None not in (prices.text_input, prices.text_output, prices.image_output), spec


_COUNTS = st.none() | st.integers(min_value=0, max_value=10_000_000)


@given(
    prompt=_COUNTS,
    image=_COUNTS,
    text=_COUNTS,
    thoughts=_COUNTS,
    tool=_COUNTS,
    queries=st.integers(min_value=0, max_value=50),
)
def test_the_cost_is_the_exact_sum_of_its_parts(
    prompt: int | None,
    image: int | None,
    text: int | None,
    thoughts: int | None,
    tool: int | None,
    queries: int,
) -> None:
    """Priced together or kind by kind, the same dollars (before rounding to micro-dollars)."""
    output = (image or 0) + (text or 0)
    usage = TokenUsage(prompt, output, thoughts, None, image, text, None, tool)
    prices = PRO.token_prices
    assert prices.text_input is not None
    assert prices.text_output is not None
    assert prices.image_output is not None
    if image is None and text is None:  # no breakdown: the output is the image
        image = output
    exact = (
        ((prompt or 0) + (tool or 0)) * prices.text_input
        + (image or 0) * prices.image_output
        + ((text or 0) + (thoughts or 0)) * prices.text_output
    ) / 1_000_000 + queries * PRO.search_query_price.usd

    assert cost(PRO, usage, queries) == exact.quantize(MICRO_USD)
