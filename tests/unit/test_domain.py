"""Value objects: requests, ratios, money, generations and model specs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core.domain import (
    ALL_RATIOS,
    MAX_PRICE_USD,
    MAX_PROMPT_CHARS,
    MAX_REFERENCE_IMAGES,
    STANDARD_RATIOS,
    AspectRatio,
    CostEstimate,
    GalleryPage,
    Generation,
    GenerationRequest,
    ImageSize,
    ModelSpec,
    UsageReport,
    UserUsage,
)
from image_core.errors import InvalidRequest

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ID = uuid.UUID("5b0d3c9e-6f4a-4c1e-9a57-2f1f0b8f6a10")


def usd(amount: str) -> CostEstimate:
    """A cost from a decimal literal."""
    return CostEstimate(Decimal(amount))


def make_generation(**changes: Any) -> Generation:
    """A valid generation, with some fields replaced."""
    generation = Generation(
        id=ID,
        email="alice@example.com",
        prompt="a red fox",
        model_alias="flash",
        model_id="gemini-3.1-flash-image",
        image_size=ImageSize.S1K,
        aspect_ratio=AspectRatio.R1_1,
        created_at=NOW,
        cost=usd("0.067"),
    )
    return attrs.evolve(generation, **changes) if changes else generation


def prices(*sizes: ImageSize) -> dict[ImageSize, CostEstimate]:
    """A price table covering ``sizes``."""
    return {size: usd("0.1") for size in sizes}


# --- GenerationRequest.parse ---------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", " ", "   \n\t  ", "\u3000"])
def test_an_empty_or_blank_prompt_is_an_invalid_request(prompt: str) -> None:
    """A prompt of only whitespace asks for nothing."""
    with pytest.raises(InvalidRequest, match="empty"):
        GenerationRequest.parse(prompt)


def test_a_prompt_of_exactly_the_limit_is_accepted_unchanged() -> None:
    """32,000 characters is still fine, and the prompt is kept as given."""
    prompt = "x" * MAX_PROMPT_CHARS
    assert MAX_PROMPT_CHARS == 32_000
    assert GenerationRequest.parse(prompt).prompt == prompt


def test_a_prompt_one_character_over_the_limit_is_rejected_with_both_numbers() -> None:
    """32,001 characters: the message says how long it is and what the limit is."""
    with pytest.raises(InvalidRequest) as caught:
        GenerationRequest.parse("x" * (MAX_PROMPT_CHARS + 1))
    assert "32001" in caught.value.message
    assert "32000" in caught.value.message


def test_the_prompt_limit_counts_characters_not_bytes() -> None:
    """32,000 four-byte emoji are within the limit."""
    prompt = "\U0001f98a" * MAX_PROMPT_CHARS
    assert GenerationRequest.parse(prompt).prompt == prompt


def test_the_constructor_also_refuses_empty_and_oversized_prompts() -> None:
    """Invalid requests cannot be built by skipping ``parse``: the same error, the same words."""
    for build in (GenerationRequest, GenerationRequest.parse):
        with pytest.raises(InvalidRequest, match="The prompt is empty"):
            build(" ")
        with pytest.raises(InvalidRequest, match="32001 characters; the limit is 32000"):
            build("x" * (MAX_PROMPT_CHARS + 1))
    with pytest.raises(InvalidRequest, match="15 reference images were given; at most 14"):
        GenerationRequest("p", references=tuple(f"{i}.png" for i in range(15)))


def test_a_prompt_with_a_lone_surrogate_is_an_invalid_request() -> None:
    """Text that cannot be encoded as UTF-8 is refused up front, not when the sidecar is written.

    BUG (fails now): parse accepts it; RecordCodec.dump_generation then raises a bare
    UnicodeEncodeError, which is no ImageMcpError.
    """
    with pytest.raises(InvalidRequest):
        GenerationRequest.parse("a fox \ud800 at night")


def test_parse_defaults_to_1k_no_ratio_no_model_no_references() -> None:
    """Only the prompt is required."""
    request = GenerationRequest.parse("a fox")
    assert request == GenerationRequest("a fox", None, ImageSize.S1K, None, ())


@pytest.mark.parametrize("ratio", list(AspectRatio))
def test_every_ratio_parses_from_its_text(ratio: AspectRatio) -> None:
    """Each "w:h" string parses to its enum member, surrounding spaces ignored."""
    assert GenerationRequest.parse("p", aspect_ratio=ratio.value).aspect_ratio is ratio
    assert GenerationRequest.parse("p", aspect_ratio=f" {ratio.value} ").aspect_ratio is ratio


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_a_missing_ratio_means_the_model_chooses(raw: str | None) -> None:
    """No ratio is sent when none is given."""
    assert GenerationRequest.parse("p", aspect_ratio=raw).aspect_ratio is None


@pytest.mark.parametrize("raw", ["16/9", "16x9", "1:2", "16 : 9", "square", "9:16:1", "0:0"])
def test_an_unknown_ratio_is_rejected_listing_every_choice(raw: str) -> None:
    """The message repeats the bad value and lists all accepted ratios."""
    with pytest.raises(InvalidRequest) as caught:
        GenerationRequest.parse("p", aspect_ratio=raw)
    message = caught.value.message
    assert "aspect_ratio" in message
    assert repr(raw) in message
    for ratio in AspectRatio:
        assert ratio.value in message


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("1K", ImageSize.S1K),
        ("2K", ImageSize.S2K),
        ("4K", ImageSize.S4K),
        ("2k", ImageSize.S2K),
        ("4k", ImageSize.S4K),
        (" 2k ", ImageSize.S2K),
        (None, ImageSize.S1K),
        ("", ImageSize.S1K),
        ("  ", ImageSize.S1K),
    ],
)
def test_image_size_parses_in_either_case_and_defaults_to_1k(
    raw: str | None, size: ImageSize
) -> None:
    """ "2k" is as good as "2K"; nothing means 1K."""
    assert GenerationRequest.parse("p", image_size=raw).image_size is size


@pytest.mark.parametrize("raw", ["8K", "3K", "1024", "1 K", "large"])
def test_an_unknown_image_size_is_rejected_listing_every_choice(raw: str) -> None:
    """The message names the field and the three sizes."""
    with pytest.raises(InvalidRequest) as caught:
        GenerationRequest.parse("p", image_size=raw)
    assert "image_size" in caught.value.message
    for size in ("1K", "2K", "4K"):
        assert size in caught.value.message


def test_up_to_fourteen_references_are_accepted_in_order() -> None:
    """The limit itself is fine and the order is kept."""
    names = [f"{i}.png" for i in range(MAX_REFERENCE_IMAGES)]
    assert MAX_REFERENCE_IMAGES == 14
    assert GenerationRequest.parse("p", references=names).references == tuple(names)


def test_fifteen_references_are_rejected_with_the_count_and_the_limit() -> None:
    """More than 14 reference images cannot be sent at once."""
    with pytest.raises(InvalidRequest) as caught:
        GenerationRequest.parse("p", references=[f"{i}.png" for i in range(15)])
    assert "15" in caught.value.message
    assert "14" in caught.value.message


def test_blank_references_are_dropped_and_the_rest_trimmed() -> None:
    """Empty strings from a sloppy client are not references."""
    request = GenerationRequest.parse("p", references=["", "  a.png ", "\t", "b.png"])
    assert request.references == ("a.png", "b.png")


def test_blank_references_do_not_count_towards_the_limit() -> None:
    """Fourteen real names padded with blanks are still fourteen."""
    names = [f"{i}.png" for i in range(MAX_REFERENCE_IMAGES)] + [""] * 10
    assert len(GenerationRequest.parse("p", references=names).references) == 14


@pytest.mark.parametrize(
    ("raw", "model"), [(None, None), ("", None), ("  ", None), (" pro ", "pro")]
)
def test_the_model_name_is_trimmed_and_blank_means_none(raw: str | None, model: str | None) -> None:
    """A blank model name falls through to the user's default."""
    assert GenerationRequest.parse("p", model=raw).model == model


