"""The app-only upload_photo tool over real HTTP, and the /mcp body cap it needs.

Callers are told apart by static bearer tokens (fastmcp's ``StaticTokenVerifier``), so
the allow-list and admin rules apply as in production; the service is the production
one (Pillow, files under a fresh data folder) with a scripted backend that keeps what
it was sent.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import jsonschema
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier
from mcp.types import TextContent
from PIL import ExifTags, Image

from image_core.testing import FakeImageBackend, make_png
from image_server.app import build_app, build_service
from image_server.mcp import build_mcp_server
from image_server.mcp_uploads import body_limit_for, decode_data, raise_body_limit
from image_server.settings import Settings, load_settings
from image_server.tool_schemas import UPLOAD_OUTPUT
from tests.support.apps_host import APPS_HOST
from tests.support.live_server import free_port, live_server
from tests.support.photos import camera_jpeg

pytestmark = pytest.mark.anyio


def _claims(email: str) -> dict[str, Any]:
    return {"client_id": "c", "scopes": [], "email": email, "email_verified": True}


TOKENS = {
    "ada": _claims("ada@example.com"),
    "bob": _claims("bob@example.com"),
    "boss": _claims("boss@example.com"),
    "stranger": _claims("stranger@example.com"),
}
ENV = {
    "IMG_PUBLIC_URL": "http://127.0.0.1:1",
    "GOOGLE_OAUTH_CLIENT_ID": "c",
    "GOOGLE_OAUTH_CLIENT_SECRET": "s" * 20,
    "IMG_ALLOWED_EMAILS": "ada@example.com,bob@example.com",
    "IMG_ADMIN_EMAILS": "boss@example.com",
    "GEMINI_API_KEY": "k" * 20,
    "IMG_TOOL_DEADLINE": "20",
}


def make_settings(root: Path, **extra: str) -> Settings:
    return load_settings({"IMG_ROOT": str(root), **ENV, **extra})


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def serve(settings: Settings, backend: FakeImageBackend) -> Iterator[str]:
    """The MCP app as the composition root builds it: the tools and the raised body cap."""
    server = build_mcp_server(
        build_service(settings, backend=backend),
        public_url=settings.public_url,
        auth=StaticTokenVerifier(tokens=TOKENS),
        tool_deadline_seconds=settings.tool_deadline_seconds,
        tools=settings.tools,
    )
    app = server.http_app(path="/mcp")
    raise_body_limit(app, body_limit_for(settings.upload_max_bytes))
    with live_server(app) as base:
        yield f"{base}/mcp"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def backend() -> FakeImageBackend:
    return FakeImageBackend()


@pytest.fixture
def url(settings: Settings, backend: FakeImageBackend) -> Iterator[str]:
    yield from serve(settings, backend)


def sideways(jpeg: bytes) -> bytes:
    """``jpeg`` with an EXIF block saying it was taken sideways (orientation 6), with GPS."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 1.0)
    body = exif.tobytes()
    segment = b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    return jpeg[:2] + segment + jpeg[2:]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kept_files(settings: Settings) -> list[str]:
    folder = settings.root / "uploads"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


async def upload(url: str, data: bytes, token: str | None = "ada", **args: Any) -> dict[str, Any]:
    async with Client(url, auth=token, timeout=60) as c:
        result = await c.call_tool("upload_photo", {"data": b64(data), **args})
    facts: dict[str, Any] = result.structured_content or {}
    jsonschema.validate(facts, UPLOAD_OUTPUT)
    last = result.content[-1]
    assert isinstance(last, TextContent)
    assert json.loads(last.text) == facts
    first = result.content[0]
    assert isinstance(first, TextContent)
    assert facts["name"] in first.text
    assert "reference_images" in first.text
    return facts


async def refused(url: str, arguments: dict[str, Any], token: str = "ada") -> str:
    async with Client(url, auth=token) as c:
        with pytest.raises(ToolError) as error:
            await c.call_tool("upload_photo", arguments)
    return str(error.value)


