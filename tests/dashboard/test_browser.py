"""The dashboard in a real browser: Debian's Chromium (headless, via Playwright) against
real uvicorn and the fake Google IdP, logging in as different people.

Each page is saved as a screenshot under ``test-output/screenshots/``. These tests skip
only when ``CI`` is unset and ``/usr/bin/chromium`` is missing; in CI they must run.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import httpx2
import pytest
from fastmcp import Client
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    ViewportSize,
    expect,
    sync_playwright,
)

from image_core.domain import AspectRatio, GenerationRequest, Identity
from image_server.adapters.pillow_codec import PillowImageCodec
from image_server.adapters.placeholder import PlaceholderImageBackend
from image_server.app import build_app, build_service
from image_server.auth import GoogleEndpoints
from image_server.settings import Settings, load_settings
from tests.dashboard.support import (
    ADMIN,
    CLIENT_ID,
    CLIENT_SECRET,
    FORMER,
    NOW,
    OTHER,
    SESSION_SECRET,
    STRANGER,
    USER,
    Seeded,
    dashboard_config,
    make_service,
    outer_app,
    run_sync,
)
from tests.dashboard.test_money import BUDGETS, NOVEMBER, OCTOBER
from tests.e2e.oauth_client import (
    DEFAULT_REDIRECT_URI,
    authorization_url,
    discover,
    obtain_token,
    pkce_pair,
    register_client,
)
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_google import FakeGoogle
from tests.support.live_server import free_port, live_server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1000, "height": 760}
PHONE: ViewportSize = {"width": 390, "height": 844}


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {CHROMIUM} is missing: install Debian's chromium package.")
    pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium); set CI=1 to make this fail.")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    _require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@attrs.frozen
class Site:
    """The running dashboard and what it was seeded with."""

    url: str
    google: FakeGoogle
    seeded: Seeded


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """Dashboard mounted at /ui on real uvicorn, Google faked, real Pillow thumbnails."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    seeded = make_service(codec=PillowImageCodec(), pictures=True, budgets=BUDGETS)
    with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as google:
        config = dashboard_config(
            public_url=url,
            openid_configuration_url=google.discovery_url,
            issuer=google.issuer,
        )
        google.redirect_uris = [config.callback_url]
        with live_server(outer_app(seeded, config), port=port):
            yield Site(url, google, seeded)


@attrs.define(slots=False)  # Playwright stores its wrapper on bound methods' instances
class Watch:
    """Problems a page reported: CSP violations, script errors, failed loads."""

    problems: list[str] = attrs.Factory(list)
    requests: list[str] = attrs.Factory(list)
    expected: set[str] = attrs.Factory(set)
    """URL prefixes where an error status (404 page, refusal) is the point of the test."""

    def console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location["url"]
        if re.search(r"status of 4\d\d", message.text) and url.startswith(tuple(self.expected)):
            return
        self.problems.append(f"{message.text} ({message.location['url']})")

    def request(self, request: Request) -> None:
        self.requests.append(request.url)


@pytest.fixture
def watch() -> Watch:
    """Collected per test, checked at the end of it."""
    return Watch()


def _new_page(browser: Browser, watch: Watch, viewport: ViewportSize = VIEWPORT) -> Page:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", watch.console)
    page.on("pageerror", lambda error: watch.problems.append(str(error)))
    page.on("request", watch.request)
    return page


@pytest.fixture
def page(browser: Browser, watch: Watch) -> Iterator[Page]:
    """A fresh browser context (no cookies) that must finish without console errors."""
    new = _new_page(browser, watch)
    yield new
    new.context.close()
    assert watch.problems == []


def shoot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot of the current page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def sign_in(page: Page, site_url: str, google: FakeGoogle, email: str, start: str = "/ui/") -> None:
    """Open a page, get sent to the login page, sign in with Google (auto-approved)."""
    google.next_email = email
    page.goto(site_url + start)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Sign in with Google").click()
    page.wait_for_url(re.compile(re.escape(site_url) + r"/ui/.*"))


