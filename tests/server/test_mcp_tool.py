"""The generate_image tool through a real MCP client over Streamable HTTP on loopback."""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, get_args

import httpx2
import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier
from mcp.types import ImageContent, TextContent
from PIL import Image

from image_core.domain import AspectRatio, ImageSize
from image_core.errors import (
    BackendMisconfigured,
    BackendRefused,
    BackendUnavailable,
    StorageError,
)
from image_core.testing import FakeImageBackend
from image_server.app import build_app, build_service
from image_server.mcp import (
    AspectRatioChoice,
    GenerateImageTool,
    SizeChoice,
    build_mcp_server,
)
from image_server.settings import Settings, load_settings
from tests.support.apps_host import APPS_HOST
from tests.support.live_server import live_server
from tests.support.logs import json_lines, json_logs

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"IMG_ROOT": str(tmp_path / "data")}, dev=True)


@pytest.fixture
def backend() -> FakeImageBackend:
    return FakeImageBackend()


@pytest.fixture
def base_url(settings: Settings, backend: FakeImageBackend) -> Iterator[str]:
    with live_server(build_app(settings, backend=backend)) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[Client[Any]]:
    async with Client(f"{base_url}/mcp") as c:
        yield c


def texts(result: Any) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def stored_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.root.glob("*.*") if p.suffix in {".png", ".json"})


async def test_the_server_offers_exactly_the_documented_tools(
    client: Client[Any], base_url: str
) -> None:
    """generate_image with enumerated ratios and sizes and the model-choice rule; get_image;
    list_images; and, for MCP Apps hosts only, the viewer's app-only upload_photo."""
    tools = await client.list_tools()
    assert [t.name for t in tools] == ["generate_image", "get_image", "list_images"]
    async with Client(f"{base_url}/mcp", extensions=APPS_HOST) as host:
        shown = [t.name for t in await host.list_tools()]
    assert shown == ["generate_image", "get_image", "list_images", "upload_photo"]
    tool, lookup, _ = tools
    assert lookup.description is not None
    assert "still rendering" in lookup.description
    assert lookup.input_schema["required"] == ["name"]
    assert lookup.annotations is not None
    assert lookup.annotations.read_only_hint is True
    assert "get_image" in (tool.description or "")
    assert tool.description is not None
    assert "ONLY pass this when the human explicitly asked" in tool.description
    assert "flash" in tool.description
    assert "pro" in tool.description
    props = tool.input_schema["properties"]
    assert tool.input_schema["required"] == ["prompt"]
    assert "16:9" in json.dumps(props["aspect_ratio"])
    assert "4K" in json.dumps(props["image_size"])


async def test_a_generation_returns_a_small_preview_and_a_url_that_serves_the_png(
    client: Client[Any], base_url: str, settings: Settings
) -> None:
    """The preview is a compact JPEG; the URL serves the full-size PNG; the sidecar records it."""
    result = await client.call_tool(
        "generate_image", {"prompt": "a red fox", "aspect_ratio": "16:9", "image_size": "2K"}
    )
    assert not result.is_error
    image = next(c for c in result.content if isinstance(c, ImageContent))
    assert image.mime_type == "image/jpeg"
    preview = Image.open(io.BytesIO(base64.b64decode(image.data)))
    assert max(preview.size) <= 1024
    data = result.structured_content
    assert data is not None
    assert data["url"].startswith(f"{settings.public_url}/i/")
    assert data["model"] == "flash"
    assert data["estimated_cost_usd"] == "0.101"
    assert data["file_name"] in texts(result)
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{base_url}/i/{data['file_name']}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (2048, 1152)
    sidecar = json.loads((settings.root / data["file_name"].replace(".png", ".json")).read_text())
    assert sidecar["email"] == "local@localhost"
    assert sidecar["prompt"] == "a red fox"
    assert sidecar["image_size"] == "2K"
    assert sidecar["cost"] == "0.101"


async def test_reference_images_reach_the_backend_by_name_or_url(
    client: Client[Any], backend: FakeImageBackend
) -> None:
    """Iterating passes the earlier PNG's bytes along with the new prompt."""
    first = await client.call_tool("generate_image", {"prompt": "a house"})
    assert first.structured_content is not None
    name, url = first.structured_content["file_name"], first.structured_content["url"]
    await client.call_tool(
        "generate_image", {"prompt": "same at night", "reference_images": [name, url]}
    )
    sent = backend.requests[-1]
    assert len(sent.references) == 2
    assert all(ref.data.startswith(b"\x89PNG") for ref in sent.references)