async def test_the_tool_is_listed_for_the_app_only_with_its_hints_and_schema(url: str) -> None:
    """Hosts hide it from the model by its meta; it writes, but only on this server.

    Only a client that renders apps is shown it: any other would hand it to its model.
    """
    async with Client(url, auth="ada") as c:
        assert "upload_photo" not in {t.name for t in await c.list_tools()}
    async with Client(url, auth="ada", extensions=APPS_HOST) as c:
        tools = {t.name: t for t in await c.list_tools()}
    tool = tools["upload_photo"]
    assert tool.meta is not None
    assert tool.meta["ui"] == {"visibility": ["app"]}
    hints = tool.annotations
    assert hints is not None
    assert (hints.read_only_hint, hints.destructive_hint) == (False, False)
    assert (hints.idempotent_hint, hints.open_world_hint) == (False, False)
    assert tool.output_schema == UPLOAD_OUTPUT
    assert tool.input_schema["required"] == ["data"]
    assert tool.input_schema["properties"]["file_name"]["anyOf"][0]["maxLength"] == 200
    generate = tools["generate_image"].description or ""
    assert "'upload-<uuid>.jpg'" in generate  # the model learns how an upload is named


async def test_a_phone_photo_is_uploaded_and_the_backend_gets_it_upright_and_bare(
    url: str, settings: Settings, backend: FakeImageBackend
) -> None:
    """A sideways 4000x3000 camera JPEG (about 5 MB) with GPS, used as a reference."""
    photo = sideways(camera_jpeg(4000, 3000, 21))
    facts = await upload(url, photo, file_name="C:\\DCIM\\IMG_0001.JPG")
    assert facts["name"].startswith("upload-")
    assert facts["name"].endswith(".jpg")
    assert (facts["width"], facts["height"]) == (3000, 4000)
    assert facts["file_name"] == "IMG_0001.JPG"
    async with Client(url, auth="ada") as c:
        made = await c.call_tool(
            "generate_image", {"prompt": "the same, at night", "reference_images": [facts["name"]]}
        )
    assert made.structured_content is not None
    assert made.structured_content["status"] == "done"
    (sent,) = backend.requests[-1].references
    image = Image.open(io.BytesIO(sent.data))
    assert (sent.mime_type, image.size) == ("image/jpeg", (3000, 4000))
    assert not image.getexif()
    assert b"Exif" not in sent.data
    assert not list(settings.root.glob("upload-*"))  # nothing beside the public PNGs
    # The record names the reference as it would be passed again, not as a generation.
    record_uri = f"image-mcp://records/{made.structured_content['file_name']}"
    async with Client(url, auth="ada") as c:
        (record,) = await c.read_resource(record_uri)
    assert json.loads(getattr(record, "text", "")).get("reference_images") == [
        facts["name"].removesuffix(".jpg")
    ]


async def test_another_person_is_told_the_upload_does_not_exist_and_an_admin_may_use_it(
    url: str, backend: FakeImageBackend
) -> None:
    """Bob gets the answer an unknown name gets; the admin's generation goes through."""
    facts = await upload(url, make_png(64, 48))
    name = facts["name"]
    unknown = "upload-0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09.png"
    answers = []
    async with Client(url, auth="bob") as c:
        for wanted in (name, unknown):
            with pytest.raises(ToolError) as error:
                await c.call_tool("generate_image", {"prompt": "x", "reference_images": [wanted]})
            answers.append(str(error.value).replace(wanted, "NAME"))
    assert answers[0] == answers[1]
    assert "does not exist" in answers[0]
    assert backend.requests == []
    async with Client(url, auth="boss") as c:
        made = await c.call_tool("generate_image", {"prompt": "x", "reference_images": [name]})
    assert made.structured_content is not None
    assert len(backend.requests[-1].references) == 1


