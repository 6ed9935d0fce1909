"""Crash windows: kill a generation between each storage step, restart, count everything.

The order of one generation is: pending record, (the paid call), PNG, thumbnail, final
record (sidecar, then its index row). A ``Crash`` (a ``BaseException``, so no clean-up
code of the service runs, as when the process dies) is raised at each step; then a new
app is built over the same folder and started. Every PNG must then have a done record,
every paid call must be counted, and the start-up line must say what it settled.
"""

from __future__ import annotations

import contextlib
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from image_core.background import BackgroundWork
from image_core.domain import (
    BackendImage,
    BackendRequest,
    EncodedImage,
    Generation,
    GenerationRequest,
    GenerationStatus,
)
from image_core.names import LOCAL_OWNER
from image_core.testing import FakeImageBackend
from image_server.adapters.atomic_files import write_atomic
from image_server.adapters.fs_images import FilesystemImageStore
from image_server.adapters.fs_metadata import FilesystemMetadataRepository
from image_server.app import build_app, build_service
from image_server.settings import Settings, load_settings
from tests.support.bad_records import BAD_SIDECARS, plant
from tests.support.logs import json_lines, json_logs

pytestmark = pytest.mark.anyio

FLASH_1K = Decimal("0.067")


class Crash(BaseException):
    """The process dying at this point: nothing after it runs."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"IMG_ROOT": str(tmp_path / "data")}, dev=True)


class CrashingBackend(FakeImageBackend):
    """Dies while Gemini works: only the pending record exists."""

    async def generate(self, request: BackendRequest) -> BackendImage:
        self.requests.append(request)
        raise Crash


class PngOnlyStore(FilesystemImageStore):
    """Dies after the PNG is written, before its thumbnail."""

    def put(self, image_id: uuid.UUID, png: bytes, thumbnail: EncodedImage | None) -> None:
        write_atomic(self.path_for(image_id), png, overwrite=False)
        raise Crash


class NoFinalRecordStore(FilesystemImageStore):
    """Dies after PNG and thumbnail, before the final record."""

    def put_thumbnail(self, image_id: uuid.UUID, thumbnail: EncodedImage) -> None:
        super().put_thumbnail(image_id, thumbnail)
        raise Crash


class SidecarOnlyMetadata(FilesystemMetadataRepository):
    """Dies after the final sidecar is written, before its index row."""

    def replace(self, generation: Generation) -> None:
        self._sidecars.overwrite(generation)
        raise Crash


def steps(root: Path) -> dict[str, dict[str, Any]]:
    """The adapters that die at each step, built over ``root``."""
    return {
        "after the pending record": {"backend": CrashingBackend()},
        "after the PNG": {"images": PngOnlyStore(root)},
        "after the thumbnail": {"images": NoFinalRecordStore(root)},
        "after the final sidecar": {"metadata": SidecarOnlyMetadata(root)},
        "after everything": {},
    }


async def generate_and_die(settings: Settings, adapters: dict[str, Any]) -> None:
    """One generation that dies at the given step (or completes)."""
    closing = contextlib.AsyncExitStack()
    adapters = {"backend": FakeImageBackend(), **adapters}
    async with closing:
        service = build_service(settings, closing=closing, background=BackgroundWork(), **adapters)
        with contextlib.suppress(Crash):
            await service.generate(None, GenerationRequest.parse("a fox"))
    metadata = adapters.get("metadata")
    if isinstance(metadata, FilesystemMetadataRepository):
        metadata.close()


async def restart(settings: Settings) -> list[dict[str, Any]]:
    """Build the app over the same folder and run its start-up; the reconcile log lines."""
    with json_logs() as stream:
        app = build_app(settings, backend=FakeImageBackend())
        async with app.router.lifespan_context(app):
            pass
    return [line for line in json_lines(stream) if line.get("event") == "reconcile"]


def check_every_png_has_a_done_record_and_costs_add_up(root: Path, attempts: int) -> None:
    pngs = sorted(p.stem for p in root.glob("*.png"))
    with FilesystemMetadataRepository(root) as metadata:
        for stem in pngs:
            record = metadata.get(uuid.UUID(stem))
            assert record is not None, f"{stem}.png has no record"
            assert record.status is GenerationStatus.DONE
            assert (record.width, record.height) == (1024, 1024)
        assert metadata.unsettled() == []
        usage = metadata.usage()
        gallery = metadata.page_for_user(LOCAL_OWNER, 0, 100)
    assert usage.total_cost.usd == FLASH_1K * attempts
    assert usage.total_count == len(pngs) == gallery.total


@pytest.mark.parametrize(
    ("step", "done", "failed"),
    [
        ("after the pending record", 0, 1),
        ("after the PNG", 1, 0),
        ("after the thumbnail", 1, 0),
        ("after the final sidecar", 0, 0),
        ("after everything", 0, 0),
    ],
)
async def test_a_crash_at_each_step_is_settled_at_the_next_start(
    settings: Settings, step: str, done: int, failed: int
) -> None:
    """Every PNG has a record, every paid call is counted, the start-up line says so."""
    settings.root.mkdir(parents=True)
    await generate_and_die(settings, steps(settings.root)[step])
    (line,) = await restart(settings)
    assert (line["done"], line["failed"]) == (done, failed)
    assert line["msg"] == (
        f"start-up reconciled {done + failed} unfinished generations: {done} done, {failed} failed"
    )
    check_every_png_has_a_done_record_and_costs_add_up(settings.root, attempts=1)
    (again,) = await restart(settings)
    assert (again["done"], again["failed"]) == (0, 0)


async def test_crashes_at_every_step_in_one_folder_add_up(settings: Settings) -> None:
    """All the windows one after the other, one restart: the totals are exact."""
    settings.root.mkdir(parents=True)
    for step in steps(settings.root):
        await generate_and_die(settings, steps(settings.root)[step])  # fresh adapters each time
    (line,) = await restart(settings)
    assert (line["done"], line["failed"]) == (2, 1)
    check_every_png_has_a_done_record_and_costs_add_up(settings.root, attempts=5)
    with FilesystemMetadataRepository(settings.root) as metadata:
        failed = [
            g
            for stem in (p.stem for p in settings.root.glob("*.json") if p.stem != "prefs")
            if (g := metadata.get(uuid.UUID(stem))) is not None and not g.is_done
        ]
    assert len(failed) == 1
    assert failed[0].failure == "Interrupted by a restart before the image was stored."


@pytest.mark.parametrize("case", BAD_SIDECARS)
async def test_start_up_with_a_bad_sidecar_succeeds_and_names_it_in_a_warning(
    settings: Settings, case: str
) -> None:
    """Index build and reconcile both skip it; the other records settle and count."""
    settings.root.mkdir(parents=True)
    await generate_and_die(settings, steps(settings.root)["after the pending record"])
    bad = plant(settings.root, case)
    with json_logs() as stream:
        app = build_app(settings, backend=FakeImageBackend())
        async with app.router.lifespan_context(app):
            pass
    lines = json_lines(stream)
    warnings = [line["msg"] for line in lines if line["level"] == "WARNING"]
    assert any(bad.name in w for w in warnings), warnings
    (reconciled,) = [line for line in lines if line.get("event") == "reconcile"]
    assert (reconciled["done"], reconciled["failed"]) == (0, 1)
    with FilesystemMetadataRepository(settings.root) as metadata:
        assert metadata.get(uuid.UUID(bad.stem)) is None
        assert metadata.usage().total_cost.usd == FLASH_1K