async def test_an_explicit_model_is_honoured_and_priced(client: Client[Any]) -> None:
    """'pro' at 4K costs the pro 4K price."""
    result = await client.call_tool(
        "generate_image", {"prompt": "poster", "model": "Nano Banana Pro", "image_size": "4K"}
    )
    assert result.structured_content is not None
    assert result.structured_content["model"] == "pro"
    assert result.structured_content["estimated_cost_usd"] == "0.24"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"prompt": "x", "model": "dall-e"}, "Valid choices"),
        ({"prompt": "x", "model": "pro", "aspect_ratio": "1:8"}, "does not support aspect ratio"),
        ({"prompt": "x" * 32_001}, "32000"),
        ({"prompt": "x", "reference_images": ["../prefs.json"]}, "not the name of an earlier"),
        (
            {"prompt": "x", "reference_images": ["0b7e7a1c-9a2d-4c3e-8f00-000000000000.png"]},
            "does not exist",
        ),
    ],
)
async def test_bad_requests_are_clear_tool_errors_and_nothing_is_generated(
    client: Client[Any],
    backend: FakeImageBackend,
    settings: Settings,
    arguments: dict[str, Any],
    expected: str,
) -> None:
    """Each mistake names what to change; the backend is never called."""
    with pytest.raises(ToolError, match=expected.replace("(", r"\(")):
        await client.call_tool("generate_image", arguments)
    assert backend.requests == []
    assert stored_files(settings) == []


@pytest.mark.parametrize(
    "failure",
    [
        BackendRefused("The image was blocked by Gemini's safety filter."),
        BackendUnavailable("Gemini is overloaded; try again in a minute."),
    ],
)
async def test_backend_failures_surface_their_message_and_store_nothing(
    client: Client[Any], backend: FakeImageBackend, settings: Settings, failure: Exception
) -> None:
    """No PNG, no sidecar, no cost when the model does not deliver."""
    backend.failures.append(failure)  # type: ignore[arg-type]
    with pytest.raises(ToolError, match=str(failure)):
        await client.call_tool("generate_image", {"prompt": "x"})
    assert stored_files(settings) == []


async def test_an_unexpected_crash_is_masked_from_the_client(
    client: Client[Any], backend: FakeImageBackend, settings: Settings
) -> None:
    """Internal details (paths, exception text) never reach the caller."""
    backend.failures.append(RuntimeError("/secret/path exploded"))  # type: ignore[arg-type]
    with pytest.raises(ToolError) as caught:
        await client.call_tool("generate_image", {"prompt": "x"})
    assert "/secret/path" not in str(caught.value)
    assert stored_files(settings) == []


