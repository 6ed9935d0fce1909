"""JSON shapes of the stored records (generation sidecars and prefs), via cattrs.

Named ``serialization`` rather than ``codec`` so it is not mistaken for the image codec
port. Serialization lives on converters at the edge, never on the domain classes.
Records carry a ``schema_version``; fields written by a newer version are ignored so an
older server can still read them, and a missing required field is a clear error.

Sidecar versions: 1 held finished images only; 2 adds ``status`` (``rendering``, ``done``,
``failed``) and ``failure``, because the record is now written before the paid call.
An older record is migrated on read (version 1 records are ``done``). Version 2 records
may also hold the controls a request used (``thinking_level``, ``search_grounding``,
``grounding``); they are optional, so records written before them load unchanged.
Version 3 keeps the list-price ``estimate`` beside ``cost`` and says where ``cost`` came
from (``cost_basis``: Gemini's token counts, or the list price); a version 2 record's
cost is its estimate, so it migrates unchanged.
"""

from __future__ import annotations

import enum
import functools
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override
from cattrs.preconf.json import JsonConverter, make_converter

from image_core.domain import (
    AspectRatio,
    CostBasis,
    CostEstimate,
    Generation,
    GenerationStatus,
    ImageSize,
    Upload,
)
from image_core.errors import CorruptRecord

SIDECAR_SCHEMA_VERSION = 3
PREFS_SCHEMA_VERSION = 1
UPLOAD_SCHEMA_VERSION = 1

_T = TypeVar("_T")


@attrs.frozen
class IndexedFields:
    """The fields of a sidecar that an index needs to find, sum and export its record."""

    id: uuid.UUID
    email: str
    created_at: datetime
    cost: CostEstimate
    status: GenerationStatus = GenerationStatus.DONE
    model_alias: str = ""
    image_size: ImageSize = ImageSize.S1K
    prompt: str = ""
    """The whole prompt (an index may keep it shortened)."""
    estimate: CostEstimate | None = None
    cost_basis: CostBasis = CostBasis.LIST_PRICE

    @property
    def list_price_estimate(self) -> CostEstimate:
        """As ``Generation.list_price_estimate``: the estimate, else the cost."""
        return self.estimate if self.estimate is not None else self.cost

    @classmethod
    def of(cls, generation: Generation) -> IndexedFields:
        """The indexed fields of a record in hand."""
        return cls(
            id=generation.id,
            email=generation.email,
            created_at=generation.created_at,
            cost=generation.cost,
            status=generation.status,
            model_alias=generation.model_alias,
            image_size=generation.image_size,
            prompt=generation.prompt,
            estimate=generation.estimate,
            cost_basis=generation.cost_basis,
        )


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 recorded only stored images: each one is done."""
    return {**data, "status": GenerationStatus.DONE.value, "schema_version": 2}


def _from_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 kept one cost, the list-price estimate: ``estimate`` stays unset."""
    return {**data, "cost_basis": CostBasis.LIST_PRICE.value, "schema_version": 3}


#: Each step turns a record of its version into one of the next version.
_SIDECAR_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _from_v1,
    2: _from_v2,
}


def _migrated(data: dict[str, Any]) -> dict[str, Any]:
    version = data["schema_version"]
    while version in _SIDECAR_MIGRATIONS:
        data = _SIDECAR_MIGRATIONS[version](data)
        version = data["schema_version"]
    return data


@attrs.frozen
class _Wording:
    """How a damaged record is described: ``{}`` is the source, then the detail."""

    not_json: str
    not_object: str
    no_version: str
    invalid: str


# A whole record names what is wrong in a sentence; an index row, tersely after the name.
_RECORD = _Wording(
    "{} is not valid JSON",
    "{} must hold a JSON object",
    "{} has no usable schema_version",
    "{} is not a valid record: {}",
)
_INDEX_ROW = _Wording(
    "{}: not valid JSON", "{}: not a JSON object", "{}: no usable schema_version", "{}: {}"
)


