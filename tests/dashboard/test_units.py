"""The dashboard's pure parts: the ``next`` validator, origins, keys, chart, paging."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from decimal import Decimal
from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core.domain import CostEstimate, DailySpend
from image_core.errors import InvalidConfiguration
from image_server.dashboard import DashboardConfig
from image_server.dashboard.chart import build_spend_chart, nice_ceiling
from image_server.dashboard.config import SESSION_KEY_LABEL
from image_server.dashboard.security import safe_next
from image_server.dashboard.views import parse_page
from image_server.edge import hkdf_sha256, origin_of
from tests.dashboard.support import SESSION_SECRET, dashboard_config

BASE = "https://dash.example.test/ui/gallery/x"


def _browser_view(value: str) -> str:
    """What a browser makes of a Location value: tabs/newlines dropped, ``\\`` as ``/``."""
    return "".join(c for c in value if c not in "\t\n\r").replace("\\", "/")


@given(st.text())
def test_safe_next_only_ever_accepts_local_paths(value: str) -> None:
    """Property: whatever is accepted stays on this origin, even as a browser reads it."""
    accepted = safe_next(value)
    if accepted is None:
        return
    assert accepted == value
    assert value.startswith("/")
    assert not value.startswith("//")
    assert "\\" not in value
    for candidate in (value, _browser_view(value)):
        parts = urlsplit(candidate)
        assert not parts.scheme
        assert not parts.netloc
        assert urlsplit(urljoin(BASE, candidate)).netloc == "dash.example.test"


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="/\\")
    )
)
def test_safe_next_accepts_ordinary_local_paths(tail: str) -> None:
    """Property: one slash followed by printable ASCII (no slash first, no backslash) passes."""
    assert safe_next("/" + tail) == "/" + tail


@given(
    st.sampled_from(["//", "/\\", "\\", "http:", "https://", "javascript:", " /", "/\t/"]),
    st.text(),
)
def test_safe_next_rejects_every_escape_prefix(prefix: str, rest: str) -> None:
    """Property: protocol-relative, backslash, scheme and whitespace tricks never pass."""
    assert safe_next(prefix + rest) is None


@pytest.mark.parametrize(
    "value",
    ["/ui/", "/ui/gallery/bob@example.com?page=2", "/ui/prefs#x", "/%2F%2Fevil", "/a:b"],
)
def test_safe_next_examples_accepted(value: str) -> None:
    """Plain local paths, queries and encoded slashes are fine."""
    assert safe_next(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "ui",
        "//evil",
        "///evil",
        "/\\evil",
        "https://evil/",
        "/\x00",
        "/é",
        "/a b",
        "/" + "a" * 3000,
    ],
)
def test_safe_next_examples_refused(value: str | None) -> None:
    """The usual open-redirect payloads."""
    assert safe_next(value) is None


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Dash.Example.test", "https://dash.example.test"),
        ("https://dash.example.test:443/ui/prefs", "https://dash.example.test"),
        ("http://127.0.0.1:8766/x", "http://127.0.0.1:8766"),
        ("http://[::1]:80/", "http://[::1]"),
        ("null", None),
        ("ftp://x", None),
        ("https://x:99999", None),
    ],
)
def test_origins_are_normalised_as_browsers_send_them(url: str, origin: str | None) -> None:
    """Default ports dropped, host lower-cased, anything odd is no origin at all."""
    assert origin_of(url) == origin


def test_hkdf_matches_rfc_5869_test_case_1() -> None:
    """The key derivation is the standard one."""
    okm = hkdf_sha256(bytes([0x0B] * 22), bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_the_session_key_is_derived_and_domain_separated() -> None:
    """Deterministic, not the secret itself, and not what another label would give."""
    config = dashboard_config()
    key = config.session_signing_key()
    assert key == dashboard_config().session_signing_key()
    assert SESSION_SECRET not in key
    assert key != hmac.new(SESSION_SECRET.encode(), b"", hashlib.sha256).hexdigest()
    other = hkdf_sha256(
        SESSION_SECRET.encode(), b"image-mcp/dashboard/v1", b"image-mcp oauth jwt signing"
    )
    assert key != other.hex()
    assert SESSION_KEY_LABEL == b"image-mcp dashboard session"


def test_config_keeps_secrets_out_of_repr_and_checks_itself() -> None:
    """Secrets never print; missing OAuth client, short secret and URL paths are refused."""
    config = dashboard_config()
    assert SESSION_SECRET not in repr(config)
    assert config.client_secret is not None
    assert config.client_secret not in repr(config)
    assert config.callback_url == "https://dash.example.test/ui/auth/callback"
    with pytest.raises(InvalidConfiguration):
        DashboardConfig(
            public_url="https://x.test",
            auth_disabled=False,
            client_id=None,
            client_secret=None,
            session_secret=SESSION_SECRET,
            secure_cookies=True,
        )
    with pytest.raises(InvalidConfiguration):
        DashboardConfig(
            public_url="https://x.test",
            auth_disabled=True,
            client_id=None,
            client_secret=None,
            session_secret="short",
            secure_cookies=True,
        )
    with pytest.raises(InvalidConfiguration):
        dashboard_config(public_url="https://x.test/ui")
    with pytest.raises(InvalidConfiguration):
        dashboard_config(max_age=365 * 24 * 3600)


@pytest.mark.parametrize(
    ("raw", "page"),
    [
        (None, 1),
        ("1", 1),
        ("12", 12),
        ("0", None),
        ("-1", None),
        ("x", None),
        ("\u0661", None),
        ("1234567", None),
    ],
)
def test_page_numbers(raw: str | None, page: int | None) -> None:
    """Only plain ASCII positive integers of sensible size."""
    assert parse_page(raw) == page


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [
        ("0", "0.1"),
        ("0.067", "0.1"),
        ("0.11", "0.2"),
        ("0.21", "0.25"),
        ("0.3", "0.5"),
        ("3.474", "5"),
        ("12", "20"),
    ],
)
def test_chart_scale_rounds_up_to_a_nice_number(value: str, ceiling: str) -> None:
    """1, 2, 2.5, 5 times a power of ten."""
    assert nice_ceiling(Decimal(value)) == Decimal(ceiling)


def _spend(day: str, email: str, cents: int) -> DailySpend:
    return DailySpend(day, email, 1, CostEstimate(Decimal(cents) / 100))


def test_chart_stacks_bars_per_day_and_keeps_the_window() -> None:
    """Two people on one day stack; days outside the window are dropped."""
    chart = build_spend_chart(
        [
            _spend("2026-11-24", "a@x", 40),
            _spend("2026-11-24", "b@x", 10),
            _spend("2026-10-01", "a@x", 99),
        ],
        date(2026, 11, 24),
    )
    assert len(chart.bars) == 2
    low, high = sorted(chart.bars, key=lambda b: -b.y)
    assert low.x == high.x
    assert high.y + high.height == pytest.approx(low.y)
    assert chart.baseline == pytest.approx(low.y + low.height)
    assert [s.label for s in chart.series] == ["a@x", "b@x"]
    assert chart.total == CostEstimate(Decimal("0.5"))
    assert [t.label for t in chart.ticks] == ["$0.00", "$0.25", "$0.50"]


def test_chart_gives_the_biggest_spenders_colours_and_groups_the_rest() -> None:
    """Seven colours, then "N others"."""
    rows = [_spend("2026-11-20", f"u{i}@x", 10 + i) for i in range(10)]
    chart = build_spend_chart(rows, date(2026, 11, 24))
    assert len(chart.series) == 8
    assert chart.series[-1].label == "3 others"
    assert chart.series[0].label == "u9@x"
    assert {b.series for b in chart.bars} == set(range(8))


def test_an_empty_chart_says_so() -> None:
    """No bars at all."""
    assert build_spend_chart([], date(2026, 11, 24)).empty


def test_chart_dates_count_back_from_today_which_sits_at_the_right_edge() -> None:
    """Today always has a date under it; every other week is dropped on narrow screens."""
    chart = build_spend_chart([_spend("2026-11-24", "a@x", 10)], date(2026, 11, 24))
    labels = [(d.label, d.anchor, d.minor) for d in chart.day_labels]
    assert labels == [
        ("Nov 3", "middle", True),
        ("Nov 10", "middle", False),
        ("Nov 17", "middle", True),
        ("Nov 24", "end", False),
    ]
    assert chart.day_labels[-1].x == 100
    (bar,) = chart.bars
    assert bar.x + bar.width <= 100
    assert bar.x > 96  # the last of 30 slots
