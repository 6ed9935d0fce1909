"""The model catalog: the product's ids, prices and names, and their overrides."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core.catalog import (
    DEFAULT_ALIAS,
    NANO_BANANA_2_1,
    ModelCatalog,
    default_models,
    known_models,
)
from image_core.domain import (
    ALL_RATIOS,
    STANDARD_RATIOS,
    AspectRatio,
    CostEstimate,
    ImageSize,
    ModelSpec,
)
from image_core.errors import InvalidConfiguration, InvalidRequest, UnknownModel
from image_server.model_settings import catalog_from_environment

FLASH_ID = "gemini-3.1-flash-image"
PRO_ID = "gemini-3-pro-image"
LITE_ID = "gemini-3.1-flash-lite-image"
FLASH_PREVIEW_ID = "gemini-3.1-flash-image-preview"
PRO_PREVIEW_ID = "gemini-3-pro-image-preview"

# alias -> (default id, retired preview id, display name, use for, {size: price})
SPEC_TABLE: dict[str, tuple[str, str, str, str, dict[str, str]]] = {
    "flash": (
        FLASH_ID,
        FLASH_PREVIEW_ID,
        "Nano Banana 2",
        "drafts, iterations, simple scenes",
        {"512": "0.045", "1K": "0.067", "2K": "0.101", "4K": "0.151"},
    ),
    "pro": (
        PRO_ID,
        PRO_PREVIEW_ID,
        "Nano Banana Pro",
        "final renders, text in image, complex compositions",
        {"1K": "0.134", "2K": "0.134", "4K": "0.24"},
    ),
    "lite": (
        LITE_ID,
        LITE_ID,
        "Nano Banana 2 Lite",
        "the fastest and cheapest: quick sketches at 1K",
        {"1K": "0.034"},
    ),
}
PRICED = [(alias, ImageSize(size)) for alias, row in SPEC_TABLE.items() for size in row[4]]

# Every spelling the product documents, with the alias it must resolve to.
SPELLINGS: list[tuple[str, str]] = [
    ("flash", "flash"),
    (FLASH_ID, "flash"),
    (FLASH_PREVIEW_ID, "flash"),
    ("Nano Banana 2", "flash"),
    ("pro", "pro"),
    (PRO_ID, "pro"),
    (PRO_PREVIEW_ID, "pro"),
    ("Nano Banana Pro", "pro"),
    ("lite", "lite"),
    (LITE_ID, "lite"),
    ("Nano Banana 2 Lite", "lite"),
]

BAD_PRICES = ["abc", "-1", "-0.01", "NaN", "nan", "sNaN", "inf", "-inf", "Infinity", "$", "1,5"]


@pytest.fixture
def catalog() -> ModelCatalog:
    """The catalog as shipped, with no overrides."""
    return ModelCatalog()


def _choices_in(message: str, catalog: ModelCatalog) -> None:
    for spec in catalog:
        assert f"'{spec.alias}'" in message
        assert spec.display_name in message
        assert spec.model_id in message


# --- the spec's table ------------------------------------------------------------


def test_the_catalog_offers_flash_pro_and_lite_and_defaults_to_flash(
    catalog: ModelCatalog,
) -> None:
    """The three aliases are offered in table order and flash is the default."""
    assert catalog.aliases == ("flash", "pro", "lite")
    assert [spec.alias for spec in catalog] == ["flash", "pro", "lite"]
    assert DEFAULT_ALIAS == "flash"
    assert catalog.default.alias == "flash"
    assert catalog.default.model_id == FLASH_ID


@pytest.mark.parametrize("alias", sorted(SPEC_TABLE))
def test_each_model_has_the_spec_id_display_name_and_use_for_line(
    catalog: ModelCatalog, alias: str
) -> None:
    """Ids, doc-page names and "use for" lines match the product table word for word."""
    model_id, _, display_name, use_for, _ = SPEC_TABLE[alias]
    spec = catalog.resolve(alias)
    assert spec.alias == alias
    assert spec.model_id == model_id
    assert spec.display_name == display_name
    assert spec.use_for == use_for


@pytest.mark.parametrize(("alias", "size"), PRICED)
def test_each_price_is_the_exact_list_price_as_a_decimal(
    catalog: ModelCatalog, alias: str, size: ImageSize
) -> None:
    """Prices are exact Decimals equal to the table's list prices, never floats."""
    expected = Decimal(SPEC_TABLE[alias][4][size.value])
    price = catalog.resolve(alias).price(size)
    assert isinstance(price, CostEstimate)
    assert isinstance(price.usd, Decimal)
    assert price.usd == expected
    assert price.usd.as_tuple() == expected.as_tuple()