async def test_a_signed_in_account_off_the_allow_list_is_refused_and_nothing_is_kept(
    url: str, settings: Settings
) -> None:
    """App-only is no security boundary: the allow-list middleware refuses the call."""
    said = await refused(url, {"data": b64(make_png(8, 8))}, token="stranger")
    assert "allow-list" in said or "IMG_ALLOWED_EMAILS" in said
    assert kept_files(settings) == []


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("this is not base64!", "data is not base64"),
        (b64(b"plain words, not a photo"), "The photo is not a PNG, JPEG or WebP image"),
        (b64(camera_jpeg(400, 300, 2)[:5000]), "damaged or truncated JPEG"),
    ],
    ids=["not-base64", "not-an-image", "truncated"],
)
async def test_garbage_gets_a_clear_error_and_leaves_no_files(
    url: str, settings: Settings, data: str, says: str
) -> None:
    """An isError result in the product's words; the uploads folder stays empty."""
    assert says in await refused(url, {"data": data})
    assert kept_files(settings) == []


async def test_each_person_keeps_at_most_the_limit(tmp_path: Path) -> None:
    """IMG_UPLOADS_PER_USER=2: the third is refused with the limit; Bob still may."""
    settings = make_settings(tmp_path / "data", IMG_UPLOADS_PER_USER="2")
    for url in serve(settings, FakeImageBackend()):
        for _ in range(2):
            await upload(url, make_png(16, 16))
        said = await refused(url, {"data": b64(make_png(16, 16))})
        assert "keep 2 uploaded photos" in said
        assert "(2)" in said
        await upload(url, make_png(16, 16), token="bob")
    assert len([f for f in kept_files(settings) if f.endswith(".json")]) == 3


async def test_with_uploads_switched_off_the_tool_is_not_offered(tmp_path: Path) -> None:
    """IMG_UPLOADS_PER_USER=0; and IMG_TOOLS=generate_image keeps its one tool."""
    for extra in ({"IMG_UPLOADS_PER_USER": "0"}, {"IMG_TOOLS": "generate_image"}):
        settings = make_settings(tmp_path / str(len(extra)), **extra)
        for url in serve(settings, FakeImageBackend()):
            async with Client(url, auth="ada") as c:
                listed = [t.name for t in await c.list_tools()]
            assert "upload_photo" not in listed
            async with Client(url, auth="ada") as c:
                generate = (await c.list_tools())[0].description or ""
            assert "upload-" not in generate


async def test_a_photo_of_nearly_20_mb_goes_through_one_request(
    url: str, settings: Settings
) -> None:
    """About 19.5 MB as a 27 MB base64 request: far over the SDK's 4 MiB default."""
    photo = camera_jpeg(5800, 4350, 5, grain=128)
    assert 18 * 2**20 < len(photo) <= settings.upload_max_bytes
    started = time.monotonic()
    facts = await upload(url, photo, file_name="big.jpg")
    took = time.monotonic() - started
    assert (facts["width"], facts["height"]) == (4096, 3072)  # the long side capped
    assert took < 30


async def test_a_photo_over_the_cap_is_refused_saying_the_cap(url: str) -> None:
    """Over 20 MB: refused in MB before it is decoded, while the body still fits."""
    said = await refused(url, {"data": b64(b"\xff\xd8\xff" + b"\0" * (20 * 2**20 + 10))})
    assert "uploads are limited to 20 MB" in said


