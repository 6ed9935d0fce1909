"""Admission: whether a request may go to the image backend now, decided before it is sent.

Three kinds of limit, all per person unless said otherwise:

- **Budgets** in US dollars (``budgets.Budgets``): a day, a month, the whole server's
  month. Spend is what the records of the period settled (so it survives a restart;
  read once per period, then kept in step with each settled record written through the
  gate) plus what calls in flight reserved. A request reserves an upper estimate when
  it is admitted (``pricing.upper_estimate``: the image's tokens plus allowances for
  the prompt, the references and the thinking, never below the list price), so calls
  in flight cannot together cross a budget when their true cost is above the list
  price; each image gives its share back once its settled record (which carries the
  cost) is written, or at once when nothing is owed (the backend refused it). The write
  and the give-back happen under the same lock as every admission, so a cost is never
  counted twice nor missed. A request whose estimate would cross a budget is refused
  with the figures and a cheaper option that would fit.
- **Rate**: images sent in the last 60 seconds (a sliding window).
- **Concurrency**: images being made at once, per person and for the whole server.

A request for several images (``count``) is admitted as a whole or not at all: its
estimate and its images in the rate window count in full. It needs one free place to
start and takes as many as are free (up to ``count``); its other images wait for those
places and run as its earlier ones finish, so four images still come with a limit of
two at once. A place the request holds passes to its own next image, not to anyone else.

Rate and places are kept in this process's memory: one server process per data folder.
"""

from __future__ import annotations

import collections
import math
import threading
import time as monotonic_time
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import attrs

from image_core.budgets import Budgets, Period, next_month
from image_core.catalog import ModelCatalog
from image_core.domain import (
    BudgetKind,
    CostEstimate,
    Generation,
    GenerationRequest,
    ImageSize,
    ModelSpec,
    Standing,
)
from image_core.errors import LimitReached, LimitReason
from image_core.ports import Clock, MetadataRepository
from image_core.pricing import upper_estimate

WINDOW_SECONDS = 60.0
"""The span the rate limit counts images over."""
DEFAULT_RATE_PER_MINUTE = 10
DEFAULT_MAX_CONCURRENT = 2
DEFAULT_MAX_CONCURRENT_TOTAL = 8


@attrs.frozen
class CallLimits:
    """How many images one person may have sent a minute, and at once; and the server."""

    rate_per_minute: int = attrs.field(
        default=DEFAULT_RATE_PER_MINUTE, validator=attrs.validators.ge(1)
    )
    max_concurrent: int = attrs.field(
        default=DEFAULT_MAX_CONCURRENT, validator=attrs.validators.ge(1)
    )
    max_concurrent_total: int = attrs.field(
        default=DEFAULT_MAX_CONCURRENT_TOTAL, validator=attrs.validators.ge(1)
    )


@attrs.define(eq=False)
class Admission:
    """One admitted request: what it reserved and the places it holds.

    The service passes it back as each image settles (``Gate.settle``, ``Gate.release``)
    and as each image's work ends (``Gate.finished``).
    """

    email: str
    each: Decimal
    """The estimate reserved per image."""
    reserved: int
    """Images whose estimate is still reserved (not settled in the records yet)."""
    places: int
    """Places held among the calls in flight."""
    unfinished: int
    """Images whose work has not ended yet."""
    budgeted: bool = False
    """Whether a budget held the request (``Gate.standing`` then says where it stands)."""


@attrs.frozen
class _Measure:
    """One budget that applies: its kind, limit, what is used so far and when it resets."""

    kind: BudgetKind
    limit: Decimal
    used: Decimal
    reserved: Decimal
    resets_at: datetime

    def room(self) -> Decimal:
        return self.limit - self.used