def test_every_model_prices_every_size_it_offers(catalog: ModelCatalog) -> None:
    """No model offers a size it cannot put a price on."""
    for spec in catalog:
        assert spec.sizes == {ImageSize(s) for s in SPEC_TABLE[spec.alias][4]}
        assert set(spec.prices) == set(spec.sizes)


def test_flash_takes_every_ratio_and_pro_only_the_standard_ten(catalog: ModelCatalog) -> None:
    """Pro does not offer the extreme 1:4, 4:1, 1:8 and 8:1 ratios that flash does."""
    assert catalog.resolve("flash").aspect_ratios == ALL_RATIOS
    pro_ratios = catalog.resolve("pro").aspect_ratios
    assert pro_ratios == STANDARD_RATIOS
    assert len(pro_ratios) == 10
    for extreme in ("1:4", "4:1", "1:8", "8:1"):
        assert AspectRatio(extreme) not in pro_ratios


# --- resolution ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "alias"), SPELLINGS)
def test_every_documented_spelling_resolves_to_its_alias(
    catalog: ModelCatalog, name: str, alias: str
) -> None:
    """Alias, GA id, retired preview id and display name all resolve to the same model."""
    assert catalog.resolve(name) is catalog.resolve(alias)
    assert catalog.find(name) is catalog.resolve(alias)


@pytest.mark.parametrize(
    ("preview_id", "configured_id"), [(FLASH_PREVIEW_ID, FLASH_ID), (PRO_PREVIEW_ID, PRO_ID)]
)
def test_a_retired_preview_id_resolves_to_the_configured_id_not_itself(
    catalog: ModelCatalog, preview_id: str, configured_id: str
) -> None:
    """The dead preview id is accepted as a spelling but never becomes the id sent."""
    spec = catalog.resolve(preview_id)
    assert spec.model_id == configured_id
    assert spec.model_id != preview_id


@pytest.mark.parametrize(
    ("name", "alias"),
    [
        ("Nano Banana 2", "flash"),
        ("nano banana 2", "flash"),
        ("NANO BANANA 2", "flash"),
        ("nano banana pro", "pro"),
        ("Nano Banana PRO", "pro"),
        ("FLASH", "flash"),
        ("Pro", "pro"),
        ("Gemini-3-Pro-Image", "pro"),
        ("GEMINI-3.1-FLASH-IMAGE-PREVIEW", "flash"),
        ("  flash  ", "flash"),
        ("\tpro\n", "pro"),
        (" nano banana pro ", "pro"),
        (f"  {FLASH_ID}\r\n", "flash"),
    ],
)
def test_resolution_ignores_case_and_surrounding_whitespace(
    catalog: ModelCatalog, name: str, alias: str
) -> None:
    """Callers may shout, whisper or pad the name."""
    assert catalog.resolve(name).alias == alias


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "ultra",
        "flash2",
        "fla sh",
        "nano banana",
        "nanobanana2",
        "gemini-2.5-flash-image",
        "gemini-2.5-flash-image-preview",
        "gemini-3.1-flash-image-preview-02",
        "models/gemini-3-pro-image",
        "imagen-4",
    ],
)
def test_an_unknown_name_raises_unknown_model_listing_every_valid_choice(
    catalog: ModelCatalog, name: str
) -> None:
    """The error for an unknown or retired name is the list of valid choices."""
    with pytest.raises(UnknownModel) as caught:
        catalog.resolve(name)
    assert repr(name) in caught.value.message
    _choices_in(caught.value.message, catalog)
    assert catalog.find(name) is None


def test_unknown_model_is_an_invalid_request(catalog: ModelCatalog) -> None:
    """The shell can treat an unknown model like any other bad request."""
    with pytest.raises(InvalidRequest):
        catalog.resolve("ultra")


