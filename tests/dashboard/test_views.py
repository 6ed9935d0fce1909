"""What each dashboard page shows: costs, chart, galleries, picker, empty and error states."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from starlette.testclient import TestClient

from image_core.budgets import Period
from image_core.contracts.samples import make_generation
from image_core.domain import MAX_PRICE_USD, CostEstimate
from image_core.ledger import PersonSpend
from image_core.testing import InMemoryMetadataRepository
from image_server.adapters.fs_metadata import FilesystemMetadataRepository
from image_server.adapters.pillow_codec import PillowImageCodec
from image_server.dashboard import DashboardConfig
from image_server.dashboard.pages import STATIC
from tests.dashboard.conftest import PUBLIC_URL, Login, csrf_token, log_in
from tests.dashboard.support import (
    ADMIN,
    FORMER,
    NOW,
    OTHER,
    USER,
    dashboard_config,
    make_service,
    outer_app,
    run_sync,
)
from tests.dashboard.support import Seeded as SeededService
from tests.fakes.fake_google import FakeGoogle
from tests.support.bad_records import BAD_SIDECARS, plant


def _cells(html: str) -> list[tuple[str, str, str]]:
    rows = re.findall(
        r'<td><a href="[^"]+">([^<]+(?:<wbr>[^<]*)?)</a></td>\s*<td class="num">(\d+)</td>\s*'
        r'<td class="num">([^<]+)</td>',
        html,
    )
    return [(e.replace("<wbr>", ""), n, c) for e, n, c in rows]


def test_an_admin_sees_every_user_and_the_total(
    client: TestClient, login: Login, seeded: SeededService
) -> None:
    """Rows for everyone with images, largest spend first, and a total that adds up."""
    login(ADMIN)
    html = client.get("/ui/?period=all").text
    rows = _cells(html)
    assert [e for e, _, _ in rows] == [USER, ADMIN, OTHER, FORMER]
    report = seeded.metadata.usage()
    assert [(r.email, str(r.image_count), r.cost.display()) for r in report.rows] == rows
    total = sum((CostEstimate(Decimal(c.strip("$"))) for _, _, c in rows), CostEstimate.zero())
    footer = re.search(r"<tfoot>.*?</tfoot>", html, re.S)
    assert footer is not None
    assert f'<td class="num">{report.total_count}</td>' in footer.group(0)
    assert total.display() in footer.group(0)


def test_a_user_sees_their_own_count_and_cost(
    client: TestClient, login: Login, seeded: SeededService
) -> None:
    """One row: their images and their estimated cost."""
    login(USER)
    mine = seeded.by_owner[USER]
    total = sum((g.cost for g in mine), CostEstimate.zero())
    assert _cells(client.get("/ui/?period=all").text) == [(USER, str(len(mine)), total.display())]


def test_the_spend_chart_is_inline_svg_per_user_for_admins(
    client: TestClient, login: Login
) -> None:
    """Bars with a title each, one colour per user, a legend naming them."""
    login(ADMIN)
    html = client.get("/ui/").text
    svg = re.search(r"<svg.*?</svg>", html, re.S)
    assert svg is not None
    series = set(re.findall(r'class="bar s(\d)"', svg.group(0)))
    assert len(series) == 4  # bob, ada, cleo, dan (cleo's 40-day-old image is outside)
    legend = re.search(r'<ul class="legend">.*?</ul>', html, re.S)
    assert legend is not None
    for email in (USER, ADMIN, OTHER, FORMER):
        assert email in legend.group(0)


def test_a_user_chart_holds_only_their_spend(client: TestClient, login: Login) -> None:
    """A single series."""
    login(USER)
    html = client.get("/ui/").text
    assert set(re.findall(r'class="bar s(\d)"', html)) == {"0"}
    assert OTHER not in html


def test_the_gallery_shows_every_fact_of_each_image(
    client: TestClient, login: Login, seeded: SeededService
) -> None:
    """Prompt, date, model, size, ratio, cost, full-size link and copy button."""
    login(USER)
    html = client.get(f"/ui/gallery/{USER}").text
    newest = max(seeded.by_owner[USER], key=lambda g: g.created_at)
    card = html.split('<li class="card">')[1]
    assert newest.file_name in card
    assert f'href="/i/{newest.file_name}"' in card
    assert f'data-copy="{newest.file_name}"' in card
    assert newest.created_at.strftime("%Y-%m-%d %H:%M UTC") in card
    assert newest.model_alias in card
    assert newest.image_size.value in card
    assert newest.cost.display() in card
    assert (newest.aspect_ratio.value if newest.aspect_ratio else "default") in card


def test_the_gallery_is_newest_first_and_paginated(
    client: TestClient, login: Login, seeded: SeededService
) -> None:
    """24 per page, then the rest; past the end is a 404."""
    login(USER)
    ordered = sorted(seeded.by_owner[USER], key=lambda g: g.created_at, reverse=True)
    first = client.get(f"/ui/gallery/{USER}").text
    second = client.get(f"/ui/gallery/{USER}?page=2").text
    names = re.findall(r'data-copy="([^"]+)"', first) + re.findall(r'data-copy="([^"]+)"', second)
    assert names == [g.file_name for g in ordered]
    assert "page 1 of 2" in first
    assert 'rel="next"' in first
    assert 'rel="prev"' in second
    assert 'rel="next"' not in second
    for bad in ("3", "0", "-1", "abc", "1.5", "9999999"):
        assert client.get(f"/ui/gallery/{USER}?page={bad}").status_code == 404


def test_my_images_redirects_to_the_viewers_own_gallery(client: TestClient, login: Login) -> None:
    """/ui/gallery is a shortcut."""
    login(USER)
    response = client.get("/ui/gallery", follow_redirects=False)
    assert response.headers["location"] == f"/ui/gallery/{USER}"


def test_an_admin_can_open_any_gallery_and_switch_between_them(
    client: TestClient, login: Login, seeded: SeededService
) -> None:
    """Other users' galleries, plus links to every gallery."""
    login(ADMIN)
    html = client.get(f"/ui/gallery/{OTHER}").text
    assert f"Images by {OTHER}" in html
    assert all(g.prompt.replace("'", "&#39;") in html for g in seeded.by_owner[OTHER])
    assert f'href="/ui/gallery/{FORMER}"' in html