class Gate:
    """Decides admission and keeps the reservations, rate windows and places in flight.

    Thread-safe: admission runs in a worker thread (it reads the records), the
    give-backs from the event loop or worker threads. Two locks, always taken in this
    order: ``_money`` (spend read, reservations, record writes that settle them) and
    ``_calls`` (rate windows and places; held only for counting).
    """

    def __init__(
        self,
        *,
        budgets: Budgets,
        limits: CallLimits,
        catalog: ModelCatalog,
        metadata: MetadataRepository,
        clock: Clock,
        seconds: Callable[[], float] = monotonic_time.monotonic,
    ) -> None:
        """``clock`` dates the budgets' days and months; ``seconds`` (a monotonic clock)
        times the rate window."""
        self._budgets = budgets
        self._limits = limits
        self._catalog = catalog
        self._metadata = metadata
        self._clock = clock
        self._seconds = seconds
        self._money = threading.Lock()
        self._calls = threading.Lock()
        self._reserved: dict[str, Decimal] = {}
        self._reserved_total = Decimal(0)
        self._sent: dict[str, collections.deque[float]] = {}
        self._in_flight: dict[str, int] = {}
        self._in_flight_total = 0
        self._settled = _SettledSpend(metadata)

    @property
    def budgets(self) -> Budgets:
        """The configured budgets."""
        return self._budgets

    @property
    def limits(self) -> CallLimits:
        """The configured rate and concurrency limits."""
        return self._limits

    def admit(
        self, email: str, spec: ModelSpec, request: GenerationRequest, *, admin: bool
    ) -> Admission:
        """Admit ``request`` by ``email`` (normalised) or raise ``LimitReached``.

        Admitted, its estimate is reserved, its images are in the rate window and it
        holds its places; refused, nothing changed.
        """
        each = _unit(spec, request.image_size, request)
        count = request.count
        with self._money:
            budgeted = False
            if self._budgets.any and not (admin and self._budgets.admins_exempt):
                budgeted = self._check_budgets(email, spec, request, each, self._clock.now())
            with self._calls:
                places = self._take_places(email, count, self._seconds())
            self._reserved[email] = self._reserved.get(email, Decimal(0)) + each * count
            self._reserved_total += each * count
        return Admission(email, each, count, places, count, budgeted)

    def settle(
        self, admission: Admission, settled: Generation, write: Callable[[Generation], None]
    ) -> None:
        """Write one image's settled record (``write(settled)``), then give its reservation back.

        Both under the admission lock, so no admission sees the cost twice or not at
        all; the settled spend read from the records is kept in step with the write. A
        write that fails (``StorageError``, raised on) keeps the reservation: the cost
        may be owed, and the records do not show it until start-up settles it.
        """
        with self._money:
            write(settled)
            self._settled.count(settled)
            self._give_back(admission)

    def forget_spend(self) -> None:
        """Read the settled spend from the records again at the next check (they changed
        behind the gate's back: start-up settled what an earlier run left)."""
        with self._money:
            self._settled = _SettledSpend(self._metadata)

    def release(self, admission: Admission) -> None:
        """Give one image's reservation back: nothing is owed for it (refused, unsent)."""
        with self._money:
            self._give_back(admission)

    def abandon(self, admission: Admission) -> None:
        """The request was admitted but never started (its caller was cancelled meanwhile):
        give back every reservation and place it holds (its images stay in the rate window)."""
        with self._money:
            while admission.reserved > 0:
                self._give_back(admission)
        with self._calls:
            while admission.unfinished > 0:
                self._finish_one(admission)

    def standing(self, email: str, *, admin: bool, this_request: Decimal) -> Standing | None:
        """Where ``email`` stands now against the tightest budget (``None``: none applies).

        Read once the request's images settled, so what they cost counts as recorded and
        what is still rendering as reserved.
        """
        if not self._budgets.any or (admin and self._budgets.admins_exempt):
            return None
        if self._metadata.rebuilding() is not None:  # partial sums: say nothing rather
            return None
        with self._money:
            measures = self._measures(email, self._clock.now())
        if not measures:
            return None
        tightest = min(measures, key=lambda m: m.room())
        return Standing(
            kind=tightest.kind,
            this_request=CostEstimate(this_request),
            used=CostEstimate(tightest.used),
            limit=CostEstimate(tightest.limit),
            resets_at=tightest.resets_at,
        )

    def finished(self, admission: Admission) -> None:
        """One image's work ended: its place passes to the request's next image, or is freed."""
        with self._calls:
            self._finish_one(admission)

    # --- under the locks ---------------------------------------------------------------

    def _finish_one(self, admission: Admission) -> None:
        admission.unfinished -= 1
        if admission.unfinished < admission.places:
            admission.places -= 1
            self._in_flight[admission.email] -= 1
            if not self._in_flight[admission.email]:
                del self._in_flight[admission.email]
            self._in_flight_total -= 1

    def _forget_quiet(self, now: float) -> None:
        """Drop the rate windows of people who sent nothing in the last minute."""
        quiet = [e for e, s in self._sent.items() if not s or s[-1] <= now - WINDOW_SECONDS]
        for email in quiet:
            del self._sent[email]

    def _give_back(self, admission: Admission) -> None:
        if admission.reserved <= 0:  # pragma: no cover - each image gives back once
            return
        admission.reserved -= 1
        left = self._reserved[admission.email] - admission.each
        if left > 0:
            self._reserved[admission.email] = left
        else:
            del self._reserved[admission.email]
        self._reserved_total -= admission.each

    def _measures(self, email: str, now: datetime) -> list[_Measure]:
        """Every budget that applies to ``email`` today, with what is used of it."""
        today = now.date()
        month = Period.month_of(today)
        month_end = _midnight(month.end or next_month(today.replace(day=1)))
        mine = self._reserved.get(email, Decimal(0))
        measures: list[_Measure] = []
        daily = self._budgets.daily_for(email)
        if daily is not None:
            spent = self._settled.of(email, Period.day_of(today), today)
            tomorrow = _midnight(today + timedelta(days=1))
            measures.append(
                _Measure(BudgetKind.PERSONAL_DAILY, daily.usd, spent + mine, mine, tomorrow)
            )
        monthly = self._budgets.monthly_for(email)
        total = self._budgets.total_monthly
        if monthly is not None or total is not None:
            if total is not None:  # one read of the month gives everyone's spend
                self._settled.of(None, month, today)
            if monthly is not None:
                spent = self._settled.of(email, month, today)
                measures.append(
                    _Measure(
                        BudgetKind.PERSONAL_MONTHLY, monthly.usd, spent + mine, mine, month_end
                    )
                )
            if total is not None:
                everyone = self._reserved_total
                measures.append(
                    _Measure(
                        BudgetKind.SERVER_MONTHLY,
                        total.usd,
                        self._settled.of(None, month, today) + everyone,
                        everyone,
                        month_end,
                    )
                )
        return measures

    def _check_budgets(
        self,
        email: str,
        spec: ModelSpec,
        request: GenerationRequest,
        each: Decimal,
        now: datetime,
    ) -> bool:
        """Whether any budget applies; ``LimitReached`` when the request would cross one.

        While the records' index is rebuilt its sums are partial, so no budget can be
        checked: paid calls wait for it (refused, saying so) rather than overspend.
        """
        progress = self._metadata.rebuilding()
        if progress is not None:
            raise LimitReached(
                "The records' index is being rebuilt "
                f"({progress.read:,} of {progress.total:,} records read), so what was spent "
                "this period cannot be counted yet and no budget can be checked. Nothing was "
                "sent; try again in a minute.",
                LimitReason.BUDGET,
                email,
                {"rebuilding_read": str(progress.read), "rebuilding_total": str(progress.total)},
            )
        cost = each * request.count
        measures = self._measures(email, now)
        refusing = [m for m in measures if cost > m.room()]
        if refusing:
            # The one that lifts last: a daily refusal is no news when the month is full.
            tightest = max(refusing, key=lambda m: (m.resets_at, -m.room()))
            room = max(Decimal(0), tightest.room())
            option = _cheaper(self._catalog, spec, request, each, room)
            raise LimitReached(
                _over_budget(tightest, cost, request.count, option),
                LimitReason.BUDGET,
                email,
                {
                    "budget": tightest.kind.value,
                    "spent_usd": str(tightest.used),
                    "reserved_usd": str(tightest.reserved),
                    "limit_usd": str(tightest.limit),
                    "estimate_usd": str(cost),
                    "resets_at": tightest.resets_at.isoformat(),
                },
            )
        return bool(measures)

    def _take_places(self, email: str, count: int, now: float) -> int:
        """Count ``count`` images into the window and take the free places, or refuse."""
        limits = self._limits
        self._forget_quiet(now)
        sent = self._sent.setdefault(email, collections.deque())
        while sent and sent[0] <= now - WINDOW_SECONDS:
            sent.popleft()
        if len(sent) + count > limits.rate_per_minute:
            raise _too_often(email, len(sent), count, limits.rate_per_minute, sent, now)
        mine = self._in_flight.get(email, 0)
        free_mine = limits.max_concurrent - mine
        free_total = limits.max_concurrent_total - self._in_flight_total
        if free_mine < 1:
            raise LimitReached(
                f"You already have {_images(mine)} being made, the most one person may have "
                f"at once ({limits.max_concurrent}). Nothing was sent; try again when one is "
                "done.",
                LimitReason.CONCURRENCY,
                email,
                {"scope": "person", "in_flight": str(mine), "limit": str(limits.max_concurrent)},
            )
        if free_total < 1:
            raise LimitReached(
                f"This server is already making {_images(self._in_flight_total)} at once, the "
                f"most it makes for everyone together ({limits.max_concurrent_total}). Nothing "
                "was sent; try again in a moment.",
                LimitReason.CONCURRENCY,
                email,
                {
                    "scope": "server",
                    "in_flight": str(self._in_flight_total),
                    "limit": str(limits.max_concurrent_total),
                },
            )
        places = min(count, free_mine, free_total)
        sent.extend([now] * count)
        self._in_flight[email] = mine + places
        self._in_flight_total += places
        return places