def test_a_name_inside_a_spelling_is_not_a_prefix_match(catalog: ModelCatalog) -> None:
    """Only whole spellings resolve; "gemini" or "banana" alone is ambiguous."""
    for partial in ("gemini", "banana", "image", "fl", "gemini-3"):
        assert catalog.find(partial) is None


def test_two_models_claiming_the_same_name_are_refused() -> None:
    """A catalog whose spellings overlap cannot be built."""
    flash, pro, _ = default_models()
    clash = ModelSpec(
        alias="other",
        model_id="other-id",
        display_name="Nano Banana 2",
        use_for="",
        prices=dict(pro.prices),
    )
    with pytest.raises(InvalidConfiguration, match=r"(?i)nano banana 2"):
        ModelCatalog((flash, clash))


def test_a_default_alias_that_is_not_offered_is_refused() -> None:
    """The catalog's default must be one of its own models."""
    with pytest.raises(InvalidConfiguration, match="ultra"):
        ModelCatalog(default_models(), default_alias="ultra")


# --- overrides -------------------------------------------------------------------


def test_no_overrides_give_the_shipped_catalog(catalog: ModelCatalog) -> None:
    """An empty override mapping changes nothing."""
    assert catalog_from_environment({}) == catalog


@pytest.mark.parametrize(
    ("alias", "variable", "old_id", "preview_id"),
    [
        ("flash", "IMG_MODEL_FLASH", FLASH_ID, FLASH_PREVIEW_ID),
        ("pro", "IMG_MODEL_PRO", PRO_ID, PRO_PREVIEW_ID),
    ],
)
def test_a_model_id_override_is_sent_and_every_old_spelling_still_resolves(
    alias: str, variable: str, old_id: str, preview_id: str
) -> None:
    """After a rename the new id is what gets sent; the old default id still resolves to it."""
    catalog = catalog_from_environment({variable: "  gemini-4-image-next  "})
    spec = catalog.resolve(alias)
    assert spec.model_id == "gemini-4-image-next"
    for spelling in (alias, old_id, preview_id, "gemini-4-image-next", spec.display_name):
        resolved = catalog.resolve(spelling)
        assert resolved.alias == alias
        assert resolved.model_id == "gemini-4-image-next"
    assert "gemini-4-image-next" in catalog.choices_text()


def test_a_model_id_override_leaves_the_other_model_alone() -> None:
    """Overriding flash's id does not touch pro."""
    catalog = catalog_from_environment({"IMG_MODEL_FLASH": "new-flash"})
    assert catalog.resolve("pro") == ModelCatalog().resolve("pro")


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_a_blank_model_id_override_keeps_the_default(blank: str) -> None:
    """An empty IMG_MODEL_* value is treated as unset, not as an empty id."""
    catalog = catalog_from_environment({"IMG_MODEL_FLASH": blank, "IMG_MODEL_PRO": blank})
    assert catalog.resolve("flash").model_id == FLASH_ID
    assert catalog.resolve("pro").model_id == PRO_ID


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.05", "0.05"),
        ("$0.05", "0.05"),
        (" $0.05 ", "0.05"),
        ("0", "0"),
        ("1", "1"),
        ("0.0675", "0.0675"),
        ("12.5", "12.5"),
    ],
)
def test_a_price_override_accepts_plain_and_dollar_forms(raw: str, expected: str) -> None:
    """IMG_COST_* takes a number of dollars, with or without a leading "$"."""
    catalog = catalog_from_environment({"IMG_COST_FLASH_2K": raw})
    assert catalog.resolve("flash").price(ImageSize.S2K).usd == Decimal(expected)


@pytest.mark.parametrize(("alias", "size"), PRICED)
def test_each_price_override_changes_exactly_its_own_cell(alias: str, size: ImageSize) -> None:
    """IMG_COST_<ALIAS>_<SIZE> changes one price and leaves every other as listed."""
    variable = f"IMG_COST_{alias.upper()}_{size.value}"
    catalog = catalog_from_environment({variable: "9.99"})
    shipped = ModelCatalog()
    for spec in catalog:
        for other in spec.sizes:
            changed = spec.alias == alias and other is size
            expected = Decimal("9.99") if changed else shipped.resolve(spec.alias).price(other).usd
            assert spec.price(other).usd == expected