def test_empty_states_explain_what_to_do(google: FakeGoogle) -> None:
    """A new user sees friendly empty pages, not blank tables."""
    seeded = make_service(user_images=0)
    config = dashboard_config(
        public_url=PUBLIC_URL,
        openid_configuration_url=google.discovery_url,
        issuer=google.issuer,
    )
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as client:
        log_in(client, google, USER)
        overview = client.get("/ui/?period=all").text
        this_month = client.get("/ui/").text
        gallery = client.get(f"/ui/gallery/{USER}").text
    assert "No images yet." in overview
    assert "No images in this period." in this_month
    assert "Nothing was generated in the last 30 days." in overview
    assert "No images yet." in gallery
    assert "<table" not in overview


def test_the_model_picker_shows_prices_and_use_for_lines(
    client: TestClient, login: Login, seeded: SeededService
) -> None:
    """Both models, each with its prices per size and what it is for; flash is current."""
    login(USER)
    html = client.get("/ui/prefs").text
    for spec in seeded.service.offered_models():
        assert f'value="{spec.alias}"' in html
        assert spec.use_for in html
        assert spec.model_id in html
        for size, price in spec.prices.items():
            assert f"{size.value} {price.display()}" in html
    assert re.search(r'value="flash" checked', html)


def test_saving_the_default_model_shows_it_as_current(
    client: TestClient, login: Login, seeded: SeededService
) -> None:
    """The saved choice is what the core now uses for generations without a model."""
    login(USER)
    token = csrf_token(client.get("/ui/prefs").text)
    page = client.post(
        "/ui/prefs", data={"model": "PRO", "csrf_token": token}, headers={"origin": PUBLIC_URL}
    )
    assert "Saved: new images use pro" in page.text
    assert re.search(r'value="pro" checked', page.text)
    assert run_sync(seeded.service.choose_model(USER, None)).alias == "pro"


