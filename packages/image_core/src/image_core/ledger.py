"""What was spent, as an owner reads it: per-person sums, budgets, and export rows.

Everything here is computed from the records (settled ones: ``done``, and ``failed``
ones that may have been billed), over whole UTC days (``budgets.Period``), so the
dashboard's figures, the CSV export and the budget checks agree to the cent.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

import attrs

from image_core import names
from image_core.budgets import Period, next_month
from image_core.domain import CostBasis, CostEstimate, Generation, GenerationStatus, ImageSize

#: A prompt in an export (and in the index behind it) keeps at most this many characters.
PROMPT_CHARS: Final = 1000
SHORTENED: Final = "…"
#: From this share of a budget on, a person is "near" it.
NEAR_SHARE: Final = Decimal("0.8")


def short_prompt(prompt: str) -> str:
    """The prompt, cut to ``PROMPT_CHARS`` with a trailing ellipsis when it was longer."""
    if len(prompt) <= PROMPT_CHARS:
        return prompt
    return prompt[: PROMPT_CHARS - len(SHORTENED)] + SHORTENED


def is_calendar_month(period: Period) -> bool:
    """Whether ``period`` is exactly one UTC calendar month (monthly budgets apply)."""
    return (
        period.start is not None
        and period.start.day == 1
        and period.end == next_month(period.start)
    )


@attrs.frozen
class PersonSpend:
    """One person's images and what they cost over a period, with the list-price figure."""

    email: str
    image_count: int
    cost: CostEstimate
    """What the records say was spent (Gemini's token counts where known)."""
    list_price: CostEstimate
    """The same records at list price per image (each record's estimate)."""


class Standing(enum.StrEnum):
    """Where a spend stands against its budget."""

    WITHIN = "within"
    NEAR = "near"
    OVER = "over"


@attrs.frozen
class BudgetUse:
    """A spend against a limit."""

    spent: CostEstimate
    limit: CostEstimate

    @property
    def share(self) -> Decimal:
        """Spent over limit (a zero limit counts any spend as fully used)."""
        if self.limit.usd == 0:
            return Decimal(1) if self.spent.usd > 0 else Decimal(0)
        return self.spent.usd / self.limit.usd

    @property
    def percent(self) -> int:
        """``share`` as a whole percentage, rounded down (so 99.9 % is not "100 %")."""
        return int(self.share * 100)

    @property
    def left(self) -> CostEstimate:
        """What is still to spend (never negative)."""
        return CostEstimate(max(Decimal(0), self.limit.usd - self.spent.usd))

    @property
    def over_by(self) -> CostEstimate:
        """How far past the limit (zero within it)."""
        return CostEstimate(max(Decimal(0), self.spent.usd - self.limit.usd))

    @property
    def standing(self) -> Standing:
        """Over once the limit is reached, near from ``NEAR_SHARE`` of it, else within."""
        if self.spent.usd >= self.limit.usd and (self.spent.usd > 0 or self.limit.usd == 0):
            return Standing.OVER
        if self.share >= NEAR_SHARE:
            return Standing.NEAR
        return Standing.WITHIN


@attrs.frozen
class PersonStanding:
    """One row of the money view: a person's spend and, for a month, their budget."""

    spend: PersonSpend
    budget: BudgetUse | None


@attrs.frozen
class SpendOverview:
    """What the viewer may see of a period's spend.

    ``server`` is the whole server against its monthly budget: for admins, in a month
    view, when that budget is set.
    """

    period: Period
    rows: tuple[PersonStanding, ...]
    server: BudgetUse | None = None

    @property
    def is_month(self) -> bool:
        """Whether the period is one calendar month (budgets are monthly)."""
        return is_calendar_month(self.period)

    @property
    def image_count(self) -> int:
        """Images across all rows."""
        return sum(r.spend.image_count for r in self.rows)

    @property
    def cost(self) -> CostEstimate:
        """Spend across all rows."""
        return sum((r.spend.cost for r in self.rows), CostEstimate.zero())

    @property
    def list_price(self) -> CostEstimate:
        """List-price figure across all rows."""
        return sum((r.spend.list_price for r in self.rows), CostEstimate.zero())


@attrs.frozen
class CostRow:
    """One settled generation as a line of a cost export (the prompt possibly shortened)."""

    id: uuid.UUID
    created_at: datetime
    email: str
    model_alias: str
    image_size: ImageSize
    status: GenerationStatus
    cost: CostEstimate
    cost_basis: CostBasis
    list_price: CostEstimate
    prompt: str

    @classmethod
    def of(cls, generation: Generation) -> CostRow:
        """The export line of a record."""
        return cls(
            id=generation.id,
            created_at=generation.created_at.astimezone(UTC),
            email=generation.email,
            model_alias=generation.model_alias,
            image_size=generation.image_size,
            status=generation.status,
            cost=generation.cost,
            cost_basis=generation.cost_basis,
            list_price=generation.list_price_estimate,
            prompt=short_prompt(generation.prompt),
        )

    @property
    def file_name(self) -> str:
        """The image's public file name (a failed generation has no file behind it)."""
        return names.image_file_name(self.id)


@attrs.frozen
class RebuildProgress:
    """The records' index is being rebuilt: ``read`` of ``total`` records so far."""

    read: int
    total: int
