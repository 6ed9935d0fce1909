"""Stored JSON records (sidecars and prefs) through RecordCodec."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core.domain import (
    AspectRatio,
    CostBasis,
    CostEstimate,
    Generation,
    GenerationStatus,
    Grounding,
    GroundingSource,
    ImageSize,
    TokenUsage,
)
from image_core.errors import CorruptRecord, StorageError
from image_core.serialization import (
    PREFS_SCHEMA_VERSION,
    SIDECAR_SCHEMA_VERSION,
    Prefs,
    RecordCodec,
)

SAMPLE_V1 = Path(__file__).resolve().parents[1] / "data" / "sidecar_v1_sample.json"
SAMPLE_V2 = Path(__file__).resolve().parents[1] / "data" / "sidecar_v2_sample.json"
SAMPLE_V3 = Path(__file__).resolve().parents[1] / "data" / "sidecar_v3_sample.json"

REQUIRED_FIELDS = [
    "id",
    "email",
    "prompt",
    "model_alias",
    "model_id",
    "image_size",
    "aspect_ratio",
    "created_at",
    "cost",
]

_TEXT = st.text(alphabet=st.characters(codec="utf-8"))
_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=12)
_EMAILS = st.builds("{}@{}.{}".format, _WORD, _WORD, st.sampled_from(["com", "io", "example"]))
_COUNTS = st.none() | st.integers(min_value=0, max_value=2**40)

GENERATIONS = st.builds(
    Generation,
    id=st.uuids(version=4),
    email=_EMAILS,
    prompt=_TEXT.filter(lambda s: s.strip() != ""),
    model_alias=st.sampled_from(["flash", "pro"]),
    model_id=st.sampled_from(["gemini-3.1-flash-image", "gemini-3-pro-image"]) | _TEXT,
    image_size=st.sampled_from(list(ImageSize)),
    aspect_ratio=st.none() | st.sampled_from(list(AspectRatio)),
    created_at=st.datetimes(timezones=st.just(UTC)),
    cost=st.decimals(
        min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False
    ).map(CostEstimate),
    reference_ids=st.lists(st.uuids(version=4), max_size=14).map(tuple),
    token_usage=st.none() | st.builds(TokenUsage, _COUNTS, _COUNTS, _COUNTS, _COUNTS),
    backend=st.sampled_from(["gemini", "placeholder", "fake"]) | _TEXT,
    width=st.none() | st.integers(min_value=1, max_value=8192),
    height=st.none() | st.integers(min_value=1, max_value=8192),
    thinking_level=st.none() | st.sampled_from(["minimal", "medium", "high"]),
    search_grounding=st.booleans(),
    grounding=st.none()
    | st.builds(
        Grounding,
        queries=st.lists(_TEXT, max_size=3).map(tuple),
        sources=st.lists(st.builds(GroundingSource, _TEXT, st.none() | _TEXT), max_size=3).map(
            tuple
        ),
        cost=st.decimals(min_value=0, max_value=100, places=3).map(CostEstimate),
    ),
)


#: What a record of a request that used none of the controls holds for them.
CONTROLS_UNUSED = {"thinking_level": None, "search_grounding": False, "grounding": None}
# What a record from before version 3 becomes: one cost, the list-price estimate.
ONE_COST = {"estimate": None, "cost_basis": "list_price", "schema_version": 3}
BREAKDOWN_FIELDS = (
    "image_output_tokens",
    "text_output_tokens",
    "image_input_tokens",
    "tool_use_prompt_tokens",
)


@pytest.fixture
def codec() -> RecordCodec:
    """A codec with its default converter."""
    return RecordCodec()


def sample_generation() -> Generation:
    """A fixed, fully populated generation."""
    return Generation(
        id=uuid.UUID("9d2f3c4b-5a6e-4f70-8b9c-0d1e2f3a4b5c"),
        email="alice@example.com",
        prompt="a red fox",
        model_alias="flash",
        model_id="gemini-3.1-flash-image",
        image_size=ImageSize.S2K,
        aspect_ratio=AspectRatio.R3_2,
        created_at=datetime(2026, 11, 24, 12, 0, 1, 500, tzinfo=UTC),
        cost=CostEstimate(Decimal("0.101")),
        reference_ids=(uuid.UUID("1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0"),),
        token_usage=TokenUsage(10, 20, None, 30),
        backend="gemini",
        width=2048,
        height=1365,
    )


def sidecar_dict(codec: RecordCodec) -> dict[str, Any]:
    """The sample generation as a JSON object, ready to be tampered with."""
    data: dict[str, Any] = json.loads(codec.dump_generation(sample_generation()))
    return data


def load(codec: RecordCodec, data: object) -> Generation:
    """Load a sidecar given as a Python object."""
    return codec.load_generation(json.dumps(data))


# --- round trips -----------------------------------------------------------------------


@given(GENERATIONS)
def test_any_generation_round_trips_through_the_sidecar(generation: Generation) -> None:
    """What is written is exactly what is read back."""
    codec = RecordCodec()
    raw = codec.dump_generation(generation)
    assert isinstance(raw, bytes)
    assert codec.load_generation(raw) == generation
    assert codec.load_generation(raw.decode()) == generation


@given(GENERATIONS)
def test_any_sidecar_is_a_versioned_json_object_with_string_money(generation: Generation) -> None:
    """Money is a string (no float rounding), time is UTC with "Z", the version is 3."""
    data = json.loads(RecordCodec().dump_generation(generation))
    assert data["schema_version"] == SIDECAR_SCHEMA_VERSION == 3
    assert isinstance(data["cost"], str)
    assert Decimal(data["cost"]) == generation.cost.usd
    assert data["created_at"].endswith("Z")
    assert data["id"] == str(generation.id)


def test_the_sidecar_has_one_key_per_field_plus_the_version(codec: RecordCodec) -> None:
    """The stored shape: every Generation field and schema_version, nothing else."""
    data = sidecar_dict(codec)
    assert set(data) == {
        "schema_version",
        *REQUIRED_FIELDS,
        "reference_ids",
        "token_usage",
        "backend",
        "width",
        "height",
        "status",
        "failure",
        "thinking_level",
        "search_grounding",
        "grounding",
        "estimate",
        "cost_basis",
    }
    assert data["status"] == "done"
    assert data["failure"] is None
    assert data["image_size"] == "2K"
    assert data["aspect_ratio"] == "3:2"
    assert data["cost"] == "0.101"
    assert data["created_at"] == "2026-11-24T12:00:01.000500Z"
    assert data["reference_ids"] == ["1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0"]


def test_non_ascii_prompts_are_written_as_readable_utf8(codec: RecordCodec) -> None:
    """Prompts stay legible in the file rather than escaped."""
    raw = codec.dump_generation(attrs.evolve(sample_generation(), prompt="Füchse 🦊 im Schnee"))
    assert "Füchse 🦊 im Schnee".encode() in raw


@given(st.dictionaries(_EMAILS, st.sampled_from(["flash", "pro"]) | _TEXT, max_size=10))
def test_any_prefs_round_trip(defaults: dict[str, str]) -> None:
    """prefs.json keeps everyone's choice."""
    codec = RecordCodec()
    raw = codec.dump_prefs(Prefs(defaults))
    assert codec.load_prefs(raw) == Prefs(defaults)
    assert json.loads(raw)["schema_version"] == PREFS_SCHEMA_VERSION == 1


