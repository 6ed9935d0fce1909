"""Google sign-in for the dashboard: state, ID token checks, allow-list, session cookie."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.testclient import TestClient

from image_server.dashboard import DashboardConfig
from tests.dashboard.conftest import (
    PUBLIC_URL,
    Login,
    approve_at_google,
    csrf_token,
    log_in,
    start_login,
)
from tests.dashboard.support import (
    ADMIN,
    CLIENT_ID,
    CLIENT_SECRET,
    FORMER,
    OTHER,
    STRANGER,
    USER,
    Seeded,
    dashboard_config,
    outer_app,
    session_data,
)
from tests.fakes.fake_google import FakeGoogle

COOKIE = "__Host-imgmcp_ui"


class TamperingGoogle(FakeGoogle):
    """Fake Google whose ID tokens get ``overrides`` merged in, or another signing key."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.overrides: dict[str, Any] = {}
        self.foreign_key: RSAKey | None = None

    def sign_id_token(self, claims: Any) -> str:
        merged = {k: v for k, v in {**claims, **self.overrides}.items() if v is not None}
        if self.foreign_key is None:
            return super().sign_id_token(merged)
        header = {"alg": "RS256", "kid": self._key.kid, "typ": "JWT"}
        return jwt.encode(header, merged, self.foreign_key)


def set_cookie_headers(response: Any) -> list[str]:
    """Every Set-Cookie header of a response."""
    return [v for k, v in response.headers.multi_items() if k.lower() == "set-cookie"]


def cookie_attributes(header: str) -> tuple[str, str, dict[str, str]]:
    """Name, value and lower-cased attributes of one Set-Cookie header."""
    first, *rest = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    attributes = {}
    for part in rest:
        key, _, val = part.partition("=")
        attributes[key.lower()] = val
    return name, value, attributes


