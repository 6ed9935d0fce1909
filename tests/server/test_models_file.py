"""IMG_MODELS_FILE: a deployer changes or adds models without a code change, checked at start."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from image_core.catalog import NANO_BANANA_2_1
from image_core.domain import (
    ALL_RATIOS,
    STANDARD_RATIOS,
    AspectRatio,
    ImageSize,
    TokenPrices,
    TokenUsage,
)
from image_core.pricing import cost_from_usage
from image_server.settings import Settings, SettingsError, load_settings

GOOD_TOML = """
[[models]]
id = "gemini-3-pro-image"
prices = { "1K" = 0.15, "2K" = 0.15, "4K" = "0.26" }

[[models]]
id = "gemini-4-flash-image"
alias = "next"
display_name = "Nano Banana 4"
use_for = "trying the next model"
prices = { "0.5K" = 0.03, "1K" = 0.05 }
aspect_ratios = "all"
thinking_levels = ["low", "high"]
search_grounding = true
max_references = 6

[[models]]
id = "gemini-nano-banana-2.1"
prices = { "1K" = 0.04, "2K" = 0.06, "4K" = 0.09 }
"""


def settings_with(tmp_path: Path, name: str, text: str, **extra: str) -> Settings:
    path = tmp_path / name
    path.write_text(text)
    env = {"IMG_ROOT": str(tmp_path / "data"), "IMG_MODELS_FILE": str(path), **extra}
    return load_settings(env, dev=True)


def problems_for(tmp_path: Path, name: str, text: str) -> str:
    with pytest.raises(SettingsError) as caught:
        settings_with(tmp_path, name, text)
    return "\n".join(caught.value.problems)


def test_a_toml_file_reprices_a_model_adds_one_and_changes_a_known_successor(
    tmp_path: Path,
) -> None:
    """Only the fields given change; a new alias is offered; 2.1's new prices follow IMG_MODEL_*."""
    settings = settings_with(tmp_path, "models.toml", GOOD_TOML, IMG_MODEL_FLASH=NANO_BANANA_2_1)
    catalog = settings.catalog
    pro = catalog.resolve("pro")
    assert pro.price(ImageSize.S4K).usd == Decimal("0.26")
    assert pro.aspect_ratios == STANDARD_RATIOS  # untouched fields stay as shipped
    assert catalog.aliases == ("flash", "pro", "lite", "next")
    new = catalog.resolve("Nano Banana 4")
    assert new.sizes_in_order == [ImageSize.S512, ImageSize.S1K]
    assert new.aspect_ratios == ALL_RATIOS
    assert (new.thinking_levels, new.search_grounding, new.max_references) == (
        ("low", "high"),
        True,
        6,
    )
    flash = catalog.resolve("flash")
    assert flash.model_id == NANO_BANANA_2_1
    assert flash.price(ImageSize.S1K).usd == Decimal("0.04")


