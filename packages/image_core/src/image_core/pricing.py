"""The true cost of one answer: its token counts at the model's prices per token.

The list price per image (``ModelSpec.prices``) is an estimate made before the call;
once Gemini has answered, its usage metadata says how many tokens of each kind it
billed, and ``cost_from_usage`` prices them:

- input: ``prompt_tokens`` plus ``tool_use_prompt_tokens`` at ``text_input``. Gemini's
  ``promptTokenCount`` already includes the reference images (``image_input_tokens`` is
  only its IMAGE share, as ``promptTokensDetails`` says), so image input is never added
  a second time; search results fed back to the model are counted apart
  (``toolUsePromptTokenCount``) and are added.
- image output: ``image_output_tokens`` at ``image_output``.
- text output: ``text_output_tokens`` plus ``thoughts_tokens`` at ``text_output``
  (Gemini counts thinking apart from ``candidatesTokenCount`` and bills it as text).
  Any part of ``output_tokens`` the breakdown does not name (a modality Gemini leaves
  unspecified, which it documents as text) is priced as text output too.
- without a breakdown (answers from before Gemini sent ``candidatesTokensDetails``),
  all of ``output_tokens`` is priced as image output when an image came, and as text
  output when none did.
- each Google Search query of a grounded request at ``search_query_price``.

A count Gemini leaves out is zero (its JSON omits zero counts). The sum is exact
(``Decimal``) and kept to the micro-dollar (0.000001 USD, half up), not rounded to
cents: a 1K image is a few cents and its text is a fraction of one. ``None`` means the
cost cannot be known: no usage at all, a negative count (nonsense), or tokens of a kind
the model has no price for; the caller then keeps the list-price estimate.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, ROUND_UP, Context, Decimal
from typing import Final

import attrs

from image_core.domain import CostEstimate, ImageSize, ModelSpec, TokenUsage

MICRO_USD: Final = Decimal("0.000001")
"""What a true cost is kept to: one millionth of a dollar."""
_PER_MILLION: Final = Decimal(1_000_000)
_EXACT: Final = Context(prec=60)


def cost_from_usage(
    spec: ModelSpec,
    usage: TokenUsage | None,
    search_queries: int = 0,
    *,
    image_came: bool = True,
) -> CostEstimate | None:
    """What one answer of ``spec`` cost by its token counts (see the module for the rules).

    ``search_queries`` is how many Google Search queries a grounded request ran.
    ``image_came`` says whether the answer held an image; it only matters when the
    usage has no breakdown of its output tokens. ``None`` when ``usage`` is ``None``,
    holds a negative count, or a count that is not zero has no known price.
    """
    if usage is None or any(n is not None and n < 0 for n in attrs.astuple(usage)):
        return None
    if search_queries < 0:
        raise ValueError("search_queries must be 0 or more")
    prices = spec.token_prices
    image_tokens, text_tokens = _output_split(usage, image_came=image_came)
    parts = (
        (_count(usage.prompt_tokens) + _count(usage.tool_use_prompt_tokens), prices.text_input),
        (image_tokens, prices.image_output),
        (text_tokens + _count(usage.thoughts_tokens), prices.text_output),
    )
    total = Decimal(0)
    for tokens, per_million in parts:
        if tokens == 0:
            continue
        if per_million is None:
            return None
        total = _EXACT.add(total, _EXACT.divide(_EXACT.multiply(per_million, tokens), _PER_MILLION))
    total = _EXACT.add(total, _EXACT.multiply(spec.search_query_price.usd, search_queries))
    return CostEstimate(total.quantize(MICRO_USD, rounding=ROUND_HALF_UP, context=_EXACT))


def _output_split(usage: TokenUsage, *, image_came: bool) -> tuple[int, int]:
    """Output tokens as (image, text), thinking left out."""
    output = _count(usage.output_tokens)
    if usage.image_output_tokens is None and usage.text_output_tokens is None:
        return (output, 0) if image_came else (0, output)
    image = _count(usage.image_output_tokens)
    text = max(_count(usage.text_output_tokens), output - image)
    return image, text


def _count(tokens: int | None) -> int:
    """A reported count, ``None`` (left out) being zero."""
    return 0 if tokens is None else tokens


THINKING_ALLOWANCE: Final = 1500
"""Thinking tokens a reservation allows for: the models think before they draw and
bill it as text output (Pro always; Nano Banana 2 at its level)."""
REFERENCE_TOKENS_BOUND: Final = 1120
"""Input tokens a reservation allows per reference image (a high media resolution)."""
PROMPT_TOKENS_PER_CHAR: Final = Decimal("0.5")
"""A generous bound on prompt tokens per character (about four characters make one)."""


def upper_estimate(
    spec: ModelSpec, size: ImageSize, *, prompt_chars: int, references: int, grounded: bool
) -> CostEstimate:
    """What one answer may cost at most, about: reserved before the call so a budget holds.

    The list price covers the image only; the true cost also has the prompt, the
    references and the thinking. This is the larger of the list price and the image's
    tokens plus those allowances at the model's prices per token, plus one search
    query when grounded. A model without token prices reserves its list price.
    """
    list_price = spec.price(size).usd
    prices = spec.token_prices
    image_tokens = spec.image_tokens.get(size)
    bound = list_price
    if image_tokens is not None and prices.image_output is not None:
        prompt_tokens = math.ceil(PROMPT_TOKENS_PER_CHAR * prompt_chars)
        inputs = prompt_tokens + REFERENCE_TOKENS_BOUND * references
        total = prices.image_output * image_tokens
        total += (prices.text_input or Decimal(0)) * inputs
        total += (prices.text_output or Decimal(0)) * THINKING_ALLOWANCE
        bound = max(list_price, total / _PER_MILLION)
    if grounded:
        bound += spec.search_query_price.usd
    return CostEstimate(bound.quantize(MICRO_USD, rounding=ROUND_UP, context=_EXACT))
