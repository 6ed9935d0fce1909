"""/health and /i/{name}: public, strict about names, never through symlinks, never a 500."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from image_core.testing import make_png
from image_server.app import build_app
from image_server.settings import Settings, load_settings
from tests.e2e.oauth_client import INITIALIZE
from tests.support.live_server import live_server
from tests.support.logs import json_lines, json_logs

NAME = "3f1c2b9a-7d4e-4f60-9a1b-2c3d4e5f6a7b"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"IMG_ROOT": str(tmp_path / "data")}, dev=True)


@pytest.fixture
def http(settings: Settings) -> Iterator[httpx2.Client]:
    with live_server(build_app(settings)) as url, httpx2.Client(base_url=url) as client:
        yield client


@pytest.fixture
def png(settings: Settings) -> bytes:
    data = make_png(64, 48)
    (settings.root / f"{NAME}.png").write_bytes(data)
    (settings.root / f"{NAME}.json").write_text('{"email": "secret@example.com"}')
    return data


def test_health_answers_ok_without_any_login(http: httpx2.Client) -> None:
    """The container health check needs nothing but the process."""
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_a_generated_png_is_served_with_strong_caching(http: httpx2.Client, png: bytes) -> None:
    """Immutable content: long cache, ETag, nosniff, image/png."""
    response = http.get(f"/i/{NAME}.png")
    assert response.status_code == 200
    assert response.content == png
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["content-length"] == str(len(png))
    assert response.headers["etag"].startswith('"')


def test_a_matching_etag_gets_not_modified(http: httpx2.Client, png: bytes) -> None:
    """Revalidation costs no body."""
    etag = http.get(f"/i/{NAME}.png").headers["etag"]
    response = http.get(f"/i/{NAME}.png", headers={"if-none-match": etag})
    assert response.status_code == 304
    assert response.content == b""


def test_head_gives_headers_without_a_body(http: httpx2.Client, png: bytes) -> None:
    """HEAD reports the length but sends nothing."""
    response = http.head(f"/i/{NAME}.png")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(png))
    assert response.content == b""


def test_a_large_image_streams_whole(http: httpx2.Client, settings: Settings) -> None:
    """Files bigger than one read chunk arrive intact."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    name = str(uuid.uuid4())
    (settings.root / f"{name}.png").write_bytes(data)
    assert http.get(f"/i/{name}.png").content == data


@pytest.mark.parametrize(
    "name",
    [
        f"{NAME}.json",
        "prefs.json",
        "index.sqlite3",
        f"{NAME.upper()}.png",
        f"{NAME}.PNG",
        f"{NAME}",
        f"{NAME}.png.json",
        "..%2Fprefs.json",
        "%2e%2e%2fetc%2fpasswd",
        f"{NAME[:-1]}x.png",
        "3f1c2b9a-7d4e-1f60-9a1b-2c3d4e5f6a7b.png",  # uuid1, not uuid4
        "",
    ],
)
def test_anything_but_a_lowercase_uuid4_png_is_not_found(
    http: httpx2.Client, png: bytes, name: str
) -> None:
    """Sidecars, prefs, the index and odd spellings are never reachable."""
    response = http.get(f"/i/{name}")
    assert response.status_code == 404
    assert b"secret@example.com" not in response.content


def test_a_missing_image_is_not_found(http: httpx2.Client) -> None:
    """Unknown ids are a plain 404."""
    assert http.get(f"/i/{uuid.uuid4()}.png").status_code == 404


def test_a_symlink_is_never_followed(
    http: httpx2.Client, settings: Settings, tmp_path: Path
) -> None:
    """Even a well-named link to a readable file outside the root is a 404."""
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"private")
    name = str(uuid.uuid4())
    (settings.root / f"{name}.png").symlink_to(outside)
    response = http.get(f"/i/{name}.png")
    assert response.status_code == 404
    assert b"private" not in response.content