def images_loaded(page: Page) -> bool:
    """Scroll every (lazy) <img> into view; true when all decoded to real pixels."""
    images = page.locator("main img")
    for index in range(images.count()):
        images.nth(index).scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    page.evaluate("() => window.scrollTo(0, 0)")
    return bool(
        page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    )


def test_a_user_sees_only_their_own_images_and_cost(page: Page, site: Site, watch: Watch) -> None:
    """Bob: one row with his cost, his gallery of thumbnails; nobody else's anything."""
    sign_in(page, site.url, site.google, USER)
    expect(page.get_by_role("heading", name="Your usage")).to_be_visible()
    rows = page.locator("table.usage tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(USER)
    content = page.content()
    assert all(email not in content for email in (ADMIN, OTHER, FORMER))
    expect(page.locator("svg rect.bar").first).to_be_visible()
    shoot(page, "overview-user")

    page.get_by_role("link", name="My images").click()
    expect(page.get_by_role("heading", name="Your images")).to_be_visible()
    expect(page.locator("li.card")).to_have_count(24)
    assert images_loaded(page)
    assert not [u for u in watch.requests if "/i/" in u], "the gallery loaded a full-size PNG"
    assert all("/ui/thumbs/" in u for u in watch.requests if "/thumbs/" in u or "/i/" in u)
    assert "Cleo" not in page.content()
    shoot(page, "gallery")

    with page.context.expect_page() as opened:
        page.locator("a.thumb").first.click()
    full = opened.value
    full.wait_for_load_state()
    assert re.search(r"/i/[0-9a-f-]{36}\.png$", full.url)
    full.close()

    page.get_by_role("link", name="Older →").click()
    expect(page.locator("li.card")).to_have_count(3)

    watch.expected.add(f"{site.url}/ui/gallery/{OTHER}")
    page.goto(f"{site.url}/ui/gallery/{OTHER}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_the_copy_button_puts_the_file_name_on_the_clipboard(
    browser: Browser, site: Site, watch: Watch
) -> None:
    """For pasting into a reference_images request."""
    context = browser.new_context(
        viewport=VIEWPORT, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    page.on("console", watch.console)
    try:
        sign_in(page, site.url, site.google, USER, start=f"/ui/gallery/{USER}")
        button = page.locator("button.copy").first
        name = button.get_attribute("data-copy")
        assert name is not None
        assert re.fullmatch(r"[0-9a-f-]{36}\.png", name)
        button.click()
        expect(button).to_have_text("Copied")
        assert page.evaluate("() => navigator.clipboard.readText()") == name
    finally:
        context.close()
    assert watch.problems == []


def test_an_admin_sees_everyone_and_the_total(page: Page, site: Site) -> None:
    """Ada: every user with images, the total row, a per-user chart legend."""
    sign_in(page, site.url, site.google, ADMIN)
    expect(page.get_by_role("heading", name="Cost per user")).to_be_visible()
    rows = page.locator("table.usage tbody tr")
    expect(rows).to_have_count(4)
    report = site.seeded.metadata.usage(period=NOVEMBER)
    for index, row in enumerate(report.rows):
        expect(rows.nth(index)).to_contain_text(row.email)
        expect(rows.nth(index)).to_contain_text(row.cost.display())
    total = page.locator("table.usage tfoot tr")
    expect(total).to_contain_text("Total")
    expect(total).to_contain_text(report.total_cost.display())
    expect(total).to_contain_text(str(report.total_count))
    expect(page.locator("ul.legend li")).to_have_count(4)
    shoot(page, "overview-admin")

    page.get_by_role("link", name=OTHER).first.click()
    expect(page.get_by_role("heading", name=f"Images by {OTHER}")).to_be_visible()
    expect(page.locator("li.card")).to_have_count(4)


def _usage_rows(page: Page) -> list[str]:
    return [
        " ".join(row.inner_text().split()) for row in page.locator("table.usage tbody tr").all()
    ]


def test_the_period_selector_shows_each_utc_month_and_all_time(page: Page, site: Site) -> None:
    """Links for this month, last month and all time; a month input for any other month."""
    sign_in(page, site.url, site.google, ADMIN)
    expect(page.get_by_role("heading", name="this month (November 2026)")).to_be_visible()
    expect(page.get_by_text("Months are UTC")).to_be_visible()
    periods = page.get_by_role("navigation", name="Period")
    expect(periods.get_by_role("link", name="This month")).to_have_attribute("aria-current", "page")

    periods.get_by_role("link", name="Last month").click()
    page.wait_for_url(re.compile(r".*/ui/\?period=last$"))
    expect(page.get_by_role("heading", name="last month (October 2026)")).to_be_visible()
    october = site.seeded.metadata.usage(period=OCTOBER)
    expect(page.locator("table.usage tbody tr")).to_have_count(len(october.rows))
    for row, line in zip(october.rows, _usage_rows(page), strict=True):
        assert row.email in line
        assert row.cost.display() in line

    periods.get_by_role("link", name="All time").click()
    page.wait_for_url(re.compile(r".*/ui/\?period=all$"))
    total = page.locator("table.usage tfoot tr")
    expect(total).to_contain_text(site.seeded.metadata.usage().total_cost.display())
    expect(page.locator("meter")).to_have_count(0)

    month = page.get_by_label("Month", exact=True)
    expect(month).to_have_attribute("type", "month")
    month.fill("2026-10")
    periods.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*/ui/\?period=2026-10$"))
    expect(page.get_by_role("heading", name="October 2026")).to_be_visible()
    expect(page.get_by_label("Month", exact=True)).to_have_value("2026-10")
    assert len(_usage_rows(page)) == len(october.rows)
    shoot(page, "overview-period")


def test_budget_bars_show_each_person_and_the_server_in_figures(page: Page, site: Site) -> None:
    """Meters with accessible names and text figures: near, over and within look different."""
    sign_in(page, site.url, site.google, ADMIN)
    bob = page.get_by_role("meter", name=f"{USER}: $3.088 of $3.50")
    expect(bob).to_be_visible()
    expect(bob).to_have_attribute("value", "3.088")
    near = page.locator(".budget.near").first
    expect(near).to_contain_text("$3.088 of $3.50 (88%)")
    expect(near).to_contain_text("near the budget")
    expect(page.get_by_role("meter", name=f"{ADMIN}: $0.631 of $0.50")).to_be_visible()
    server = page.get_by_role("meter", name="Whole server")
    expect(server).to_be_visible()
    expect(page.locator(".server-budget")).to_contain_text("over budget by $0.089")
    box = bob.bounding_box()
    assert box is not None
    assert box["width"] > 50
    colours = {
        state: page.locator(f".budget.{state} .standing").first.evaluate(
            "e => getComputedStyle(e).color"
        )
        for state in ("near", "over", "within")
    }
    assert len(set(colours.values())) == 3, colours
    shoot(page, "overview-budgets", full_page=True)


def test_budget_bars_of_a_user_are_their_own(page: Page, site: Site) -> None:
    """Bob sees his own meter only, and no server budget."""
    sign_in(page, site.url, site.google, USER)
    expect(page.get_by_role("meter", name=f"{USER}: $3.088 of $3.50")).to_be_visible()
    expect(page.locator("meter")).to_have_count(1)
    expect(page.locator(".server-budget")).to_have_count(0)


def _download(page: Page, link_name: str) -> list[dict[str, str]]:
    with page.expect_download() as started:
        page.get_by_role("link", name=link_name).click()
    download = started.value
    path = download.path()
    assert path is not None
    assert download.suggested_filename.startswith("image-mcp-costs-")
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_csv_download_holds_what_the_viewer_may_see(
    browser: Browser, site: Site, watch: Watch
) -> None:
    """Ada's export of all time has everyone; Bob's, only his own rows."""
    for email, expected in (
        (ADMIN, {USER, ADMIN, OTHER, FORMER}),
        (USER, {USER}),
    ):
        page = _new_page(browser, watch)
        try:
            sign_in(page, site.url, site.google, email, start="/ui/?period=all")
            rows = _download(page, "Download these costs as CSV")
        finally:
            page.context.close()
        assert {r["email"] for r in rows} == expected
        everyone = site.seeded.by_owner
        assert len(rows) == sum(len(everyone[e]) for e in expected)
        assert all(r["cost_usd"] and r["date_utc"].endswith("Z") for r in rows)
    assert watch.problems == []


def test_an_email_off_the_allow_list_is_refused(page: Page, site: Site, watch: Watch) -> None:
    """A real Google login that is not allow-listed sees who they are and why not."""
    watch.expected.add(f"{site.url}/ui/auth/callback?")
    sign_in(page, site.url, site.google, STRANGER)
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.locator("main")).to_contain_text(STRANGER)
    expect(page.get_by_role("link", name="Use another Google account")).to_be_visible()
    shoot(page, "not-allowed")
    assert page.context.cookies() == []
    page.goto(site.url + "/ui/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_changing_the_default_model_in_the_browser(page: Page, site: Site) -> None:
    """Pick pro, save, see it confirmed; the core now uses it for model-less requests."""
    prefs = site.seeded.prefs
    sign_in(page, site.url, site.google, OTHER, start="/ui/prefs")
    expect(page.get_by_role("heading", name="My default model")).to_be_visible()
    expect(page.get_by_role("radio", name=re.compile("^flash"))).to_be_checked()
    expect(page.locator("form.models")).to_contain_text("final renders, text in image")
    page.get_by_role("radio", name=re.compile("^pro")).check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("new images use pro")
    expect(page.get_by_role("radio", name=re.compile("^pro"))).to_be_checked()
    shoot(page, "model-picker")
    assert prefs.get_default_model(OTHER) == "pro"
    assert run_sync(site.seeded.service.choose_model(OTHER, None)).alias == "pro"
    prefs.set_default_model(OTHER, "flash")


def test_the_404_page_and_signing_out(page: Page, site: Site, watch: Watch) -> None:
    """A branded 404; signing out lands on the login page and ends the session."""
    sign_in(page, site.url, site.google, USER)
    watch.expected.add(site.url + "/ui/no-such-page")
    response = page.goto(site.url + "/ui/no-such-page")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    shoot(page, "not-found")
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    shoot(page, "login")
    page.goto(site.url + "/ui/prefs")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_pages_fit_a_phone_screen(browser: Browser, site: Site, watch: Watch) -> None:
    """No sideways scrolling of the page itself on a 390 px wide phone."""
    page = _new_page(browser, watch, PHONE)
    try:
        sign_in(page, site.url, site.google, ADMIN)
        for path in ("/ui/", f"/ui/gallery/{USER}", "/ui/prefs"):
            page.goto(site.url + path)
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} is {overflow}px too wide"
        page.goto(f"{site.url}/ui/gallery/{USER}")
        shoot(page, "gallery-phone")
    finally:
        page.context.close()
    assert watch.problems == []


def test_the_whole_app_from_the_composition_root(
    browser: Browser, watch: Watch, tmp_path: Path
) -> None:
    """``build_app``: sign in, see a generated image, pick pro; MCP then generates with pro."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (
        FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as google,
        FakeGemini() as gemini,
    ):
        settings = Settings(
            root=tmp_path,
            public_url=url,
            backend="gemini",
            gemini_api_key="fake-gemini-key-0123",
            gemini_base_url=gemini.base_url,
            google_client_id=CLIENT_ID,
            google_client_secret=CLIENT_SECRET,
            jwt_signing_key=SESSION_SECRET,
            allowed_emails=frozenset({USER}),
            admin_emails=frozenset({ADMIN}),
        )
        service = build_service(settings, backend=PlaceholderImageBackend())
        request = GenerationRequest.parse("A red fox in fresh snow", aspect_ratio="3:2")
        identity = Identity(USER, email_verified=True)
        # Playwright's sync API owns this thread's event loop: generate in another thread.
        with ThreadPoolExecutor(1) as pool:
            generated = pool.submit(
                lambda: asyncio.run(service.generate(identity, request))
            ).result()
        app = build_app(settings, google=GoogleEndpoints.at(google.base_url))
        google.redirect_uris = [f"{url}/ui/auth/callback", f"{url}/auth/callback"]
        page = _new_page(browser, watch)
        try:
            with live_server(app, port=port):
                sign_in(page, url, google, USER, start="/ui/gallery")
                expect(page.locator("li.card")).to_have_count(1)
                expect(page.locator("li.card")).to_contain_text("A red fox in fresh snow")
                assert images_loaded(page)
                thumb = page.request.get(f"{url}/ui/thumbs/{generated.generation.id}")
                assert thumb.headers["content-type"] in {"image/webp", "image/jpeg"}
                full = page.request.get(f"{url}/i/{generated.generation.file_name}")
                assert full.status == 200
                page.goto(url + "/ui/prefs")
                page.get_by_role("radio", name=re.compile("^pro")).check()
                page.get_by_role("button", name="Save").click()
                expect(page.get_by_role("status")).to_contain_text("new images use pro")
                with ThreadPoolExecutor(1) as pool:
                    reply = pool.submit(
                        lambda: asyncio.run(_generate_over_mcp(url, google, USER))
                    ).result()
        finally:
            page.context.close()
        assert run_sync(service.default_model_for(USER)).alias == "pro"
        assert gemini.requests[-1].model == "gemini-3-pro-image"
    assert reply["model"] == "pro"
    sidecar = json.loads((tmp_path / reply["file_name"]).with_suffix(".json").read_text())
    assert sidecar["model_alias"] == "pro"
    assert sidecar["email"] == USER
    assert watch.problems == []


async def _generate_over_mcp(url: str, google: FakeGoogle, email: str) -> dict[str, Any]:
    """Log in like Claude.ai and call the tool without naming a model."""
    google.next_email = email
    async with httpx2.AsyncClient(timeout=30) as http:
        tokens = await obtain_token(f"{url}/mcp", http=http)
    async with Client(f"{url}/mcp", auth=tokens.access_token) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox, final render"})
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    return data


def test_the_documented_dashboard_address_opens_the_dashboard(
    page: Page, watch: Watch, tmp_path: Path
) -> None:
    """Typing ``/ui`` (no slash) in the browser lands on the dashboard, not a bare 404."""
    port = free_port()
    settings = load_settings({"IMG_ROOT": str(tmp_path), "IMG_PORT": str(port)}, dev=True)
    with live_server(build_app(settings), port=port) as url:
        response = page.goto(url + "/ui")
        assert response is not None
        assert response.status == 200
        assert page.url == url + "/ui/"
        expect(page.get_by_role("heading", name="Cost per user")).to_be_visible()
        watch.expected.add(url + "/nowhere")
        missing = page.goto(url + "/nowhere")
        assert missing is not None
        assert missing.status == 404
        expect(page.get_by_role("link", name="Open the dashboard")).to_be_visible()
        page.get_by_role("link", name="Open the dashboard").click()
        expect(page.get_by_role("heading", name="Cost per user")).to_be_visible()


def test_the_mcp_consent_page_is_ours_and_loads_nothing_from_elsewhere(
    browser: Browser, watch: Watch, tmp_path: Path
) -> None:
    """Connecting a client shows image-mcp's name and logo, every request to this origin."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as google:
        settings = Settings(
            root=tmp_path,
            public_url=url,
            backend="placeholder",
            google_client_id=CLIENT_ID,
            google_client_secret=CLIENT_SECRET,
            jwt_signing_key=SESSION_SECRET,
            allowed_emails=frozenset({USER}),
        )
        app = build_app(settings, google=GoogleEndpoints.at(google.base_url))
        page = _new_page(browser, watch)
        try:
            with live_server(app, port=port):
                with ThreadPoolExecutor(1) as pool:
                    start = pool.submit(lambda: asyncio.run(_authorization_url(url))).result()
                response = page.goto(start)
                assert response is not None
                assert response.status == 200
                page.wait_for_load_state("networkidle")
                expect(page.get_by_role("button", name="Allow Access")).to_be_visible()
                expect(page.locator(".info-box")).to_contain_text("image-mcp")
                logo = page.locator("img.logo")
                expect(logo).to_have_attribute("alt", "image-mcp")
                assert logo.evaluate("img => img.complete && img.naturalWidth > 0")
                shoot(page, "mcp-consent")
        finally:
            page.context.close()
    foreign = [r for r in watch.requests if not r.startswith(url + "/")]
    assert foreign == []
    assert watch.problems == []


async def _authorization_url(url: str) -> str:
    """Discover and register like an MCP client; the URL it would open in the browser."""
    async with httpx2.AsyncClient(timeout=30) as http:
        discovery = await discover(f"{url}/mcp", http=http)
        client_id = await register_client(discovery, DEFAULT_REDIRECT_URI, http=http)
    _, challenge = pkce_pair()
    return authorization_url(
        discovery,
        client_id=client_id,
        redirect_uri=DEFAULT_REDIRECT_URI,
        state="state-1",
        code_challenge=challenge,
    )


WIDE: ViewportSize = {"width": 1440, "height": 900}
TODAY = f"{NOW:%Y-%m-%d}"
CHART_GEOMETRY = """() => {
  const box = (element) => {
    const r = element.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, height: r.height};
  };
  const figure = document.querySelector("figure.chart");
  return {
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
    figure: box(figure),
    labels: [...figure.querySelectorAll("svg text")]
      .filter((t) => t.getBoundingClientRect().height > 0)
      .map((t) => ({text: t.textContent, ...box(t)})),
    bars: [...figure.querySelectorAll("rect.bar")].map(
      (r) => ({title: r.querySelector("title").textContent, ...box(r)})
    ),
    caption: figure.closest("section").textContent,
  };
}"""


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    )


