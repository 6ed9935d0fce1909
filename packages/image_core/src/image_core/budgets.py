"""Spending periods and budgets: what each person (and the server) may spend, and when.

Every period is a span of whole UTC days, so a budget resets at midnight UTC for
everyone, whatever their time zone; the refusals and the dashboard say so. Budgets are
configuration (never edited from the dashboard); spend comes from the records, so it
survives a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from types import MappingProxyType

import attrs

from image_core.access import owner_key
from image_core.domain import CostEstimate


@attrs.frozen
class Period:
    """The UTC days from ``start`` (inclusive) to ``end`` (exclusive); ``None``: unbounded.

    ``Period()`` is all time.
    """

    start: date | None = None
    end: date | None = None

    def __attrs_post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("a period ends after it starts")

    @classmethod
    def day_of(cls, day: date) -> Period:
        """The one UTC day ``day``."""
        return cls(day, day + timedelta(days=1))

    @classmethod
    def month_of(cls, day: date) -> Period:
        """The UTC calendar month ``day`` falls in."""
        first = day.replace(day=1)
        return cls(first, next_month(first))

    @property
    def is_all_time(self) -> bool:
        """True when neither end is bounded."""
        return self.start is None and self.end is None

    def holds(self, day: date) -> bool:
        """Whether the UTC day ``day`` falls inside the period."""
        return (self.start is None or self.start <= day) and (self.end is None or day < self.end)


def next_month(first: date) -> date:
    """The first day of the month after the one ``first`` is in."""
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def _limits(overrides: Mapping[str, CostEstimate]) -> Mapping[str, CostEstimate]:
    return MappingProxyType({owner_key(email): limit for email, limit in overrides.items()})


@attrs.frozen
class Budgets:
    """The configured limits in US dollars; ``None`` means no limit of that kind.

    ``per_person_monthly`` replaces ``user_monthly`` for the emails it names (any
    spelling: keys are normalised here). Admins are held to the same limits unless
    ``admins_exempt``.
    """

    user_daily: CostEstimate | None = None
    user_monthly: CostEstimate | None = None
    total_monthly: CostEstimate | None = None
    per_person_monthly: Mapping[str, CostEstimate] = attrs.field(factory=dict, converter=_limits)
    admins_exempt: bool = False

    @property
    def any(self) -> bool:
        """Whether any limit is set at all (no limit: no spend needs reading)."""
        return bool(
            self.user_daily or self.user_monthly or self.total_monthly or self.per_person_monthly
        )

    def monthly_for(self, email: str) -> CostEstimate | None:
        """The person's monthly limit: their own override, else the common one."""
        return self.per_person_monthly.get(owner_key(email), self.user_monthly)

    def daily_for(self, email: str) -> CostEstimate | None:
        """The person's daily limit (the same for everyone)."""
        del email
        return self.user_daily
