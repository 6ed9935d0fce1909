"""The model lineup against the fake Gemini through the real client: lite, 512, the models list.

A deployment whose flash id disappears from Gemini's models list says so at start-up (the
log of a real ``image-mcp`` process), in ``check --online`` and to admins on the
dashboard, each time with the variable to set; a generation with that id fails at once
with the same hint instead of a Gemini 404.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastmcp import Client

from image_core.catalog import NANO_BANANA_2_1
from image_core.domain import AspectRatio, BackendRequest, ImageSize
from image_core.errors import BackendError
from image_server.adapters.gemini import GeminiImageBackend
from image_server.app import build_app
from image_server.model_lifecycle import ModelWatch
from image_server.settings import Settings, load_settings
from tests.fakes.fake_gemini import LISTED_MODELS, FakeGemini
from tests.support.live_server import free_port, live_server
from tests.support.logs import json_lines, json_logs

pytestmark = [pytest.mark.anyio]

KEY = "gemini-lineup-key-0123456789"
FLASH_ID = "gemini-3.1-flash-image"
WITHOUT_FLASH = [m for m in LISTED_MODELS if m != FLASH_ID]
IMAGE_MCP = Path(sys.executable).parent / "image-mcp"


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as fake:
        yield fake


def dev_settings(root: Path, gemini: FakeGemini, **extra: str) -> Settings:
    env = {
        "IMG_ROOT": str(root),
        "GEMINI_API_KEY": KEY,
        "IMG_GEMINI_BASE_URL": gemini.base_url,
        **extra,
    }
    return load_settings(env, dev=True)


def texts(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


# --- the models list through the real client -----------------------------------------------


async def test_the_models_list_is_read_across_pages_with_the_key(gemini: FakeGemini) -> None:
    """Every page is asked for (the fake serves 3 a page), each with the API key."""
    async with GeminiImageBackend(api_key=KEY, base_url=gemini.base_url) as backend:
        listed = await backend.list_models()
    assert listed == set(LISTED_MODELS)
    pages = gemini.list_requests
    assert len(pages) == 3
    assert {r.api_key for r in pages} == {KEY}
    assert all("key" not in r.body for r in pages)  # in a header, never in the URL
    assert all(r.headers.get("x-goog-api-key") == KEY for r in pages)
    assert gemini.requests == []  # nothing generated, nothing billed


async def test_a_missing_flash_is_reported_with_its_successor_and_the_variable(
    gemini: FakeGemini,
) -> None:
    """Flash gone, Nano Banana 2.1 listed: set IMG_MODEL_FLASH to it; pro and lite are fine."""
    gemini.listed_models = WITHOUT_FLASH
    settings = dev_settings(Path("unused"), gemini)
    async with GeminiImageBackend(api_key=KEY, base_url=gemini.base_url) as backend:
        report = await ModelWatch(settings.catalog, backend).check()
    by_alias = {s.alias: s for s in report.statuses}
    assert by_alias["pro"].available
    assert by_alias["lite"].available
    assert not by_alias["flash"].available
    assert f"set IMG_MODEL_FLASH={NANO_BANANA_2_1}" in (by_alias["flash"].hint or "")


async def test_without_a_listed_successor_the_hint_names_the_image_models_there_are(
    gemini: FakeGemini,
) -> None:
    """Neither flash nor 2.1 listed: no guess, the variable and the image ids the key has."""
    gemini.listed_models = [m for m in WITHOUT_FLASH if m != NANO_BANANA_2_1]
    settings = dev_settings(Path("unused"), gemini)
    async with GeminiImageBackend(api_key=KEY, base_url=gemini.base_url) as backend:
        report = await ModelWatch(settings.catalog, backend).check()
    hint = report.missing[0].hint or ""
    assert "no known successor is listed: set IMG_MODEL_FLASH" in hint
    assert "gemini-3-pro-image" in hint
    assert NANO_BANANA_2_1 not in hint


@pytest.mark.parametrize("fault", [503, 403])
async def test_a_failed_check_warns_and_blocks_nothing(gemini: FakeGemini, fault: int) -> None:
    """No answer: a warning, no report, so every model still generates."""
    gemini.list_fault = fault
    settings = dev_settings(Path("unused"), gemini)
    with json_logs() as stream:
        async with GeminiImageBackend(api_key=KEY, base_url=gemini.base_url) as backend:
            watch = ModelWatch(settings.catalog, backend)
            report = await watch.check()
    assert report.error is not None
    assert KEY not in report.error
    assert watch.missing(FLASH_ID) is None
    assert watch.notices() == ()
    warning = next(r for r in json_lines(stream) if r.get("event") == "model_check")
    assert warning["level"] == "WARNING"
    assert "could not check" in warning["msg"]


async def test_the_fake_refuses_a_size_or_ratio_the_model_does_not_offer(
    gemini: FakeGemini,
) -> None:
    """Like the real API: 400 INVALID_ARGUMENT, which the adapter quotes."""
    async with GeminiImageBackend(api_key=KEY, base_url=gemini.base_url) as backend:
        for size, ratio in [(ImageSize.S512, None), (ImageSize.S1K, AspectRatio.R1_8)]:
            request = BackendRequest("gemini-3-pro-image", "x", size, ratio)
            with pytest.raises(BackendError, match="400 INVALID_ARGUMENT.*not supported"):
                await backend.generate(request)
        image = await backend.generate(BackendRequest(FLASH_ID, "x", ImageSize.S512, None))
    assert image.data.startswith(b"\x89PNG")


def test_the_fake_returns_grounding_metadata_when_asked_to_search(gemini: FakeGemini) -> None:
    """A request carrying the googleSearch tool gets groundingMetadata (for later controls)."""
    body = {
        "contents": [{"role": "user", "parts": [{"text": "today's weather in Paris"}]}],
        "tools": [{"googleSearch": {}}],
    }
    answer = httpx2.post(
        f"{gemini.base_url}/v1beta/models/{FLASH_ID}:generateContent",
        json=body,
        headers={"x-goog-api-key": KEY},
        timeout=30,
    ).json()
    grounding = answer["candidates"][0]["groundingMetadata"]
    assert grounding["webSearchQueries"] == ["today's weather in Paris"]
    assert grounding["groundingChunks"][0]["web"]["uri"].startswith("https://")


async def test_the_check_repeats_and_follows_the_list_as_it_changes(gemini: FakeGemini) -> None:
    """Flash listed, then gone, then back: each later check replaces what the last one said;
    a failed check in between keeps the last answer (sooner retried, here at once)."""
    settings = dev_settings(Path("unused"), gemini)
    async with GeminiImageBackend(api_key=KEY, base_url=gemini.base_url) as backend:
        watch = ModelWatch(settings.catalog, backend, every_seconds=0.05, retry_seconds=0.05)

        async def until(condition: Any) -> None:
            for _ in range(1000):  # at most 10 s
                if condition():
                    return
                await anyio.sleep(0.01)
            raise AssertionError("the watch never got there")

        def flash_missing() -> bool:
            return watch.missing(FLASH_ID) is not None

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch.run)
            await until(lambda: watch.report is not None)
            assert not flash_missing()
            gemini.listed_models = WITHOUT_FLASH
            await until(flash_missing)
            gemini.list_fault = 503
            seen = len(gemini.list_requests)
            await until(lambda: len(gemini.list_requests) >= seen + 3)
            assert flash_missing()  # no answer changes nothing
            gemini.list_fault = None
            gemini.listed_models = list(LISTED_MODELS)
            await until(lambda: not flash_missing())
            assert watch.notices() == ()
            tasks.cancel_scope.cancel()


# --- a whole server ------------------------------------------------------------------------


async def test_a_vanished_flash_shows_to_admins_and_fails_fast_with_the_fix(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    """The dashboard names the fix; flash fails before any call; pro and lite still work."""
    gemini.listed_models = WITHOUT_FLASH
    settings = dev_settings(tmp_path / "data", gemini)
    with json_logs() as stream, live_server(build_app(settings)) as base_url:
        wait_for(lambda: stream.getvalue().count('"event": "model_check"') >= 3)
        async with httpx2.AsyncClient() as http:
            page = (await http.get(f"{base_url}/ui/")).text
        async with Client(f"{base_url}/mcp") as client:
            refused = await client.call_tool(
                "generate_image", {"prompt": "a fox"}, raise_on_error=False
            )
            lite = await client.call_tool("generate_image", {"prompt": "a fox", "model": "lite"})
    assert f"IMG_MODEL_FLASH={NANO_BANANA_2_1}" in page
    assert refused.is_error
    assert f"set IMG_MODEL_FLASH={NANO_BANANA_2_1}" in texts(refused)
    assert [r.model for r in gemini.requests] == ["gemini-3.1-flash-lite-image"]
    assert lite.structured_content is not None
    assert lite.structured_content["estimated_cost_usd"] == "0.034"
    missing = [
        r for r in json_lines(stream) if r.get("event") == "model_check" and r["alias"] == "flash"
    ]
    assert missing[0]["level"] == "WARNING"
    assert missing[0]["outcome"] == "missing"


async def test_lite_and_512_work_end_to_end_and_reach_gemini_as_such(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    """512 (asked as 0.5K) goes to flash as imageSize 512; lite at 1K; each stored and priced."""
    settings = dev_settings(tmp_path / "data", gemini)
    with live_server(build_app(settings)) as base_url:
        async with Client(f"{base_url}/mcp") as client:
            small = await client.call_tool(
                "generate_image", {"prompt": "a fox", "image_size": "0.5K", "aspect_ratio": "16:9"}
            )
            lite = await client.call_tool("generate_image", {"prompt": "a fox", "model": "lite"})
    assert small.structured_content is not None
    assert lite.structured_content is not None
    first, second = gemini.requests
    assert (first.model, first.config["imageConfig"]["imageSize"]) == (FLASH_ID, "512")
    assert second.model == "gemini-3.1-flash-lite-image"
    sidecar = json.loads(
        (settings.root / small.structured_content["file_name"]).with_suffix(".json").read_text()
    )
    assert (sidecar["image_size"], sidecar["width"], sidecar["height"]) == ("512", 512, 288)
    assert sidecar["estimate"] == "0.045"
    assert small.structured_content["estimated_cost_usd"] == "0.045"


# --- the command ---------------------------------------------------------------------------


def run_image_mcp(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(
        [str(IMAGE_MCP), *args], env=full, capture_output=True, text=True, timeout=60, check=False
    )


def cli_env(tmp_path: Path, gemini: FakeGemini) -> dict[str, str]:
    return {
        "IMG_AUTH_DISABLED": "1",
        "IMG_ROOT": str(tmp_path / "data"),
        "GEMINI_API_KEY": KEY,
        "IMG_GEMINI_BASE_URL": gemini.base_url,
    }


def test_check_online_says_each_model_is_available(tmp_path: Path, gemini: FakeGemini) -> None:
    """Exit 0 and one line per configured model."""
    done = run_image_mcp(["check", "--online"], cli_env(tmp_path, gemini))
    assert done.returncode == 0, done.stderr
    for model_id in (FLASH_ID, "gemini-3-pro-image", "gemini-3.1-flash-lite-image"):
        assert f"{model_id} is available" in done.stdout


def test_check_online_names_a_missing_model_and_the_fix(tmp_path: Path, gemini: FakeGemini) -> None:
    """Exit 1 and the line with the exact variable to set."""
    gemini.listed_models = WITHOUT_FLASH
    done = run_image_mcp(["check", "--online"], cli_env(tmp_path, gemini))
    assert done.returncode == 1
    assert f"MISSING  flash: Gemini no longer lists {FLASH_ID}" in done.stdout
    assert f"set IMG_MODEL_FLASH={NANO_BANANA_2_1}" in done.stdout


def test_check_online_follows_img_model_flash_and_says_when_it_cannot_ask(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    """With the fix applied the check passes; with Gemini down it says so and exits 1."""
    env = {**cli_env(tmp_path, gemini), "IMG_MODEL_FLASH": NANO_BANANA_2_1}
    gemini.listed_models = WITHOUT_FLASH
    fixed = run_image_mcp(["check", "--online"], env)
    assert fixed.returncode == 0, fixed.stdout
    assert f"{NANO_BANANA_2_1} is available" in fixed.stdout
    gemini.list_fault = 503
    down = run_image_mcp(["check", "--online"], env)
    assert down.returncode == 1
    assert "Models not checked" in down.stdout
    assert "HTTP 503" in down.stdout


def test_serve_start_up_logs_the_missing_flash_and_keeps_serving(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    """A real process: the warning with the fix is in its log, and /health still answers."""
    gemini.listed_models = WITHOUT_FLASH
    port = free_port()
    log_file = tmp_path / "stderr.log"

    def flash_lines() -> list[dict[str, Any]]:
        # Whole lines only: the last one may still be being written.
        done = log_file.read_text().rpartition("\n")[0]
        lines = [json.loads(x) for x in done.splitlines() if x.startswith("{")]
        return [r for r in lines if r.get("event") == "model_check" and r.get("alias") == "flash"]

    with log_file.open("w") as stderr:
        process = subprocess.Popen(
            [str(IMAGE_MCP), "dev", "--port", str(port)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **cli_env(tmp_path, gemini)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
        try:
            wait_for(lambda: bool(flash_lines()), seconds=30)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as answer:
                assert answer.status == 200
        finally:
            process.terminate()
            process.wait(timeout=15)
    missing = flash_lines()
    assert missing[0]["level"] == "WARNING"
    assert f"set IMG_MODEL_FLASH={NANO_BANANA_2_1}" in missing[0]["msg"]
