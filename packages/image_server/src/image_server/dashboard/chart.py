"""Spend over time as plain geometry for a server-rendered SVG (no script, no library).

One stacked bar per UTC day, one colour per person (the biggest spenders get their
own colour, everyone else shares one), so admins see who spent what and when.

The SVG has no ``viewBox``: horizontal positions are percentages of the plot's width
and vertical ones are CSS pixels. So the chart fills any width from a phone to a wide
screen with its text at its real size, instead of shrinking the labels to illegible
(or scrolling today off-screen) as a fixed-size drawing scaled to fit would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

import attrs

from image_core.domain import CostEstimate, DailySpend

HEIGHT: Final = 240
TOP: Final = 12
BOTTOM: Final = 28
LABEL_EVERY: Final = 7  # a date under every 7th day, counting back from today
MIN_LABEL_OFFSET: Final = 3  # no date under the first days: it would run into the y axis
COLOURS: Final = 7  # series 0..6 get their own colour; 7 is "everyone else"
_NICE_STEPS: Final = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))


@attrs.frozen
class Bar:
    """One person's spend on one day: ``x`` and ``width`` in % of the plot, the rest in px."""

    x: float
    y: float
    width: float
    height: float
    series: int
    title: str


@attrs.frozen
class Tick:
    """A horizontal grid line with its dollar label."""

    y: float
    label: str


@attrs.frozen
class DayLabel:
    """A date under the x axis; ``x`` in % of the plot width, ``anchor`` as in SVG.

    ``minor`` dates are hidden on narrow screens, where a week is too little room.
    """

    x: float
    label: str
    anchor: str = "middle"
    minor: bool = False


@attrs.frozen
class Series:
    """A legend entry: one person (or everyone else) over the whole window."""

    index: int
    label: str
    image_count: int
    cost: CostEstimate


@attrs.frozen
class SpendChart:
    """Everything the template draws; coordinates are final."""

    days: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    day_labels: tuple[DayLabel, ...]
    series: tuple[Series, ...]
    total: CostEstimate
    height: int = HEIGHT
    baseline: float = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        """No spend at all in the window."""
        return not self.bars


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 times 10^k that is at least ``value`` (minimum $0.10)."""
    if value <= Decimal("0.1"):
        return Decimal("0.1")
    base = Decimal(10) ** value.adjusted()
    for step in _NICE_STEPS:
        if value <= step * base:
            return step * base
    return 10 * base  # pragma: no cover - the loop always returns


def _series(spend: Sequence[DailySpend]) -> tuple[dict[str, int], tuple[Series, ...]]:
    costs: dict[str, CostEstimate] = defaultdict(CostEstimate.zero)
    counts: dict[str, int] = defaultdict(int)
    for row in spend:
        costs[row.email] += row.cost
        counts[row.email] += row.image_count
    ranked = sorted(costs, key=lambda email: (-costs[email].usd, email))
    index = {email: min(i, COLOURS) for i, email in enumerate(ranked)}
    legend = [Series(i, e, counts[e], costs[e]) for i, e in enumerate(ranked[:COLOURS])]
    others = ranked[COLOURS:]
    if others:
        legend.append(
            Series(
                COLOURS,
                f"{len(others)} others",
                sum(counts[e] for e in others),
                sum((costs[e] for e in others), CostEstimate.zero()),
            )
        )
    return index, tuple(legend)


def build_spend_chart(spend: Sequence[DailySpend], today: date, days: int = 30) -> SpendChart:
    """Lay out ``spend`` (already limited to what the viewer may see) over ``days`` days."""
    first = today - timedelta(days=days - 1)
    window = [row for row in spend if first <= date.fromisoformat(row.day) <= today]
    index, legend = _series(window)
    per_day: dict[str, Decimal] = defaultdict(Decimal)
    for row in window:
        per_day[row.day] += row.cost.usd
    top = nice_ceiling(max(per_day.values(), default=Decimal(0)))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = 100 / days
    scale = plot_height / float(top)

    bars: list[Bar] = []
    stacked: dict[str, float] = defaultdict(float)
    for row in sorted(window, key=lambda r: (r.day, index[r.email], r.email)):
        offset = (date.fromisoformat(row.day) - first).days
        height = float(row.cost.usd) * scale
        stacked[row.day] += height
        images = "image" if row.image_count == 1 else "images"
        bars.append(
            Bar(
                x=round(offset * slot + slot * 0.15, 3),
                y=round(HEIGHT - BOTTOM - stacked[row.day], 2),
                width=round(slot * 0.7, 3),
                height=round(max(height, 0.5), 2),
                series=index[row.email],
                title=f"{row.day} {row.email}: {row.image_count} {images}, {row.cost.display()}",
            )
        )
    ticks = tuple(
        Tick(round(HEIGHT - BOTTOM - plot_height * f, 2), CostEstimate(top * Decimal(f)).display())
        for f in (0, 0.5, 1)
    )
    total = sum((s.cost for s in legend), CostEstimate.zero())
    return SpendChart(days, tuple(bars), ticks, _day_labels(first, days), legend, total)


def _day_labels(first: date, days: int) -> tuple[DayLabel, ...]:
    """Today's date flush with the right edge, then one a week back, oldest first."""
    labels = []
    for weeks_back, offset in enumerate(range(days - 1, MIN_LABEL_OFFSET - 1, -LABEL_EVERY)):
        day = first + timedelta(days=offset)
        is_today = weeks_back == 0
        x = 100.0 if is_today else round((offset + 0.5) * 100 / days, 3)
        anchor = "end" if is_today else "middle"
        labels.append(DayLabel(x, f"{day:%b} {day.day}", anchor, minor=weeks_back % 2 == 1))
    return tuple(reversed(labels))