def test_login_redirects_to_google_with_the_registered_callback_and_pkce(
    client: TestClient, google: FakeGoogle
) -> None:
    """The redirect URI comes from the public URL, not from the request's Host header."""
    response = client.get(
        "/ui/login/google", headers={"host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["redirect_uri"] == [f"{PUBLIC_URL}/ui/auth/callback"]
    assert query["scope"] == ["openid email"]
    assert query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"][0]
    assert query["nonce"][0]


def test_an_allow_listed_user_gets_a_session_and_lands_on_the_overview(
    client: TestClient, login: Login
) -> None:
    """Login ends in a redirect to /ui/ and the overview shows the user."""
    response = login(USER)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200
    assert USER in page.text


def test_session_cookie_has_every_required_flag(client: TestClient, login: Login) -> None:
    """HttpOnly, Secure, SameSite=Lax, Path=/, no Domain, bounded Max-Age, __Host- name."""
    response = login(USER)
    headers = set_cookie_headers(response)
    assert len(headers) == 1
    name, _, attributes = cookie_attributes(headers[0])
    assert name == COOKIE
    assert "httponly" in attributes
    assert "secure" in attributes
    assert attributes["samesite"].lower() == "lax"
    assert attributes["path"] == "/"
    assert "domain" not in attributes
    assert 0 < int(attributes["max-age"]) <= 8 * 3600


def test_plain_http_development_drops_only_the_secure_flag(
    seeded: Seeded, google: FakeGoogle
) -> None:
    """On http://localhost the cookie cannot be Secure (nor __Host-); the rest stays."""
    config = dashboard_config(
        public_url="http://localhost:8766",
        openid_configuration_url=google.discovery_url,
        issuer=google.issuer,
    )
    google.redirect_uris = [config.callback_url]
    with TestClient(outer_app(seeded, config), base_url=config.public_url) as client:
        google.next_email = USER
        redirect = start_login(client)
        answer = client.get(
            _callback_path(redirect.headers["location"], config.public_url),
            follow_redirects=False,
        )
    name, _, attributes = cookie_attributes(set_cookie_headers(answer)[0])
    assert name == "imgmcp_ui"
    assert "secure" not in attributes
    assert {"httponly", "samesite", "path", "max-age"} <= set(attributes)
    assert "domain" not in attributes


def _callback_path(authorize_url: str, public_url: str) -> str:
    answer = httpx2.get(authorize_url, follow_redirects=False, verify=False)
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == public_url
    return f"{location.path}?{location.query}"


def test_login_rotates_the_session_and_keeps_no_oauth_leftovers(
    client: TestClient, google: FakeGoogle
) -> None:
    """The pre-login cookie (OAuth state) is replaced; a second login gets a new CSRF token."""
    google.next_email = USER
    redirect = start_login(client)
    before = client.cookies[COOKIE]
    assert any(key.startswith("_state_") for key in session_data(before))
    client.get(approve_at_google(redirect.headers["location"]), follow_redirects=False)
    after = client.cookies[COOKIE]
    assert after != before
    data = session_data(after)
    assert set(data) == {"user", "login_at", "csrf", "sid", "gen"}
    assert data["user"] == USER
    first_token, first_id = data["csrf"], data["sid"]
    log_in(client, google, USER)
    assert session_data(client.cookies[COOKIE])["csrf"] != first_token
    assert session_data(client.cookies[COOKIE])["sid"] != first_id


def test_next_path_survives_the_trip_to_google(client: TestClient, login: Login) -> None:
    """A local ``next`` brings the user back where they started."""
    response = login(USER, f"/ui/gallery/{USER}?page=2")
    assert response.headers["location"] == f"/ui/gallery/{USER}?page=2"


@pytest.mark.parametrize(
    "hostile",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "ui/relative",
    ],
)
def test_a_foreign_next_is_ignored(client: TestClient, login: Login, hostile: str) -> None:
    """Anything but a local path falls back to the dashboard home."""
    assert login(USER, hostile).headers["location"] == "/ui/"


def test_unauthenticated_pages_send_to_the_login_page_with_next(client: TestClient) -> None:
    """The login page keeps the requested path for later."""
    response = client.get(f"/ui/gallery/{USER}?page=2", follow_redirects=False)
    assert response.status_code == 303
    target = urlsplit(response.headers["location"])
    assert target.path == "/ui/login"
    assert parse_qs(target.query)["next"] == [f"/ui/gallery/{USER}?page=2"]
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert "Sign in with Google" in page.text
    assert "/ui/login/google?next=%2Fui%2Fgallery" in page.text


@pytest.mark.parametrize("email", [STRANGER, FORMER])
def test_a_valid_google_login_off_the_allow_list_is_refused_by_name(
    client: TestClient, login: Login, email: str
) -> None:
    """The page names the email used; no session is created."""
    response = login(email)
    assert response.status_code == 403
    assert email in response.text
    assert "IMG_ALLOWED_EMAILS" in response.text
    assert "Use another Google account" in response.text
    assert COOKIE not in client.cookies
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_an_unverified_email_is_refused_even_when_allow_listed(
    client: TestClient, google: FakeGoogle, login: Login
) -> None:
    """``email_verified`` false never matches the allow-list."""
    google.email_verified = False
    response = login(USER)
    assert response.status_code == 403
    assert "no verified email" in response.text
    assert COOKIE not in client.cookies


def test_the_refusal_page_escapes_the_email(client: TestClient, login: Login) -> None:
    """An email is user-controlled text like any other."""
    response = login('"<b>x</b>"@example.com')
    assert "<b>x</b>" not in response.text
    assert "&lt;b&gt;x&lt;/b&gt;" in response.text


def test_a_callback_with_a_forged_state_is_refused(client: TestClient, google: FakeGoogle) -> None:
    """The state must be the one this browser's session holds."""
    google.next_email = USER
    redirect = start_login(client)
    path = approve_at_google(redirect.headers["location"])
    state = parse_qs(urlsplit(path).query)["state"][0]
    response = client.get(path.replace(state, "forged-state"), follow_redirects=False)
    assert response.status_code == 400
    assert "Sign-in failed" in response.text
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_callback_from_another_browser_is_refused(
    seeded: Seeded, config: DashboardConfig, google: FakeGoogle, client: TestClient
) -> None:
    """Login CSRF: a victim's browser cannot complete the attacker's login."""
    google.next_email = STRANGER
    attacker_path = approve_at_google(start_login(client).headers["location"])
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as victim:
        response = victim.get(attacker_path, follow_redirects=False)
        assert response.status_code == 400
        assert COOKIE not in victim.cookies


def test_a_callback_without_state_or_code_is_refused(client: TestClient) -> None:
    """Opening the callback directly is an error page, not a 500."""
    for path in ["/ui/auth/callback", "/ui/auth/callback?code=x", "/ui/auth/callback?state=x"]:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 400
        assert "Sign-in failed" in response.text


def test_a_replayed_callback_is_refused_without_signing_the_user_out(
    client: TestClient, google: FakeGoogle
) -> None:
    """The state is single-use; a stray callback link cannot end a live session."""
    google.next_email = USER
    path = approve_at_google(start_login(client).headers["location"])
    assert client.get(path, follow_redirects=False).status_code == 303
    assert client.get(path, follow_redirects=False).status_code == 400
    assert client.get("/ui/", follow_redirects=False).status_code == 200


def test_google_reporting_an_error_shows_the_failure_page(
    client: TestClient, google: FakeGoogle, login: Login
) -> None:
    """access_denied at Google (the user cancelled) ends on a friendly page."""
    google.next_error = "access_denied"
    response = login(USER)
    assert response.status_code == 400
    assert "Try again" in response.text


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else.apps.googleusercontent.com"},
        {"iss": "https://accounts.evil.example"},
        {"nonce": "not-the-nonce"},
        {"exp": 1_000_000_000, "iat": 999_990_000},
        {"iat": None},
    ],
    ids=["audience", "issuer", "nonce", "expired", "no-iat"],
)
def test_an_id_token_with_wrong_claims_is_rejected(
    seeded: Seeded, overrides: dict[str, Any]
) -> None:
    """Audience, issuer, nonce and expiry are all checked by authlib with our options."""
    google = TamperingGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with google:
        google.overrides = overrides
        config = dashboard_config(
            public_url=PUBLIC_URL,
            openid_configuration_url=google.discovery_url,
            issuer=google.issuer,
        )
        with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as client:
            response = log_in(client, google, USER)
            assert response.status_code == 400
            assert COOKIE not in client.cookies


