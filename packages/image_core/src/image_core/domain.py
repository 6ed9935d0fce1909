"""Value objects of image generation: immutable, validated, free of any framework.

Money is ``Decimal`` (US dollars) and time is timezone-aware UTC, so totals add up
exactly and timestamps compare safely.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Context, Decimal
from types import MappingProxyType
from typing import Any, Final, TypeVar

import attrs

from image_core import names
from image_core.errors import InvalidRequest

MAX_PROMPT_CHARS = 32_000
MAX_REFERENCE_IMAGES = 14
MAX_IMAGES_PER_CALL = 4
"""The most images one request may ask for (``count``): each is a paid call of its own."""
MAX_LEVEL_CHARS = 20
"""Longer than any thinking level's name: anything longer is refused unread."""
#: What Google bills per Google Search query a grounded request runs ($14 per 1000, for
#: the Gemini 3 family after the free monthly allowance, which the estimate ignores).
SEARCH_QUERY_PRICE: Final = Decimal("0.014")
#: The most one price may be (an image's, as recorded or configured): far above any
#: list price, yet small enough that every sum stays exact and every page can format it.
MAX_PRICE_USD: Final = Decimal(1_000_000)
PRICE_RULE: Final = "use a number of US dollars from 0 to 1000000"

_E = TypeVar("_E", bound=enum.StrEnum)
_WIDE = Context(prec=60)


class ImageSize(enum.StrEnum):
    """Output resolution tier; Gemini names them by the long side in pixels.

    Not every model offers every size: each ``ModelSpec`` lists its own (``512`` is
    Nano Banana 2's only, for now).
    """

    S512 = "512"
    S1K = "1K"
    S2K = "2K"
    S4K = "4K"

    @property
    def long_side(self) -> int:
        """Pixels on the longer side of an image of this tier."""
        return _LONG_SIDES[self.value]

    @classmethod
    def parse(cls, raw: str) -> ImageSize | None:
        """Any accepted spelling (``1k``, ``0.5K``, ``512``), or ``None`` for none of them."""
        cleaned = raw.strip().upper()
        cleaned = _SIZE_SPELLINGS.get(cleaned, cleaned)
        try:
            return cls(cleaned)
        except ValueError:
            return None


_LONG_SIDES: Final = {"512": 512, "1K": 1024, "2K": 2048, "4K": 4096}
_SIZE_SPELLINGS: Final = {"0.5K": "512", "512PX": "512"}
#: How much longer than a 1K image one of each size usually takes.
_SLOWER: Final = {"512": 0.8, "1K": 1.0, "2K": 1.5, "4K": 2.5}


def by_long_side(sizes: Iterable[ImageSize]) -> list[ImageSize]:
    """``sizes`` from the smallest to the largest (their names do not sort that way)."""
    return sorted(sizes, key=lambda s: s.long_side)


class AspectRatio(enum.StrEnum):
    """Every width:height ratio the current Gemini image models accept.

    Not every model takes every ratio: each ``ModelSpec`` lists its own.
    """

    R1_1 = "1:1"
    R2_3 = "2:3"
    R3_2 = "3:2"
    R3_4 = "3:4"
    R4_3 = "4:3"
    R4_5 = "4:5"
    R5_4 = "5:4"
    R9_16 = "9:16"
    R16_9 = "16:9"
    R21_9 = "21:9"
    R1_4 = "1:4"
    R4_1 = "4:1"
    R1_8 = "1:8"
    R8_1 = "8:1"

    @property
    def parts(self) -> tuple[int, int]:
        """The ratio as ``(width, height)`` integers."""
        width, height = self.value.split(":")
        return int(width), int(height)

    def dimensions(self, size: ImageSize) -> tuple[int, int]:
        """Pixel size of an image of this ratio whose long side matches ``size``."""
        width, height = self.parts
        long_side = size.long_side
        if width >= height:
            return long_side, max(1, round(long_side * height / width))
        return max(1, round(long_side * width / height)), long_side