async def test_progress_notifications_are_sent_while_waiting(
    base_url: str, backend: FakeImageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that asked for progress hears from the server during a slow generation."""
    monkeypatch.setattr("image_server.mcp.HEARTBEAT_SECONDS", 0.05)
    backend.delay_seconds = 0.4
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    async with Client(f"{base_url}/mcp") as c:
        await c.call_tool("generate_image", {"prompt": "slow"}, progress_handler=on_progress)
    assert len(seen) >= 2
    assert all(m and "Waiting" in m for m in seen)


def _token_server(settings: Settings, backend: FakeImageBackend) -> Any:
    """The tool behind bearer tokens, to test the allow-list without the OAuth dance."""
    verifier = StaticTokenVerifier(
        tokens={
            "allowed": {
                "client_id": "c",
                "scopes": [],
                "email": "Friend@Example.com",
                "email_verified": "true",
            },
            "stranger": {
                "client_id": "c",
                "scopes": [],
                "email": "stranger@example.com",
                "email_verified": True,
            },
            "unverified": {
                "client_id": "c",
                "scopes": [],
                "email": "friend@example.com",
                "email_verified": False,
            },
            "kelvin": {
                "client_id": "c",
                "scopes": [],
                "email": "fri\u212aend@example.com",
                "email_verified": True,
            },
            "noemail": {"client_id": "c", "scopes": []},
            "loud-stranger": {
                "client_id": "c",
                "scopes": [],
                "email": "Stranger@Example.COM",
                "email_verified": True,
            },
        }
    )
    service = build_service(settings, backend=backend)
    return build_mcp_server(service, public_url=settings.public_url, auth=verifier).http_app(
        path="/mcp"
    )


@pytest.fixture
def guarded_url(tmp_path: Path, backend: FakeImageBackend) -> Iterator[str]:
    env = {
        "IMG_ROOT": str(tmp_path / "data"),
        "IMG_PUBLIC_URL": "http://127.0.0.1:1",
        "GOOGLE_OAUTH_CLIENT_ID": "c",
        "GOOGLE_OAUTH_CLIENT_SECRET": "s" * 20,
        "IMG_ALLOWED_EMAILS": "friend@example.com",
        "GEMINI_API_KEY": "k" * 20,
    }
    settings = load_settings(env)
    with live_server(_token_server(settings, backend)) as url:
        yield url


async def test_an_allow_listed_email_may_generate_whatever_its_case(
    guarded_url: str, backend: FakeImageBackend
) -> None:
    """Friend@Example.com matches friend@example.com."""
    async with Client(f"{guarded_url}/mcp", auth="allowed") as c:
        result = await c.call_tool("generate_image", {"prompt": "ok"})
    assert not result.is_error
    assert len(backend.requests) == 1


@pytest.mark.parametrize("token", ["stranger", "unverified", "kelvin", "noemail"])
async def test_everyone_else_is_refused_before_anything_is_sent(
    guarded_url: str, backend: FakeImageBackend, tmp_path: Path, token: str
) -> None:
    """Not allow-listed, unverified, look-alike or missing email: refused, nothing written."""
    async with Client(f"{guarded_url}/mcp", auth=token) as c:
        with pytest.raises(ToolError, match="email|allow|IMG_ALLOWED_EMAILS"):
            await c.call_tool("generate_image", {"prompt": "no"})
    assert backend.requests == []
    assert not any((tmp_path / "data").glob("*.png"))


def test_image_sizes_cover_the_tool_schema() -> None:
    """The Literal in the tool schema and the domain enum agree."""
    assert set(get_args(SizeChoice)) == {s.value for s in ImageSize} | {"0.5K"}
    assert set(get_args(AspectRatioChoice)) == {r.value for r in AspectRatio}


_RATIOS_AS_BEFORE = [
    *("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"),
    *("1:4", "4:1", "1:8", "8:1"),
]


async def test_the_description_says_which_sizes_and_ratios_each_model_takes(
    client: Client[Any],
) -> None:
    """The calling model reads per model its sizes with prices and its ratios."""
    tool, *_ = await client.list_tools()
    description = tool.description or ""
    lines = {
        line.split("'")[1]: line for line in description.splitlines() if line.startswith("- '")
    }
    assert "512 $0.045, 1K $0.067, 2K $0.101, 4K $0.151; every ratio" in lines["flash"]
    assert "1K $0.134, 2K $0.134, 4K $0.24; ratios 1:1" in lines["pro"]
    assert "21:9 only" in lines["pro"]
    assert "1:8" not in lines["pro"]
    assert "1K $0.034;" in lines["lite"]
    assert "512 or 0.5K (flash only)" in description


async def test_a_default_of_pro_asked_for_1_8_names_flash_and_the_dashboard_choice(
    client: Client[Any], settings: Settings, backend: FakeImageBackend
) -> None:
    """The person's default cannot do it: the error says who can and where the default is set."""
    await build_service(settings).set_default_model(None, "pro")
    result = await client.call_tool(
        "generate_image", {"prompt": "a tall tower", "aspect_ratio": "1:8"}, raise_on_error=False
    )
    assert result.is_error
    text = texts(result)
    assert "Your default model pro (gemini-3-pro-image) does not support aspect ratio 1:8" in text
    assert "'flash' (Nano Banana 2) can: pass model 'flash'" in text
    assert "your own choice on the dashboard's Default model page (/ui/prefs)" in text
    assert backend.requests == []


async def test_512_on_a_model_without_it_names_the_model_that_offers_it(
    client: Client[Any], backend: FakeImageBackend
) -> None:
    """Named explicitly, the model is the caller's choice: no word about the default."""
    result = await client.call_tool(
        "generate_image",
        {"prompt": "x", "model": "pro", "image_size": "0.5K"},
        raise_on_error=False,
    )
    text = texts(result)
    assert "Pro (gemini-3-pro-image) does not support image size 512" in text
    assert "'flash' (Nano Banana 2) can" in text
    assert "default" not in text
    assert backend.requests == []


async def test_512_and_lite_are_generated_and_priced(
    client: Client[Any], backend: FakeImageBackend
) -> None:
    """flash at 0.5K is a 512 image at $0.045; lite at 1K costs $0.034."""
    small = await client.call_tool("generate_image", {"prompt": "x", "image_size": "0.5K"})
    assert small.structured_content is not None
    assert small.structured_content["estimated_cost_usd"] == "0.045"
    assert backend.requests[-1].image_size is ImageSize.S512
    lite = await client.call_tool("generate_image", {"prompt": "x", "model": "lite"})
    assert lite.structured_content is not None
    assert lite.structured_content["model"] == "lite"
    assert lite.structured_content["estimated_cost_usd"] == "0.034"


async def test_the_schema_lists_the_enum_values_in_their_order(client: Client[Any]) -> None:
    """The client sees the core's enums, in order: exactly the list the tool always offered."""
    tool, *_ = await client.list_tools()
    assert tool.name == "generate_image"
    properties = tool.input_schema["properties"]
    ratios = properties["aspect_ratio"]["anyOf"][0]["enum"]
    sizes = properties["image_size"]["anyOf"][0]["enum"]
    assert ratios == [r.value for r in AspectRatio] == _RATIOS_AS_BEFORE
    assert sizes == [*(s.value for s in ImageSize), "0.5K"] == ["512", "1K", "2K", "4K", "0.5K"]


async def test_the_tool_is_an_importable_callable_taking_its_collaborators(
    tmp_path: Path, backend: FakeImageBackend
) -> None:
    """``GenerateImageTool(service, public_url)`` can be awaited without any server."""
    settings = load_settings({"IMG_ROOT": str(tmp_path / "data")}, dev=True)
    tool = GenerateImageTool(build_service(settings, backend=backend), "https://img.example")
    result = await tool(prompt="a fox", image_size="2K")
    assert result.structured_content is not None
    assert result.structured_content["url"].startswith("https://img.example/i/")
    assert backend.requests[0].image_size is ImageSize.S2K


async def test_each_generation_logs_one_structured_line_without_the_prompt(
    client: Client[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Id, email, model, size, duration, cost and outcome; the prompt itself stays private."""
    caplog.set_level("INFO", logger="image_server.generation")
    await client.call_tool("generate_image", {"prompt": "my private idea", "image_size": "2K"})
    records = [r for r in caplog.records if getattr(r, "event", None) == "generation"]
    assert len(records) == 1
    fields = vars(records[0])
    assert fields["outcome"] == "ok"
    assert fields["model"] == "flash"
    assert fields["size"] == "2K"
    assert fields["cost_usd"] == "0.101"
    assert fields["email"] == "local@localhost"
    assert isinstance(fields["duration_ms"], int)
    assert "my private idea" not in records[0].getMessage()
    assert all("my private idea" not in str(v) for v in fields.values())


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"prompt": 5}, "prompt must be a string, not a number"),
        ({}, "prompt is required"),
        ({"prompt": ""}, "prompt must not be empty"),
        (
            {"prompt": "a fox", "aspect_ratio": "7:3"},
            "aspect_ratio '7:3' is not one of: 1:1, 2:3, 3:2,",
        ),
        (
            {"prompt": "a fox", "image_size": "8K"},
            "image_size '8K' is not one of: 512, 1K, 2K, 4K, 0.5K",
        ),
        (
            {"prompt": "a fox", "style": "watercolour"},
            "style is not a parameter of generate_image; it takes prompt, aspect_ratio, "
            "reference_images, model, image_size",
        ),
        (
            {"prompt": "a fox", "reference_images": "a.png"},
            "reference_images must be a list, not a string",
        ),
        (
            {"prompt": "a fox", "reference_images": ["a.png", 7]},
            "reference_images[1] must be a string, not a number",
        ),
    ],
)
async def test_argument_errors_reach_the_model_in_the_products_words(
    client: Client[Any], settings: Settings, arguments: dict[str, Any], expected: str
) -> None:
    """What was wrong, in which field, what is accepted; no validator dump, nothing stored."""
    result = await client.call_tool("generate_image", arguments, raise_on_error=False)
    assert result.is_error
    text = texts(result)
    assert expected in text
    assert "pydantic" not in text.lower()
    assert "validation error for" not in text
    assert "[type=" not in text
    assert stored_files(settings) == []


async def test_several_argument_errors_are_all_named(client: Client[Any]) -> None:
    """A call with two mistakes hears about both at once."""
    result = await client.call_tool(
        "generate_image", {"aspect_ratio": "7:3", "size": "2K"}, raise_on_error=False
    )
    text = texts(result)
    assert "prompt is required" in text
    assert "aspect_ratio '7:3'" in text
    assert "size is not a parameter" in text


def _levels(lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(line["level"]), str(line["msg"])) for line in lines]


@pytest.mark.parametrize(
    ("failure", "arguments", "level"),
    [
        (BackendRefused("Blocked by Gemini's safety filter."), {}, "INFO"),
        (None, {"model": "imagen-9"}, "INFO"),
        (None, {"reference_images": ["3f1c2b9a-7d4e-4f60-9a1b-2c3d4e5f6a7b.png"]}, "INFO"),
        (BackendUnavailable("Gemini is overloaded; try again in a minute."), {}, "WARNING"),
    ],
)
async def test_an_expected_refusal_is_one_log_line_below_error(
    client: Client[Any],
    backend: FakeImageBackend,
    failure: Exception | None,
    arguments: dict[str, Any],
    level: str,
) -> None:
    """Safety block, unknown model, missing reference, overload: one line, no framework ERROR."""
    if failure is not None:
        backend.failures.append(failure)  # type: ignore[arg-type]
    with json_logs() as stream:
        result = await client.call_tool(
            "generate_image", {"prompt": "x", **arguments}, raise_on_error=False
        )
    assert result.is_error
    lines = json_lines(stream)
    assert [line["level"] for line in lines if line["level"] == "ERROR"] == [], _levels(lines)
    assert not any("Error calling tool" in str(line["msg"]) for line in lines), _levels(lines)
    (failed,) = [line for line in lines if line.get("event") == "generation"]
    assert failed["level"] == level
    assert failed["outcome"] != "ok"


@pytest.mark.parametrize(
    "failure",
    [StorageError("The data folder is full."), BackendMisconfigured("Gemini rejected the key.")],
)
async def test_a_server_fault_is_logged_at_error_exactly_once(
    client: Client[Any], backend: FakeImageBackend, failure: Exception
) -> None:
    """Something the operator must fix is an ERROR, said once (not again by the framework)."""
    backend.failures.append(failure)  # type: ignore[arg-type]
    with json_logs() as stream:
        result = await client.call_tool("generate_image", {"prompt": "x"}, raise_on_error=False)
    assert str(failure) in texts(result)
    errors = [line for line in json_lines(stream) if line["level"] == "ERROR"]
    assert [line.get("event") for line in errors] == ["generation"]


async def test_logs_spell_each_email_one_way_the_normalised_one(
    guarded_url: str, backend: FakeImageBackend
) -> None:
    """Refusals, failures and successes log the lower-cased email the records store."""
    backend.failures.append(BackendRefused("Blocked by Gemini's safety filter."))
    with json_logs() as stream:
        async with Client(f"{guarded_url}/mcp", auth="allowed") as c:
            failed = await c.call_tool("generate_image", {"prompt": "x"}, raise_on_error=False)
            stored = await c.call_tool("generate_image", {"prompt": "y"})
        async with Client(f"{guarded_url}/mcp", auth="loud-stranger") as c:
            refused = await c.call_tool("generate_image", {"prompt": "z"}, raise_on_error=False)
    assert failed.is_error
    assert not stored.is_error
    assert refused.is_error
    lines = json_lines(stream)
    emails = [line["email"] for line in lines if "email" in line]
    assert emails == ["friend@example.com", "friend@example.com", "stranger@example.com"]
    assert not [line for line in lines if line["level"] == "ERROR"], _levels(lines)
    text = stream.getvalue()
    assert "Friend@Example.com" not in text
    assert "Stranger@Example.COM" not in text


async def test_server_info_names_the_product_and_its_version(client: Client[Any]) -> None:
    """Clients see image-mcp and the installed package's version, not the framework's."""
    info = client.server_info
    assert info is not None
    assert info.name == "image-mcp"
    assert info.version == importlib.metadata.version("image-server")
    assert info.icons is not None
    assert info.icons[0].src.endswith("/ui/static/favicon.svg")
    assert info.website_url is not None
    assert info.website_url.endswith("/ui/")


async def test_a_tool_call_does_not_list_every_tool_first(
    client: Client[Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transport checks a call's headers against the tool's schema, looked up directly.

    Without the lookup it ran the whole tools/list handler before every call (about
    10 ms of a 1K generation); the schema it finds must still be the listed one.
    """
    listed = {t.name: t.input_schema for t in await client.list_tools()}
    listings = 0
    original = FastMCP.list_tools

    async def counting(self: FastMCP, *args: Any, **kwargs: Any) -> Any:
        nonlocal listings
        listings += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(FastMCP, "list_tools", counting)
    await client.call_tool("get_image", {"name": "missing.png"}, raise_on_error=False)
    await client.call_tool("generate_image", {"prompt": "a fox"})
    assert listings == 0
    await client.list_tools()
    assert listings >= 1  # the counter does see a real listing
    server = build_mcp_server(
        build_service(settings, backend=FakeImageBackend()),
        public_url="http://127.0.0.1",
        auth=None,
    )
    lookup = server._mcp_server.get_tool_input_schema
    assert lookup is not None
    assert {name: lookup(name) for name in listed} == listed