def test_empty_prefs_round_trip(codec: RecordCodec) -> None:
    """A new server starts with no choices."""
    assert codec.load_prefs(codec.dump_prefs(Prefs())) == Prefs({})
    assert codec.load_prefs(b'{"schema_version": 1}') == Prefs({})


# --- tolerance ---------------------------------------------------------------------------


def test_unknown_extra_keys_are_ignored(codec: RecordCodec) -> None:
    """A sidecar written by a newer server still loads on an older one."""
    data = sidecar_dict(codec)
    data["seed"] = 42
    data["safety"] = {"blocked": False}
    data["schema_version"] = 2
    assert load(codec, data) == sample_generation()


def test_unknown_extra_keys_in_prefs_are_ignored(codec: RecordCodec) -> None:
    """prefs.json from a newer server still loads."""
    raw = '{"schema_version": 1, "default_models": {"a@x.io": "pro"}, "theme": "dark"}'
    assert codec.load_prefs(raw) == Prefs({"a@x.io": "pro"})


def test_optional_fields_may_be_missing(codec: RecordCodec) -> None:
    """Fields with defaults fall back to them when absent."""
    data = sidecar_dict(codec)
    for key in ("reference_ids", "token_usage", "backend", "width", "height"):
        del data[key]
    loaded = load(codec, data)
    assert loaded.reference_ids == ()
    assert loaded.token_usage is None
    assert loaded.backend == "gemini"
    assert (loaded.width, loaded.height) == (None, None)