# --- ratios and sizes ------------------------------------------------------------------


def test_image_sizes_name_their_long_side() -> None:
    """512, 1K, 2K and 4K are 512, 1024, 2048 and 4096 pixels on the long side."""
    assert [s.long_side for s in ImageSize] == [512, 1024, 2048, 4096]


def test_the_standard_ratios_are_the_ten_common_ones() -> None:
    """Standard ratios exclude the four extreme ones."""
    assert len(ALL_RATIOS) == 14
    assert {
        AspectRatio.R1_4,
        AspectRatio.R4_1,
        AspectRatio.R1_8,
        AspectRatio.R8_1,
    } == ALL_RATIOS - STANDARD_RATIOS


@pytest.mark.parametrize("ratio", list(AspectRatio))
@pytest.mark.parametrize("size", list(ImageSize))
def test_dimensions_keep_the_long_side_and_the_ratio(ratio: AspectRatio, size: ImageSize) -> None:
    """The long side is the tier's; the short side is the exact ratio, rounded."""
    width, height = ratio.dimensions(size)
    ratio_w, ratio_h = ratio.parts
    assert max(width, height) == size.long_side
    assert (width >= height) == (ratio_w >= ratio_h)
    if ratio_w >= ratio_h:
        assert abs(height - size.long_side * ratio_h / ratio_w) <= 0.5
    else:
        assert abs(width - size.long_side * ratio_w / ratio_h) <= 0.5
    assert abs(width / height - ratio_w / ratio_h) <= (ratio_w / ratio_h) / min(width, height)