@attrs.frozen
class Prefs:
    """Everyone's default model alias, keyed by normalised email."""

    default_models: dict[str, str] = attrs.field(factory=dict)


def _decimal(value: Any, _: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"expected an amount, got {type(value).__name__}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite amount")
    return amount


def _price(value: Any, _: type) -> CostEstimate:
    return CostEstimate.price(_decimal(value, Decimal))


def _datetime(value: Any, _: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError("timestamps are ISO 8601 strings")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no timezone")
    return parsed.astimezone(UTC)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    try:  # JSON can spell a lone surrogate, which could never be written back or shown
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("text that is not valid Unicode") from None
    return value


def _strict_int(value: Any, _: type) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected a whole number, got {type(value).__name__}")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _enum(value: Any, kind: type[enum.Enum]) -> enum.Enum:
    return kind(_strict_str(value, str))


def make_record_converter() -> JsonConverter:
    """A JSON converter for sidecars and prefs: Decimal as string, UTC ISO timestamps."""
    converter = make_converter(forbid_extra_keys=False)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(bool, _strict_bool)  # the int hook would refuse it
    # The str hook would otherwise also capture the str-based enums.
    for kind in (ImageSize, AspectRatio, GenerationStatus, CostBasis):
        converter.register_structure_hook(kind, _enum)
    converter.register_unstructure_hook(Decimal, str)
    converter.register_structure_hook(Decimal, _decimal)
    converter.register_unstructure_hook(CostEstimate, lambda c: str(c.usd))
    converter.register_structure_hook(CostEstimate, _price)
    converter.register_unstructure_hook(
        datetime, lambda d: d.astimezone(UTC).isoformat().replace("+00:00", "Z")
    )
    converter.register_structure_hook(datetime, _datetime)
    converter.register_unstructure_hook(uuid.UUID, str)
    converter.register_structure_hook(uuid.UUID, lambda v, _: uuid.UUID(str(v)))
    # Written only when a reference was an uploaded photo: every other record keeps the
    # version 3 shape byte for byte, and an older server reading one ignores the key.
    converter.register_unstructure_hook(
        Generation,
        make_dict_unstructure_fn(
            Generation, converter, reference_uploads=override(omit_if_default=True)
        ),
    )
    return converter


class RecordCodec:
    """Reads and writes the stored JSON records with one converter."""

    def __init__(self, converter: JsonConverter | None = None) -> None:
        self._converter = converter or make_record_converter()

    def dump_generation(self, generation: Generation) -> bytes:
        """Sidecar JSON bytes for one generation."""
        body = {"schema_version": SIDECAR_SCHEMA_VERSION, **self._converter.unstructure(generation)}
        return json.dumps(body, ensure_ascii=False, indent=2).encode()

    def load_generation(self, raw: bytes | str, source: str = "sidecar") -> Generation:
        """Parse a sidecar, raising ``CorruptRecord`` with what is wrong in it."""
        data = _json_object(raw, source, _RECORD)
        _check_version(data, source, _RECORD)
        return self._structure(_migrated(data), Generation, source, _RECORD)

    def load_indexed_fields(self, raw: bytes | str, source: str = "sidecar") -> IndexedFields:
        """Only the indexed fields of a sidecar, checked by the same rules as a full load.

        Much cheaper than ``load_generation`` (a bulk index rebuild reads every sidecar);
        a record damaged outside these fields passes here and fails its full load.
        Raises ``CorruptRecord`` as ``"{source}: what is wrong"``.
        """
        data = _json_object(raw, source, _INDEX_ROW)
        _check_version(data, source, _INDEX_ROW)
        fields = _plain_indexed_fields(data)
        if fields is None:
            fields = self._structure(_migrated(data), IndexedFields, source, _INDEX_ROW)
        if fields.id.version != 4:
            raise CorruptRecord(f"{source}: its id is not a uuid4")
        return fields

    def dump_prefs(self, prefs: Prefs) -> bytes:
        """prefs.json bytes."""
        body = {"schema_version": PREFS_SCHEMA_VERSION, **self._converter.unstructure(prefs)}
        return json.dumps(body, ensure_ascii=False, indent=2, sort_keys=True).encode()

    def load_prefs(self, raw: bytes | str, source: str = "prefs.json") -> Prefs:
        """Parse prefs.json, raising ``CorruptRecord`` with what is wrong in it."""
        data = _json_object(raw, source, _RECORD)
        _check_version(data, source, _RECORD)
        return self._structure(data, Prefs, source, _RECORD)

    def dump_upload(self, upload: Upload) -> bytes:
        """The JSON record kept beside an uploaded photo."""
        body = {"schema_version": UPLOAD_SCHEMA_VERSION, **self._converter.unstructure(upload)}
        return json.dumps(body, ensure_ascii=False, indent=2).encode()

    def load_upload(self, raw: bytes | str, source: str = "upload record") -> Upload:
        """Parse an upload's record, raising ``CorruptRecord`` with what is wrong in it."""
        data = _json_object(raw, source, _RECORD)
        _check_version(data, source, _RECORD)
        return self._structure(data, Upload, source, _RECORD)

    def _structure(
        self, data: dict[str, Any], kind: type[_T], source: str, wording: _Wording
    ) -> _T:
        try:
            return self._converter.structure(data, kind)
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            if isinstance(exc, cattrs.BaseValidationError):
                detail = "; ".join(cattrs.transform_error(exc))
            else:
                detail = str(exc)
            raise CorruptRecord(wording.invalid.format(source, detail)) from None


_STATUSES = {s.value: s for s in GenerationStatus}
_SIZES = {s.value: s for s in ImageSize}
_BASES = {b.value: b for b in CostBasis}
_TEXT_FIELDS: tuple[str, ...] = (
    *("id", "email", "created_at", "cost", "status", "model_alias", "image_size"),
    *("prompt", "cost_basis"),
)


def _plain_indexed_fields(data: dict[str, Any]) -> IndexedFields | None:
    """The indexed fields of a record exactly as this version writes it, checked by hand.

    The rules are the converter's (text, valid Unicode, an aware timestamp, prices
    within bounds, known names), taken in a few plain steps, because an index rebuild
    reads every sidecar. ``None`` for anything else: an older version, a missing field,
    another type, a value out of bounds. The converter then decides, in its own words.
    """
    if data.get("schema_version") != SIDECAR_SCHEMA_VERSION:
        return None
    values = [data.get(name) for name in _TEXT_FIELDS]
    estimate = data.get("estimate")
    texts = [v for v in values if type(v) is str]
    if len(texts) != len(values) or (estimate is not None and type(estimate) is not str):
        return None
    id_text, email, created, cost, status, model, size, prompt, basis = texts
    try:
        for text in (email, model, prompt):
            text.encode()
        return IndexedFields(
            id=uuid.UUID(id_text),
            email=email,
            created_at=_datetime(created, datetime),
            cost=_price_text(cost),
            status=_STATUSES[status],
            model_alias=model,
            image_size=_SIZES[size],
            prompt=prompt,
            estimate=None if estimate is None else _price_text(estimate),
            cost_basis=_BASES[basis],
        )
    except (ValueError, KeyError, ArithmeticError):  # e.g. a time outside the calendar
        return None


@functools.lru_cache(maxsize=4096)
def _price_text(text: str) -> CostEstimate:
    """``_price`` of a price written as text, kept for the next record: a rebuild meets
    the same few prices over and over (an error is raised again each time)."""
    return _price(text, CostEstimate)


def _json_object(raw: bytes | str, source: str, wording: _Wording) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested beyond the parser's depth
        raise CorruptRecord(wording.not_json.format(source)) from None
    if not isinstance(data, dict):
        raise CorruptRecord(wording.not_object.format(source))
    return data


def _check_version(data: dict[str, Any], source: str, wording: _Wording) -> None:
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CorruptRecord(wording.no_version.format(source))