def test_an_id_token_signed_by_another_key_is_rejected(seeded: Seeded) -> None:
    """The signature is verified against the provider's published keys."""
    google = TamperingGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with google:
        google.foreign_key = RSAKey.generate_key(2048)
        config = dashboard_config(
            public_url=PUBLIC_URL,
            openid_configuration_url=google.discovery_url,
            issuer=google.issuer,
        )
        with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as client:
            assert log_in(client, google, USER).status_code == 400


def test_an_issuer_other_than_the_configured_one_is_rejected(
    seeded: Seeded, google: FakeGoogle
) -> None:
    """A provider whose tokens name another issuer than configured is not trusted."""
    config = dashboard_config(
        public_url=PUBLIC_URL,
        openid_configuration_url=google.discovery_url,
        issuer="https://accounts.google.com",
    )
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as client:
        assert log_in(client, google, USER).status_code == 400


def test_an_unreachable_identity_provider_is_a_friendly_error(seeded: Seeded) -> None:
    """Discovery failing is a page saying so, never a 500."""
    config = dashboard_config(public_url=PUBLIC_URL)  # discovery on a closed port
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as client:
        response = client.get("/ui/login/google", follow_redirects=False)
    assert response.status_code == 400
    assert "cannot be reached" in response.text


def test_logout_needs_the_csrf_token_and_then_ends_the_session(
    client: TestClient, login: Login
) -> None:
    """A forged sign-out is refused; a real one deletes the cookie."""
    login(USER)
    token = csrf_token(client.get("/ui/").text)
    refused = client.post("/ui/logout", data={"csrf_token": "x"}, headers={"origin": PUBLIC_URL})
    assert refused.status_code == 403
    assert client.get("/ui/").status_code == 200
    response = client.post(
        "/ui/logout",
        data={"csrf_token": token},
        headers={"origin": PUBLIC_URL},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?bye=1"
    cookie = SimpleCookie()
    cookie.load(set_cookie_headers(response)[0])
    assert cookie[COOKIE]["expires"].startswith("Thu, 01 Jan 1970")
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_admin_login_marks_the_session_as_admin(client: TestClient, login: Login) -> None:
    """Admins are implicitly allowed and see the admin badge and every user."""
    login(ADMIN)
    page = client.get("/ui/")
    assert "admin" in page.text
    assert OTHER in page.text
    assert USER in page.text
