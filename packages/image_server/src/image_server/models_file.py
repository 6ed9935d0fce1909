"""``IMG_MODELS_FILE``: a deployer's own model facts, in TOML or JSON, checked at start-up.

The core holds the table of model facts (``image_core.catalog``); this module only reads
a file into ``ModelSpec`` values and says, naming the file and the field, what is wrong
with it. Each entry either changes a model the table knows (only the fields it gives) or
adds a new one; with ``alias`` it is offered under that short name (replacing the model
that alias had), without one it is a known model an ``IMG_MODEL_*`` variable can point at.

.. code-block:: toml

    [[models]]
    id = "gemini-3-pro-image"
    prices = { "1K" = 0.15, "2K" = 0.15, "4K" = 0.26 }

    [[models]]
    id = "gemini-4-flash-image"
    alias = "next"
    display_name = "Nano Banana 4"
    use_for = "trying the next model"
    prices = { "1K" = 0.05, "2K" = 0.08 }
    aspect_ratios = "all"
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

import attrs

from image_core.catalog import ModelCatalog
from image_core.domain import (
    ALL_RATIOS,
    MAX_REFERENCE_IMAGES,
    PRICE_RULE,
    STANDARD_RATIOS,
    AspectRatio,
    CostEstimate,
    ImageSize,
    ModelSpec,
    TokenPrices,
)
from image_core.errors import InvalidConfiguration

VARIABLE: Final = "IMG_MODELS_FILE"
MAX_FILE_BYTES: Final = 1_000_000

_TEXT_FIELDS: Final = ("display_name", "use_for", "successor")
_FIELDS: Final = frozenset(
    {
        "id",
        "alias",
        "also_known_as",
        "prices",
        "sizes",
        "aspect_ratios",
        "token_prices",
        "image_tokens",
        "max_references",
        "thinking_levels",
        "search_grounding",
        "search_query_price",
        "typical_seconds",
        *_TEXT_FIELDS,
    }
)
_TOKEN_FIELDS: Final = frozenset({"image_output", "text_input", "text_output"})


class _Problem(Exception):
    """One field of one entry is wrong; ``load_models_file`` adds where."""

    def __init__(self, field: str, text: str) -> None:
        super().__init__(f"{field}: {text}")
        self.field = field
        self.text = text


def load_models_file(path: Path, base: ModelCatalog) -> ModelCatalog:
    """``base`` with the file's models applied; ``InvalidConfiguration`` naming file and field."""
    where = f"{VARIABLE}={str(path)!r}"
    entries = _entries(path, where)
    catalog = base
    for index, raw in enumerate(entries):
        label = f"models[{index}]"
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
            label += f" (id {raw['id']!r})"
        try:
            catalog = _apply(catalog, raw)
        except _Problem as problem:
            msg = f"{where}: {label}: field {problem.field!r}: {problem.text}."
            raise InvalidConfiguration(msg) from None
        except InvalidConfiguration as exc:
            raise InvalidConfiguration(f"{where}: {label}: {exc.message}.") from None
    return catalog


