"""SECURITY.md "Dashboard": cookies, CSRF and same-origin, visibility, escaping, headers."""

from __future__ import annotations

import base64
import json
import re
import time
from urllib.parse import quote

import itsdangerous
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from image_server.dashboard import DashboardConfig
from tests.dashboard.conftest import PUBLIC_URL, Login, csrf_token
from tests.dashboard.support import (
    ADMIN,
    FORMER,
    OTHER,
    SESSION_SECRET,
    USER,
    XSS_PROMPT,
    Seeded,
    make_service,
    outer_app,
    prompts_of,
    run_sync,
    sign_session,
)

COOKIE = "__Host-imgmcp_ui"
GOOD_ORIGIN = {"origin": PUBLIC_URL}


def put_cookie(client: TestClient, value: str) -> None:
    """Replace whatever session cookie the client holds with ``value``."""
    client.cookies.clear()
    client.cookies.set(COOKIE, value)


def valid_session(
    email: str = USER, csrf: str = "t" * 43, login_at: int | None = None
) -> dict[str, object]:
    return {
        "user": email,
        "login_at": int(time.time()) if login_at is None else login_at,
        "csrf": csrf,
        "sid": "s" * 24,
        "gen": 0,
    }


# ------------------------------------------------------------------ cookies


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "",
        "eyJ1c2VyIjogImJvYkBleGFtcGxlLmNvbSJ9.Zm9v.YmFy",
        "null",
    ],
)
def test_a_malformed_cookie_leads_to_the_login_page(client: TestClient, cookie: str) -> None:
    """Never an error page."""
    put_cookie(client, cookie)
    response = client.get("/ui/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login")
    assert client.get("/ui/").status_code == 200


def test_a_tampered_cookie_leads_to_the_login_page(
    client: TestClient, config: DashboardConfig, login: Login
) -> None:
    """Changing the payload (promoting yourself to another user) breaks the signature."""
    login(USER)
    genuine = client.cookies[COOKIE]
    forged_payload = sign_session(config, valid_session(ADMIN)).split(".", 1)[0]
    tampered = forged_payload + "." + genuine.split(".", 1)[1]
    put_cookie(client, tampered)
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    # A character inside the signature: the last one may carry only padding bits, so
    # changing it can decode to the same bytes and prove nothing.
    at = len(genuine) - 5
    flipped = genuine[:at] + ("A" if genuine[at] != "A" else "Q") + genuine[at + 1 :]
    put_cookie(client, flipped)
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_cookie_signed_with_the_raw_jwt_key_is_rejected(client: TestClient) -> None:
    """The cookie key is derived (domain-separated), not IMG_JWT_SIGNING_KEY itself."""
    payload = base64.b64encode(json.dumps(valid_session()).encode())
    forged = itsdangerous.TimestampSigner(SESSION_SECRET).sign(payload).decode()
    put_cookie(client, forged)
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_correctly_signed_session_is_accepted(
    client: TestClient, config: DashboardConfig
) -> None:
    """Control for the forgery tests: the derived key is the one in use."""
    put_cookie(client, sign_session(config, valid_session()))
    assert client.get("/ui/", follow_redirects=False).status_code == 200


def test_a_cookie_past_its_max_age_leads_to_the_login_page(
    client: TestClient, config: DashboardConfig
) -> None:
    """The signature's timestamp bounds the cookie's life."""
    put_cookie(client, sign_session(config, valid_session(), age=8 * 3600 + 5))
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_session_older_than_max_age_since_login_ends(
    client: TestClient, config: DashboardConfig
) -> None:
    """The lifetime is absolute from login, even if the cookie was re-issued since."""
    stale = valid_session(login_at=int(time.time()) - 8 * 3600 - 5)
    put_cookie(client, sign_session(config, stale))
    assert client.get("/ui/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "data",
    [
        {"user": 42, "login_at": 0, "csrf": "x"},
        {"user": USER, "login_at": "yesterday", "csrf": "x"},
        {"user": USER, "csrf": "x"},
        {"user": USER, "login_at": 10**12, "csrf": "x"},
        {"user": ["a"], "login_at": None},
    ],
)
def test_a_signed_but_malformed_session_leads_to_the_login_page(
    client: TestClient, config: DashboardConfig, data: dict[str, object]
) -> None:
    """Even content we signed is type-checked before use."""
    put_cookie(client, sign_session(config, data))
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_session_without_csrf_token_is_dropped(
    client: TestClient, config: DashboardConfig
) -> None:
    """No token, no session: the model form would otherwise be unusable or unsafe."""
    put_cookie(client, sign_session(config, {"user": USER, "login_at": int(time.time())}))
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_session_for_an_email_taken_off_the_allow_list_stops_working(
    seeded: Seeded, config: DashboardConfig
) -> None:
    """The allow-list is checked on every request, not only at login."""
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as client:
        put_cookie(client, sign_session(config, valid_session(FORMER)))
        assert client.get("/ui/", follow_redirects=False).status_code == 303


