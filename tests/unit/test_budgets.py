"""Periods are whole UTC days; budgets normalise emails and fall back to the common limit."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from image_core.budgets import Budgets, Period, next_month
from image_core.domain import CostEstimate


def usd(amount: str) -> CostEstimate:
    return CostEstimate(Decimal(amount))


@pytest.mark.parametrize(
    ("day", "start", "end"),
    [
        (date(2026, 12, 31), date(2026, 12, 1), date(2027, 1, 1)),
        (date(2026, 2, 1), date(2026, 2, 1), date(2026, 3, 1)),
        (date(2028, 2, 29), date(2028, 2, 1), date(2028, 3, 1)),
    ],
)
def test_a_month_runs_from_its_first_day_to_the_next_months(
    day: date, start: date, end: date
) -> None:
    """December rolls into the next year; a leap February ends on March 1st."""
    assert Period.month_of(day) == Period(start, end)
    assert next_month(start) == end


def test_a_period_holds_its_days_and_not_its_end() -> None:
    """The end is exclusive; an open end holds everything after the start."""
    december = Period.month_of(date(2026, 12, 5))
    assert december.holds(date(2026, 12, 1))
    assert december.holds(date(2026, 12, 31))
    assert not december.holds(date(2027, 1, 1))
    assert not december.holds(date(2026, 11, 30))
    assert Period(start=date(2026, 1, 1)).holds(date(2099, 1, 1))
    assert Period().is_all_time
    assert Period.day_of(date(2026, 12, 1)) == Period(date(2026, 12, 1), date(2026, 12, 2))


def test_a_period_cannot_end_before_it_starts() -> None:
    """An empty or reversed span is a programming error, said plainly."""
    with pytest.raises(ValueError, match="ends after it starts"):
        Period(date(2026, 12, 2), date(2026, 12, 2))


def test_a_personal_limit_replaces_the_common_one_for_any_spelling() -> None:
    """Overrides are keyed by the normalised email; others get the common monthly limit."""
    budgets = Budgets(
        user_monthly=usd("10"),
        user_daily=usd("2"),
        per_person_monthly={"Alice@Example.com ": usd("20")},
    )
    assert budgets.monthly_for("alice@example.com") == usd("20")
    assert budgets.monthly_for("ALICE@example.COM") == usd("20")
    assert budgets.monthly_for("bob@example.com") == usd("10")
    assert budgets.daily_for("bob@example.com") == usd("2")
    assert budgets.any
    assert not Budgets().any
    assert Budgets().monthly_for("bob@example.com") is None
