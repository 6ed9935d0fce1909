"""The models on offer, their prices, and every name a caller may use for them.

Google renames image models often; ids and prices therefore live here only and can be
overridden from configuration (a plain mapping, so the core never reads the
environment itself).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal

import attrs

from image_core.domain import (
    ALL_RATIOS,
    STANDARD_RATIOS,
    CostEstimate,
    ImageSize,
    ModelSpec,
)
from image_core.errors import InvalidConfiguration, UnknownModel

DEFAULT_ALIAS = "flash"


def _usd(amount: str) -> CostEstimate:
    return CostEstimate.price(Decimal(amount))


def default_models() -> tuple[ModelSpec, ...]:
    """The two models with Google's list prices per image (November 2026)."""
    flash = ModelSpec(
        alias="flash",
        model_id="gemini-3.1-flash-image",
        display_name="Nano Banana 2",
        use_for="drafts, iterations, simple scenes",
        prices={
            ImageSize.S1K: _usd("0.067"),
            ImageSize.S2K: _usd("0.101"),
            ImageSize.S4K: _usd("0.151"),
        },
        aspect_ratios=ALL_RATIOS,
        typical_seconds=20,
        # The preview id was retired on 2026-06-25; it still resolves to this alias.
        also_known_as=frozenset({"gemini-3.1-flash-image", "gemini-3.1-flash-image-preview"}),
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
    )
    return (flash, pro)


@attrs.frozen
class ModelCatalog:
    """Resolves any accepted spelling of a model name to its ``ModelSpec``."""

    models: tuple[ModelSpec, ...] = attrs.field(factory=default_models)
    default_alias: str = DEFAULT_ALIAS
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

    def replaced(
        self,
        alias: str,
        *,
        model_id: str | None = None,
        prices: Mapping[ImageSize, CostEstimate] | None = None,
    ) -> ModelCatalog:
        """A catalog with one model's id and/or prices changed (a rename, a price change).

        The previous id stays an accepted spelling of the alias, so records and requests
        naming it keep working. A new id that is another model's name is refused.
        """
        models = [
            _changed(spec, model_id, prices or {}) if spec.alias == alias else spec
            for spec in self.models
        ]
        return ModelCatalog(tuple(models), self.default_alias)


def _changed(
    spec: ModelSpec, model_id: str | None, prices: Mapping[ImageSize, CostEstimate]
) -> ModelSpec:
    """``spec`` with a new id (the old one kept as a spelling) and/or new prices."""
    changed = attrs.evolve(spec, prices={**spec.prices, **prices})
    if model_id and model_id != spec.model_id:
        aka = spec.also_known_as | {spec.model_id}
        changed = attrs.evolve(changed, model_id=model_id, also_known_as=aka)
    return changed