@pytest.mark.parametrize("raw", BAD_PRICES)
@pytest.mark.parametrize("variable", ["IMG_COST_FLASH_1K", "IMG_COST_PRO_4K"])
def test_a_bad_price_raises_invalid_configuration_naming_the_variable(
    raw: str, variable: str
) -> None:
    """A price that is not a finite, non-negative number stops start-up with a clear message."""
    with pytest.raises(InvalidConfiguration) as caught:
        catalog_from_environment({variable: raw})
    assert variable in caught.value.message
    assert repr(raw) in caught.value.message


def test_a_blank_price_override_keeps_the_list_price() -> None:
    """An empty IMG_COST_* value is treated as unset."""
    catalog = catalog_from_environment({"IMG_COST_PRO_4K": "  "})
    assert catalog.resolve("pro").price(ImageSize.S4K).usd == Decimal("0.24")


def test_unrelated_and_misspelled_keys_are_ignored() -> None:
    """A whole environment may be passed in; keys the catalog does not own change nothing."""
    environment = {
        "PATH": "/usr/bin",
        "GEMINI_API_KEY": "not-a-price",
        "IMG_COST_ULTRA_1K": "abc",
        "IMG_COST_FLASH_8K": "abc",
        "IMG_COST_FLASH": "abc",
        "img_cost_flash_1k": "abc",
        "img_model_flash": "lowercase-key",
        "IMG_MODEL_ULTRA": "ultra-id",
    }
    assert catalog_from_environment(environment) == ModelCatalog()


def test_overrides_combine_id_and_price_changes() -> None:
    """A rename and a price change can be applied together."""
    catalog = catalog_from_environment(
        {"IMG_MODEL_PRO": "gemini-3-pro-image-002", "IMG_COST_PRO_1K": "$0.2"}
    )
    spec = catalog.resolve(PRO_PREVIEW_ID)
    assert spec.model_id == "gemini-3-pro-image-002"
    assert spec.price(ImageSize.S1K).usd == Decimal("0.2")
    assert spec.price(ImageSize.S4K).usd == Decimal("0.24")


def test_an_override_id_that_collides_with_the_other_model_names_the_variable() -> None:
    """Setting IMG_MODEL_PRO to a flash spelling is refused and the message names the setting.

    BUG (fails now): the message only says the name is "claimed by both flash and pro".
    """
    with pytest.raises(InvalidConfiguration) as caught:
        catalog_from_environment({"IMG_MODEL_PRO": FLASH_ID})
    assert "IMG_MODEL_PRO" in caught.value.message


# --- properties ------------------------------------------------------------------


@st.composite
def _respelled(draw: st.DrawFn) -> tuple[str, str]:
    name, alias = draw(st.sampled_from(SPELLINGS))
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    cased = "".join(c.upper() if flip else c.lower() for c, flip in zip(name, flips, strict=True))
    padding = st.text(alphabet=" \t\n\r\x0b\x0c", max_size=4)
    return draw(padding) + cased + draw(padding), alias


@given(_respelled())
def test_resolution_is_total_and_case_insensitive_over_every_spelling(
    case: tuple[str, str],
) -> None:
    """Any spelling with any ASCII casing and whitespace padding resolves to its alias."""
    name, alias = case
    assert ModelCatalog().resolve(name).alias == alias


_ANY_NAME = st.one_of(
    st.text(max_size=40),
    st.sampled_from([s for s, _ in SPELLINGS]).map(lambda s: s + "x"),
    _respelled().map(lambda case: case[0]),
)


@given(_ANY_NAME)
def test_any_string_resolves_to_a_model_that_owns_it_or_raises_unknown_model(name: str) -> None:
    """Resolution never guesses: the normalised input is one of the chosen model's names."""
    catalog = ModelCatalog()
    try:
        spec = catalog.resolve(name)
    except UnknownModel as exc:
        assert catalog.find(name) is None
        _choices_in(exc.message, catalog)
    else:
        assert name.strip().lower() in spec.names()


@given(
    st.sampled_from(PRICED),
    st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False),
    st.booleans(),
)
def test_any_non_negative_price_override_is_kept_exactly(
    cell: tuple[str, ImageSize], amount: Decimal, dollar_sign: bool
) -> None:
    """Whatever valid price is configured is the price charged, to the last digit."""
    alias, size = cell
    raw = ("$" if dollar_sign else "") + str(amount)
    catalog = catalog_from_environment({f"IMG_COST_{alias.upper()}_{size.value}": raw})
    assert catalog.resolve(alias).price(size).usd == amount