def test_a_json_file_works_the_same_and_can_replace_what_an_alias_offers(tmp_path: Path) -> None:
    """An entry with an alias already offered takes its place; the old id still resolves."""
    text = json.dumps(
        {
            "models": [
                {
                    "id": "gemini-3.2-flash-lite-image",
                    "alias": "lite",
                    "display_name": "Nano Banana 3 Lite",
                    "use_for": "quick sketches",
                    "prices": {"1K": 0.02},
                    "aspect_ratios": ["1:1", "16:9"],
                }
            ]
        }
    )
    catalog = settings_with(tmp_path, "models.json", text).catalog
    lite = catalog.resolve("lite")
    assert lite.model_id == "gemini-3.2-flash-lite-image"
    assert lite.aspect_ratios == {AspectRatio.R1_1, AspectRatio.R16_9}
    assert catalog.resolve("gemini-3.1-flash-lite-image").alias == "lite"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("m.toml", "[[models]]\nid = 'gemini-3-pro-image'\ncolour = 'red'\n", "'colour'"),
        (
            "m.toml",
            "[[models]]\nid = 'gemini-3-pro-image'\nprices = { '1K' = -1 }\n",
            "'prices.1K'",
        ),
        (
            "m.toml",
            "[[models]]\nid = 'gemini-3-pro-image'\nprices = { '3K' = 1 }\n",
            "'prices.3K'",
        ),
        (
            "m.toml",
            "[[models]]\nid = 'gemini-3-pro-image'\naspect_ratios = ['7:3']\n",
            "'aspect_ratios'",
        ),
        ("m.toml", "[[models]]\nid = 'new-model'\nalias = 'x'\n", "'display_name'"),
        ("m.toml", "[[models]]\nalias = 'x'\n", "'id'"),
        (
            "m.toml",
            "[[models]]\nid = 'gemini-3-pro-image'\nmax_references = 99\n",
            "'max_references'",
        ),
        ("m.toml", "[[models]\nid = 1", "not valid TOML"),
        ("m.json", '{"models": [', "not valid JSON"),
        ("m.json", '{"model": []}', "'models'"),
        ("m.yaml", "models: []", ".toml or .json"),
        (
            "m.toml",
            "[[models]]\nid = 'gemini-3.1-flash-image'\nalias = 'pro'\n",
            "claimed by both",
        ),
    ],
)
def test_a_bad_file_stops_start_up_naming_the_file_and_the_field(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    """One line says which file, which entry and which field, and what is accepted."""
    message = problems_for(tmp_path, name, text)
    assert "IMG_MODELS_FILE=" in message
    assert name in message
    assert expected in message


def test_a_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    """A file that is not there is not silently skipped."""
    env = {"IMG_ROOT": str(tmp_path / "data"), "IMG_MODELS_FILE": str(tmp_path / "nope.toml")}
    with pytest.raises(SettingsError) as caught:
        load_settings(env, dev=True)
    assert "IMG_MODELS_FILE" in caught.value.problems[0]
    assert "cannot be read" in caught.value.problems[0]


def test_an_alias_from_the_file_answers_to_its_own_variables_without_a_warning(
    tmp_path: Path,
) -> None:
    """``next`` from the file: IMG_MODEL_NEXT and IMG_COST_NEXT_1K apply and are not typos."""
    settings = settings_with(
        tmp_path,
        "models.toml",
        GOOD_TOML,
        IMG_MODEL_NEXT="gemini-4.1-flash-image",
        IMG_COST_NEXT_1K="0.07",
        IMG_COST_NEXT_8K="1",
    )
    catalog = settings.catalog
    assert catalog.resolve("next").model_id == "gemini-4.1-flash-image"
    assert catalog.resolve("next").price(ImageSize.S1K).usd == Decimal("0.07")
    warnings = settings.warnings
    assert not any("IMG_MODEL_NEXT" in w or "IMG_COST_NEXT_1K" in w for w in warnings)
    assert any("IMG_COST_NEXT_8K" in w for w in warnings)


def test_a_file_larger_than_a_megabyte_is_refused_unparsed(tmp_path: Path) -> None:
    """A models file is a few lines; a huge one is a mistake: read no further, not parsed."""
    text = "# " + "x" * 1_000_001 + "\n[[models]]\nid = 'gemini-3-pro-image'\n"
    message = problems_for(tmp_path, "big.toml", text)
    assert "IMG_MODELS_FILE=" in message
    assert "larger than 1000000 bytes" in message


def test_the_price_of_a_search_query_can_be_set_per_model(tmp_path: Path) -> None:
    """Google's grounding price changes apart from image prices: the file can follow it."""
    settings = settings_with(
        tmp_path,
        "m.toml",
        "[[models]]\nid = 'gemini-3.1-flash-image'\nsearch_query_price = 0.035\n",
    )
    flash = settings.catalog.resolve("flash")
    assert flash.search_query_price.usd == Decimal("0.035")
    assert settings.catalog.resolve("pro").search_query_price.usd == Decimal("0.014")


def test_a_search_query_price_that_is_not_a_price_is_refused(tmp_path: Path) -> None:
    message = problems_for(
        tmp_path, "m.toml", "[[models]]\nid = 'gemini-3-pro-image'\nsearch_query_price = -1\n"
    )
    assert "'search_query_price'" in message


def test_token_prices_change_one_by_one_and_the_true_cost_follows(tmp_path: Path) -> None:
    """Google raised flash's input price only: its other token prices stay as shipped."""
    settings = settings_with(
        tmp_path,
        "m.toml",
        "[[models]]\nid = 'gemini-3.1-flash-image'\ntoken_prices = { text_input = 1 }\n",
    )
    flash = settings.catalog.resolve("flash")
    assert flash.token_prices == TokenPrices(
        text_input=Decimal(1), text_output=Decimal(3), image_output=Decimal(60)
    )
    usage = TokenUsage(1290, 1120, None, 2410, image_output_tokens=1120)
    priced = cost_from_usage(flash, usage)
    assert priced is not None
    assert priced.usd == Decimal("0.06849")  # 1290 * 1 + 1120 * 60, per million
    pro = settings.catalog.resolve("pro").token_prices
    assert pro.text_input == Decimal(2)


def test_a_new_model_prices_every_kind_of_token_from_the_file(tmp_path: Path) -> None:
    """Input (text and images alike), text and thinking output, image output."""
    text = (
        "[[models]]\nid = 'gemini-4-flash-image'\nalias = 'next'\ndisplay_name = 'N4'\n"
        "use_for = 'trying'\nprices = { '1K' = 0.05 }\n"
        "token_prices = { text_input = 0.4, text_output = '2.5', image_output = 40 }\n"
    )
    spec = settings_with(tmp_path, "m.toml", text).catalog.resolve("next")
    assert spec.token_prices == TokenPrices(
        text_input=Decimal("0.4"), text_output=Decimal("2.5"), image_output=Decimal(40)
    )
    usage = TokenUsage(1000, 1130, 100, 2230, image_output_tokens=1120, text_output_tokens=10)
    priced = cost_from_usage(spec, usage)
    assert priced is not None
    assert priced.usd == Decimal("0.0004") + Decimal("0.0448") + Decimal("0.000275")


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ("{ input = 0.5 }", "'token_prices'"),
        ("{ text_input = -1 }", "'token_prices.text_input'"),
        ("{ text_output = 'a lot' }", "'token_prices.text_output'"),
        ("0.5", "'token_prices'"),
    ],
)
def test_token_prices_that_are_not_prices_are_refused(
    tmp_path: Path, table: str, field: str
) -> None:
    message = problems_for(
        tmp_path, "m.toml", f"[[models]]\nid = 'gemini-3-pro-image'\ntoken_prices = {table}\n"
    )
    assert field in message