@pytest.mark.parametrize(
    ("ratio", "size", "expected"),
    [
        (AspectRatio.R1_1, ImageSize.S1K, (1024, 1024)),
        (AspectRatio.R16_9, ImageSize.S1K, (1024, 576)),
        (AspectRatio.R9_16, ImageSize.S4K, (2304, 4096)),
        (AspectRatio.R21_9, ImageSize.S1K, (1024, 439)),
        (AspectRatio.R1_8, ImageSize.S1K, (128, 1024)),
        (AspectRatio.R4_3, ImageSize.S2K, (2048, 1536)),
    ],
)
def test_dimensions_of_some_well_known_shapes(
    ratio: AspectRatio, size: ImageSize, expected: tuple[int, int]
) -> None:
    """Spot checks against hand-computed sizes."""
    assert ratio.dimensions(size) == expected


# --- money ---------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["-1", "-0.001", "NaN", "sNaN", "Infinity", "-Infinity"])
def test_a_cost_estimate_must_be_finite_and_non_negative(amount: str) -> None:
    """Negative, NaN and infinite amounts cannot be built."""
    with pytest.raises(ValueError, match="non-negative"):
        CostEstimate(Decimal(amount))


@pytest.mark.parametrize("amount", ["0", "0.067", "999999.999999", "1000000", "1E+6", "-0"])
def test_a_price_may_be_anything_from_zero_to_a_million_dollars(amount: str) -> None:
    """The bound is inclusive at both ends; the amount is kept exactly."""
    assert CostEstimate.price(Decimal(amount)).usd == Decimal(amount)


@pytest.mark.parametrize(
    "amount", ["1000000.000001", "1e100", "1e999999", "-0.01", "NaN", "sNaN", "Infinity"]
)
def test_a_price_outside_the_bound_is_refused_with_the_rule(amount: str) -> None:
    """Too large, negative, NaN and infinite prices are refused with the rule they break."""
    with pytest.raises(ValueError, match="from 0 to 1000000"):
        CostEstimate.price(Decimal(amount))
    assert Decimal(1_000_000) == MAX_PRICE_USD