# ---------------------------------------------------------- CSRF and origin


def _prefs_form(client: TestClient, login: Login) -> str:
    login(USER)
    return csrf_token(client.get("/ui/prefs").text)


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({"model": "pro"}, GOOD_ORIGIN),
        ({"model": "pro", "csrf_token": ""}, GOOD_ORIGIN),
        ({"model": "pro", "csrf_token": "wrong"}, GOOD_ORIGIN),
        ({"model": "pro", "csrf_token": "TOKEN"}, {"origin": "https://evil.example"}),
        ({"model": "pro", "csrf_token": "TOKEN"}, {"origin": "null"}),
        ({"model": "pro", "csrf_token": "TOKEN"}, {"origin": "http://dash.example.test"}),
        ({"model": "pro", "csrf_token": "TOKEN"}, {"origin": "https://dash.example.test.evil"}),
        ({"model": "pro", "csrf_token": "TOKEN"}, {"referer": "https://evil.example/ui/prefs"}),
        ({"model": "pro", "csrf_token": "TOKEN"}, {**GOOD_ORIGIN, "sec-fetch-site": "cross-site"}),
        ({"model": "pro", "csrf_token": "TOKEN"}, {**GOOD_ORIGIN, "sec-fetch-site": "same-site"}),
        ({"model": "pro", "csrf_token": "TOKEN"}, {}),
    ],
    ids=[
        "no-token",
        "empty-token",
        "wrong-token",
        "foreign-origin",
        "null-origin",
        "http-origin",
        "suffix-origin",
        "foreign-referer",
        "cross-site-fetch",
        "same-site-fetch",
        "no-origin-evidence",
    ],
)
def test_a_failed_check_changes_nothing(
    client: TestClient,
    login: Login,
    seeded: Seeded,
    form: dict[str, str],
    headers: dict[str, str],
) -> None:
    """Each failed CSRF or origin check answers 403 and the default model stays flash."""
    token = _prefs_form(client, login)
    body = {k: (token if v == "TOKEN" else v) for k, v in form.items()}
    response = client.post("/ui/prefs", data=body, headers=headers, follow_redirects=False)
    assert response.status_code == 403
    assert "nothing was saved" in response.text
    assert run_sync(seeded.service.default_model_for(USER)).alias == "flash"
    assert seeded.prefs.get_default_model(USER) is None


def test_another_sessions_token_is_refused(
    client: TestClient, login: Login, seeded: Seeded, config: DashboardConfig
) -> None:
    """The token is bound to the session that received it."""
    login(USER)
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as other:
        put_cookie(other, sign_session(config, valid_session(OTHER, csrf="c" * 43)))
        stolen = csrf_token(other.get("/ui/prefs").text)
    response = client.post(
        "/ui/prefs", data={"model": "pro", "csrf_token": stolen}, headers=GOOD_ORIGIN
    )
    assert response.status_code == 403
    assert seeded.prefs.get_default_model(USER) is None