@pytest.mark.parametrize("viewport", [PHONE, VIEWPORT, WIDE], ids=lambda v: f"{v['width']}px")
def test_the_spend_chart_shows_today_and_legible_labels_at_any_width(
    browser: Browser, site: Site, watch: Watch, viewport: ViewportSize
) -> None:
    """Today's bar and date are on screen without scrolling; labels are readable, apart."""
    page = _new_page(browser, watch, viewport)
    try:
        sign_in(page, site.url, site.google, ADMIN)
        chart = page.evaluate(CHART_GEOMETRY)
        shoot(page, f"chart-{viewport['width']}", full_page=True)
    finally:
        page.context.close()
    assert chart["scrollWidth"] <= chart["clientWidth"], "the page scrolls sideways"
    inside = chart["figure"]
    visible_right = min(inside["right"], viewport["width"])
    today = [bar for bar in chart["bars"] if bar["title"].startswith(TODAY)]
    assert today, "no bar for today"
    for bar in today:
        assert inside["left"] <= bar["left"], bar
        assert bar["right"] <= visible_right, bar
    label = f"{NOW:%b} {NOW.day}"
    dated = [t for t in chart["labels"] if t["text"] == label]
    assert dated, f"no {label!r} under the axis: {[t['text'] for t in chart['labels']]}"
    assert inside["left"] <= dated[0]["left"]
    assert dated[0]["right"] <= visible_right
    labels = chart["labels"]
    assert len(labels) >= 5  # three dollar ticks and at least two dates
    for text in labels:
        assert 12 <= text["height"] <= 24, f"{text['text']!r} renders {text['height']}px tall"
    for i, first in enumerate(labels):
        for second in labels[i + 1 :]:
            assert not _overlap(first, second), (first["text"], second["text"])
    assert inside["bottom"] - inside["top"] < 480, "the chart is taller than a phone screen half"
    assert "UTC" in chart["caption"]
    assert watch.problems == []