def test_prices_at_the_bound_and_their_sums_display_exactly() -> None:
    """A page can always format a price and a large total of them."""
    top = CostEstimate.price(MAX_PRICE_USD)
    assert top.display() == "$1000000.00"
    total = sum([top] * 100_000, CostEstimate.zero())
    assert total.display() == "$100000000000.00"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0.067", "$0.067"),
        ("0.24", "$0.24"),
        ("0.240", "$0.24"),
        ("0.1", "$0.10"),
        ("0.10", "$0.10"),
        ("0.134", "$0.134"),
        ("0.151", "$0.151"),
        ("0", "$0.00"),
        ("5", "$5.00"),
        ("1.5", "$1.50"),
        ("12.3456", "$12.346"),
        ("0.0001", "$0.000"),
    ],
)
def test_display_shows_two_or_three_decimals(amount: str, shown: str) -> None:
    """Whole cents get two decimals; fractions of a cent get three."""
    assert CostEstimate(Decimal(amount)).display() == shown


def test_costs_add_up_exactly() -> None:
    """Three flash drafts and a pro final cost exactly $0.441, no float drift."""
    total = sum([usd("0.067")] * 3 + [usd("0.24")], CostEstimate.zero())
    assert total == usd("0.441")
    assert total.display() == "$0.441"
    assert CostEstimate.zero().usd == 0


@given(st.lists(st.decimals(min_value=0, max_value=100, places=3), max_size=30))
def test_adding_estimates_equals_adding_their_decimals(amounts: list[Decimal]) -> None:
    """Addition is exact Decimal addition."""
    total = sum((CostEstimate(a) for a in amounts), CostEstimate.zero())
    assert total.usd == sum(amounts, Decimal(0))


# --- generations ---------------------------------------------------------------------------


def test_a_valid_generation_exposes_its_public_file_name() -> None:
    """The public name is ``{uuid}.png``."""
    generation = make_generation()
    assert generation.file_name == f"{ID}.png"
    assert not generation.is_placeholder
    assert make_generation(backend="placeholder").is_placeholder


@pytest.mark.parametrize(
    "bad_id",
    [
        uuid.uuid1(),
        uuid.uuid3(uuid.NAMESPACE_DNS, "example.com"),
        uuid.uuid5(uuid.NAMESPACE_DNS, "example.com"),
        uuid.UUID(int=0),
        uuid.UUID("ffffffff-ffff-ffff-ffff-ffffffffffff"),
    ],
)
def test_a_generation_id_must_be_a_uuid4(bad_id: uuid.UUID) -> None:
    """Only uuid4 ids are unguessable enough to be public names."""
    with pytest.raises(ValueError, match="uuid4"):
        make_generation(id=bad_id)


@given(st.uuids(version=4))
def test_any_uuid4_is_a_valid_generation_id(value: uuid.UUID) -> None:
    """Every random uuid4 is accepted."""
    assert make_generation(id=value).id == value


def test_a_naive_timestamp_is_rejected() -> None:
    """Timestamps without a zone cannot be compared safely."""
    with pytest.raises(ValueError, match="UTC"):
        make_generation(created_at=datetime(2026, 11, 24, 12, 0))  # noqa: DTZ001


@pytest.mark.parametrize("hours", [1, -5, 14])
def test_a_timestamp_in_another_zone_is_rejected(hours: int) -> None:
    """Only UTC is stored."""
    zone = timezone(timedelta(hours=hours))
    with pytest.raises(ValueError, match="UTC"):
        make_generation(created_at=NOW.astimezone(zone))


def test_a_zero_offset_zone_counts_as_utc() -> None:
    """A fixed zero offset is the same instant as UTC."""
    created = NOW.replace(tzinfo=timezone(timedelta(0)))
    assert make_generation(created_at=created).created_at == NOW


def test_generations_are_immutable() -> None:
    """Frozen: a stored record cannot be edited in place."""
    generation = make_generation()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        generation.prompt = "changed"  # type: ignore[misc]


