"""Web-edge rules: one key derivation, one loopback list, one header middleware."""

from __future__ import annotations

import base64

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from image_server import edge

SECRET = "x" * 32 + "-fixed-test-secret"


def test_todays_keys_are_derived_exactly_as_before() -> None:
    """The same secret yields the same bytes as before the move: nobody is signed out."""
    assert edge.oauth_jwt_key(SECRET) == b"x7uXlfsMugkGtmobylPV5TC7DMVRVes2iqwo44kGs84="
    assert edge.oauth_storage_key(SECRET) == b"-qEJF282_0OyeC4HRq4lu3wGMwUjhKjzIQkWZoEUd3U="
    assert edge.dashboard_session_key(SECRET) == (
        "d69b7826b3630d70f2cb0b9520a16dd87e3b9a630f98dbff505a33666e5d6735"
    )


def test_each_purpose_gets_its_own_key() -> None:
    """Cookie, token and storage keys never coincide, and none is the secret."""
    jwt = base64.urlsafe_b64decode(edge.oauth_jwt_key(SECRET))
    storage = base64.urlsafe_b64decode(edge.oauth_storage_key(SECRET))
    cookie = bytes.fromhex(edge.dashboard_session_key(SECRET))
    assert len({jwt, storage, cookie, SECRET.encode()}) == 4


def test_loopback_hosts_are_loopback() -> None:
    """The listed names and any loopback address count; a look-alike does not."""
    assert all(edge.is_loopback(host) for host in edge.LOOPBACK_HOSTS)
    assert edge.is_loopback("127.0.0.2")
    assert not edge.is_loopback("localhost.evil.example")


def _app(**options: object) -> Starlette:
    async def page(_: Request) -> Response:
        return HTMLResponse("<p>hi</p>")

    async def own(_: Request) -> Response:
        return PlainTextResponse("x", headers={"x-frame-options": "SAMEORIGIN"})

    return Starlette(
        routes=[Route("/", page), Route("/own", own)],
        middleware=[Middleware(edge.SecurityHeaders, **options)],  # type: ignore[arg-type]
    )


def test_the_baseline_headers_fill_only_what_a_response_left_unset() -> None:
    """nosniff, DENY and no-referrer by default; a route's own value wins; HTML is cacheable."""
    with TestClient(_app()) as client:
        page, own = client.get("/"), client.get("/own")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "cache-control" not in page.headers
    assert own.headers["x-frame-options"] == "SAMEORIGIN"


def test_a_mount_passes_its_own_headers_and_no_store_for_html() -> None:
    """The dashboard's parametrisation: its CSP, and private pages never cached."""
    headers = (("content-security-policy", "default-src 'none'"),)
    with TestClient(_app(headers=headers, no_store_html=True)) as client:
        page, own = client.get("/"), client.get("/own")
    assert page.headers["content-security-policy"] == "default-src 'none'"
    assert page.headers["cache-control"] == "no-store"
    assert "cache-control" not in own.headers
    assert "x-content-type-options" not in page.headers


def test_settings_validate_redirect_patterns_without_the_oauth_module() -> None:
    """settings.py takes the pattern rule from edge.py, not from auth.py."""
    import ast  # noqa: PLC0415 - only this test reads source
    from pathlib import Path  # noqa: PLC0415

    import image_server.settings  # noqa: PLC0415

    tree = ast.parse(Path(image_server.settings.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "image_server.auth" not in imported
    assert "image_server.edge" in imported


@pytest.mark.parametrize(
    "pattern",
    [
        "https://*.com/*",
        "*.github.io",
        "https://*.ngrok-free.app",
        "https://*.example.com/cb",
        "https://a.example/cb/*",
        "https://a.example/*",
        "https://a.example/cb#frag",
        "https://user@a.example/cb",
        "http://127.0.0.1:*/*",
        "http://127.0.0.1:8*",
    ],
)
def test_wildcard_and_fragment_redirect_patterns_are_refused(pattern: str) -> None:
    """A wildcard host or path would let a code travel to whoever matches it."""
    with pytest.raises(ValueError, match="unsafe redirect URI pattern"):
        edge.check_redirect_patterns([pattern])


@pytest.mark.parametrize(
    "pattern",
    [
        "http://127.0.0.1:*",
        "http://localhost:*",
        "http://[::1]:*",
        "http://127.0.0.1:8080/cb",
        "https://a.example/oauth/callback",
    ],
)
def test_exact_callbacks_and_loopback_port_wildcards_are_allowed(pattern: str) -> None:
    edge.check_redirect_patterns([pattern])


CLAUDE = "https://claude.ai/api/mcp/auth_callback"


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        (CLAUDE, True),
        ("https://claude.com/api/mcp/auth_callback", True),
        ("https://CLAUDE.ai:443/api/mcp/auth_callback", True),
        (f"{CLAUDE}?next=https://evil.example", False),
        (f"{CLAUDE}#@evil.example", False),
        (f"{CLAUDE}#", False),
        (f"{CLAUDE}/", False),
        (f"{CLAUDE}/x/../..", False),
        ("https://claude.ai:8443/api/mcp/auth_callback", False),
        ("https://evil@claude.ai/api/mcp/auth_callback", False),
        ("http://claude.ai/api/mcp/auth_callback", False),
        ("http://127.0.0.1:51234/callback", True),
        ("http://localhost:8080/oauth/cb?x=1", True),
        ("http://localhost@evil.example/cb", False),
        ("http://127.0.0.1:9/a/../b", False),
        ("http://127.0.0.1:9/cb#frag", False),
        ("http://[::1]:5/cb", False),
    ],
)
def test_redirect_uris_must_be_listed_exactly_except_loopback_ports(
    uri: str, *, allowed: bool
) -> None:
    assert edge.redirect_uri_allowed(uri, edge.DEFAULT_ALLOWED_REDIRECT_URIS) is allowed


def test_a_loopback_pattern_with_a_path_takes_that_path_on_any_port() -> None:
    patterns = ["http://127.0.0.1/cb"]
    assert edge.redirect_uri_allowed("http://127.0.0.1:4000/cb", patterns)
    assert not edge.redirect_uri_allowed("http://127.0.0.1:4000/other", patterns)
    assert edge.redirect_uri_allowed("http://127.0.0.1:4000/cb", ["http://127.0.0.1:4000/cb"])
    assert not edge.redirect_uri_allowed("http://127.0.0.1:4001/cb", ["http://127.0.0.1:4000/cb"])