def test_a_timestamp_with_an_offset_is_read_as_the_same_instant_in_utc(codec: RecordCodec) -> None:
    """Hand-edited offsets are converted, not rejected."""
    data = sidecar_dict(codec)
    data["created_at"] = "2026-11-24T13:00:01.000500+01:00"
    loaded = load(codec, data)
    assert loaded.created_at == sample_generation().created_at
    assert loaded.created_at.utcoffset() is not None
    assert loaded.created_at.tzinfo is UTC


def test_a_numeric_cost_is_read_without_float_noise(codec: RecordCodec) -> None:
    """A cost written as a JSON number is read through its decimal text."""
    data = sidecar_dict(codec)
    data["cost"] = 0.067
    assert load(codec, data).cost.usd == Decimal("0.067")


# --- corruption ------------------------------------------------------------------------------


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_a_missing_required_field_is_a_corrupt_record_naming_it(
    codec: RecordCodec, field: str
) -> None:
    """The message says which field is missing."""
    data = sidecar_dict(codec)
    del data[field]
    with pytest.raises(CorruptRecord) as caught:
        load(codec, data)
    assert field in caught.value.message
    assert "missing" in caught.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "not-a-uuid"),
        ("id", str(uuid.UUID(int=1))),
        ("image_size", "8K"),
        ("aspect_ratio", "16/9"),
        ("created_at", "2026-11-24T12:00:00"),
        ("created_at", "yesterday"),
        ("created_at", 1764000000),
        ("cost", "-0.1"),
        ("cost", "NaN"),
        ("cost", "Infinity"),
        ("cost", "cheap"),
        ("cost", True),
        ("reference_ids", ["not-a-uuid"]),
        ("token_usage", {"prompt_tokens": "many"}),
    ],
)
def test_an_invalid_field_value_is_a_corrupt_record(
    codec: RecordCodec, field: str, value: object
) -> None:
    """Values the domain would refuse are refused on load too, as CorruptRecord."""
    data = sidecar_dict(codec)
    data[field] = value
    with pytest.raises(CorruptRecord, match="not a valid record"):
        load(codec, data)


@pytest.mark.parametrize(
    "cost", ["1e999999", "1e100", "1000000.000001", "-1", "NaN", "Infinity", 1e999999]
)
def test_a_cost_outside_the_price_bound_is_a_corrupt_record(
    codec: RecordCodec, cost: object
) -> None:
    """Every price is from $0 to $1,000,000: the full load and the index load both refuse.

    ``1e999999`` as a JSON number is read as infinity; as text it is a finite decimal
    too large to scale, which once stopped the index at start-up.
    """
    data = sidecar_dict(codec)
    data["cost"] = cost
    raw = json.dumps(data)
    with pytest.raises(CorruptRecord, match="cost"):
        codec.load_generation(raw)
    with pytest.raises(CorruptRecord, match="cost"):
        codec.load_indexed_fields(raw)