class _SettledSpend:
    """What the records settled per period, read once per period and kept in step.

    Reading a period's spend from the records costs an index query (hundreds of
    milliseconds for a busy month at 100,000 records), so each (person or everyone,
    period) is read once, then every settled record written through the gate adds its
    cost. A read of everyone's month gives each person's month too. Periods that have
    ended are forgotten as new ones are read. Not thread-safe: the gate's lock guards it.
    """

    def __init__(self, metadata: MetadataRepository) -> None:
        self._metadata = metadata
        self._spent: dict[tuple[str | None, Period], Decimal] = {}
        self._everyone_read: set[Period] = set()
        """Periods read for everyone: a person without a row there spent nothing."""

    def of(self, email: str | None, period: Period, today: date) -> Decimal:
        """The settled spend of ``email`` (``None``: everyone) in ``period``."""
        key = (email, period)
        if key in self._spent:
            return self._spent[key]
        if email is not None and period in self._everyone_read:
            return Decimal(0)
        self._forget_before(today)
        if email is None:
            report = self._metadata.usage(None, period)
            self._spent[key] = report.total_cost.usd
            for row in report.rows:
                self._spent.setdefault((row.email, period), row.cost.usd)
            self._everyone_read.add(period)
        else:
            self._spent[key] = self._metadata.usage({email}, period).total_cost.usd
        return self._spent[key]

    def count(self, settled: Generation) -> None:
        """Add a just-written settled record's cost to the periods read that hold its day."""
        day = settled.created_at.astimezone(UTC).date()
        cost = settled.cost.usd
        periods = {p for _, p in self._spent if p.holds(day)}
        for period in periods:
            for key in ((None, period), (settled.email, period)):
                if key in self._spent:
                    self._spent[key] += cost
                elif key[0] is not None and period in self._everyone_read:
                    self._spent[key] = cost

    def _forget_before(self, today: date) -> None:
        """Drop the periods that ended before ``today``."""
        ended = {p for _, p in self._spent if p.end is not None and p.end <= today}
        if ended:
            self._spent = {k: v for k, v in self._spent.items() if k[1] not in ended}
            self._everyone_read -= ended


