"""Signing out ends a session on the server: a copied cookie is refused, in every process.

Each "browser" is its own ``TestClient`` (its own cookie jar) logging in through the fake
Google; "processes" are separate dashboards sharing one sign-out folder, as two servers
sharing ``IMG_ROOT`` would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from image_core.errors import StorageError
from image_server.dashboard import DashboardConfig, FileSignOuts
from image_server.dashboard.signouts import FILE_NAME
from tests.dashboard.conftest import PUBLIC_URL, csrf_token, log_in
from tests.dashboard.support import OTHER, USER, Seeded, outer_app, sign_session
from tests.fakes.fake_google import FakeGoogle

COOKIE = "__Host-imgmcp_ui"
SAME_ORIGIN = {"origin": PUBLIC_URL}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / ".dashboard"


def browser(seeded: Seeded, config: DashboardConfig, folder: Path) -> TestClient:
    """A fresh browser on a dashboard whose sign-outs live in ``folder`` (its own process)."""
    return TestClient(outer_app(seeded, config, FileSignOuts(folder)), base_url=PUBLIC_URL)


@pytest.fixture
def browsers(
    seeded: Seeded, config: DashboardConfig, folder: Path
) -> Iterator[tuple[TestClient, TestClient]]:
    """Two browsers, each on its own dashboard instance over the same folder."""
    with browser(seeded, config, folder) as first, browser(seeded, config, folder) as second:
        yield first, second


def signed_in(client: TestClient, google: FakeGoogle, email: str = USER) -> str:
    """Log ``client`` in; returns its session cookie."""
    assert log_in(client, google, email).status_code == 303
    assert client.get("/ui/", follow_redirects=False).status_code == 200
    return client.cookies[COOKIE]


def with_cookie(client: TestClient, value: str) -> int:
    """Status of the overview when ``client`` presents ``value`` as its session cookie."""
    client.cookies.clear()
    client.cookies.set(COOKIE, value)
    return client.get("/ui/", follow_redirects=False).status_code


def post(client: TestClient, path: str, token: str, **headers: str) -> int:
    response = client.post(
        path,
        data={"csrf_token": token},
        headers=headers or SAME_ORIGIN,
        follow_redirects=False,
    )
    return response.status_code


def test_a_copied_cookie_is_refused_after_sign_out(
    browsers: tuple[TestClient, TestClient], google: FakeGoogle
) -> None:
    """The thief's copy, presented to another process, stops working with the sign-out."""
    mine, thief = browsers
    cookie = signed_in(mine, google)
    assert with_cookie(thief, cookie) == 200
    assert post(mine, "/ui/logout", csrf_token(mine.get("/ui/").text)) == 303
    assert with_cookie(thief, cookie) == 303
    assert with_cookie(mine, cookie) == 303


def test_sign_out_everywhere_ends_the_other_browsers_session_too(
    browsers: tuple[TestClient, TestClient], google: FakeGoogle
) -> None:
    """Both of Bob's browsers are signed out; Cleo's session is untouched; Bob may return."""
    laptop, phone = browsers
    signed_in(laptop, google)
    phone_cookie = signed_in(phone, google)
    with TestClient(laptop.app, base_url=PUBLIC_URL) as cleos:
        signed_in(cleos, google, OTHER)
        page = laptop.get("/ui/").text
        assert 'action="/ui/logout/everywhere"' in page
        assert post(laptop, "/ui/logout/everywhere", csrf_token(page)) == 303
        assert phone.get("/ui/", follow_redirects=False).status_code == 303
        assert laptop.get("/ui/", follow_redirects=False).status_code == 303
        assert with_cookie(phone, phone_cookie) == 303
        assert cleos.get("/ui/", follow_redirects=False).status_code == 200
    signed_in(laptop, google)  # a new login after it works at once


@pytest.mark.parametrize("path", ["/ui/logout", "/ui/logout/everywhere"])
def test_sign_outs_need_the_csrf_token_and_the_same_origin(
    browsers: tuple[TestClient, TestClient], google: FakeGoogle, path: str
) -> None:
    """A forged or cross-site sign-out changes nothing, anywhere."""
    mine, other = browsers
    signed_in(mine, google)
    other_cookie = signed_in(other, google)
    token = csrf_token(mine.get("/ui/").text)
    assert post(mine, path, "forged") == 403
    assert post(mine, path, token, origin="https://evil.example") == 403
    assert post(mine, path, token, **{"sec-fetch-site": "cross-site"}) == 403
    assert mine.get("/ui/", follow_redirects=False).status_code == 200
    assert with_cookie(other, other_cookie) == 200


def test_sign_outs_survive_a_restart(
    seeded: Seeded, config: DashboardConfig, folder: Path, google: FakeGoogle
) -> None:
    """A dashboard started afterwards over the same folder still refuses the old cookies."""
    with browser(seeded, config, folder) as mine, browser(seeded, config, folder) as other:
        signed_out = signed_in(mine, google)
        assert post(mine, "/ui/logout", csrf_token(mine.get("/ui/").text)) == 303
        everywhere = signed_in(other, google, OTHER)
        assert post(other, "/ui/logout/everywhere", csrf_token(other.get("/ui/").text)) == 303
    with browser(seeded, config, folder) as restarted:
        assert with_cookie(restarted, signed_out) == 303
        assert with_cookie(restarted, everywhere) == 303
    assert (folder / FILE_NAME).stat().st_mode & 0o077 == 0


def test_old_sign_outs_are_forgotten_once_the_sessions_would_have_expired(
    folder: Path,
) -> None:
    """The list only holds sessions that could still be presented."""
    now = [1_000_000.0]
    store = FileSignOuts(folder, now=lambda: now[0])
    store.sign_out("old", expires_at=now[0] + 10)
    now[0] += 11
    store.sign_out("new", expires_at=now[0] + 10)
    fresh = FileSignOuts(folder)
    assert not fresh.is_signed_out("old")
    assert fresh.is_signed_out("new")


def test_a_damaged_sign_out_list_refuses_rather_than_forgets(
    seeded: Seeded, config: DashboardConfig, folder: Path, google: FakeGoogle
) -> None:
    """An unreadable list never revives ended sessions: the read fails loudly."""
    store = FileSignOuts(folder)
    (folder / FILE_NAME).write_text("{not json")
    with pytest.raises(StorageError, match="sign-out list"):
        store.is_signed_out("any")


def test_a_cookie_signed_before_sign_outs_existed_is_refused(
    seeded: Seeded, config: DashboardConfig, folder: Path
) -> None:
    """A validly signed session without an id cannot be signed out, so it is not accepted."""
    legacy = sign_session(config, {"user": USER, "login_at": int(time.time()), "csrf": "t" * 43})
    with browser(seeded, config, folder) as client:
        assert with_cookie(client, legacy) == 303