@pytest.mark.parametrize(
    "headers",
    [
        GOOD_ORIGIN,
        {"referer": f"{PUBLIC_URL}/ui/prefs"},
        {"sec-fetch-site": "same-origin"},
        {"origin": "https://DASH.example.test:443", "sec-fetch-site": "same-origin"},
    ],
    ids=["origin", "referer", "fetch-metadata", "normalised-origin"],
)
def test_a_same_origin_post_with_the_token_saves(
    client: TestClient, login: Login, seeded: Seeded, headers: dict[str, str]
) -> None:
    """Any one piece of same-origin evidence plus the token is enough."""
    token = _prefs_form(client, login)
    response = client.post(
        "/ui/prefs",
        data={"model": "pro", "csrf_token": token},
        headers=headers,
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/prefs?saved=1"
    assert run_sync(seeded.service.default_model_for(USER)).alias == "pro"


def test_a_non_form_or_oversized_body_is_refused(
    client: TestClient, login: Login, seeded: Seeded
) -> None:
    """JSON, multipart and huge bodies never reach the form parser."""
    token = _prefs_form(client, login)
    as_json = client.post(
        "/ui/prefs", json={"model": "pro", "csrf_token": token}, headers=GOOD_ORIGIN
    )
    huge = client.post(
        "/ui/prefs",
        data={"model": "pro", "csrf_token": token, "pad": "x" * 10_000},
        headers=GOOD_ORIGIN,
    )
    multipart = client.post(
        "/ui/prefs",
        data={"model": "pro", "csrf_token": token},
        files={"f": ("a.txt", b"x")},
        headers=GOOD_ORIGIN,
    )
    assert {as_json.status_code, huge.status_code, multipart.status_code} == {403}
    assert seeded.prefs.get_default_model(USER) is None


def test_an_unknown_model_is_a_clear_error_and_changes_nothing(
    client: TestClient, login: Login, seeded: Seeded
) -> None:
    """The message lists the valid choices."""
    token = _prefs_form(client, login)
    response = client.post(
        "/ui/prefs", data={"model": "gpt-image", "csrf_token": token}, headers=GOOD_ORIGIN
    )
    assert response.status_code == 400
    assert "Valid choices" in response.text
    assert seeded.prefs.get_default_model(USER) is None


def test_posting_without_a_session_changes_nothing(client: TestClient, seeded: Seeded) -> None:
    """Signed-out posts go to the login page."""
    response = client.post(
        "/ui/prefs",
        data={"model": "pro", "csrf_token": "x"},
        headers=GOOD_ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert seeded.prefs.get_default_model(USER) is None


# --------------------------------------------------------------- visibility


def test_a_user_sees_only_their_own_row_and_no_total(
    client: TestClient, login: Login, seeded: Seeded
) -> None:
    """The overview names nobody else."""
    login(USER)
    html = client.get("/ui/").text
    assert USER in html
    for email in (ADMIN, OTHER, FORMER):
        assert email not in html
    assert "Total" not in html


@pytest.mark.parametrize(
    "path",
    [
        f"/ui/gallery/{OTHER}",
        f"/ui/gallery/{OTHER.upper()}",
        f"/ui/gallery/{quote(OTHER, safe='')}",
        f"/ui/gallery/%20{OTHER}",
        f"/ui/gallery/{OTHER}?page=1",
        f"/ui/gallery/{OTHER}?page=2",
        f"/ui/gallery/{OTHER}?user={USER}",
        f"/ui/gallery/{USER}/../{OTHER}",
        f"/ui/gallery/{ADMIN}",
    ],
)
def test_a_user_cannot_open_another_gallery(
    client: TestClient, login: Login, seeded: Seeded, path: str
) -> None:
    """Whatever the spelling, it is the product's 404 page without their prompts."""
    login(USER)
    response = client.get(path)
    assert response.status_code == 404
    for prompt in prompts_of(seeded, [OTHER, ADMIN]):
        assert prompt not in response.text


def test_a_user_cannot_fetch_another_users_thumbnails(
    client: TestClient, login: Login, seeded: Seeded
) -> None:
    """Thumbnails check visibility too; their own load fine."""
    login(USER)
    for image_id in seeded.ids_of(OTHER) + seeded.ids_of(ADMIN) + seeded.ids_of(FORMER):
        assert client.get(f"/ui/thumbs/{image_id}").status_code == 404
    own = seeded.ids_of(USER)[0]
    assert client.get(f"/ui/thumbs/{own}").status_code == 200


def test_signed_out_visitors_get_no_thumbnails(client: TestClient, seeded: Seeded) -> None:
    """Not even a redirect: just the 404 page."""
    response = client.get(f"/ui/thumbs/{seeded.ids_of(USER)[0]}", follow_redirects=False)
    assert response.status_code == 404


_VISIBILITY_SEED = make_service()
_VISIBILITY_CONFIG = DashboardConfig(
    public_url=PUBLIC_URL,
    auth_disabled=False,
    client_id="cid",
    client_secret="secret",
    session_secret=SESSION_SECRET,
    secure_cookies=True,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.one_of(
        st.text(max_size=40),
        st.sampled_from([OTHER, ADMIN, FORMER, "*", "%", "..", OTHER.title()]).flatmap(
            lambda e: st.tuples(st.text(max_size=3), st.just(e), st.text(max_size=3)).map("".join)
        ),
    ),
    query=st.dictionaries(
        st.sampled_from(["page", "user", "email", "owner", "all"]), st.text(max_size=12)
    ),
)
def test_no_url_or_query_shows_a_user_anyone_elses_images(path: str, query: dict[str, str]) -> None:
    """Property: for any gallery path and query, none of the others' prompts or ids appear."""
    secrets = prompts_of(_VISIBILITY_SEED, [OTHER, ADMIN, FORMER])
    ids = [str(i) for e in (OTHER, ADMIN, FORMER) for i in _VISIBILITY_SEED.ids_of(e)]
    app = outer_app(_VISIBILITY_SEED, _VISIBILITY_CONFIG)
    with TestClient(app, base_url=PUBLIC_URL) as client:
        put_cookie(client, sign_session(_VISIBILITY_CONFIG, valid_session(USER)))
        assert client.get("/ui/").status_code == 200  # the session itself is good
        for base in ("/ui/gallery/", "/ui/", "/ui/thumbs/"):
            response = client.get(base + quote(path, safe="@"), params=query)
            assert response.status_code in {200, 303, 404}
            assert not any(s in response.text for s in secrets)
            assert not any(i in response.text for i in ids)


# ------------------------------------------------------------------ escaping


def test_prompts_with_html_and_script_are_escaped(client: TestClient, login: Login) -> None:
    """The gallery shows the text of a hostile prompt, never its markup."""
    login(USER)
    html = client.get(f"/ui/gallery/{USER}").text
    assert XSS_PROMPT not in html
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html


# ------------------------------------------------------------------- headers

PAGES = ["/ui/", f"/ui/gallery/{USER}", "/ui/prefs", "/ui/no-such-page", "/ui/login"]


@pytest.mark.parametrize(
    "path", [*PAGES, "/ui/static/dashboard.css", "/ui/static/dashboard.js", "THUMB"]
)
def test_every_response_carries_the_security_headers(
    client: TestClient, login: Login, seeded: Seeded, path: str
) -> None:
    """Strict CSP, nosniff, frames denied (twice), a referrer policy that keeps Origin."""
    login(USER)
    if path == "THUMB":
        path = f"/ui/thumbs/{seeded.ids_of(USER)[0]}"
    response = client.get(path, follow_redirects=False)
    csp = {
        part.strip().split(" ", 1)[0]: part.strip().split(" ", 1)[1]
        for part in response.headers["content-security-policy"].split(";")
    }
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["img-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["form-action"] == "'self'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_no_inline_script_or_style_and_no_third_party_urls(
    client: TestClient, login: Login, path: str
) -> None:
    """What the CSP would block is not there to begin with; nothing loads from a CDN."""
    login(USER)
    response = client.get(path)
    html = response.text
    assert response.headers["cache-control"] == "no-store"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+=", html.replace("onerror=alert(1)", ""))
    assert " style=" not in html
    assert "<style" not in html
    assert not re.search(r"""(?:src|href)="(?:https?:)?//""", html)


def test_the_gallery_loads_thumbnails_never_full_size_images(
    client: TestClient, login: Login
) -> None:
    """Full-size PNGs are only linked; every <img> is a thumbnail."""
    login(USER)
    html = client.get(f"/ui/gallery/{USER}").text
    sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(sources) == 24
    assert all(s.startswith("/ui/thumbs/") for s in sources)
    assert len(re.findall(r'href="/i/[0-9a-f-]{36}\.png"', html)) == 24


def test_thumbnails_are_privately_cacheable_and_revalidate(
    client: TestClient, login: Login, seeded: Seeded
) -> None:
    """Private cache with an ETag; a matching If-None-Match gets 304."""
    login(USER)
    path = f"/ui/thumbs/{seeded.ids_of(USER)[1]}"
    first = client.get(path)
    assert first.headers["cache-control"].startswith("private")
    assert "max-age=" in first.headers["cache-control"]
    assert first.headers["content-type"] == "image/png"
    second = client.get(path, headers={"if-none-match": first.headers["etag"]})
    assert second.status_code == 304
    assert second.content == b""
