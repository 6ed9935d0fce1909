"""Sidecars damaged in the ways a hand edit, a bad copy or a hostile volume can damage them.

Each one is a whole ``{uuid}.json`` that the server must skip with a warning naming the
file, never letting it stop a start-up, an index rebuild or a dashboard page.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from image_core.contracts.samples import make_generation
from image_core.domain import GenerationStatus
from image_core.serialization import RecordCodec

DEEP = 100_000  # far beyond any recursion limit


def _record(status: GenerationStatus = GenerationStatus.DONE) -> dict[str, Any]:
    generation = make_generation("eve@example.com", cost="0.067")
    body: dict[str, Any] = json.loads(RecordCodec().dump_generation(generation))
    body["status"] = status.value
    return body


def _with(**changes: Any) -> Callable[[], bytes]:
    def build() -> bytes:
        return json.dumps({**_record(), **changes}).encode()

    return build


def _nested_extra() -> bytes:
    text = json.dumps(_record())
    return f'{text[:-1]}, "notes": {"[" * DEEP}{"]" * DEEP}}}'.encode()


def _nested_cost() -> bytes:
    body = _record()
    body["cost"] = "@"
    return json.dumps(body).replace('"@"', "[" * DEEP + "]" * DEEP).encode()


def _rendering_with_broken_text() -> bytes:
    body = _record(GenerationStatus.RENDERING)
    body["prompt"] = "a fox \udc00"
    return json.dumps(body).encode()  # json escapes the lone surrogate as \\udc00


#: name -> the bytes of one damaged sidecar (its id is a fresh uuid4 each time).
BAD_SIDECARS: dict[str, Callable[[], bytes]] = {
    "a cost too large for a decimal": _with(cost="1e999999"),
    "a cost beyond the bound": _with(cost="1e100"),
    "a cost just above the bound": _with(cost="1000000.000001"),
    "a cost that is not a number": _with(cost="NaN"),
    "an infinite cost": _with(cost="Infinity"),
    "a negative cost": _with(cost="-1"),
    "deep nesting in an unknown field": _nested_extra,
    "deep nesting in the cost": _nested_cost,
    "an email that is not valid text": _with(email="eve\udc00@example.com"),
    "a time outside the calendar": _with(created_at="0001-01-01T00:00:00+01:00"),
    "a rendering record whose prompt is not valid text": _rendering_with_broken_text,
}


def plant(root: Path, case: str, record_id: uuid.UUID | None = None) -> Path:
    """Write the damaged sidecar ``case`` into ``root`` (under a fresh id unless given)."""
    raw = BAD_SIDECARS[case]()
    new_id = record_id or uuid.uuid4()
    body = raw.replace(str(_id_in(raw)).encode(), str(new_id).encode())
    path = root / f"{new_id}.json"
    path.write_bytes(body)
    return path


def _id_in(raw: bytes) -> uuid.UUID:
    start = raw.index(b'"id": "') + len(b'"id": "')
    return uuid.UUID(raw[start : start + 36].decode())
