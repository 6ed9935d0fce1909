"""The models on offer, the facts of the models Google has, and every name for them.

Google renames image models often; ids, prices and what each model can do therefore
live here only, as data: ``known_models`` is the table of model facts (the ones offered
under an alias and known successors), and configuration may change or extend it (a
plain mapping or parsed file, so the core never reads the environment or a file itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal

import attrs

from image_core.domain import (
    ALL_RATIOS,
    STANDARD_RATIOS,
    AspectRatio,
    CostEstimate,
    ImageSize,
    ModelSpec,
    TokenPrices,
)
from image_core.errors import InvalidConfiguration, UnknownModel

DEFAULT_ALIAS = "flash"
NANO_BANANA_2_1 = "gemini-nano-banana-2.1"
"""Nano Banana 2.1's id (third parties, October 2026): flash's known successor."""


def _usd(amount: str) -> CostEstimate:
    return CostEstimate.price(Decimal(amount))


def _per_token(tokens: Mapping[ImageSize, int], per_million: str) -> dict[ImageSize, CostEstimate]:
    """Per-image prices from image output tokens at ``per_million`` dollars per million."""
    rate = TokenPrices(image_output=Decimal(per_million))
    return {size: rate.image_price(count) or CostEstimate.zero() for size, count in tokens.items()}


def _rates(input_: str, text_output: str, image_output: str) -> TokenPrices:
    """Dollars per million input, text-and-thinking output and image output tokens.

    The image output prices are the ones Google lists with each model. The input and
    text output prices are assumptions taken from Google's pricing page as last read
    (late 2026); they only matter for the true cost computed from an answer's token
    counts (``image_core.pricing``), and a deployer overrides any of them in
    ``IMG_MODELS_FILE`` (``token_prices``).
    """
    return TokenPrices(
        text_input=Decimal(input_),
        text_output=Decimal(text_output),
        image_output=Decimal(image_output),
    )


_FLASH_TOKENS = {ImageSize.S512: 747, ImageSize.S1K: 1120, ImageSize.S2K: 1680, ImageSize.S4K: 2520}
_PRO_TOKENS = {ImageSize.S1K: 1120, ImageSize.S2K: 1120, ImageSize.S4K: 2000}
# 1120 tokens at $30 per million: $0.0336, Google's $0.034 list price rounded.
_LITE_TOKENS = {ImageSize.S1K: 1120}
_NB2_THINKING = ("minimal", "high")


def default_models() -> tuple[ModelSpec, ...]:
    """The models offered under an alias, with Google's list prices per image (late 2026)."""
    flash = ModelSpec(
        alias="flash",
        model_id="gemini-3.1-flash-image",
        display_name="Nano Banana 2",
        use_for="drafts, iterations, simple scenes",
        prices={
            ImageSize.S512: _usd("0.045"),
            ImageSize.S1K: _usd("0.067"),
            ImageSize.S2K: _usd("0.101"),
            ImageSize.S4K: _usd("0.151"),
        },
        aspect_ratios=ALL_RATIOS,
        typical_seconds=20,
        # The preview id was retired on 2026-06-25; it still resolves to this alias.
        also_known_as=frozenset({"gemini-3.1-flash-image", "gemini-3.1-flash-image-preview"}),
        token_prices=_rates("0.50", "3", "60"),
        image_tokens=_FLASH_TOKENS,
        thinking_levels=_NB2_THINKING,
        search_grounding=True,
        successor=NANO_BANANA_2_1,
    )
    pro = ModelSpec(
        alias="pro",
        model_id="gemini-3-pro-image",
        display_name="Nano Banana Pro",
        use_for="final renders, text in image, complex compositions",
        prices={
            ImageSize.S1K: _usd("0.134"),
            ImageSize.S2K: _usd("0.134"),
            ImageSize.S4K: _usd("0.24"),
        },
        aspect_ratios=STANDARD_RATIOS,
        typical_seconds=40,
        also_known_as=frozenset({"gemini-3-pro-image", "gemini-3-pro-image-preview"}),
        token_prices=_rates("2", "12", "120"),
        image_tokens=_PRO_TOKENS,
        search_grounding=True,
    )
    lite = ModelSpec(
        alias="lite",
        model_id="gemini-3.1-flash-lite-image",
        display_name="Nano Banana 2 Lite",
        use_for="the fastest and cheapest: quick sketches at 1K",
        prices={ImageSize.S1K: _usd("0.034")},
        aspect_ratios=STANDARD_RATIOS,
        typical_seconds=12,
        token_prices=_rates("0.25", "1.50", "30"),
        image_tokens=_LITE_TOKENS,
        thinking_levels=_NB2_THINKING,
    )
    return (flash, pro, lite)


def known_successors() -> tuple[ModelSpec, ...]:
    """Models Google offers that no alias names by default; an alias may be pointed at one.

    Each carries the alias it would most naturally take (its predecessor's).
    """
    nano_banana_2_1 = ModelSpec(
        alias="flash",
        model_id=NANO_BANANA_2_1,
        display_name="Nano Banana 2.1",
        use_for="drafts, iterations, simple scenes",
        prices=_per_token(
            {k: v for k, v in _FLASH_TOKENS.items() if k is not ImageSize.S512}, "30"
        ),
        aspect_ratios=ALL_RATIOS,
        typical_seconds=20,
        token_prices=_rates("0.25", "1.50", "30"),
        image_tokens={k: v for k, v in _FLASH_TOKENS.items() if k is not ImageSize.S512},
        thinking_levels=("minimal", "medium", "high"),
        search_grounding=True,
    )
    return (nano_banana_2_1,)