# --- model specs ---------------------------------------------------------------------------


def test_a_model_without_a_price_for_a_supported_size_is_rejected() -> None:
    """Every size a model offers must have a price; the message names the missing size."""
    with pytest.raises(ValueError, match="4K"):
        ModelSpec(
            "m",
            "m-id",
            "M",
            "tests",
            prices(ImageSize.S1K, ImageSize.S2K),
            sizes=frozenset({ImageSize.S1K, ImageSize.S2K, ImageSize.S4K}),
        )


def test_a_model_offers_the_sizes_it_prices_unless_told_otherwise() -> None:
    """Without ``sizes``, the priced sizes are the offered ones, smallest first."""
    spec = ModelSpec("m", "m-id", "M", "tests", prices(ImageSize.S4K, ImageSize.S512))
    assert spec.sizes_in_order == [ImageSize.S512, ImageSize.S4K]


@pytest.mark.parametrize(
    ("raw", "size"),
    [("512", "512"), ("0.5K", "512"), ("0.5k", "512"), (" 1k ", "1K"), ("4K", "4K")],
)
def test_image_size_spellings_include_0_5k_for_512(raw: str, size: str) -> None:
    """``0.5K`` is another way to ask for 512."""
    assert GenerationRequest.parse("x", image_size=raw).image_size is ImageSize(size)


def test_a_model_may_price_only_the_sizes_it_offers() -> None:
    """Restricting sizes lifts the need for their prices."""
    spec = ModelSpec(
        "m", "m-id", "M", "tests", prices(ImageSize.S1K), sizes=frozenset({ImageSize.S1K})
    )
    assert spec.price(ImageSize.S1K) == usd("0.1")


@pytest.mark.parametrize(("alias", "model_id"), [("", "id"), ("  ", "id"), ("m", ""), ("m", " ")])
def test_a_model_needs_an_alias_and_an_id(alias: str, model_id: str) -> None:
    """Blank names cannot be resolved or sent."""
    with pytest.raises(ValueError, match="empty"):
        ModelSpec(alias, model_id, "M", "tests", prices(*ImageSize))


def test_a_model_price_table_cannot_be_changed_afterwards() -> None:
    """The price table is a read-only copy of what was passed in."""
    table = prices(*ImageSize)
    spec = ModelSpec("m", "m-id", "M", "tests", table)
    table[ImageSize.S1K] = usd("99")
    assert spec.price(ImageSize.S1K) == usd("0.1")
    with pytest.raises(TypeError):
        spec.prices[ImageSize.S1K] = usd("99")  # type: ignore[index]


def test_model_names_are_lowercased_trimmed_and_skip_blanks() -> None:
    """names() lists every spelling once, normalised."""
    spec = ModelSpec(
        "Fast",
        " Model-ID ",
        "Big Name",
        "tests",
        prices(*ImageSize),
        also_known_as=frozenset({"Old-ID", " ", ""}),
    )
    assert spec.names() == {"fast", "model-id", "big name", "old-id"}


# --- reports -------------------------------------------------------------------------------


def test_a_usage_report_totals_its_rows() -> None:
    """Totals are the sums of the rows."""
    report = UsageReport((UserUsage("a@x.io", 2, usd("0.2")), UserUsage("b@x.io", 1, usd("0.24"))))
    assert report.total_count == 3
    assert report.total_cost == usd("0.44")
    assert UsageReport(()).total_cost == CostEstimate.zero()


@pytest.mark.parametrize(
    ("offset", "count", "total", "has_next"),
    [(0, 2, 5, True), (3, 2, 5, False), (0, 0, 0, False), (4, 1, 5, False)],
)
def test_a_gallery_page_knows_whether_more_follow(
    offset: int, count: int, total: int, has_next: bool
) -> None:
    """has_next is true only while items remain after this page."""
    page = GalleryPage(tuple(make_generation() for _ in range(count)), total, offset, 2)
    assert page.has_next is has_next
