"""A real server process killed mid-work (SIGKILL: no clean-up runs), then started again.

Eight generations are under way against the fake Gemini, some answered, some still
being drawn, when the process dies. After a restart over the same folder every PNG has
a done record, nothing is left rendering, every request Gemini received is counted at
its price, and the start-up log says what it settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from image_core.domain import GenerationStatus
from image_core.names import LOCAL_OWNER
from image_server.adapters.fs_metadata import FilesystemMetadataRepository
from tests.fakes.fake_gemini import FakeGemini
from tests.support.live_server import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

IMAGE_MCP = Path(sys.executable).parent / "image-mcp"
GEMINI_KEY = "gemini-kill-key-0123456789"
FLASH_1K = Decimal("0.067")
#: Answers spread over the kill at about 2 s: some stored before it, some in flight.
DELAYS = ("slow:0", "slow:0.2", "slow:0.5", "slow:0.8", "slow:30", "slow:30", "slow:30", "slow:30")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=GEMINI_KEY) as fake:
        yield fake


@contextlib.contextmanager
def server(
    root: Path, gemini: FakeGemini, port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``image-mcp dev`` on ``port`` until the block ends (or the test kills it)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "IMG_ROOT": str(root),
        "IMG_PORT": str(port),
        "GEMINI_API_KEY": GEMINI_KEY,
        "IMG_GEMINI_BASE_URL": gemini.base_url,
        "IMG_TOOL_DEADLINE": "1",
        "IMG_LOG_LEVEL": "INFO",
        # Eight calls at once by the one local person: above the default of two at once.
        "IMG_MAX_CONCURRENT": str(len(DELAYS)),
    }
    with log.open("wb") as out:
        process = subprocess.Popen([str(IMAGE_MCP), "dev"], env=env, stdout=out, stderr=out)
    try:
        wait_healthy(port, process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)


def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited during start-up"
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2),
        ):
            return
        time.sleep(0.2)
    raise AssertionError("the server did not answer /health within 60 s")


async def call(url: str, prompt: str) -> None:
    """One generation; the server may die under it, which is the point."""
    with contextlib.suppress(Exception):
        async with Client(url, timeout=10) as client:
            await client.call_tool("generate_image", {"prompt": prompt}, raise_on_error=False)


def log_events(path: Path, event: str) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            line = json.loads(raw)
            if isinstance(line, dict) and line.get("event") == event:
                lines.append(line)
    return lines


async def test_a_killed_server_loses_no_paid_image_and_no_cost(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    root = tmp_path / "data"
    port = free_port()
    gemini.script(*DELAYS)
    with server(root, gemini, port, tmp_path / "first.log") as first:
        url = f"http://127.0.0.1:{port}/mcp"
        calls = [asyncio.create_task(call(url, f"scene {n}")) for n in range(len(DELAYS))]
        deadline = time.monotonic() + 30
        while len(gemini.requests) < len(DELAYS) or len(list(root.glob("*.png"))) < 2:
            assert time.monotonic() < deadline, "the generations did not get under way"
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        await asyncio.gather(*calls)
    sent = len(gemini.requests)
    before = {p.stem for p in root.glob("*.png")}
    assert 2 <= len(before) < sent, "the kill should fall between stored and unfinished work"

    with server(root, gemini, free_port(), tmp_path / "second.log"):
        pass  # start-up settles what the dead process left

    with FilesystemMetadataRepository(root) as metadata:
        assert metadata.unsettled() == []
        records = [metadata.get(g.id) for g in metadata.page_for_user(LOCAL_OWNER, 0, 100).items]
        pngs = {p.stem for p in root.glob("*.png")}
        for stem in pngs:
            record = metadata.get(uuid.UUID(stem))
            assert record is not None, f"{stem}.png has no record"
            assert record.status is GenerationStatus.DONE
        usage = metadata.usage()
    assert pngs == before
    assert usage.total_count == len(pngs) == len(records)
    # Every request Gemini received is counted: stored ones as done, the rest as failed.
    # Each at its true cost when it came, at the list price when the kill cut it off.
    assert FLASH_1K * sent <= usage.total_cost.usd < (FLASH_1K + Decimal("0.001")) * sent
    settled = log_events(tmp_path / "second.log", "reconcile")
    assert settled, "start-up did not report what it settled"
    assert settled[0]["failed"] == sent - len(pngs)