def known_models() -> tuple[ModelSpec, ...]:
    """The whole table of model facts: the offered models, then known successors."""
    return default_models() + known_successors()


@attrs.frozen
class ModelCatalog:
    """Resolves any accepted spelling of a model name to its ``ModelSpec``."""

    models: tuple[ModelSpec, ...] = attrs.field(factory=default_models)
    default_alias: str = DEFAULT_ALIAS
    known: tuple[ModelSpec, ...] = attrs.field(factory=known_successors)
    """Facts of models no alias names (yet): pointing an alias at one's id brings them."""
    _index: Mapping[str, ModelSpec] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        index: dict[str, ModelSpec] = {}
        for spec in self.models:
            for name in spec.names():
                owner = index.setdefault(name, spec)
                if owner.alias != spec.alias:
                    msg = f"model name {name!r} is claimed by both {owner.alias} and {spec.alias}"
                    raise InvalidConfiguration(msg)
        if self.default_alias not in {m.alias for m in self.models}:
            raise InvalidConfiguration(f"default model {self.default_alias!r} is not offered")
        object.__setattr__(self, "_index", index)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models)

    @property
    def default(self) -> ModelSpec:
        """The model used when neither the caller nor their preference names one."""
        return self.resolve(self.default_alias)

    @property
    def aliases(self) -> tuple[str, ...]:
        """Short names, in catalog order."""
        return tuple(m.alias for m in self.models)

    def find(self, name: str) -> ModelSpec | None:
        """Like ``resolve`` but returns ``None`` for unknown names."""
        return self._index.get(name.strip().lower())

    def resolve(self, name: str) -> ModelSpec:
        """The model for an alias, model id, old preview id or display name."""
        spec = self.find(name)
        if spec is None:
            raise UnknownModel(f"Unknown model {name!r}. {self.choices_text()}")
        return spec

    def choices_text(self) -> str:
        """A sentence listing the valid model names, for error messages."""
        parts = [f"'{m.alias}' ({m.display_name}, id {m.model_id})" for m in self.models]
        return "Valid choices: " + ", ".join(parts) + "."

    def facts(self, model_id: str) -> ModelSpec | None:
        """What is known of the model with this id, offered or not (``None``: nothing)."""
        wanted = model_id.strip().lower()
        for spec in (*self.models, *self.known):
            if spec.model_id.lower() == wanted:
                return spec
        return None

    def offering(
        self, size: ImageSize | None = None, ratio: AspectRatio | None = None
    ) -> tuple[ModelSpec, ...]:
        """The offered models that take ``size`` and ``ratio`` (when given), in catalog order."""
        return tuple(
            spec
            for spec in self.models
            if (size is None or size in spec.sizes)
            and (ratio is None or ratio in spec.aspect_ratios)
        )

    def replaced(
        self,
        alias: str,
        *,
        model_id: str | None = None,
        prices: Mapping[ImageSize, CostEstimate] | None = None,
    ) -> ModelCatalog:
        """A catalog with one model's id and/or prices changed (a rename, a price change).

        The previous id stays an accepted spelling of the alias, so records and requests
        naming it keep working. A new id that is another model's name is refused. A new
        id whose facts are ``known`` brings that model's sizes, ratios and prices along.
        Prices for sizes the model does not offer are refused.
        """
        models = [
            self._changed(spec, model_id, prices or {}) if spec.alias == alias else spec
            for spec in self.models
        ]
        return attrs.evolve(self, models=tuple(models))

    def with_models(self, specs: Iterable[ModelSpec]) -> ModelCatalog:
        """Each spec offered under its alias: it replaces the model of that alias, or joins."""
        models = list(self.models)
        for spec in specs:
            at = next((i for i, m in enumerate(models) if m.alias == spec.alias), None)
            if at is None:
                models.append(spec)
            else:
                models[at] = spec
        return attrs.evolve(self, models=tuple(models))

    def with_known(self, specs: Iterable[ModelSpec]) -> ModelCatalog:
        """Each spec's facts known (replacing what was known of its id), offered by no alias."""
        known = {spec.model_id.lower(): spec for spec in self.known}
        known.update({spec.model_id.lower(): spec for spec in specs})
        return attrs.evolve(self, known=tuple(known.values()))

    def _changed(
        self, spec: ModelSpec, model_id: str | None, prices: Mapping[ImageSize, CostEstimate]
    ) -> ModelSpec:
        """``spec`` with a new id (the old one kept as a spelling) and/or new prices."""
        changed = spec
        if model_id and model_id != spec.model_id:
            aka = spec.also_known_as | {spec.model_id}
            known = next((k for k in self.known if k.model_id.lower() == model_id.lower()), None)
            if known is not None:
                changed = attrs.evolve(
                    known, alias=spec.alias, also_known_as=aka | known.also_known_as
                )
            else:
                changed = attrs.evolve(spec, model_id=model_id, also_known_as=aka)
        unoffered = sorted(s.value for s in prices if s not in changed.sizes)
        if unoffered:
            offered = ", ".join(s.value for s in changed.sizes_in_order)
            msg = (
                f"{spec.alias} ({changed.model_id}) has no size {', '.join(unoffered)} to price; "
                f"it offers {offered}"
            )
            raise InvalidConfiguration(msg)
        return attrs.evolve(changed, prices={**changed.prices, **prices})