def raw_post(base: str, headers: dict[str, str], body: bytes, declared: int) -> tuple[str, float]:
    """POST /mcp declaring ``declared`` bytes but sending only ``body``: the status line
    the server answers with, and how long it took."""
    host, port = base.removeprefix("http://").split("/")[0].split(":")
    lines = ["POST /mcp HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {declared}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        answer = sock.recv(4096).decode("latin-1")
    return answer.split("\r\n", 1)[0], time.monotonic() - started


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def test_a_body_over_the_raised_cap_gets_413_without_being_read(
    url: str, settings: Settings
) -> None:
    """The cap is the upload cap as base64 plus a margin; above it, 413 at once."""
    limit = body_limit_for(settings.upload_max_bytes)
    assert limit > 20 * 2**20 * 4 // 3
    headers = {**JSON_HEADERS, "Authorization": "Bearer ada"}
    status, took = raw_post(url, headers, b"{", limit + 1)
    assert " 413 " in status
    assert took < 2


def test_a_stranger_posting_30_mb_gets_401_before_the_body_is_read(tmp_path: Path) -> None:
    """The production app: no token, a 30 MB body declared, 64 KB sent; 401 at once."""
    port = free_port()
    settings = make_settings(
        tmp_path / "data",
        IMG_PUBLIC_URL=f"http://127.0.0.1:{port}",
        IMG_PORT=str(port),
        IMG_BACKEND="placeholder",  # no models-list check: nothing leaves this machine
    )
    with live_server(build_app(settings), port=port) as base:
        status, took = raw_post(f"{base}/mcp", JSON_HEADERS, b"{" * 65536, 30 * 2**20)
    assert " 401 " in status
    assert took < 2


def test_the_production_app_takes_a_body_past_4_mib_and_refuses_one_past_its_cap(
    tmp_path: Path,
) -> None:
    """build_app raises the SDK's 4 MiB limit as the upload cap needs, and no further."""
    port = free_port()
    settings = load_settings(
        {"IMG_ROOT": str(tmp_path / "data"), "IMG_PORT": str(port), "IMG_UPLOAD_MAX_MB": "5"},
        dev=True,
    )
    limit = body_limit_for(settings.upload_max_bytes)
    with live_server(build_app(settings), port=port) as base:
        big = httpx.post(
            f"{base}/mcp", content=b" " * (5 * 2**20), headers=JSON_HEADERS, timeout=10
        )
        status, _ = raw_post(f"{base}/mcp", JSON_HEADERS, b"{", limit + 1)
    assert big.status_code != 413  # read and parsed (not valid JSON-RPC, so refused so)
    assert big.status_code < 500
    assert " 413 " in status


async def test_an_upload_is_never_served_at_the_public_image_route(tmp_path: Path) -> None:
    """/i/ serves only {uuid}.png in the data folder's root: no spelling reaches an upload."""
    port = free_port()
    settings = load_settings({"IMG_ROOT": str(tmp_path / "data"), "IMG_PORT": str(port)}, dev=True)
    with live_server(build_app(settings), port=port) as base:
        facts = await upload(f"{base}/mcp", make_png(32, 32), token=None)
        assert facts["name"].endswith(".jpg")  # an opaque PNG is kept as a JPEG photo
        upload_id = facts["name"].removeprefix("upload-").removesuffix(".jpg")
        assert (settings.root / "uploads" / f"{upload_id}.jpg").is_file()
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            for path in (
                f"/i/{facts['name']}",
                f"/i/upload-{upload_id}",
                f"/i/{upload_id}.png",
                f"/i/{upload_id}.jpg",
                f"/i/uploads/{upload_id}.jpg",
                f"/i/uploads%2F{upload_id}.jpg",
                f"/i/..%2Fuploads%2F{upload_id}.jpg",
                f"/uploads/{upload_id}.jpg",
            ):
                assert (await client.get(path)).status_code == 404, path


@pytest.mark.parametrize("size", [1, 2, 3, 1000, 1001, 1002])
@pytest.mark.parametrize("padded", [True, False])
def test_the_size_checked_before_decoding_is_the_photos_own(size: int, padded: bool) -> None:
    """Padded or not, a photo exactly at the cap passes and one byte more does not."""
    text = b64(b"\xab" * size)
    text = text if padded else text.rstrip("=")
    seen: list[int] = []
    assert decode_data(text, seen.append) == b"\xab" * size
    assert seen == [size]
    assert decode_data(text[:40] + "\n" + text[40:], seen.append) == b"\xab" * size