STANDARD_RATIOS = frozenset(
    AspectRatio(r)
    for r in ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
)
ALL_RATIOS = frozenset(AspectRatio)
ALL_SIZES = frozenset(ImageSize)


def _non_empty(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        raise ValueError(f"{attribute.name} must be a finite, non-negative amount")


def _aware(_: object, attribute: attrs.Attribute[Any], value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError(f"{attribute.name} must be timezone-aware UTC")


def _plus_zero(amount: Decimal) -> Decimal:
    """``-0`` becomes ``0`` so no price ever displays as ``$-0.00``."""
    return amount + 0 if amount.is_finite() else amount


@attrs.frozen
class CostEstimate:
    """An estimated price in US dollars, from list prices, never billed amounts."""

    usd: Decimal = attrs.field(converter=_plus_zero, validator=_non_negative)

    @classmethod
    def price(cls, amount: Decimal) -> CostEstimate:
        """One price, as a record holds it or the configuration sets it.

        ``ValueError`` (saying the rule) unless finite and from 0 to ``MAX_PRICE_USD``
        inclusive. Sums of prices may exceed the bound; a single price never does.
        """
        if not amount.is_finite() or not 0 <= amount <= MAX_PRICE_USD:
            raise ValueError(f"{amount} is not a price: {PRICE_RULE}")
        return cls(amount)

    @classmethod
    def zero(cls) -> CostEstimate:
        """No cost: used for sums."""
        return cls(Decimal(0))

    def __add__(self, other: CostEstimate) -> CostEstimate:
        return CostEstimate(self.usd + other.usd)

    def display(self) -> str:
        """Dollars with at least two and at most three decimals, e.g. ``$0.067``."""
        if self.usd == self.usd.quantize(Decimal("0.01"), context=_WIDE):
            return f"${self.usd.quantize(Decimal('0.01'), context=_WIDE)}"
        return f"${self.usd.quantize(Decimal('0.001'), context=_WIDE)}"


def _prices_cover_sizes(instance: ModelSpec, _: attrs.Attribute[Any], __: object) -> None:
    missing = set(instance.sizes) - set(instance.prices)
    if missing:
        unpriced = ", ".join(sorted(s.value for s in missing))
        raise ValueError(f"model {instance.alias} has no price for {unpriced}")


def _price_table(prices: Mapping[ImageSize, CostEstimate]) -> Mapping[ImageSize, CostEstimate]:
    return MappingProxyType(dict(prices))


def _size_set(sizes: Iterable[ImageSize]) -> frozenset[ImageSize]:
    return frozenset(sizes)


def _token_table(tokens: Mapping[ImageSize, int]) -> Mapping[ImageSize, int]:
    return MappingProxyType(dict(tokens))


@attrs.frozen
class TokenPrices:
    """Google's prices per million tokens, where known (``None``: not published or not known).

    Per-image list prices (``ModelSpec.prices``) are what the product estimates before a
    call; these are the facts they come from, and what ``image_core.pricing`` prices an
    answer's token counts at. Three prices cover every token an image answer bills:

    - ``text_input``: every input token. The image models bill text and images in the
      prompt alike, so images sent as references are billed at this price too, and so
      are the search results a grounded request feeds back to the model.
    - ``text_output``: text the model writes beside the image, and its thinking tokens
      (Google bills thinking as text output).
    - ``image_output``: the generated image's tokens.
    """

    image_output: Decimal | None = None
    text_input: Decimal | None = None
    """Every input token: prompt text, reference images, tool-use (search) results."""
    text_output: Decimal | None = None
    """Text output and thinking tokens."""

    def image_price(self, tokens: int) -> CostEstimate | None:
        """What ``tokens`` image output tokens cost, if the price per token is known."""
        if self.image_output is None:
            return None
        return CostEstimate.price(self.image_output * tokens / Decimal(1_000_000))


@attrs.frozen
class ModelSpec:
    """One image model as the product offers it: names, prices and what it can do.

    ``sizes`` defaults to the sizes ``prices`` names. ``thinking_levels`` and
    ``search_grounding`` are facts about the model (what Gemini lets it do);
    ``successor`` is the id of the model Google offers in its place, when one is known.
    """

    alias: str = attrs.field(validator=_non_empty)
    model_id: str = attrs.field(validator=_non_empty)
    display_name: str
    use_for: str
    prices: Mapping[ImageSize, CostEstimate] = attrs.field(
        converter=_price_table, validator=_prices_cover_sizes
    )
    aspect_ratios: frozenset[AspectRatio] = ALL_RATIOS
    sizes: frozenset[ImageSize] = attrs.field(converter=_size_set)
    also_known_as: frozenset[str] = frozenset()
    typical_seconds: int = 30
    """How long one 1K image usually takes; larger sizes take longer (``usual_seconds``)."""
    token_prices: TokenPrices = TokenPrices()
    image_tokens: Mapping[ImageSize, int] = attrs.field(factory=dict, converter=_token_table)
    """Image output tokens one image of each size is billed, where known."""
    max_references: int = MAX_REFERENCE_IMAGES
    thinking_levels: tuple[str, ...] = ()
    search_grounding: bool = False
    successor: str | None = None
    search_query_price: CostEstimate = CostEstimate(SEARCH_QUERY_PRICE)
    """What one Google Search query of a grounded request costs (``search_grounding``)."""

    @sizes.default
    def _priced_sizes(self) -> frozenset[ImageSize]:
        return frozenset(self.prices)

    def price(self, size: ImageSize) -> CostEstimate:
        """List price of one image at ``size``."""
        return self.prices[size]

    def usual_seconds(self, size: ImageSize) -> int:
        """About how long one image at ``size`` usually takes, end to end."""
        return round(self.typical_seconds * _SLOWER[size.value])

    @property
    def sizes_in_order(self) -> list[ImageSize]:
        """The sizes it offers, smallest first."""
        return by_long_side(self.sizes)

    @property
    def ratios_in_order(self) -> list[AspectRatio]:
        """The aspect ratios it takes, in the order ``AspectRatio`` lists them."""
        return [r for r in AspectRatio if r in self.aspect_ratios]

    def names(self) -> frozenset[str]:
        """Every spelling that resolves to this model, lower-cased."""
        spellings = {self.alias, self.model_id, self.display_name, *self.also_known_as}
        return frozenset(s.strip().lower() for s in spellings if s.strip())


@attrs.frozen
class TokenUsage:
    """Token counts the backend reported for one answer, as Gemini's usage metadata has them.

    The first four are the totals every answer carries (records written before the
    breakdown existed hold only these, so they keep their names). The rest are the
    breakdown by modality, which the true cost needs because each kind of token has its
    own price; ``None`` means the answer did not say (Gemini leaves out zero counts too).
    ``prompt_tokens`` already includes ``image_input_tokens``; ``output_tokens`` is
    ``image_output_tokens`` plus ``text_output_tokens``; thinking tokens are counted in
    ``thoughts_tokens`` only, and search results fed back to the model in
    ``tool_use_prompt_tokens`` only.
    """

    prompt_tokens: int | None = None
    """Everything sent: prompt text and reference images (``promptTokenCount``)."""
    output_tokens: int | None = None
    """Everything in the answer except thinking: image and text (``candidatesTokenCount``)."""
    thoughts_tokens: int | None = None
    """Thinking, billed as text output; Pro always thinks (``thoughtsTokenCount``)."""
    total_tokens: int | None = None
    """The sum of the others, as Gemini counted it (``totalTokenCount``)."""
    image_output_tokens: int | None = None
    """The image's share of ``output_tokens``, billed at the image output price (the
    IMAGE entry of ``candidatesTokensDetails``)."""
    text_output_tokens: int | None = None
    """The text's share of ``output_tokens``, billed at the text output price (the TEXT
    entry of ``candidatesTokensDetails``)."""
    image_input_tokens: int | None = None
    """The reference images' share of ``prompt_tokens`` (the IMAGE entry of
    ``promptTokensDetails``): kept to show what references cost, never added again."""
    tool_use_prompt_tokens: int | None = None
    """Search results a grounded request feeds back to the model, billed as input on top
    of ``prompt_tokens`` (``toolUsePromptTokenCount``)."""


@attrs.frozen
class Identity:
    """Who is calling, as the identity provider vouched for it."""

    email: str
    email_verified: bool = False


@attrs.frozen
class GenerationRequest:
    """What a caller asked for, checked for shape but not yet against a model.

    The validators hold every rule, with the messages a caller reads (``InvalidRequest``),
    so a request built directly and one built by ``parse`` are refused alike; ``parse``
    only converts loose input (trimming, enum spellings, blank references).
    """

    prompt: str = attrs.field()
    aspect_ratio: AspectRatio | None = None
    image_size: ImageSize = ImageSize.S1K
    model: str | None = None
    references: tuple[str, ...] = attrs.field(default=())
    count: int = attrs.field(default=1)
    """How many images to make, each its own paid call (1 to ``MAX_IMAGES_PER_CALL``)."""
    thinking: str | None = attrs.field(default=None)
    """A thinking level the model offers (lower-case), or ``None`` for the model's own."""
    search_grounding: bool = False
    """Ground the image in Google Search results (billed per search query)."""

    @thinking.validator
    def _check_thinking(self, _: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and (not value.strip() or len(value) > MAX_LEVEL_CHARS):
            raise InvalidRequest(
                "thinking is not a thinking level: pass a short level such as 'high', or "
                "leave it out."
            )

    @count.validator
    def _check_count(self, _: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not 1 <= value <= MAX_IMAGES_PER_CALL:
            raise InvalidRequest(
                f"count {value!r} is out of range: one call makes 1 to "
                f"{MAX_IMAGES_PER_CALL} images."
            )

    @prompt.validator
    def _check_prompt(self, _: attrs.Attribute[str], value: str) -> None:
        _check_prompt(value)

    @references.validator
    def _check_references(
        self, _: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
    ) -> None:
        if len(value) > MAX_REFERENCE_IMAGES:
            raise InvalidRequest(
                f"{len(value)} reference images were given; at most {MAX_REFERENCE_IMAGES} "
                "may be used at once."
            )

    @classmethod
    def parse(
        cls,
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        references: list[str] | tuple[str, ...] | None = None,
        count: int | None = None,
        thinking: str | None = None,
        search_grounding: bool | None = None,
    ) -> GenerationRequest:
        """Convert loosely typed input; the validators refuse what is wrong (``InvalidRequest``).

        The prompt is checked first (by the validator's own rule) so its problem is the
        one reported when several parts are wrong.
        """
        _check_prompt(prompt)
        ratio = _parse_enum(AspectRatio, aspect_ratio, "aspect_ratio")
        size = _parse_size(image_size) or ImageSize.S1K
        refs = tuple(r.strip() for r in references or () if r.strip())
        wanted_model = model.strip() if model and model.strip() else None
        level = thinking.strip().lower() if thinking and thinking.strip() else None
        return cls(
            prompt,
            ratio,
            size,
            wanted_model,
            refs,
            count=1 if count is None else count,
            thinking=level,
            search_grounding=bool(search_grounding),
        )


def _check_prompt(value: str) -> None:
    if not value.strip():
        raise InvalidRequest("The prompt is empty: describe the image you want.")
    if len(value) > MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"The prompt has {len(value)} characters; the limit is {MAX_PROMPT_CHARS}."
        )
    if not _is_encodable(value):
        raise InvalidRequest("The prompt contains characters that are not valid text.")


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_size(raw: str | None) -> ImageSize | None:
    if raw is None or not raw.strip():
        return None
    size = ImageSize.parse(raw)
    if size is None:
        choices = ", ".join(s.value for s in ImageSize)
        raise InvalidRequest(
            f"image_size {raw!r} is not supported; choose one of: {choices} (0.5K means 512)."
        )
    return size


def _parse_enum(kind: type[_E], raw: str | None, field: str) -> _E | None:
    if raw is None or not raw.strip():
        return None
    cleaned = raw.strip().upper() if kind is ImageSize else raw.strip()
    try:
        return kind(cleaned)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise InvalidRequest(
            f"{field} {raw!r} is not supported; choose one of: {choices}."
        ) from None


class GenerationStatus(enum.StrEnum):
    """Where a generation stands: its record is written before the paid call is sent."""

    RENDERING = "rendering"
    DONE = "done"
    FAILED = "failed"


@attrs.frozen
class GroundingSource:
    """One web page a grounded image drew on."""

    uri: str
    title: str | None = None


@attrs.frozen
class Grounding:
    """What Google Search did for a grounded request: its queries, the pages, their cost.

    ``cost`` is the queries' estimated price (``ModelSpec.search_query_price`` each); it
    is part of the generation's ``cost`` too, so totals need nothing else.
    """

    queries: tuple[str, ...] = ()
    sources: tuple[GroundingSource, ...] = ()
    cost: CostEstimate = CostEstimate(Decimal(0))


class CostBasis(enum.StrEnum):
    """Where a recorded cost comes from."""

    USAGE = "usage"
    """Gemini's own token counts for the answer, at the catalog's prices per token."""
    LIST_PRICE = "list_price"
    """The list price per image (no usage came back, or the record predates usage)."""


@attrs.frozen
class Generation:
    """One generation and everything the dashboard needs to know about it.

    The record exists from the moment the request is sent (``RENDERING``), so a paid
    image is never lost: it becomes ``DONE`` once its PNG is stored, or ``FAILED`` with
    ``failure`` saying why and ``cost`` what the backend may have charged.
    """

    id: uuid.UUID = attrs.field()
    email: str
    prompt: str
    model_alias: str
    model_id: str
    image_size: ImageSize
    aspect_ratio: AspectRatio | None
    created_at: datetime = attrs.field(validator=_aware)
    cost: CostEstimate
    reference_ids: tuple[uuid.UUID, ...] = ()
    reference_uploads: tuple[uuid.UUID, ...] = ()
    """Which of ``reference_ids`` are uploaded photos rather than earlier generations."""
    token_usage: TokenUsage | None = None
    backend: str = "gemini"
    width: int | None = None
    height: int | None = None
    status: GenerationStatus = GenerationStatus.DONE
    failure: str | None = None
    thinking_level: str | None = None
    """The thinking level asked for, if one was (``None``: the model's own)."""
    search_grounding: bool = False
    """Whether the image was to be grounded in Google Search."""
    grounding: Grounding | None = None
    """What the search found, once known: its queries, sources and their cost."""
    estimate: CostEstimate | None = None
    """The list-price estimate made before the call, kept beside ``cost``; ``None`` in
    records from before costs came from usage, whose ``cost`` is that estimate."""
    cost_basis: CostBasis = CostBasis.LIST_PRICE
    """Whether ``cost`` comes from Gemini's token counts or is the list-price estimate."""

    @id.validator
    def _check_id(self, _: attrs.Attribute[uuid.UUID], value: uuid.UUID) -> None:
        if not names.is_image_id(value):
            raise ValueError("generation ids are uuid4")

    @property
    def file_name(self) -> str:
        """The public file name, ``{uuid}.png``."""
        return names.image_file_name(self.id)

    @property
    def reference_names(self) -> tuple[str, ...]:
        """The references as a caller would pass them again: ``{uuid}.png`` for an
        earlier generation, ``upload-{uuid}`` for an uploaded photo."""
        uploads = set(self.reference_uploads)
        return tuple(
            f"{names.UPLOAD_PREFIX}{r}" if r in uploads else names.image_file_name(r)
            for r in self.reference_ids
        )

    @property
    def is_done(self) -> bool:
        """True when the PNG is stored: galleries show it and it counts as an image."""
        return self.status is GenerationStatus.DONE

    @property
    def is_settled(self) -> bool:
        """True once done or failed: only then does its cost count."""
        return self.status is not GenerationStatus.RENDERING

    @property
    def list_price_estimate(self) -> CostEstimate:
        """The list-price estimate, also for records that kept only one cost."""
        return self.estimate if self.estimate is not None else self.cost

    @property
    def is_placeholder(self) -> bool:
        """True when an offline placeholder made the image, not a real model."""
        return self.backend == "placeholder"


@attrs.frozen
class UserUsage:
    """How many images one person generated and what they are estimated to cost."""

    email: str
    image_count: int
    cost: CostEstimate


@attrs.frozen
class UsageReport:
    """Per-user usage rows (largest spend first) and their total."""

    rows: tuple[UserUsage, ...]

    @property
    def total_count(self) -> int:
        """Images across all rows."""
        return sum(r.image_count for r in self.rows)

    @property
    def total_cost(self) -> CostEstimate:
        """Estimated cost across all rows."""
        return sum((r.cost for r in self.rows), CostEstimate.zero())


def prompt_matches(prompt: str, words: str) -> bool:
    """Whether every word of ``words`` appears in ``prompt``, ignoring case (the text filter)."""
    folded = prompt.casefold()
    return all(word in folded for word in words.casefold().split())


@attrs.frozen
class DailySpend:
    """Estimated spend of one person on one UTC day."""

    day: str  # ISO date, e.g. "2026-11-24"
    email: str
    image_count: int
    cost: CostEstimate


@attrs.frozen
class GalleryPage:
    """One page of a person's generations, newest first."""

    items: tuple[Generation, ...]
    total: int
    offset: int
    limit: int

    @property
    def has_next(self) -> bool:
        """Whether a later page exists."""
        return self.offset + len(self.items) < self.total


@attrs.frozen
class EncodedImage:
    """Image bytes with their media type (a preview or a thumbnail)."""

    data: bytes
    mime_type: str


@attrs.frozen
class ProcessedImage:
    """A backend image turned into what we store and show: PNG, preview, thumbnail."""

    png: bytes
    width: int
    height: int
    preview: EncodedImage
    thumbnail: EncodedImage


@attrs.frozen
class ReferenceImage:
    """An earlier generation (or an uploaded photo) passed to the backend to work from."""

    id: uuid.UUID
    data: bytes
    mime_type: str = "image/png"
    uploaded: bool = False


@attrs.frozen
class BackendRequest:
    """Exactly what is sent to an image backend for one generation."""

    model_id: str
    prompt: str
    image_size: ImageSize
    aspect_ratio: AspectRatio | None
    references: tuple[ReferenceImage, ...] = ()
    thinking_level: str | None = None
    search_grounding: bool = False


@attrs.frozen
class BackendImage:
    """What a backend returned: raw bytes in whatever format it chose."""

    data: bytes
    mime_type: str
    token_usage: TokenUsage | None = None
    text: str | None = None
    """What the model said beside the image, if anything (one trimmed line)."""
    grounding: Grounding | None = None
    """What Google Search found, for a grounded request (``cost`` left at zero)."""


@attrs.frozen
class GenerationResult:
    """What the caller gets back: the stored record plus the inline preview."""

    generation: Generation
    preview: EncodedImage
    note: str | None = None
    """The model's own words beside the image, when it said any."""


@attrs.frozen
class PendingGeneration:
    """The caller's wait ended before the image did: where and when it will appear."""

    generation: Generation
    expected_seconds: int
    """About how many more seconds it usually takes (never less than a few)."""


@attrs.frozen
class FailedImage:
    """One image of a request that did not come: why, and its record if one was kept.

    ``generation`` is the ``FAILED`` record when the attempt may have been billed (its
    cost counts); ``None`` when nothing was kept (a refusal, not billed).
    """

    error: Exception
    message: str
    generation: Generation | None = None


ImageOutcome = GenerationResult | PendingGeneration | FailedImage
"""What became of one image of a request."""


class BudgetKind(enum.StrEnum):
    """Which budget a figure is measured against."""

    PERSONAL_DAILY = "personal_daily"
    PERSONAL_MONTHLY = "personal_monthly"
    SERVER_MONTHLY = "server_monthly"

    @property
    def personal(self) -> bool:
        """The person's own budget (else the whole server's)."""
        return self is not BudgetKind.SERVER_MONTHLY

    @property
    def period_words(self) -> str:
        """``today`` or ``this month``: the UTC span it covers, as a reply says it."""
        return "today" if self is BudgetKind.PERSONAL_DAILY else "this month"


@attrs.frozen
class Standing:
    """Where a request leaves its budget: the tightest one that applies, this request counted.

    ``used`` is what the period's records settled plus what calls in flight reserved,
    this request's ``this_request`` included; ``resets_at`` is midnight UTC.
    """

    kind: BudgetKind
    this_request: CostEstimate
    used: CostEstimate
    limit: CostEstimate
    resets_at: datetime = attrs.field(validator=_aware)

    @property
    def left(self) -> CostEstimate:
        """What is left of the budget after this request (never below zero)."""
        return CostEstimate(max(Decimal(0), self.limit.usd - self.used.usd))


@attrs.frozen
class GenerationBatch:
    """Every image one request asked for (``count``), in order, whatever became of each."""

    outcomes: tuple[ImageOutcome, ...]
    standing: Standing | None = None
    """Where the request left the tightest budget that applies (``None``: no budget)."""

    @property
    def cost(self) -> CostEstimate:
        """What the request's images cost as recorded, failures that may be billed too."""
        total = CostEstimate.zero()
        for outcome in self.outcomes:
            if outcome.generation is not None:
                total += outcome.generation.cost
        return total

    @property
    def estimate(self) -> CostEstimate:
        """The list-price estimate of the same images."""
        total = CostEstimate.zero()
        for outcome in self.outcomes:
            if outcome.generation is not None:
                total += outcome.generation.list_price_estimate
        return total


@attrs.frozen
class FoundGeneration:
    """A generation looked up again: the preview when it is done, else how it stands."""

    generation: Generation
    preview: EncodedImage | None = None
    expected_seconds: int | None = None
    """While rendering: about how many more seconds it usually takes."""


@attrs.frozen
class ReconcileReport:
    """What start-up found unfinished from an earlier run, and what it made of it."""

    done: int = 0
    failed: int = 0


UPLOAD_FILE_NAME_CHARS: Final = 200
"""The longest display name an uploaded photo keeps (the name it had on the device)."""


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be positive, not {value}")


@attrs.frozen
class Upload:
    """A photo a person uploaded to use as a reference: who, when, and what was kept.

    Only its owner (and admins) may use or see it; it is never served publicly. The
    stored image is the normalised one (``mime_type`` JPEG or PNG, no metadata).
    """

    id: uuid.UUID = attrs.field(validator=lambda _, __, v: names.check_image_id(v))
    email: str
    """The owner, normalised (``access.owner_key``)."""
    created_at: datetime = attrs.field(validator=_aware)
    width: int = attrs.field(validator=_positive)
    height: int = attrs.field(validator=_positive)
    size_bytes: int = attrs.field(validator=_positive)
    """What the stored (normalised) image weighs."""
    mime_type: str = attrs.field(validator=attrs.validators.in_(names.UPLOAD_EXTENSIONS))
    file_name: str | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.max_len(UPLOAD_FILE_NAME_CHARS)),
    )
    """The name the file had on the person's device, for display only (cleaned)."""

    @property
    def name(self) -> str:
        """What to pass in ``reference_images``: ``upload-{uuid}.jpg`` (or ``.png``)."""
        return names.upload_name(self.id, self.mime_type)


@attrs.frozen
class NormalisedPhoto:
    """An uploaded photo as it is kept: upright, sRGB, without metadata, and its thumbnail."""

    image: EncodedImage
    width: int
    height: int
    thumbnail: EncodedImage
