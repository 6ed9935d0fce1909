"""scripts/screenshots.py seeds what its cards claim: a 4K card is a 4096-pixel PNG."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import struct
from pathlib import Path
from types import ModuleType

import pytest

from image_core import names

ROOT = Path(__file__).resolve().parents[1]
LONG_SIDE = {"1K": 1024, "2K": 2048, "4K": 4096}


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "screenshots", ROOT / "scripts" / "screenshots.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_screenshot_history_is_stored_at_the_sizes_its_cards_claim(tmp_path: Path) -> None:
    """Every size, both models, several people, a month of dates; pixels match labels."""
    shots = _script()
    settings = shots.settings_for(tmp_path, "http://127.0.0.1:9")
    asyncio.run(shots.seed(settings, shots.SettableClock(), shots.SeededIds()))
    sidecars = [p for p in tmp_path.iterdir() if names.record_id_text(p.name)]
    assert len(sidecars) == len(shots.PLAN)
    seen: dict[str, set[str]] = {"size": set(), "model": set(), "email": set(), "day": set()}
    for sidecar in sidecars:
        record = json.loads(sidecar.read_text())
        png = sidecar.with_suffix(".png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png[16:24])
        assert (record["width"], record["height"]) == (width, height)
        assert max(width, height) == LONG_SIDE[record["image_size"]], sidecar.name
        assert record["backend"] != "placeholder"
        seen["size"].add(record["image_size"])
        seen["model"].add(record["model_alias"])
        seen["email"].add(record["email"])
        seen["day"].add(record["created_at"][:10])
    assert seen["size"] == set(LONG_SIDE)
    assert seen["model"] == {"flash", "pro"}
    assert len(seen["email"]) >= 4
    assert len(seen["day"]) >= 15
