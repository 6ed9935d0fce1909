"""RecordCodec.load_indexed_fields: the index's fast path keeps the full load's rules."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from image_core.errors import CorruptRecord
from image_core.serialization import IndexedFields, RecordCodec
from tests.contract.conftest import GENERATIONS, make_generation

CODEC = RecordCodec()
SAMPLE_V1 = Path(__file__).resolve().parents[1] / "data" / "sidecar_v1.json"
NAME = "x.json"


def sample(**changes: Any) -> dict[str, Any]:
    """The committed v1 sidecar as a dict, with some fields changed (None deletes)."""
    data: dict[str, Any] = json.loads(SAMPLE_V1.read_bytes())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


@settings(max_examples=50, deadline=None)
@given(generation=GENERATIONS)
def test_the_indexed_fields_of_any_record_are_those_of_its_full_load(generation: Any) -> None:
    """What the index reads equals the same fields of the record the full load returns."""
    raw = CODEC.dump_generation(generation)
    full = CODEC.load_generation(raw)
    assert CODEC.load_indexed_fields(raw, NAME) == IndexedFields.of(full)


@pytest.mark.parametrize(
    ("raw", "full", "indexed"),
    [
        (
            b'{"schema_version": 1, "id": "trunc',
            "x.json is not valid JSON",
            "x.json: not valid JSON",
        ),
        (b"[1, 2]", "x.json must hold a JSON object", "x.json: not a JSON object"),
        (b"\xff\xfe", "x.json is not valid JSON", "x.json: not valid JSON"),
        (
            json.dumps(sample(schema_version=True)).encode(),
            "x.json has no usable schema_version",
            "x.json: no usable schema_version",
        ),
        (
            json.dumps(sample(schema_version=None)).encode(),
            "x.json has no usable schema_version",
            "x.json: no usable schema_version",
        ),
    ],
    ids=["truncated", "array", "not-utf8", "bool-version", "no-version"],
)
def test_both_loads_refuse_the_same_damage_each_in_its_own_words(
    raw: bytes, full: str, indexed: str
) -> None:
    """One rule, two wordings: the full sentence, and the index's terse 'name: reason'."""
    with pytest.raises(CorruptRecord) as whole:
        CODEC.load_generation(raw, NAME)
    with pytest.raises(CorruptRecord) as fast:
        CODEC.load_indexed_fields(raw, NAME)
    assert (whole.value.message, fast.value.message) == (full, indexed)


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"email": None}, "email"),
        ({"email": 7}, "email"),
        ({"cost": "lots"}, "cost"),
        ({"created_at": "2026-11-24T12:00:00"}, "created_at"),
        ({"id": "not-a-uuid"}, "id"),
    ],
    ids=["no-email", "number-email", "bad-cost", "naive-time", "bad-id"],
)
def test_a_damaged_indexed_field_is_named_by_both_loads(
    changes: dict[str, Any], detail: str
) -> None:
    """Field names and types are checked by the converter both loads share."""
    raw = json.dumps(sample(**changes)).encode()
    with pytest.raises(CorruptRecord, match=detail):
        CODEC.load_generation(raw, NAME)
    with pytest.raises(CorruptRecord, match=detail) as fast:
        CODEC.load_indexed_fields(raw, NAME)
    assert fast.value.message.startswith("x.json: ")


def test_an_id_that_is_not_a_uuid4_is_refused() -> None:
    """The index accepts only the ids a generation may have."""
    raw = json.dumps(sample(id=str(uuid.uuid1()))).encode()
    with pytest.raises(CorruptRecord, match=r"^x\.json: its id is not a uuid4$"):
        CODEC.load_indexed_fields(raw, NAME)


def test_damage_outside_the_indexed_fields_is_left_to_the_full_load() -> None:
    """A bad aspect_ratio still indexes (its cost counts); reading the record refuses it."""
    raw = json.dumps(sample(aspect_ratio="9:7", favourite_colour="teal")).encode()
    assert CODEC.load_indexed_fields(raw, NAME).email == sample()["email"]
    with pytest.raises(CorruptRecord, match="aspect_ratio"):
        CODEC.load_generation(raw, NAME)


def test_text_and_bytes_are_both_accepted() -> None:
    """Like load_generation, the fast path takes the file's bytes or its text."""
    raw = CODEC.dump_generation(make_generation())
    assert CODEC.load_indexed_fields(raw) == CODEC.load_indexed_fields(raw.decode())


def test_what_the_plain_path_does_not_take_the_converter_still_judges() -> None:
    """A number for a price loads as before; text that is not valid Unicode is refused."""
    generation = make_generation()
    data = json.loads(CODEC.dump_generation(generation))
    assert data["schema_version"] == 3
    as_number = json.dumps({**data, "cost": 0.25}).encode()
    assert str(CODEC.load_indexed_fields(as_number, NAME).cost.usd) == "0.25"
    surrogate = json.dumps({**data, "prompt": "\ud800"}).encode()
    with pytest.raises(CorruptRecord, match="prompt"):
        CODEC.load_indexed_fields(surrogate, NAME)
    too_dear = json.dumps({**data, "cost": "1000001"}).encode()
    with pytest.raises(CorruptRecord, match="cost"):
        CODEC.load_indexed_fields(too_dear, NAME)