@pytest.mark.parametrize("path", ["/ui/nope", "/ui/gallery/x/y", "/ui/static/missing.css"])
def test_the_404_page_looks_like_the_product(client: TestClient, login: Login, path: str) -> None:
    """Branded page with the stylesheet and a way back."""
    login(USER)
    response = client.get(path)
    assert response.status_code == 404
    assert "image-mcp" in response.text
    assert "/ui/static/dashboard.css" in response.text
    assert "Back to the dashboard" in response.text


def test_a_wrong_method_is_the_404_page_too(client: TestClient) -> None:
    """GET on the sign-out endpoint is not an error page."""
    response = client.get("/ui/logout")
    assert response.status_code == 404
    assert "Not found" in response.text


def test_an_unexpected_error_is_a_product_page_without_details() -> None:
    """A storage failure deep in the core becomes a plain 500 page with the headers."""

    class BrokenMetadata(InMemoryMetadataRepository):
        def spend(
            self, emails: Collection[str] | None = None, period: Period | None = None
        ) -> list[PersonSpend]:
            raise RuntimeError("secret internal detail /srv/images")

    seeded = make_service(open_policy=True)
    seeded = attrs.evolve(seeded, service=attrs.evolve(seeded.service, metadata=BrokenMetadata()))
    config = dashboard_config(auth_disabled=True, public_url="http://testserver")
    with TestClient(outer_app(seeded, config), raise_server_exceptions=False) as client:
        response = client.get("/ui/")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "secret internal detail" not in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_with_auth_disabled_everything_is_visible_without_login() -> None:
    """No login page; every user; the picker applies to local@localhost."""
    seeded = make_service(open_policy=True)
    config = dashboard_config(auth_disabled=True, public_url="http://127.0.0.1:8766")
    with TestClient(outer_app(seeded, config), base_url="http://localhost:8766") as client:
        assert client.get("/ui/login", follow_redirects=False).headers["location"] == "/ui/"
        assert client.get("/ui/login/google", follow_redirects=False).headers["location"] == "/ui/"
        overview = client.get("/ui/").text
        assert all(email in overview for email in (USER, ADMIN, OTHER, FORMER))
        assert "sign-in disabled" in overview
        assert "Sign out" not in overview
        assert client.get(f"/ui/gallery/{OTHER}").status_code == 200
        assert client.get(f"/ui/thumbs/{seeded.ids_of(OTHER)[0]}").status_code == 200
        page = client.get("/ui/prefs").text
        assert "local@localhost" in page
        # Reached as localhost while configured as 127.0.0.1: still same-origin in dev.
        response = client.post(
            "/ui/prefs",
            data={"model": "pro", "csrf_token": csrf_token(page)},
            headers={"origin": "http://localhost:8766"},
        )
        assert response.status_code == 200
        refused = client.post(
            "/ui/prefs",
            data={"model": "flash", "csrf_token": csrf_token(page)},
            headers={"origin": "http://evil.example"},
        )
        assert refused.status_code == 403
    assert run_sync(seeded.service.default_model_for("local@localhost")).alias == "pro"