def _entries(path: Path, where: str) -> list[Any]:
    try:
        with path.open("rb") as file:  # at most one byte past the limit is ever read
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidConfiguration(f"{where} cannot be read ({exc.strerror}).") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidConfiguration(f"{where} is larger than {MAX_FILE_BYTES} bytes.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(raw.decode("utf-8"))
        elif suffix == ".json":
            data = json.loads(raw)
        else:
            raise InvalidConfiguration(f"{where} must end in .toml or .json.")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidConfiguration(f"{where} is not valid {suffix[1:].upper()}: {exc}.") from None
    if not isinstance(data, dict) or set(data) - {"models"}:
        raise InvalidConfiguration(f"{where} must hold one list named 'models' and nothing else.")
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise InvalidConfiguration(f"{where}: 'models' must be a non-empty list of models.")
    return models


def _apply(catalog: ModelCatalog, raw: Any) -> ModelCatalog:
    if not isinstance(raw, Mapping):
        raise _Problem("models", "each model must be a table of fields")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise _Problem(
            unknown[0], f"is not a model field; the fields are {', '.join(sorted(_FIELDS))}"
        )
    model_id = _text(raw, "id")
    if model_id is None:
        raise _Problem("id", "is required: the Gemini model id")
    alias = _text(raw, "alias")
    known = catalog.facts(model_id)
    offered_as = next((m.alias for m in catalog.models if m.model_id == _id_of(known)), None)
    # A model only known (no alias offers it) keeps a placeholder alias: the alias an
    # IMG_MODEL_* variable points at it from replaces it.
    home = alias or offered_as or (known.alias if known else model_id)
    spec = _spec(raw, model_id, home, known)
    if alias is not None:
        previous = catalog.find(alias)
        if previous is not None and previous.alias == alias and previous.model_id != model_id:
            spec = attrs.evolve(spec, also_known_as=spec.also_known_as | {previous.model_id})
        return catalog.with_models([spec])
    if offered_as is not None:
        return catalog.with_models([spec])
    return catalog.with_known([spec])


def _id_of(spec: ModelSpec | None) -> str | None:
    return spec.model_id if spec is not None else None


def _spec(raw: Mapping[str, Any], model_id: str, alias: str, known: ModelSpec | None) -> ModelSpec:
    changes: dict[str, Any] = {"model_id": model_id, "alias": alias}
    for field, parse in _PARSERS.items():
        if field in raw:
            changes[field] = parse(raw, field)
    if "prices" in raw and "sizes" not in raw:
        changes["sizes"] = frozenset(changes["prices"])
    if "token_prices" in changes:  # each price given changes; the others stay as known
        base = known.token_prices if known is not None else TokenPrices()
        changes["token_prices"] = attrs.evolve(base, **changes["token_prices"])
    try:
        if known is not None:
            return attrs.evolve(known, **changes)
        for field in ("display_name", "use_for", "prices"):
            if field not in changes:
                raise _Problem(field, "is required for a model the catalog does not know")
        return ModelSpec(**changes)
    except ValueError as exc:  # a size without a price, a blank name
        raise _Problem("prices" if "price" in str(exc) else "id", str(exc)) from None


def _required_text(raw: Mapping[str, Any], field: str) -> str | None:
    return _text(raw, field, required=True)


def _grounding(raw: Mapping[str, Any], field: str) -> bool:
    value = raw[field]
    if not isinstance(value, bool):
        raise _Problem(field, "must be true or false")
    return value


_PARSERS: Final[Mapping[str, Callable[[Mapping[str, Any], str], Any]]] = {
    **dict.fromkeys(_TEXT_FIELDS, _required_text),
    "also_known_as": lambda raw, f: frozenset(_texts(raw, f)),
    "prices": lambda raw, f: _prices(raw[f]),
    "sizes": lambda raw, f: frozenset(_size(s, f) for s in _texts(raw, f)),
    "aspect_ratios": lambda raw, f: _ratios(raw[f]),
    "token_prices": lambda raw, f: _token_prices(raw[f]),
    "image_tokens": lambda raw, f: _image_tokens(raw[f]),
    "max_references": lambda raw, f: _whole(raw, f, 0, MAX_REFERENCE_IMAGES),
    "typical_seconds": lambda raw, f: _whole(raw, f, 1, 3600),
    "thinking_levels": lambda raw, f: tuple(_texts(raw, f)),
    "search_grounding": _grounding,
    "search_query_price": lambda raw, f: _one_price(raw[f], f),
}


def _text(raw: Mapping[str, Any], field: str, *, required: bool = False) -> str | None:
    value = raw.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _Problem(field, "must be a non-empty string")
    return value.strip()


def _texts(raw: Mapping[str, Any], field: str) -> list[str]:
    value = raw[field]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _Problem(field, "must be a list of non-empty strings")
    return [v.strip() for v in value]


def _size(raw: str, field: str) -> ImageSize:
    size = ImageSize.parse(raw)
    if size is None:
        choices = ", ".join(s.value for s in ImageSize)
        raise _Problem(field, f"{raw!r} is not a size; use {choices}")
    return size


def _amount(raw: Any, field: str, rule: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _Problem(field, f"{raw!r} is not a number: {rule}")
    try:
        amount = Decimal(str(raw).strip().removeprefix("$"))
    except InvalidOperation:
        raise _Problem(field, f"{raw!r} is not a number: {rule}") from None
    return amount


def _prices(raw: Any) -> dict[ImageSize, CostEstimate]:
    if not isinstance(raw, Mapping) or not raw:
        raise _Problem("prices", 'must be a table of size = US dollars, e.g. "1K" = 0.067')
    prices: dict[ImageSize, CostEstimate] = {}
    for key, value in raw.items():
        field = f"prices.{key}"
        size = _size(str(key), field)
        try:
            prices[size] = CostEstimate.price(_amount(value, field, PRICE_RULE))
        except ValueError:
            raise _Problem(field, f"{value!r} is not a price: {PRICE_RULE}") from None
    return prices


def _one_price(raw: Any, field: str) -> CostEstimate:
    try:
        return CostEstimate.price(_amount(raw, field, PRICE_RULE))
    except ValueError:
        raise _Problem(field, f"{raw!r} is not a price: {PRICE_RULE}") from None


def _ratios(raw: Any) -> frozenset[AspectRatio]:
    if raw == "all":
        return ALL_RATIOS
    if raw == "standard":
        return STANDARD_RATIOS
    if not isinstance(raw, list) or not raw:
        raise _Problem("aspect_ratios", 'must be "all", "standard" or a list such as ["1:1"]')
    ratios: set[AspectRatio] = set()
    for value in raw:
        try:
            ratios.add(AspectRatio(str(value).strip()))
        except ValueError:
            choices = ", ".join(r.value for r in AspectRatio)
            raise _Problem("aspect_ratios", f"{value!r} is not a ratio; use {choices}") from None
    return frozenset(ratios)


def _token_prices(raw: Any) -> dict[str, Decimal]:
    """The prices per million tokens the table gives, by ``TokenPrices`` field.

    ``text_input`` is every input token (prompt text, reference images and search results
    alike), ``text_output`` text and thinking output, ``image_output`` the image.
    """
    rule = "US dollars per million tokens, 0 or more"
    if not isinstance(raw, Mapping) or set(raw) - _TOKEN_FIELDS:
        fields = ", ".join(sorted(_TOKEN_FIELDS))
        raise _Problem("token_prices", f"must be a table with some of: {fields}")
    values: dict[str, Decimal] = {}
    for key, value in raw.items():
        amount = _amount(value, f"token_prices.{key}", rule)
        if not amount.is_finite() or not 0 <= amount <= 1_000_000:
            raise _Problem(f"token_prices.{key}", f"{value!r} is not {rule}")
        values[key] = amount
    return values


def _image_tokens(raw: Any) -> dict[ImageSize, int]:
    if not isinstance(raw, Mapping):
        raise _Problem("image_tokens", 'must be a table of size = tokens, e.g. "1K" = 1120')
    tokens: dict[ImageSize, int] = {}
    for key, value in raw.items():
        field = f"image_tokens.{key}"
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1_000_000:
            raise _Problem(field, f"{value!r} is not a whole number of tokens")
        tokens[_size(str(key), field)] = value
    return tokens


def _whole(raw: Mapping[str, Any], field: str, low: int, high: int) -> int:
    value = raw[field]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Problem(field, f"{value!r} must be a whole number from {low} to {high}")
    return value