def test_a_cost_at_the_price_bound_round_trips(codec: RecordCodec) -> None:
    """The bound itself is a valid price."""
    generation = attrs.evolve(sample_generation(), cost=CostEstimate(Decimal(1_000_000)))
    assert codec.load_generation(codec.dump_generation(generation)) == generation
    assert codec.load_indexed_fields(codec.dump_generation(generation)).cost == generation.cost


@pytest.mark.parametrize("where", ["an unknown field", "the cost", "the whole record"])
def test_deeply_nested_json_is_a_corrupt_record(codec: RecordCodec, where: str) -> None:
    """Nesting beyond the parser's recursion limit is damage, not a crash."""
    deep = "[" * 100_000 + "]" * 100_000
    text = json.dumps({**sidecar_dict(codec), "cost": "@"})
    raw = {
        "an unknown field": text.replace('"@"', '"0.1", "notes": ' + deep),
        "the cost": text.replace('"@"', deep),
        "the whole record": deep,
    }[where]
    with pytest.raises(CorruptRecord):
        codec.load_generation(raw)
    with pytest.raises(CorruptRecord):
        codec.load_indexed_fields(raw)
    with pytest.raises(CorruptRecord):
        codec.load_prefs(raw)


@pytest.mark.parametrize("field", ["email", "prompt", "model_alias", "failure"])
def test_text_that_is_not_valid_unicode_is_a_corrupt_record(codec: RecordCodec, field: str) -> None:
    """A lone surrogate (JSON can spell one) could never be written back or shown."""
    data = sidecar_dict(codec)
    data[field] = "a fox \udc00"
    with pytest.raises(CorruptRecord, match=field):
        load(codec, data)
    if field == "email":
        with pytest.raises(CorruptRecord, match=field):
            codec.load_indexed_fields(json.dumps(data))


def test_a_time_outside_the_calendar_in_utc_is_a_corrupt_record(codec: RecordCodec) -> None:
    """Year 1 one hour east of UTC is before the first representable instant."""
    data = sidecar_dict(codec)
    data["created_at"] = "0001-01-01T00:00:00+01:00"
    with pytest.raises(CorruptRecord, match="created_at"):
        load(codec, data)


@pytest.mark.parametrize("value", [None, ["alice@example.com"], {"email": "a@x.io"}])
def test_a_non_string_email_is_a_corrupt_record(codec: RecordCodec, value: object) -> None:
    """A null or structured email must not be read back as the text "None" or "['...']".

    BUG (fails now): cattrs' default str hook calls str() on anything, so the record loads
    with email "None" and shows up in the dashboard as a user called None.
    """
    data = sidecar_dict(codec)
    data["email"] = value
    with pytest.raises(CorruptRecord):
        load(codec, data)


def test_a_corrupt_record_is_a_storage_error_with_the_source_name(codec: RecordCodec) -> None:
    """The shell handles it as a storage problem; the message names the record."""
    with pytest.raises(StorageError, match=r"^abc\.json is not valid JSON$"):
        codec.load_generation(b"{", source="abc.json")


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b"\xff\xfe\x00garbage", b"{'single': 'quotes'}", b'{"a": 1,}'],
)
def test_text_that_is_not_json_is_a_corrupt_record(codec: RecordCodec, raw: bytes) -> None:
    """Truncated or garbled files are reported, never crash the dashboard."""
    with pytest.raises(CorruptRecord, match="not valid JSON"):
        codec.load_generation(raw)
    with pytest.raises(CorruptRecord, match="not valid JSON"):
        codec.load_prefs(raw)