def test_pages_render_beside_bad_sidecars_and_with_prices_at_the_bound(tmp_path: Path) -> None:
    """Costs, chart and gallery are 200 over real files: every damaged sidecar is skipped,
    and a day of images at the $1,000,000 bound is summed, drawn and shown exactly."""
    bad = [plant(tmp_path, case) for case in BAD_SIDECARS]
    with FilesystemMetadataRepository(tmp_path) as metadata:
        seeded = make_service(open_policy=True, metadata=metadata)
        top = [
            make_generation(USER, at=NOW - timedelta(hours=h), cost=MAX_PRICE_USD)
            for h in range(1, 4)
        ]
        for generation in top:
            metadata.add(generation)
        config = dashboard_config(auth_disabled=True, public_url="http://127.0.0.1:8766")
        with TestClient(outer_app(seeded, config), base_url="http://127.0.0.1:8766") as client:
            overview = client.get("/ui/?period=all")
            gallery = client.get(f"/ui/gallery/{USER}")
            hidden = client.get("/ui/gallery/eve@example.com")
    assert overview.status_code == 200
    mine = sum((g.cost for g in [*seeded.by_owner[USER], *top]), CostEstimate.zero())
    assert (USER, str(len(seeded.by_owner[USER]) + 3), mine.display()) in _cells(overview.text)
    assert re.search(r"<svg.*</svg>", overview.text, re.S)
    today = [g for g in [*seeded.by_owner[USER], *top] if g.created_at.date() == NOW.date()]
    spent = sum((g.cost for g in today), CostEstimate.zero())
    assert f"{USER}: {len(today)} images, {spent.display()}" in overview.text  # its bar
    assert gallery.status_code == 200
    assert gallery.text.count("$1000000.00") == 3
    assert hidden.status_code == 200
    assert not any(p.stem in hidden.text for p in bad)


def test_images_without_a_thumbnail_get_one_made_once() -> None:
    """Legacy images: a small WebP is made on first view, stored, and served after."""
    seeded = make_service(open_policy=True, codec=PillowImageCodec())
    legacy = seeded.ids_of(USER)[:3]
    seeded.images.legacy.update(legacy)
    config = dashboard_config(auth_disabled=True, public_url="http://testserver")
    with TestClient(outer_app(seeded, config)) as client:
        first = client.get(f"/ui/thumbs/{legacy[0]}")
        again = client.get(f"/ui/thumbs/{legacy[0]}")
    assert first.status_code == 200
    assert first.headers["content-type"] in {"image/webp", "image/jpeg"}
    assert first.content[:4] == b"RIFF" or first.content[:2] == b"\xff\xd8"
    assert len(first.content) < 50_000
    assert again.content == first.content
    assert seeded.images.thumbnails_stored == [legacy[0]]


@pytest.mark.parametrize("name", ["dashboard.css", "dashboard.js", "favicon.svg"])
def test_static_links_change_when_the_file_does(
    client: TestClient, login: Login, name: str
) -> None:
    """An upgrade's new CSS (say, uncropped thumbnails) is never hidden by an old cache."""
    login(USER)
    html = client.get("/ui/").text
    content = (STATIC / name).read_bytes()
    version = hashlib.sha256(content).hexdigest()[:12]
    link = f"/ui/static/{name}?v={version}"
    assert f'"{link}"' in html
    assert client.get(link).content == content


def test_a_model_notice_shows_to_admins_on_every_page_and_never_to_others(
    seeded: SeededService, config: DashboardConfig, google: FakeGoogle
) -> None:
    """What the models check found is for the people who can fix it; it is escaped text."""
    notice = "Model flash: set IMG_MODEL_FLASH=gemini-nano-banana-2.1 <b>now</b>"
    app = outer_app(seeded, config, model_notices=lambda: (notice,))
    shown = "Model flash: set IMG_MODEL_FLASH=gemini-nano-banana-2.1 &lt;b&gt;now&lt;/b&gt;"
    with TestClient(app, base_url=PUBLIC_URL) as admin:
        log_in(admin, google, ADMIN)
        for path in ("/ui/", "/ui/prefs", f"/ui/gallery/{ADMIN}"):
            assert shown in admin.get(path).text
    with TestClient(app, base_url=PUBLIC_URL) as user:
        log_in(user, google, USER)
        for path in ("/ui/", "/ui/prefs"):
            assert "IMG_MODEL_FLASH" not in user.get(path).text
