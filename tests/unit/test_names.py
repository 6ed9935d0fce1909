"""The image's public name has one home, image_core.names: ids, file names and parsing."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core import names

ROOT = Path(__file__).resolve().parents[2]
NAMES_MODULE = ROOT / "packages" / "image_core" / "src" / "image_core" / "names.py"
SOURCE_TREES = [ROOT / "packages", ROOT / "tests", ROOT / "bench", ROOT / "scripts"]
# The uuid4 pattern's characteristic fragment: the version nibble and the variant set.
FRAGMENT = re.compile(r"4\[0-9a-f\]\{3\}-\[89ab\]")
VALUE = uuid.UUID("0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09")


def test_no_module_outside_names_spells_the_uuid4_pattern_again() -> None:
    """A scan of packages/, tests/, bench/ and scripts/ finds the pattern only in names.py."""
    this_file = Path(__file__).resolve()
    offenders = {
        str(path.relative_to(ROOT))
        for tree in SOURCE_TREES
        for path in tree.rglob("*.py")
        if path not in {NAMES_MODULE, this_file}
        and FRAGMENT.search(path.read_text(encoding="utf-8"))
    }
    assert FRAGMENT.search(NAMES_MODULE.read_text(encoding="utf-8"))
    assert offenders == set()


def test_the_three_file_names_of_a_generation() -> None:
    """PNG, record and thumbnail names are the id with their suffix."""
    assert names.image_file_name(VALUE) == f"{VALUE}.png"
    assert names.record_file_name(VALUE) == f"{VALUE}.json"
    assert names.record_file_name_of(str(VALUE)) == f"{VALUE}.json"
    assert names.thumbnail_file_name(VALUE, ".webp") == f"{VALUE}.webp"


@pytest.mark.parametrize(
    "bad_id",
    [uuid.uuid1(), uuid.UUID(int=0), uuid.uuid5(uuid.NAMESPACE_DNS, "x"), str(VALUE), None],
    ids=["uuid1", "nil", "uuid5", "str", "none"],
)
def test_only_uuid4_values_become_file_names(bad_id: object) -> None:
    """check_image_id and every name builder refuse anything but a uuid4 value."""
    weird = cast(Any, bad_id)
    assert not names.is_image_id(weird)
    for build in (
        names.check_image_id,
        names.image_file_name,
        names.record_file_name,
        lambda i: names.thumbnail_file_name(i, ".jpg"),
    ):
        with pytest.raises(ValueError, match="uuid4"):
            build(weird)


def test_a_name_or_a_bare_uuid_parses_to_the_id() -> None:
    """The two spellings the core accepts give the uuid; close misses give None."""
    assert names.parse_image_name(f"{VALUE}.png") == VALUE
    assert names.parse_image_name(str(VALUE)) == VALUE
    for near in [
        f" {VALUE}.png",
        f"{VALUE}".upper(),
        f"{VALUE}.json",
        f"https://x.example/i/{VALUE}.png",
        str(uuid.uuid1()),
        "",
    ]:
        assert names.parse_image_name(near) is None, near


def test_public_names_are_exactly_uuid_dot_png() -> None:
    """/i/ serves only ``{uuid}.png``: a bare uuid or a non-string is not a public name."""
    assert names.parse_public_name(f"{VALUE}.png") == VALUE
    assert names.parse_public_name(str(VALUE)) is None
    assert names.parse_public_name(cast(Any, VALUE)) is None


def test_record_names_give_their_id_text() -> None:
    """A directory scan recognises ``{uuid}.json`` and nothing else."""
    assert names.record_id_text(f"{VALUE}.json") == str(VALUE)
    assert names.record_id_text(f"{VALUE}.png") is None
    assert names.record_id_text(f".{VALUE}.json.1234.tmp") is None


@given(st.uuids(version=4))
def test_every_uuid4_round_trips_through_each_name(value: uuid.UUID) -> None:
    """What names.py writes it reads back."""
    assert names.is_id_text(str(value))
    assert names.parse_image_name(names.image_file_name(value)) == value
    assert names.parse_public_name(names.image_file_name(value)) == value
    assert names.record_id_text(names.record_file_name(value)) == str(value)


def test_the_local_owner_is_local_at_localhost() -> None:
    """Generations made with sign-in switched off belong to this one address."""
    assert names.LOCAL_OWNER == "local@localhost"
