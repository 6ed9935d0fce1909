"""Model variables: ``IMG_MODEL_<ALIAS>`` renames a model, ``IMG_COST_<ALIAS>_<SIZE>`` reprices.

Google renames and reprices image models often, so a deployment can follow without a
code change. The core knows models and prices only (``ModelCatalog.replaced``); the
variable names, their parsing and the messages that name them live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from image_core.catalog import ModelCatalog
from image_core.domain import PRICE_RULE, CostEstimate, ImageSize
from image_core.errors import InvalidConfiguration


def model_variable(alias: str) -> str:
    """``IMG_MODEL_FLASH`` for ``flash``."""
    return f"IMG_MODEL_{alias.upper()}"


def cost_variable(alias: str, size: ImageSize) -> str:
    """``IMG_COST_FLASH_2K`` for ``flash`` at 2K."""
    return f"IMG_COST_{alias.upper()}_{size.value}"


def catalog_from_environment(
    env: Mapping[str, str], base: ModelCatalog | None = None
) -> ModelCatalog:
    """``base`` (the shipped catalog by default) with the environment's renames and prices.

    Unrelated keys are ignored, so the whole environment may be passed in; blank values
    count as unset. An id whose facts the catalog knows (``IMG_MODEL_FLASH=`` Nano Banana
    2.1's id) brings that model's sizes, ratios and prices. Raises
    ``InvalidConfiguration`` naming the variable at fault.
    """
    catalog = base or ModelCatalog()
    for spec in catalog.models:
        new_id = env.get(model_variable(spec.alias), "").strip() or None
        try:
            catalog = catalog.replaced(spec.alias, model_id=new_id)
        except InvalidConfiguration as exc:
            named = [model_variable(m.alias) for m in catalog.models]
            given = ", ".join(f"{k}={env[k]!r}" for k in named if env.get(k, "").strip())
            raise InvalidConfiguration(f"{exc.message}; check {given or 'IMG_MODEL_*'}.") from None
        current = catalog.resolve(spec.alias)
        prices = {}
        for size in ImageSize:
            key = cost_variable(spec.alias, size)
            if not env.get(key, "").strip():
                continue
            if size not in current.sizes:
                offered = ", ".join(s.value for s in current.sizes_in_order)
                msg = (
                    f"{key} prices a size {spec.alias} ({current.model_id}) does not offer; "
                    f"it offers {offered}. Remove {key}."
                )
                raise InvalidConfiguration(msg)
            prices[size] = _parse_price(key, env[key])
        catalog = catalog.replaced(spec.alias, prices=prices)
    return catalog


def _parse_price(key: str, raw: str) -> CostEstimate:
    """The bound is the records' own (``CostEstimate.price``), so what passes runs."""
    text = raw.strip().removeprefix("$")
    try:
        return CostEstimate.price(Decimal(text))
    except (InvalidOperation, ValueError):
        msg = f"{key}={raw!r} is not a price: {PRICE_RULE}, e.g. 0.067."
        raise InvalidConfiguration(msg) from None
