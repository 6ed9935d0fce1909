"""The image viewer (MCP App) in a real browser, through a real MCP Apps host.

Debian's Chromium (headless, via Playwright) opens a small host page built on the MCP
Apps SDK's own host side (``AppBridge``, ``PostMessageTransport``) and MCP client
(tests/e2e/viewer_host/host.ts, bundled with esbuild for each run, so it always matches
the locked SDK). The page is served from the live server's own origin by Playwright
(``page.route``; it never reaches the server) so its MCP calls are same-origin. Like a
host it reads the ``ui://`` resource generate_image names, renders it in a sandboxed
frame under a CSP made from the resource's declared domains, proxies the viewer's tool
calls and delivers a tool result. The server is the real MCP app and image route with
static bearer tokens and a backend answering photo-like PNGs.

Screenshots go to ``test-output/screenshots/viewer-*.png``. These tests skip only when
``CI`` is unset and Chromium or the viewer's Node tools are missing; in CI they must run.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs
import pytest
from fastmcp import Client
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier
from mcp.types import TextResourceContents
from PIL import Image
from playwright.sync_api import Browser, FrameLocator, Page, expect, sync_playwright
from starlette.applications import Starlette
from starlette.routing import Mount

from image_core.domain import BackendImage, BackendRequest
from image_core.errors import BackendRefused
from image_core.testing import FakeImageBackend
from image_server.app import build_service, edge_middleware
from image_server.auth import transport_security
from image_server.mcp import build_mcp_server
from image_server.mcp_resources import record_uri
from image_server.routes import image_route
from image_server.tool_names import ALL_TOOLS, UPLOAD_TOOL_NAME
from tests.dashboard.support import run_sync
from tests.dashboard.test_browser import CHROMIUM as CHROMIUM_PATH
from tests.dashboard.test_browser import CHROMIUM_ARGS, SCREENSHOTS, _require_chromium
from tests.server.test_mcp_native import TOKENS, make_settings
from tests.support.live_server import free_port, live_server
from tests.support.photos import photo_bytes
from tests.support.viewer_tools import ROOT, require_viewer_tools, run_build

pytestmark = pytest.mark.browser

HOST_SOURCE = ROOT / "tests" / "e2e" / "viewer_host" / "host.ts"
HOST_PATH = "/__host__/"
PUBLIC_LIKE = "--disable-features=LocalNetworkAccessChecks"
"""The server here is on loopback, where Chromium's local network access rules hold a
sandboxed frame's image behind a permission prompt and send it with ``Origin: null``
(which the server's Origin guard refuses). A deployed server is on a public address,
where neither applies; the test browser treats loopback as such."""
WAIT_MS = 20_000
FIRST_PROMPT = "Bokeh: soft discs of coloured light drifting over a dusk gradient"
NEXT_PROMPT = "The same bokeh in cool blues, late at night"


SLOW_WORD = "slowly"
"""A prompt with this word renders for longer than the tool waits (``DEADLINE_S``)."""
DEADLINE_S = 5
SLOW_S = 8


class PhotoBackend(FakeImageBackend):
    """Photo-like PNGs at the size asked for, a different picture for each call."""

    async def generate(self, request: BackendRequest) -> BackendImage:
        self.requests.append(request)
        if SLOW_WORD in request.prompt:
            await asyncio.sleep(SLOW_S)
        if self.failures:
            raise self.failures.pop(0)
        ratio = request.aspect_ratio
        width, height = ratio.dimensions(request.image_size) if ratio else (1024, 1024)
        return BackendImage(photo_bytes(width, height, len(self.requests)), "image/png")


@attrs.frozen
class Site:
    """The running server and what the browser test needs of it."""

    origin: str
    backend: PhotoBackend
    host_js: str

    @property
    def mcp_url(self) -> str:
        return f"{self.origin}/mcp"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The MCP app at /mcp and the image route, on the origin its public URL names."""
    yield from serve_site(tmp_path_factory.mktemp("viewer"))


@pytest.fixture(scope="module")
def site_without_uploads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The same with uploads switched off (``IMG_UPLOADS_PER_USER=0``)."""
    yield from serve_site(tmp_path_factory.mktemp("no-uploads"), IMG_UPLOADS_PER_USER="0")


def serve_site(folder: Path, **extra: str) -> Iterator[Site]:
    _require_chromium()
    require_viewer_tools()
    host_js = folder / "host.js"
    run_build("--host", str(HOST_SOURCE), str(host_js))
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = make_settings(
        folder / "data",
        IMG_PUBLIC_URL=origin,
        IMG_TOOL_DEADLINE=str(DEADLINE_S),
        IMG_RATE_PER_MINUTE="100",  # the module makes about a dozen images within a minute
        **extra,
    )
    backend = PhotoBackend()
    service = build_service(settings, backend=backend)
    server = build_mcp_server(
        service,
        public_url=origin,
        auth=StaticTokenVerifier(tokens=TOKENS),
        tool_deadline_seconds=settings.tool_deadline_seconds,
        tools=ALL_TOOLS,
    )
    security = transport_security(origin, dev=False)
    mcp_app = server.http_app(path="/mcp", **security)
    app = Starlette(
        routes=[image_route(service), Mount("", app=mcp_app)],
        middleware=edge_middleware(security),
        lifespan=mcp_app.lifespan,
    )
    with live_server(app, port=port):
        yield Site(origin, backend, host_js.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM_PATH), args=[*CHROMIUM_ARGS, PUBLIC_LIKE]
        )
        try:
            yield chromium
        finally:
            chromium.close()


def host_page(theme: str) -> str:
    background = "#161615" if theme == "dark" else "#f0efe9"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Viewer test host</title><style>"
        f"body{{margin:0;padding:8px;background:{background}}}"
        "iframe{display:block;width:100%;height:640px;border:0;border-radius:10px}"
        "</style></head><body><div id=app></div>"
        f'<script src="{HOST_PATH}host.js"></script></body></html>'
    )


@attrs.define
class Opened:
    """A host page showing the viewer, and every URL the page asked for."""

    page: Page
    requests: list[str]
    errors: list[str]
    """Console errors of the page and the frame (a refused load, a CSP violation)."""

    @property
    def view(self) -> FrameLocator:
        return self.page.frame_locator("iframe[title='Image viewer']")

    def host(self, path: str = "") -> Any:
        return self.page.evaluate(f"() => window.__host{path}")

    def wait_host(self, condition: str) -> None:
        self.page.wait_for_function(f"() => {condition}", timeout=WAIT_MS)


def open_viewer(
    browser: Browser,
    site: Site,
    theme: str = "light",
    width: int = 820,
    prompt: str = FIRST_PROMPT,
    *,
    loaded: bool = True,
) -> Opened:
    """The host page with the viewer showing a fresh generation of ``prompt``."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    def fulfil(route: Any) -> None:
        if route.request.url.split("?")[0].endswith("host.js"):
            route.fulfill(body=site.host_js, content_type="text/javascript")
        else:
            route.fulfill(body=host_page(theme), content_type="text/html")

    page.route(f"{site.origin}{HOST_PATH}**", fulfil)
    query = urlencode({"token": "ada", "theme": theme, "prompt": prompt})
    page.goto(f"{site.origin}{HOST_PATH}index.html?{query}")
    opened = Opened(page, requests, errors)
    opened.wait_host("window.__host && (window.__host.ready || window.__host.error)")
    assert opened.host(".error") == ""
    if not loaded:
        return opened
    image = opened.view.locator("#image")
    expect(image).to_be_visible(timeout=WAIT_MS)
    wait_loaded(opened, opened.host(".first.structuredContent.url"))
    return opened


def wait_loaded(opened: Opened, url: str) -> None:
    """Until the viewer's image is ``url``, fully loaded."""
    image = opened.view.locator("#image")
    expect(image).to_have_attribute("src", url, timeout=WAIT_MS)
    expect(image).to_have_js_property("complete", True, timeout=WAIT_MS)


def natural_width(opened: Opened) -> int:
    width: int = opened.view.locator("#image").evaluate("i => i.naturalWidth")
    return width


def no_horizontal_overflow(opened: Opened) -> None:
    sizes = opened.view.locator("html").evaluate(
        "h => [h.scrollWidth, h.clientWidth, document.body.scrollWidth]"
    )
    assert sizes[0] <= sizes[1], sizes
    assert sizes[2] <= sizes[1], sizes
    outer = opened.page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert outer[0] <= outer[1], outer


def background_luminance(opened: Opened) -> float:
    rgb = opened.view.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
    red, green, blue = (int(v) for v in re.findall(r"\d+", rgb)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def only_own_origin(opened: Opened, site: Site) -> None:
    """Every request went to the server's own origin, and nothing was refused."""
    assert opened.requests
    assert opened.errors == []
    foreign = [u for u in opened.requests if not u.startswith(f"{site.origin}/")]
    assert not foreign, foreign


def record_of(site: Site, file_name: str) -> dict[str, Any]:
    """What the server recorded of a generation, read over MCP as its owner."""

    async def read() -> dict[str, Any]:
        async with Client(site.mcp_url, auth="ada") as c:
            (content,) = await c.read_resource(record_uri(file_name))
        assert isinstance(content, TextResourceContents)
        record: dict[str, Any] = json.loads(content.text)
        return record

    return run_sync(read())


def screenshot(opened: Opened, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"viewer-{name}.png"
    opened.page.locator("iframe").screenshot(path=str(path))
    return path


def test_the_viewer_shows_the_image_and_makes_the_next_one_from_it(
    browser: Browser, site: Site
) -> None:
    """The full image with its facts; Open original and Download reach the host; Use as
    reference reaches generate_image with the shown file name, and shows the new image."""
    opened = open_viewer(browser, site)
    assert opened.host(".resourceUri") == "ui://image-mcp/viewer.html"
    assert opened.host(".csp").count(site.origin) >= 1
    first = opened.host(".first.structuredContent")
    view = opened.view
    assert natural_width(opened) == first["width"] == 1024
    expect(view.locator("#prompt")).to_have_text(FIRST_PROMPT)
    expect(view.locator("#model")).to_have_text(first["model"])
    expect(view.locator("#size")).to_contain_text("1K")
    expect(view.locator("#size")).to_contain_text("1024\u00d71024")
    expect(view.locator("#cost")).to_have_text(re.compile(r"^\$0\.\d+$"))
    assert background_luminance(opened) > 0.8
    screenshot(opened, "light")

    view.get_by_role("button", name="Open original").click()
    opened.wait_host("window.__host.links.length === 1")
    assert opened.host(".links") == [first["url"]]
    view.get_by_role("button", name="Download").click()
    opened.wait_host("window.__host.downloads.length === 1")
    (link,) = opened.host(".downloads[0].contents")
    assert (link["type"], link["uri"]) == ("resource_link", first["url"])

    expect(view.get_by_role("checkbox", name=re.compile("This image"))).to_be_checked()
    view.get_by_role("textbox", name="Next image").fill(NEXT_PROMPT)
    view.get_by_role("button", name="Use as reference").click()
    opened.wait_host("window.__host.calls.length === 1")
    (call,) = opened.host(".calls")
    assert call == {
        "name": "generate_image",
        "arguments": {"prompt": NEXT_PROMPT, "reference_images": [first["file_name"]]},
    }
    opened.wait_host("window.__host.context.length === 1")
    told = opened.host(".context[0].content[0].text")
    second_name = re.findall(r"- (\S+\.png) \(done\): (\S+)", told)
    assert len(second_name) == 1, told
    name, url = second_name[0]
    assert name != first["file_name"]
    wait_loaded(opened, url)
    expect(view.locator("#prompt")).to_have_text(NEXT_PROMPT)
    assert natural_width(opened) == 1024
    # The server made the second image from the first.
    assert record_of(site, name)["reference_images"] == [first["file_name"]]
    assert record_of(site, name)["prompt"] == NEXT_PROMPT
    assert len(site.backend.requests[-1].references) == 1
    only_own_origin(opened, site)
    opened.page.context.close()


def test_the_viewer_follows_the_dark_theme_and_fits_a_narrow_screen(
    browser: Browser, site: Site
) -> None:
    dark = open_viewer(browser, site, theme="dark")
    assert background_luminance(dark) < 0.25
    text = dark.view.locator("#prompt").evaluate("p => getComputedStyle(p).color")
    assert sum(int(v) for v in re.findall(r"\d+", text)[:3]) > 3 * 180, text
    screenshot(dark, "dark")
    only_own_origin(dark, site)
    dark.page.context.close()

    narrow = open_viewer(browser, site, width=360)
    no_horizontal_overflow(narrow)
    box = narrow.view.locator("#image").bounding_box()
    assert box is not None
    assert box["width"] <= 360
    screenshot(narrow, "narrow")

    first = narrow.host(".first.structuredContent")
    narrow.view.get_by_role("button", name="Variations").click()
    narrow.wait_host("window.__host.context.length === 1")
    (call,) = narrow.host(".calls")
    assert call["arguments"] == {
        "prompt": FIRST_PROMPT,
        "reference_images": [first["file_name"]],
        "count": 2,
        "model": first["model"],
    }
    thumbs = narrow.view.get_by_role("group", name="Images of this call").get_by_role("button")
    expect(thumbs).to_have_count(2)
    expect(thumbs.nth(0)).to_have_attribute("aria-pressed", "true")
    thumbs.nth(1).click()
    second = narrow.view.locator("#image").get_attribute("src")
    assert second
    assert second != first["url"]
    expect(thumbs.nth(1)).to_have_attribute("aria-pressed", "true")
    no_horizontal_overflow(narrow)
    only_own_origin(narrow, site)
    narrow.page.context.close()


def test_a_still_rendering_image_appears_when_it_is_done(browser: Browser, site: Site) -> None:
    """The tool answers 'still rendering' at its deadline; the viewer says so, looks the
    image up with get_image until it is stored, then shows it."""
    markup = '<img src="/x-injected" onerror="parent.__host.injected = 1">'
    prompt = f"A harbour at dawn, drawn {SLOW_WORD} {markup}"
    opened = open_viewer(browser, site, prompt=prompt, loaded=False)
    first = opened.host(".first.structuredContent")
    assert first["status"] == "rendering"
    expect(opened.view.locator("#status")).to_contain_text("Still rendering")
    expect(opened.view.locator("#prompt")).to_have_text(prompt)
    wait_loaded(opened, first["url"])
    assert natural_width(opened) == 1024
    looks = [c for c in opened.host(".calls") if c["name"] == "get_image"]
    assert looks
    assert all(c["arguments"] == {"name": first["file_name"]} for c in looks)
    expect(opened.view.locator("#status")).to_be_hidden()
    expect(opened.view.get_by_role("button", name="Open original")).to_be_visible()
    # The prompt is shown as text, never as markup.
    expect(opened.view.locator("#prompt img")).to_have_count(0)
    assert not any(urlsplit(u).path == "/x-injected" for u in opened.requests)
    assert opened.host(".injected") is None
    only_own_origin(opened, site)
    opened.page.context.close()


def test_a_refusal_is_shown_readably(browser: Browser, site: Site) -> None:
    """A generation the model refuses shows the server's message, first or later; the
    image shown before stays, and the viewer can go on."""
    refusal = "Blocked by Gemini's safety filter."
    site.backend.failures.append(BackendRefused(refusal))
    refused = open_viewer(browser, site, loaded=False)
    status = refused.view.locator("#status")
    expect(status).to_contain_text("safety filter")
    expect(status).to_have_class(re.compile(r"\bfailed\b"))
    expect(refused.view.locator("#image")).to_be_hidden()
    refused.page.context.close()

    opened = open_viewer(browser, site)
    shown = opened.host(".first.structuredContent.url")
    site.backend.failures.append(BackendRefused(refusal))
    opened.view.get_by_role("textbox", name="Next image").fill("Something it will refuse")
    use = opened.view.get_by_role("button", name="Use as reference")
    use.click()
    message = opened.view.locator("#message")
    expect(message).to_contain_text("safety filter", timeout=WAIT_MS)
    expect(message).to_have_class(re.compile(r"\berror\b"))
    expect(opened.view.locator("#image")).to_have_attribute("src", shown)
    expect(use).to_be_enabled()
    only_own_origin(opened, site)
    opened.page.context.close()


def test_a_too_large_photo_is_refused_before_any_upload(browser: Browser, site: Site) -> None:
    opened = open_viewer(browser, site)
    big = b"\xff\xd8\xff" + bytes(20 * 1024 * 1024)
    opened.view.locator("#upload").set_input_files(
        {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": big}
    )
    expect(opened.view.locator("#message")).to_contain_text("up to 20 MB")
    # A format the server refuses (an iPhone's HEIC) is not sent either.
    opened.view.locator("#upload").set_input_files(
        {"name": "IMG_0001.HEIC", "mimeType": "image/heic", "buffer": b"\0\0\0\x18ftypheic"}
    )
    expect(opened.view.locator("#message")).to_contain_text("export it from your photo app")
    assert opened.host(".calls") == []
    opened.page.context.close()


def test_an_uploaded_photo_is_stored_and_used_as_the_next_reference(
    browser: Browser, site: Site
) -> None:
    """The photo picked in the viewer is stored, and Use as reference sends its name to
    generate_image."""
    opened = open_viewer(browser, site)
    photo = photo_bytes(800, 600, 7, "JPEG")
    opened.view.locator("#upload").set_input_files(
        {"name": "harbour.jpg", "mimeType": "image/jpeg", "buffer": photo}
    )
    opened.wait_host(f"window.__host.calls.some(c => c.name === '{UPLOAD_TOOL_NAME}')")
    expect(opened.view.locator("#message")).to_contain_text("Uploaded as upload-", timeout=WAIT_MS)
    (upload,) = [c for c in opened.host(".calls") if c["name"] == UPLOAD_TOOL_NAME]
    assert upload["arguments"]["file_name"] == "harbour.jpg"
    box = opened.view.get_by_role("checkbox", name=re.compile("harbour.jpg"))
    expect(box).to_be_checked()
    expect(opened.view.get_by_role("checkbox", name=re.compile("This image"))).not_to_be_checked()
    name = box.get_attribute("value") or ""
    assert re.fullmatch(r"upload-[0-9a-f-]{36}\.(jpg|png)", name), name
    opened.wait_host("window.__host.context.length === 1")
    told = opened.host(".context[0].content[0].text")
    assert name in told

    requests_before = len(site.backend.requests)
    opened.view.get_by_role("textbox", name="Next image").fill("This harbour as a watercolour")
    opened.view.get_by_role("button", name="Use as reference").click()
    opened.wait_host("window.__host.calls.filter(c => c.name === 'generate_image').length === 1")
    (made,) = [c for c in opened.host(".calls") if c["name"] == "generate_image"]
    assert made["arguments"]["reference_images"] == [name]
    opened.wait_host("window.__host.context.length === 2")
    made_text = opened.host(".context[1].content[0].text")
    assert "(done)" in made_text, made_text
    assert len(site.backend.requests) == requests_before + 1
    (sent,) = site.backend.requests[-1].references
    # What reached the model is the stored upload: the photo, decoded and kept upright.
    assert sent.uploaded
    assert sent.mime_type == "image/jpeg"
    assert Image.open(io.BytesIO(sent.data)).size == (800, 600)
    only_own_origin(opened, site)
    opened.page.context.close()


def test_without_uploads_the_viewer_offers_none(
    browser: Browser, site_without_uploads: Site
) -> None:
    """Where the upload tool is not offered, nothing in the viewer leads to it."""
    opened = open_viewer(browser, site_without_uploads)
    expect(opened.view.locator("#image")).to_be_visible()
    expect(opened.view.locator("#upload")).to_have_count(0)
    expect(opened.view.get_by_text("Upload a photo")).to_have_count(0)
    expect(opened.view.get_by_role("button", name="Use as reference")).to_be_visible()
    only_own_origin(opened, site_without_uploads)
    opened.page.context.close()