@pytest.mark.parametrize("target", ["sidecar", "outside"])
def test_a_hard_link_named_like_an_image_is_not_found(
    http: httpx2.Client, settings: Settings, tmp_path: Path, png: bytes, target: str
) -> None:
    """No-follow does not see hard links: a file with a second name is a 404, with a warning.

    The link is made to the sidecar beside an image, or to a file outside the data
    folder (on the same volume); the ordinary image keeps being served.
    """
    if target == "sidecar":
        linked = settings.root / f"{NAME}.json"
    else:
        linked = tmp_path / "outside.txt"
        linked.write_text("private outside the data folder")
    name = str(uuid.uuid4())
    os.link(linked, settings.root / f"{name}.png")
    with json_logs() as stream:
        response = http.get(f"/i/{name}.png")
    assert response.status_code == 404
    assert b"secret@example.com" not in response.content
    assert b"private" not in response.content
    warnings = [line for line in json_lines(stream) if line["level"] == "WARNING"]
    assert any(f"{name}.png" in line["msg"] for line in warnings), warnings
    assert http.get(f"/i/{NAME}.png").content == png


def test_a_directory_with_an_image_name_is_not_found(
    http: httpx2.Client, settings: Settings
) -> None:
    """Only regular files are served; anything else is 404, not 500."""
    name = str(uuid.uuid4())
    (settings.root / f"{name}.png").mkdir()
    assert http.get(f"/i/{name}.png").status_code == 404


def test_a_foreign_host_header_is_refused(http: httpx2.Client) -> None:
    """DNS rebinding: a page on another host cannot talk to this server through the browser."""
    assert http.get("/health", headers={"host": "evil.example"}).status_code == 421
    assert http.post("/mcp", headers={"host": "evil.example"}, json={}).status_code == 421


def test_the_dashboard_address_without_a_slash_redirects_to_it(http: httpx2.Client) -> None:
    """``/ui`` (the address the docs give) leads to ``/ui/``, keeping the query."""
    response = http.get("/ui", params={"x": "1"})
    assert response.status_code in {307, 308}
    assert response.headers["location"] == "/ui/?x=1"
    landed = http.get("/ui", follow_redirects=True)
    assert landed.status_code == 200
    assert landed.url.path == "/ui/"


def test_an_unknown_path_is_a_json_404_for_programs(http: httpx2.Client) -> None:
    """An API client gets a machine-readable answer that names the real endpoints."""
    for path in ("/nope", "/mcp/extra", "/.well-known/unknown", "/uix"):
        response = http.get(path, headers={"accept": "application/json"})
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["error"] == "not_found"
        assert "/mcp" in body["error_description"]
        assert "/ui/" in body["error_description"]


def test_an_unknown_path_in_a_browser_is_a_small_html_page(http: httpx2.Client) -> None:
    """A person who mistyped an address gets a page with a way to the dashboard."""
    response = http.get("/dashboard", headers={"accept": "text/html,application/xhtml+xml,*/*"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/ui/"' in response.text
    assert "image-mcp" in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_the_known_doors_answer_as_before(http: httpx2.Client) -> None:
    """The fallback changes nothing for /health, /mcp and /i/."""
    assert http.get("/health").json() == {"ok": True}
    mcp = http.post(
        "/mcp", json=INITIALIZE, headers={"accept": "application/json, text/event-stream"}
    )
    assert mcp.status_code == 200
    missing = http.get(f"/i/{uuid.uuid4()}.png")
    assert (missing.status_code, missing.text) == (404, "Not found")


def test_the_browsers_favicon_request_finds_the_product_logo(http: httpx2.Client) -> None:
    """``/favicon.ico`` leads to the logo the dashboard and the consent page show."""
    response = http.get("/favicon.ico", follow_redirects=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.url.path == "/ui/static/favicon.svg"


def test_an_image_is_shown_by_a_page_of_any_origin(http: httpx2.Client, png: bytes) -> None:
    """The image viewer (an MCP App) runs in the host's sandboxed frame, whose image
    requests carry ``Origin: null`` or the sandbox's origin: a public image is served to
    them. The MCP endpoint still refuses a foreign origin, and the Host check holds."""
    for origin in ("null", "https://sandbox.example"):
        for method in ("GET", "HEAD"):
            response = http.request(method, f"/i/{NAME}.png", headers={"origin": origin})
            assert response.status_code == 200, (origin, method)
        assert http.get(f"/i/{NAME}.png", headers={"origin": origin}).content == png
    foreign = {"origin": "https://sandbox.example", "accept": "application/json"}
    assert http.post("/mcp", headers=foreign, json=INITIALIZE).status_code == 403
    assert http.post(f"/i/{NAME}.png", headers=foreign).status_code in {403, 405}
    refused = http.get(f"/i/{NAME}.png", headers={"host": "evil.example", "origin": "null"})
    assert refused.status_code == 421