@pytest.mark.parametrize("raw", [b"[]", b"[1, 2]", b"null", b"42", b'"text"', b"true"])
def test_json_that_is_not_an_object_is_a_corrupt_record(codec: RecordCodec, raw: bytes) -> None:
    """Only a JSON object can be a record."""
    with pytest.raises(CorruptRecord, match="JSON object"):
        codec.load_generation(raw)
    with pytest.raises(CorruptRecord, match="JSON object"):
        codec.load_prefs(raw)


@pytest.mark.parametrize("version", [None, "missing", 0, -1, "1", 1.0, True, [1], {"v": 1}])
def test_a_missing_or_invalid_schema_version_is_a_corrupt_record(
    codec: RecordCodec, version: object
) -> None:
    """Records must say which schema they follow, as a positive integer."""
    data = sidecar_dict(codec)
    if version == "missing":
        del data["schema_version"]
    else:
        data["schema_version"] = version
    with pytest.raises(CorruptRecord, match="schema_version"):
        load(codec, data)
    prefs: dict[str, object] = {"default_models": {}}
    if version != "missing":
        prefs["schema_version"] = version
    with pytest.raises(CorruptRecord, match="schema_version"):
        codec.load_prefs(json.dumps(prefs))


def test_prefs_whose_choices_are_not_a_mapping_are_a_corrupt_record(codec: RecordCodec) -> None:
    """A list where the email->alias mapping belongs is refused."""
    with pytest.raises(CorruptRecord, match="default_models"):
        codec.load_prefs(b'{"schema_version": 1, "default_models": ["pro"]}')


# --- samples of every schema version ---------------------------------------------------------


def test_the_version_1_sample_sidecar_loads(codec: RecordCodec) -> None:
    """The checked-in v1 sample still loads with every field intact."""
    generation = codec.load_generation(SAMPLE_V1.read_bytes(), source=SAMPLE_V1.name)
    assert generation == Generation(
        id=uuid.UUID("0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09"),
        email="alice@example.com",
        prompt='Ein Fuchs im Schnee, nachts — "same scene" 🦊',
        model_alias="pro",
        model_id="gemini-3-pro-image",
        image_size=ImageSize.S4K,
        aspect_ratio=AspectRatio.R16_9,
        created_at=datetime(2026, 11, 24, 12, 34, 56, 789012, tzinfo=UTC),
        cost=CostEstimate(Decimal("0.24")),
        reference_ids=(uuid.UUID("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"),),
        token_usage=TokenUsage(1290, 2000, 310, 3600),
        backend="gemini",
        width=4096,
        height=2304,
        status=GenerationStatus.DONE,
    )


def test_a_version_1_sidecar_is_migrated_to_a_done_version_3_record(codec: RecordCodec) -> None:
    """Version 1 recorded stored images only: re-written, it is the v1 body plus done."""
    generation = codec.load_generation(SAMPLE_V1.read_bytes())
    expected = {**json.loads(SAMPLE_V1.read_bytes()), **ONE_COST}
    expected |= {"status": "done", "failure": None, **CONTROLS_UNUSED}
    # The usage breakdown by modality came later: v1 records have none to write.
    expected["token_usage"] |= dict.fromkeys(BREAKDOWN_FIELDS)
    assert json.loads(codec.dump_generation(generation)) == expected
    fields = codec.load_indexed_fields(SAMPLE_V1.read_bytes())
    assert fields.status is GenerationStatus.DONE


def test_the_version_2_sample_sidecar_loads(codec: RecordCodec) -> None:
    """The checked-in v2 sample (a failed, maybe billed call) loads with every field intact."""
    generation = codec.load_generation(SAMPLE_V2.read_bytes(), source=SAMPLE_V2.name)
    assert generation == Generation(
        id=uuid.UUID("5d7e2a1b-3c4f-4a6b-9e8d-1f2a3b4c5d6e"),
        email="alice@example.com",
        prompt='Ein Leuchtturm im Sturm, Aquarell — "storybook" 🌊',
        model_alias="pro",
        model_id="gemini-3-pro-image",
        image_size=ImageSize.S4K,
        aspect_ratio=AspectRatio.R16_9,
        created_at=datetime(2026, 11, 30, 9, 15, 0, 250000, tzinfo=UTC),
        cost=CostEstimate(Decimal("0.24")),
        backend="gemini",
        status=GenerationStatus.FAILED,
        failure="Gemini did not answer within 180 s. The request was not sent again.",
    )
    assert codec.load_indexed_fields(SAMPLE_V2.read_bytes()).status is GenerationStatus.FAILED


