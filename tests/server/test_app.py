"""The composition root: named adapters, overridable by keyword, closed by whoever built them."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from image_core.errors import StorageError
from image_core.testing import InMemoryPrefStore
from image_server.adapters.fs_images import FilesystemImageStore
from image_server.adapters.fs_metadata import FilesystemMetadataRepository
from image_server.app import ServedImageStore, build_adapters, build_app
from image_server.settings import Settings, load_settings

_: type[ServedImageStore] = FilesystemImageStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"IMG_ROOT": str(tmp_path / "data")}, dev=True)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Closing runs on asyncio like the server."""
    return "asyncio"


@pytest.mark.anyio
async def test_what_the_root_builds_is_closed_with_its_stack(settings: Settings) -> None:
    """The metadata repository it made is unusable once the stack is closed."""
    closing = contextlib.AsyncExitStack()
    adapters = build_adapters(settings, closing)
    assert adapters.metadata.users() == []
    await closing.aclose()
    with pytest.raises((sqlite3.ProgrammingError, StorageError)):
        adapters.metadata.users()


@pytest.mark.anyio
async def test_what_the_caller_passes_stays_open_and_is_used(settings: Settings) -> None:
    """An override is the caller's: used as given, never closed by the root."""
    closing = contextlib.AsyncExitStack()
    mine = FilesystemMetadataRepository(settings.root)
    prefs = InMemoryPrefStore()
    adapters = build_adapters(settings, closing, metadata=mine, prefs=prefs)
    assert adapters.metadata is mine
    assert adapters.prefs is prefs
    await closing.aclose()
    assert mine.users() == []
    mine.close()


def test_build_app_serves_images_from_the_store_it_was_given(
    settings: Settings, tmp_path: Path
) -> None:
    """``images=`` replaces the store behind both the service and ``/i/``."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    name = "0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09.png"
    (elsewhere / name).write_bytes(b"\x89PNG not really")
    app = build_app(settings, images=FilesystemImageStore(elsewhere))
    with TestClient(app, base_url=settings.public_url) as client:
        assert client.get(f"/i/{name}").content == b"\x89PNG not really"
    assert not (settings.root / name).exists()


BANNER = "Sign-in is off and this server listens beyond this machine"


@pytest.mark.parametrize(("host", "shown"), [("0.0.0.0", True), (None, False)])
def test_the_dashboard_warns_when_login_is_off_on_a_network_address(
    tmp_path: Path, host: str | None, shown: bool
) -> None:
    """IMG_AUTH_DISABLED=1 with IMG_HOST=0.0.0.0: a banner on every dashboard page."""
    env = {"IMG_AUTH_DISABLED": "1", "IMG_ROOT": str(tmp_path)}
    if host is not None:
        env["IMG_HOST"] = host
    settings = load_settings(env)
    with TestClient(build_app(settings), base_url=settings.public_url) as client:
        page = client.get("/ui/")
    assert page.status_code == 200
    assert (BANNER in page.text) is shown
