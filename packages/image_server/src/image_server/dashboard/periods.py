"""The money views' periods as the address spells them, and the cost export's CSV.

``?period=`` takes ``month`` (this UTC month, the default), ``last`` (the one before),
``all`` (all time) or a month as ``YYYY-MM`` (what a month input sends). Anything else
is no period at all: the view answers with its 404 page. Months are UTC.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Final

import attrs

from image_core.budgets import Period
from image_core.domain import GenerationStatus
from image_core.ledger import CostRow

THIS_MONTH: Final = "month"
LAST_MONTH: Final = "last"
ALL_TIME: Final = "all"
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
#: Cells a spreadsheet would read as a formula (or hide one behind) start with these.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r", "\n")
CSV_COLUMNS: Final = (
    "date_utc",
    "email",
    "model",
    "size",
    "status",
    "cost_usd",
    "cost_basis",
    "list_price_usd",
    "prompt",
    "file_name",
)


@attrs.frozen
class PeriodChoice:
    """A period as the page offers it: its address value, its name, its UTC days."""

    key: str
    label: str
    period: Period

    @property
    def month_value(self) -> str:
        """``YYYY-MM`` of a month period (for the month input), else ``""``."""
        start = self.period.start
        return f"{start:%Y-%m}" if start is not None and self.period.end is not None else ""

    @property
    def file_part(self) -> str:
        """What the CSV's file name says of the period."""
        return self.month_value or "all-time"


def month_label(first: date) -> str:
    """``November 2026``."""
    return f"{first:%B %Y}"


def parse_period(raw: str | None, today: date) -> PeriodChoice | None:
    """The period ``?period=`` names (this month when absent); ``None`` for anything else."""
    this_month = Period.month_of(today)
    if raw is None or raw == THIS_MONTH:
        return PeriodChoice(THIS_MONTH, "This month", this_month)
    if raw == LAST_MONTH:
        assert this_month.start is not None
        last = Period.month_of(this_month.start - timedelta(days=1))
        return PeriodChoice(LAST_MONTH, "Last month", last)
    if raw == ALL_TIME:
        return PeriodChoice(ALL_TIME, "All time", Period())
    found = _MONTH.fullmatch(raw) if raw.isascii() else None
    if found is None or not 1 <= int(found.group(1)) <= 9998:
        return None
    first = date(int(found.group(1)), int(found.group(2)), 1)
    return PeriodChoice(raw, month_label(first), Period.month_of(first))


def choices(today: date) -> tuple[PeriodChoice, ...]:
    """The periods offered as links: this month, last month, all time."""
    found = (parse_period(key, today) for key in (THIS_MONTH, LAST_MONTH, ALL_TIME))
    return tuple(c for c in found if c is not None)


def safe_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: a leading formula character is quoted.

    OWASP's advice for CSV injection: prefix such a cell with a single quote.
    """
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_cells(row: CostRow) -> list[str]:
    """One export line, every cell safe to open in a spreadsheet.

    Only the free text (email, model name, prompt) can start with a formula character;
    dates, sizes, states and amounts never do.
    """
    stored = row.status is GenerationStatus.DONE
    return [
        row.created_at.isoformat().replace("+00:00", "Z"),
        safe_cell(row.email),
        safe_cell(row.model_alias),
        row.image_size.value,
        row.status.value,
        str(row.cost.usd),
        row.cost_basis.value,
        str(row.list_price.usd),
        safe_cell(row.prompt),
        row.file_name if stored else "",
    ]


async def csv_lines(rows: AsyncIterator[CostRow], batch: int = 200) -> AsyncIterator[bytes]:
    """The header, then the rows, as UTF-8 chunks of up to ``batch`` lines each."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield _taken(out)  # the header goes at once: the download starts before the rows are read
    waiting = 0
    async for row in rows:
        writer.writerow(csv_cells(row))
        waiting += 1
        if waiting >= batch:
            yield _taken(out)
            waiting = 0
    yield _taken(out)


def _taken(out: io.StringIO) -> bytes:
    """What ``out`` holds, as UTF-8, leaving it empty."""
    data = out.getvalue().encode()
    out.seek(0)
    out.truncate()
    return data