def _unit(spec: ModelSpec, size: ImageSize, request: GenerationRequest) -> Decimal:
    """What one image of ``request`` at ``size`` by ``spec`` reserves (an upper estimate)."""
    return upper_estimate(
        spec,
        size,
        prompt_chars=len(request.prompt),
        references=len(request.references),
        grounded=request.search_grounding,
    ).usd


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _images(n: int) -> str:
    return f"{n} image{'s' if n != 1 else ''}"


def _money(amount: Decimal) -> str:
    return CostEstimate(amount).display()


def _too_often(
    email: str,
    recent: int,
    count: int,
    rate: int,
    sent: collections.deque[float],
    now: float,
) -> LimitReached:
    """The rate refusal: how many in the last minute, the limit, when the next may start."""
    if count > rate:
        message = (
            f"{_images(count)} at once is more than the {rate} one person may have made a "
            f"minute. Nothing was sent; ask for at most {rate}."
        )
    else:
        # The request fits once enough of the window's oldest images are a minute old.
        frees = sent[recent + count - rate - 1] + WINDOW_SECONDS
        seconds = max(1, math.ceil(frees - now))
        asked = "this image" if count == 1 else f"these {_images(count)}"
        message = (
            f"You have had {_images(recent)} made in the last minute; {asked} would be more "
            f"than the {rate} one person may have a minute. Nothing was sent; try again in "
            f"{seconds} s."
        )
    return LimitReached(
        message,
        LimitReason.RATE,
        email,
        {"in_last_minute": str(recent), "asked": str(count), "limit_per_minute": str(rate)},
    )


