"""Fixtures for the dashboard: the fake Google IdP, a seeded service, a logged-in client."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx2
import pytest
from starlette.testclient import TestClient

from image_server.dashboard import DashboardConfig
from tests.dashboard.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    Seeded,
    dashboard_config,
    make_service,
    outer_app,
)
from tests.fakes.fake_google import FakeGoogle

PUBLIC_URL = "https://dash.example.test"

Login = Callable[..., httpx2.Response]


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    """A running fake Google that accepts only the dashboard's registered callback."""
    with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        fake.redirect_uris = [f"{PUBLIC_URL}/ui/auth/callback"]
        yield fake


@pytest.fixture
def seeded() -> Seeded:
    """Service with seeded generations (admin, two users, a former user)."""
    return make_service()


@pytest.fixture
def config(google: FakeGoogle) -> DashboardConfig:
    """Production-like config (https, Secure cookies) pointing at the fake IdP."""
    return dashboard_config(
        public_url=PUBLIC_URL,
        openid_configuration_url=google.discovery_url,
        issuer=google.issuer,
    )


@pytest.fixture
def client(seeded: Seeded, config: DashboardConfig) -> Iterator[TestClient]:
    """A browser-like client for the app mounted at /ui, on the public origin."""
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as test_client:
        yield test_client


def start_login(client: TestClient, next_path: str | None = None) -> httpx2.Response:
    """``GET /ui/login/google``: the redirect to Google, not followed."""
    params = {"next": next_path} if next_path is not None else {}
    return client.get("/ui/login/google", params=params, follow_redirects=False)


def approve_at_google(authorize_url: str) -> str:
    """What the browser does at Google: returns the callback path with code and state."""
    # The fake is plain http on loopback: skip loading a CA store nobody consults.
    answer = httpx2.get(authorize_url, follow_redirects=False, verify=False)
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == PUBLIC_URL
    return f"{location.path}?{location.query}"


def log_in(
    client: TestClient, google: FakeGoogle, email: str, next_path: str | None = None
) -> httpx2.Response:
    """The whole browser login; returns the callback's response (not followed)."""
    google.next_email = email
    redirect = start_login(client, next_path)
    assert redirect.status_code == 302, redirect.text
    return client.get(approve_at_google(redirect.headers["location"]), follow_redirects=False)


@pytest.fixture
def login(client: TestClient, google: FakeGoogle) -> Login:
    """``login(email, next_path=None)`` signs ``client`` in through the fake Google."""

    def run(email: str, next_path: str | None = None) -> httpx2.Response:
        return log_in(client, google, email, next_path)

    return run


def csrf_token(html: str) -> str:
    """The CSRF token embedded in a page's forms."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)