def test_the_version_2_sample_rewritten_is_its_body_as_version_3(codec: RecordCodec) -> None:
    """Re-dumping the v2 sample keeps every field: its one cost is the estimate.

    The controls came later within version 2: the sample has none, and gets them unused.
    """
    generation = codec.load_generation(SAMPLE_V2.read_bytes())
    assert generation.cost_basis is CostBasis.LIST_PRICE
    assert generation.estimate is None
    assert generation.list_price_estimate == generation.cost == CostEstimate(Decimal("0.24"))
    expected = {**json.loads(SAMPLE_V2.read_bytes()), **CONTROLS_UNUSED, **ONE_COST}
    assert json.loads(codec.dump_generation(generation)) == expected


def test_the_version_3_sample_keeps_cost_and_estimate_apart(codec: RecordCodec) -> None:
    """A v3 record holds the cost from usage and the list-price estimate, both exactly."""
    generation = codec.load_generation(SAMPLE_V3.read_bytes(), source=SAMPLE_V3.name)
    assert generation.cost == CostEstimate(Decimal("0.067845"))
    assert generation.estimate == CostEstimate(Decimal("0.067"))
    assert generation.cost_basis is CostBasis.USAGE
    assert json.loads(codec.dump_generation(generation)) == json.loads(SAMPLE_V3.read_bytes())
    assert codec.load_indexed_fields(SAMPLE_V3.read_bytes()).cost == generation.cost


@pytest.mark.parametrize("status", list(GenerationStatus))
def test_every_status_round_trips(codec: RecordCodec, status: GenerationStatus) -> None:
    """Rendering, done and failed records come back as they were written."""
    generation = attrs.evolve(
        codec.load_generation(SAMPLE_V2.read_bytes()), status=status, failure=None
    )
    assert codec.load_generation(codec.dump_generation(generation)) == generation


def test_the_usage_breakdown_round_trips_and_old_usage_still_loads(codec: RecordCodec) -> None:
    """Every token count the true cost needs is kept; a record of the four totals loads."""
    usage = TokenUsage(1850, 1150, 240, 3650, 1120, 30, 1120, 410)
    generation = attrs.evolve(sample_generation(), token_usage=usage)
    assert codec.load_generation(codec.dump_generation(generation)) == generation

    old = sidecar_dict(codec)
    old["token_usage"] = {"prompt_tokens": 10, "output_tokens": 20, "total_tokens": 30}
    loaded = codec.load_generation(json.dumps(old).encode())
    assert loaded.token_usage == TokenUsage(10, 20, None, 30)


def test_uploaded_references_are_written_only_when_there_are_some(codec: RecordCodec) -> None:
    """A record without uploaded references keeps the version 3 shape; one with them
    keeps which they were, and reads back naming them as they would be passed again."""
    plain = sample_generation()
    assert "reference_uploads" not in json.loads(codec.dump_generation(plain))
    upload_id = uuid.UUID("0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09")
    earlier = plain.reference_ids[0]
    mixed = attrs.evolve(plain, reference_ids=(earlier, upload_id), reference_uploads=(upload_id,))
    data = json.loads(codec.dump_generation(mixed))
    assert data["reference_uploads"] == [str(upload_id)]
    back = codec.load_generation(codec.dump_generation(mixed), "x.json")
    assert back == mixed
    assert back.reference_names == (f"{earlier}.png", f"upload-{upload_id}")