# --- the lineup: 512, lite and known successors ---------------------------------------


def test_flash_offers_512_at_its_token_price_and_pro_and_lite_do_not(
    catalog: ModelCatalog,
) -> None:
    """512 costs $0.045 on flash (747 tokens at $60 per million, rounded as Google lists it)."""
    flash = catalog.resolve("flash")
    assert flash.sizes_in_order == [ImageSize.S512, ImageSize.S1K, ImageSize.S2K, ImageSize.S4K]
    assert flash.image_tokens[ImageSize.S512] == 747
    assert flash.token_prices.image_output == Decimal(60)
    derived = flash.token_prices.image_price(flash.image_tokens[ImageSize.S1K])
    assert derived is not None
    assert derived.display() == flash.price(ImageSize.S1K).display()
    assert ImageSize.S512 not in catalog.resolve("pro").sizes
    assert catalog.resolve("lite").sizes == {ImageSize.S1K}
    assert [m.alias for m in catalog.offering(ImageSize.S512)] == ["flash"]


def test_the_table_records_thinking_levels_grounding_and_successors(
    catalog: ModelCatalog,
) -> None:
    """Facts for later controls: Nano Banana 2-family models take a thinking level."""
    flash = catalog.resolve("flash")
    assert flash.thinking_levels
    assert flash.search_grounding
    assert flash.successor == NANO_BANANA_2_1
    successor = catalog.facts(NANO_BANANA_2_1)
    assert successor is not None
    assert successor.thinking_levels == ("minimal", "medium", "high")
    assert catalog.find(NANO_BANANA_2_1) is None  # known, but no alias offers it
    assert {m.model_id for m in known_models()} >= {FLASH_ID, PRO_ID, LITE_ID, NANO_BANANA_2_1}


def test_pointing_flash_at_nano_banana_2_1_brings_its_sizes_and_prices() -> None:
    """IMG_MODEL_FLASH=gemini-nano-banana-2.1: $30 per million tokens, 1K to 4K, no 512."""
    catalog = catalog_from_environment({"IMG_MODEL_FLASH": NANO_BANANA_2_1})
    flash = catalog.resolve("flash")
    assert (flash.model_id, flash.display_name) == (NANO_BANANA_2_1, "Nano Banana 2.1")
    assert flash.sizes_in_order == [ImageSize.S1K, ImageSize.S2K, ImageSize.S4K]
    assert flash.price(ImageSize.S1K).usd == Decimal("0.0336")  # 1120 tokens
    assert flash.price(ImageSize.S2K).usd == Decimal("0.0504")  # 1680 tokens
    assert flash.price(ImageSize.S4K).usd == Decimal("0.0756")  # 2520 tokens
    assert flash.aspect_ratios == ALL_RATIOS
    assert catalog.resolve(FLASH_ID).alias == "flash"  # the old id still resolves


def test_a_price_for_a_size_the_model_does_not_offer_is_refused_by_name() -> None:
    """IMG_COST_PRO_512 names a size pro has not: the message says which it has."""
    with pytest.raises(InvalidConfiguration) as caught:
        catalog_from_environment({"IMG_COST_PRO_512": "0.05"})
    assert "IMG_COST_PRO_512" in caught.value.message
    assert "1K, 2K, 4K" in caught.value.message


def test_a_price_override_applies_to_the_model_an_alias_was_pointed_at() -> None:
    """IMG_MODEL_FLASH first, then IMG_COST_FLASH_*: the successor's table is repriced."""
    catalog = catalog_from_environment(
        {"IMG_MODEL_FLASH": NANO_BANANA_2_1, "IMG_COST_FLASH_1K": "0.04"}
    )
    assert catalog.resolve("flash").price(ImageSize.S1K).usd == Decimal("0.04")
    with pytest.raises(InvalidConfiguration, match="IMG_COST_FLASH_512"):
        catalog_from_environment({"IMG_MODEL_FLASH": NANO_BANANA_2_1, "IMG_COST_FLASH_512": "1"})