THUMBNAIL_GEOMETRY = """(img) => {
  const r = img.getBoundingClientRect();
  const frame = img.parentElement.getBoundingClientRect();
  const fit = getComputedStyle(img).objectFit;
  const [w, h] = [img.naturalWidth, img.naturalHeight];
  let [sx, sy] = [r.width / w, r.height / h];
  if (fit === "contain" || fit === "scale-down") {
    sx = sy = Math.min(sx, sy, fit === "scale-down" ? 1 : Infinity);
  } else if (fit === "cover") {
    sx = sy = Math.max(sx, sy);
  } else if (fit === "none") {
    sx = sy = 1;
  }
  return {
    natural: [w, h],
    painted: [w * sx, h * sy],
    element: [r.width, r.height],
    frame: [frame.width, frame.height],
    inside_frame: r.left >= frame.left - 0.5 && r.right <= frame.right + 0.5
      && r.top >= frame.top - 0.5 && r.bottom <= frame.bottom + 0.5,
  };
}"""


def test_wide_and_tall_thumbnails_keep_their_shape_and_dates_say_utc(
    page: Page, site: Site
) -> None:
    """A 21:9 and a 1:8 image: the file and what is painted keep the ratio, nothing cut."""
    sign_in(page, site.url, site.google, ADMIN, start=f"/ui/gallery/{ADMIN}")
    assert images_loaded(page)
    by_ratio = {g.aspect_ratio: g for g in site.seeded.by_owner[ADMIN]}
    for ratio in (AspectRatio.R21_9, AspectRatio.R1_8):
        generation = by_ratio[ratio]
        img = page.locator(f'img[src$="/thumbs/{generation.id}"]')
        shape = img.evaluate(THUMBNAIL_GEOMETRY)
        expected = ratio.parts[0] / ratio.parts[1]
        natural_w, natural_h = shape["natural"]
        painted_w, painted_h = shape["painted"]
        element_w, element_h = shape["element"]
        assert natural_w / natural_h == pytest.approx(expected, rel=0.03), ratio
        assert painted_w / painted_h == pytest.approx(expected, rel=0.03), ratio
        assert painted_w <= element_w + 0.5, "cropped at the sides"
        assert painted_h <= element_h + 0.5, "cropped at top and bottom"
        assert max(painted_w / element_w, painted_h / element_h) > 0.98, "not scaled to fit"
        assert shape["inside_frame"], "the card cuts the thumbnail off"
        frame_w, frame_h = shape["frame"]
        assert frame_w == pytest.approx(frame_h, abs=1), "the frame took the picture's shape"
        assert max(element_w, element_h) <= frame_w + 0.5
    shoot(page, "gallery-ratios")
    times = page.locator("main time")
    assert times.count() == len(site.seeded.by_owner[ADMIN])
    for text in times.all_inner_texts():
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", text), text


LINE_BREAKS = """(element) => {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  let text = "", top = null, node;
  const breaks = [];
  while ((node = walker.nextNode())) {
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const y = range.getBoundingClientRect().top;
      if (top !== null && y > top + 1) breaks.push(text.length);
      top = y;
      text += node.data[i];
    }
  }
  return {text, breaks};
}"""


def test_emails_in_the_cost_table_wrap_only_after_the_at_sign_on_a_phone(
    browser: Browser, site: Site, watch: Watch
) -> None:
    """``bob@`` / ``example.com``, never ``bob@example.c`` / ``om``."""
    page = _new_page(browser, watch, PHONE)
    try:
        sign_in(page, site.url, site.google, ADMIN)
        links = page.locator("table.usage td a")
        assert links.count() == 4
        for index in range(links.count()):
            lines = links.nth(index).evaluate(LINE_BREAKS)
            for at in lines["breaks"]:
                assert lines["text"][at - 1] == "@", (lines["text"], at)
    finally:
        page.context.close()
    assert watch.problems == []