def _over_budget(measure: _Measure, cost: Decimal, count: int, option: str) -> str:
    """The budget refusal: the estimate, spent of limit, when it resets, what would fit."""
    asked = "This image" if count == 1 else f"These {count} images"
    whose = "your" if measure.kind.personal else "this server's"
    period = "daily" if measure.kind is BudgetKind.PERSONAL_DAILY else "monthly"
    span = "days" if measure.kind is BudgetKind.PERSONAL_DAILY else "months"
    who = "You have" if measure.kind.personal else "Everyone together has"
    in_flight = (
        f", {_money(measure.reserved)} of it for images being made now" if measure.reserved else ""
    )
    resets = f"{measure.resets_at:%Y-%m-%d} at 00:00 UTC"
    return (
        f"{asked} would cost up to about {_money(cost)}, more than is left of {whose} {period} "
        f"budget. {who} used {_money(measure.used)}{in_flight} of {_money(measure.limit)}; "
        f"it resets on {resets} ({span} are counted in UTC). Nothing was sent. {option}"
    )


def _cheaper(
    catalog: ModelCatalog,
    spec: ModelSpec,
    request: GenerationRequest,
    each: Decimal,
    room: Decimal,
) -> str:
    """The best cheaper request that fits in ``room``: a smaller size, another model, fewer.

    Only what takes the rest of the request (ratio, grounding, thinking level) is offered.
    """
    count = request.count
    asked = request.image_size.long_side
    smaller = [s for s in reversed(spec.sizes_in_order) if s.long_side < asked]
    for size in smaller:
        unit = _unit(spec, size, request)
        if unit * count <= room:
            return (
                f"A smaller size fits: {size.value} with {spec.alias}, about "
                f"{_money(unit)} an image."
            )
    others: list[tuple[Decimal, ModelSpec, ImageSize]] = []
    for other in catalog:
        if other.alias == spec.alias or not _takes(other, request):
            continue
        for size in other.sizes:
            unit = _unit(other, size, request)
            if size.long_side <= asked and unit < each:
                others.append((unit, other, size))
    for unit, other, size in sorted(others, key=lambda o: (-o[0], o[2].long_side)):
        if unit * count <= room:
            return (
                f"A cheaper model fits: model {other.alias!r} ({other.display_name}) at "
                f"{size.value}, about {_money(unit)} an image."
            )
    fewer = int(room // each) if each > 0 else 0
    if 1 <= fewer < count:
        return f"Fewer images fit: ask for {fewer} instead of {count}."
    left = f"the {_money(room)} left" if room > 0 else "what is left (nothing)"
    return f"Nothing cheaper fits in {left} before it resets."


def _takes(spec: ModelSpec, request: GenerationRequest) -> bool:
    """Whether ``spec`` can do the rest of ``request``: its ratio, grounding, thinking level."""
    if request.aspect_ratio is not None and request.aspect_ratio not in spec.aspect_ratios:
        return False
    if request.search_grounding and not spec.search_grounding:
        return False
    return request.thinking is None or request.thinking in spec.thinking_levels
