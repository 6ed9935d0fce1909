"""Admission before anything is sent: budgets, the rate window and places in flight.

Run through ``ImageService`` over the in-memory adapters of ``image_core.testing``, so
what is checked is what a caller meets: a refusal (``LimitReached``) with its figures
and nothing sent to the backend, or the images and where the budget stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest

from image_core.access import AccessPolicy
from image_core.background import BackgroundWork
from image_core.budgets import Budgets
from image_core.catalog import ModelCatalog
from image_core.domain import (
    AspectRatio,
    BackendImage,
    BackendRequest,
    BudgetKind,
    CostEstimate,
    GenerationRequest,
    GenerationResult,
    GenerationStatus,
    Identity,
    ImageSize,
    PendingGeneration,
    TokenUsage,
    UsageReport,
)
from image_core.errors import (
    BackendRefused,
    BackendUnavailable,
    LimitReached,
    LimitReason,
)
from image_core.ledger import RebuildProgress
from image_core.limits import CallLimits, Gate
from image_core.pricing import upper_estimate
from image_core.service import ImageService
from image_core.testing import (
    FakeImageBackend,
    FixedClock,
    InMemoryImageStore,
    InMemoryMetadataRepository,
    InMemoryPrefStore,
    PassthroughImageCodec,
    SequentialIds,
)

ALICE = Identity("alice@example.com", email_verified=True)
BOB = Identity("bob@example.com", email_verified=True)
ADMIN = Identity("admin@example.com", email_verified=True)
FLASH_1K = Decimal("0.067")
ROOMY = CallLimits(rate_per_minute=1000, max_concurrent=100, max_concurrent_total=100)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def usd(amount: str) -> CostEstimate:
    return CostEstimate(Decimal(amount))


class CountingBackend(FakeImageBackend):
    """A fake backend that also records the most requests it had in hand at once."""

    in_hand: int = 0
    most_at_once: int = 0

    async def generate(self, request: BackendRequest) -> BackendImage:
        self.in_hand += 1
        self.most_at_once = max(self.most_at_once, self.in_hand)
        try:
            return await super().generate(request)
        finally:
            self.in_hand -= 1


def make_service(
    budgets: Budgets | None = None,
    limits: CallLimits = ROOMY,
    *,
    backend: FakeImageBackend | None = None,
    metadata: InMemoryMetadataRepository | None = None,
    clock: FixedClock | None = None,
    ids: SequentialIds | None = None,
) -> ImageService:
    return ImageService(
        catalog=ModelCatalog(),
        policy=AccessPolicy(
            allowed=frozenset({ALICE.email, BOB.email}), admins=frozenset({ADMIN.email})
        ),
        images=InMemoryImageStore(),
        metadata=metadata or InMemoryMetadataRepository(),
        prefs=InMemoryPrefStore(),
        backend=backend or CountingBackend(),
        codec=PassthroughImageCodec(),
        clock=clock or FixedClock(),
        ids=ids or SequentialIds(),
        budgets=budgets or Budgets(),
        limits=limits,
    )


def request(
    size: str = "1K",
    *,
    model: str | None = None,
    count: int = 1,
    aspect_ratio: str | None = None,
    search_grounding: bool | None = None,
) -> GenerationRequest:
    return GenerationRequest.parse(
        "a fox in the snow",
        image_size=size,
        model=model,
        count=count,
        aspect_ratio=aspect_ratio,
        search_grounding=search_grounding,
    )


async def until_sent(backend: CountingBackend, count: int) -> None:
    """Wait (a few seconds at most) until the backend has received ``count`` requests."""
    for _ in range(500):
        if len(backend.requests) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the backend received {len(backend.requests)} of {count} requests")


def backend_of(service: ImageService) -> CountingBackend:
    backend = service._backend
    assert isinstance(backend, CountingBackend)
    return backend


async def refused(service: ImageService, who: Identity, asked: GenerationRequest) -> LimitReached:
    sent = len(backend_of(service).requests)
    with pytest.raises(LimitReached) as caught:
        await service.generate_images(who, asked)
    assert len(backend_of(service).requests) == sent, "a refused call reached the backend"
    return caught.value


# --- budgets ---------------------------------------------------------------------------


async def test_twenty_calls_at_once_against_thirty_cents_make_exactly_four() -> None:
    """Reservations: 4 x $0.067 fit in $0.30, a fifth does not, however the calls interleave."""
    backend = CountingBackend(delay_seconds=0.05)
    service = make_service(Budgets(user_monthly=usd("0.30")), backend=backend)
    outcomes = await asyncio.gather(
        *(service.generate_images(ALICE, request()) for _ in range(20)), return_exceptions=True
    )
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    refusals = [o for o in outcomes if isinstance(o, LimitReached)]
    assert len(made) == 4
    assert len(refusals) == 16
    assert len(backend.requests) == 4
    for refusal in refusals:
        assert refusal.reason is LimitReason.BUDGET
        assert "of $0.30" in refusal.message
        assert "resets on 2026-12-01 at 00:00 UTC" in refusal.message


async def test_a_refusal_names_spent_limit_reset_and_a_smaller_size_that_fits() -> None:
    service = make_service(Budgets(user_monthly=usd("0.12")))
    await service.generate_images(ALICE, request())
    refusal = await refused(service, ALICE, request())
    assert refusal.reason is LimitReason.BUDGET
    assert refusal.email == "alice@example.com"
    assert refusal.message == (
        "This image would cost up to about $0.072, more than is left of your monthly "
        "budget. You have used $0.067 of $0.12; it resets on 2026-12-01 at 00:00 UTC "
        "(months are counted in UTC). Nothing was sent. A smaller size fits: 512 with "
        "flash, about $0.049 an image."
    )
    assert refusal.facts["spent_usd"] == "0.067"
    assert refusal.facts["limit_usd"] == "0.12"
    # ... and the option it names does fit.
    smaller = await service.generate_images(ALICE, request("512"))
    assert isinstance(smaller.outcomes[0], GenerationResult)


async def test_a_refusal_offers_a_cheaper_model_when_no_smaller_size_fits() -> None:
    service = make_service(Budgets(user_monthly=usd("0.10")))
    refusal = await refused(service, ALICE, request(model="pro"))
    assert "These" not in refusal.message
    # Pro's list price is $0.134; its thinking and prompt put the reservation higher.
    assert "This image would cost up to about $0.152" in refusal.message
    assert "You have used $0.00 of $0.10" in refusal.message
    assert "A cheaper model fits: model 'flash' (Nano Banana 2) at 1K, about $0.072" in (
        refusal.message
    )


async def test_a_refusal_offers_fewer_images_when_only_that_fits() -> None:
    """Ratio 1:4 is flash's alone, and 4 images at 512 do not fit either: ask for 2."""
    service = make_service(Budgets(user_monthly=usd("0.15")))
    refusal = await refused(service, ALICE, request(count=4, aspect_ratio="1:4"))
    assert refusal.message.startswith("These 4 images would cost up to about $0.287")
    assert refusal.message.endswith("Fewer images fit: ask for 2 instead of 4.")


async def test_a_refusal_says_when_nothing_fits() -> None:
    service = make_service(Budgets(user_monthly=usd("0.075")))
    await service.generate_images(ALICE, request())
    refusal = await refused(service, ALICE, request())
    assert refusal.message.endswith("Nothing cheaper fits in the $0.008 left before it resets.")


async def test_a_budget_of_zero_lets_nothing_be_spent() -> None:
    service = make_service(Budgets(user_monthly=usd("0")))
    refusal = await refused(service, ALICE, request("512"))
    assert "You have used $0.00 of $0.00" in refusal.message
    assert "Nothing cheaper fits in what is left (nothing)" in refusal.message


async def test_grounding_reserves_one_search_query_on_top() -> None:
    """Up to $0.072 + $0.014 = $0.086 does not fit in $0.08; without grounding it does."""
    service = make_service(Budgets(user_monthly=usd("0.08")))
    refusal = await refused(service, ALICE, request(search_grounding=True))
    assert "about $0.086" in refusal.message
    made = await service.generate_images(ALICE, request())
    assert made.standing is not None
    assert made.standing.used == usd("0.067")


async def test_admins_are_held_unless_exempt() -> None:
    held = make_service(Budgets(user_monthly=usd("0")))
    await refused(held, ADMIN, request())
    exempt = make_service(Budgets(user_monthly=usd("0"), admins_exempt=True))
    made = await exempt.generate_images(ADMIN, request())
    assert made.standing is None
    # ... while everyone else stays held.
    await refused(exempt, ALICE, request())


async def test_an_exempt_admin_still_counts_towards_the_servers_budget() -> None:
    service = make_service(Budgets(total_monthly=usd("0.10"), admins_exempt=True))
    await service.generate_images(ADMIN, request())
    refusal = await refused(service, ALICE, request())
    assert "more than is left of this server's monthly budget" in refusal.message
    assert "Everyone together has used $0.067 of $0.10" in refusal.message


async def test_a_per_person_override_replaces_the_common_monthly_budget() -> None:
    service = make_service(
        Budgets(user_monthly=usd("0.05"), per_person_monthly={"Alice@Example.com": usd("1")})
    )
    made = await service.generate_images(ALICE, request())
    assert made.standing is not None
    assert made.standing.limit == usd("1")
    refusal = await refused(service, BOB, request())
    assert "of $0.05" in refusal.message


async def test_the_daily_budget_resets_at_midnight_utc() -> None:
    clock = FixedClock(datetime(2026, 11, 24, 23, 59, tzinfo=UTC))
    service = make_service(Budgets(user_daily=usd("0.10")), clock=clock)
    await service.generate_images(ALICE, request())
    refusal = await refused(service, ALICE, request())
    assert "more than is left of your daily budget" in refusal.message
    assert "it resets on 2026-11-25 at 00:00 UTC (days are counted in UTC)" in refusal.message
    clock.current = datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC)
    made = await service.generate_images(ALICE, request())
    assert made.standing is not None
    assert made.standing.kind is BudgetKind.PERSONAL_DAILY
    assert made.standing.used == usd("0.067")


async def test_the_tightest_budget_is_the_one_reported() -> None:
    """$1 a month with $0.10 used, $0.15 a day: the day has the least room."""
    metadata = InMemoryMetadataRepository()
    clock = FixedClock()
    service = make_service(
        Budgets(user_daily=usd("0.15"), user_monthly=usd("1")), metadata=metadata, clock=clock
    )
    clock.current -= timedelta(days=2)
    await service.generate_images(ALICE, request())
    clock.current += timedelta(days=2)
    made = await service.generate_images(ALICE, request())
    assert made.standing is not None
    assert made.standing.kind is BudgetKind.PERSONAL_DAILY
    assert (made.standing.used, made.standing.limit) == (usd("0.067"), usd("0.15"))
    assert made.standing.resets_at == datetime(2026, 11, 25, tzinfo=UTC)


async def test_a_failure_that_may_be_billed_keeps_its_cost_counted_once() -> None:
    backend = CountingBackend(failures=[BackendUnavailable("No answer.", may_be_billed=True)])
    service = make_service(Budgets(user_monthly=usd("0.10")), backend=backend)
    with pytest.raises(BackendUnavailable):
        await service.generate_images(ALICE, request())
    refusal = await refused(service, ALICE, request())
    # Counted from the FAILED record, the reservation given back: $0.067, not $0.134.
    assert "You have used $0.067 of $0.10" in refusal.message
    assert "being made now" not in refusal.message


async def test_a_refusal_by_the_backend_gives_the_reservation_back() -> None:
    backend = CountingBackend(failures=[BackendRefused("Blocked by the safety filter.")])
    service = make_service(Budgets(user_monthly=usd("0.10")), backend=backend)
    with pytest.raises(BackendRefused):
        await service.generate_images(ALICE, request())
    made = await service.generate_images(ALICE, request())
    assert made.standing is not None
    assert made.standing.used == usd("0.067")


async def test_an_image_that_settles_after_its_caller_left_gives_its_reservation_back() -> None:
    backend = CountingBackend(delay_seconds=0.2)
    service = make_service(Budgets(user_monthly=usd("1")), backend=backend)
    gone = await service.generate_images(ALICE, request(), wait_seconds=0)
    assert gone.outcomes[0].generation is not None
    assert gone.outcomes[0].generation.status is GenerationStatus.RENDERING
    await asyncio.sleep(0.5)  # the paid call runs on without the caller, and settles
    assert backend.in_hand == 0
    backend.delay_seconds = 0
    made = await service.generate_images(ALICE, request())
    assert made.standing is not None
    assert made.standing.used == usd("0.134")  # settled once; nothing still reserved


async def test_the_standing_counts_what_calls_in_flight_reserved() -> None:
    backend = CountingBackend(delay_seconds=0.3)
    service = make_service(Budgets(user_monthly=usd("1")), backend=backend)
    first = asyncio.create_task(service.generate_images(ALICE, request()))
    await until_sent(backend, 1)
    second = await service.generate_images(ALICE, request())
    assert second.standing is not None
    assert second.standing.used == usd("0.134")
    await first


async def test_without_budgets_nothing_is_read_and_no_standing_is_given() -> None:
    class Unreadable(InMemoryMetadataRepository):
        def usage(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            raise AssertionError("spend was read without any budget")

    service = make_service(metadata=Unreadable())
    made = await service.generate_images(ALICE, request())
    assert made.standing is None


# --- rate and places -----------------------------------------------------------------


async def test_the_rate_limit_counts_images_per_person_over_a_minute() -> None:
    service = make_service(limits=CallLimits(rate_per_minute=3, max_concurrent=10))
    for _ in range(3):
        await service.generate_images(ALICE, request())
    refusal = await refused(service, ALICE, request())
    assert refusal.reason is LimitReason.RATE
    assert refusal.message.startswith(
        "You have had 3 images made in the last minute; this image would be more than the "
        "3 one person may have a minute. Nothing was sent; try again in "
    )
    assert refusal.message.endswith(" s.")
    # Bob has his own minute.
    await service.generate_images(BOB, request())


async def test_the_rate_window_slides() -> None:
    now = [1000.0]
    gate = Gate(
        budgets=Budgets(),
        limits=CallLimits(rate_per_minute=2),
        catalog=ModelCatalog(),
        metadata=InMemoryMetadataRepository(),
        clock=FixedClock(),
        seconds=lambda: now[0],
    )
    spec = ModelCatalog().default
    for _ in range(2):
        taken = gate.admit("alice@example.com", spec, request(), admin=False)
        gate.release(taken)
        gate.finished(taken)
        now[0] += 10
    with pytest.raises(LimitReached, match="try again in 40 s"):
        gate.admit("alice@example.com", spec, request(), admin=False)
    now[0] = 1060.5  # the first is over a minute old
    gate.admit("alice@example.com", spec, request(), admin=False)


async def test_a_request_for_more_images_than_the_rate_allows_is_refused_whole() -> None:
    service = make_service(limits=CallLimits(rate_per_minute=3, max_concurrent=10))
    await service.generate_images(ALICE, request(count=2))
    refusal = await refused(service, ALICE, request(count=2))
    assert "these 2 images would be more than the 3" in refusal.message
    refusal = await refused(service, ALICE, request(count=4))
    assert refusal.message.startswith("4 images at once is more than the 3 one person")


async def test_a_third_call_is_refused_while_two_are_being_made_and_others_are_not() -> None:
    backend = CountingBackend(delay_seconds=0.3)
    service = make_service(
        limits=CallLimits(rate_per_minute=100, max_concurrent=2, max_concurrent_total=3),
        backend=backend,
    )
    held = [asyncio.create_task(service.generate_images(ALICE, request())) for _ in range(2)]
    await until_sent(backend, 2)
    mine = await refused(service, ALICE, request())
    assert mine.reason is LimitReason.CONCURRENCY
    assert mine.message == (
        "You already have 2 images being made, the most one person may have at once (2). "
        "Nothing was sent; try again when one is done."
    )
    # Bob is not held by Alice's places ... up to the server's three in all.
    bobs = asyncio.create_task(service.generate_images(BOB, request()))
    await until_sent(backend, 3)
    server = await refused(service, BOB, request())
    assert server.message.startswith("This server is already making 3 images at once")
    await asyncio.gather(*held, bobs)
    # Places come back once the images are done.
    await service.generate_images(ALICE, request())


async def test_four_images_with_two_places_are_all_made_two_at_a_time() -> None:
    backend = CountingBackend(delay_seconds=0.1)
    service = make_service(
        limits=CallLimits(rate_per_minute=100, max_concurrent=2, max_concurrent_total=8),
        backend=backend,
    )
    batch = asyncio.create_task(service.generate_images(ALICE, request(count=4)))
    await until_sent(backend, 1)
    # The batch holds both of Alice's places while it runs.
    refusal = await refused(service, ALICE, request())
    assert refusal.reason is LimitReason.CONCURRENCY
    made = await batch
    assert all(isinstance(o, GenerationResult) for o in made.outcomes)
    assert len(backend.requests) == 4
    assert backend.most_at_once == 2
    await service.generate_images(ALICE, request())


async def test_a_batch_takes_the_one_place_left_and_makes_its_images_in_turn() -> None:
    backend = CountingBackend(delay_seconds=0.1)
    service = make_service(
        limits=CallLimits(rate_per_minute=100, max_concurrent=3, max_concurrent_total=8),
        backend=backend,
    )
    first = [asyncio.create_task(service.generate_images(ALICE, request())) for _ in range(2)]
    await until_sent(backend, 2)
    backend.most_at_once = 0
    made = await service.generate_images(ALICE, request(count=3, aspect_ratio="16:9"))
    assert len(made.outcomes) == 3
    await asyncio.gather(*first)
    sizes = [r.aspect_ratio for r in backend.requests]
    assert sizes.count(AspectRatio.R16_9) == 3
    assert backend.most_at_once <= 3


async def test_a_refused_request_takes_no_place_and_no_turn_in_the_window() -> None:
    service = make_service(
        Budgets(user_monthly=usd("0.05")),
        CallLimits(rate_per_minute=1, max_concurrent=1, max_concurrent_total=1),
    )
    for _ in range(3):
        refusal = await refused(service, ALICE, request())
        assert refusal.reason is LimitReason.BUDGET
    await service.generate_images(ALICE, request("512", model="flash"))


async def test_what_is_reserved_is_the_list_price_of_the_size_asked() -> None:
    service = make_service(Budgets(user_monthly=usd("0.20")))
    made = await service.generate_images(ALICE, request("4K"))
    assert made.standing is not None
    assert made.standing.this_request == ModelCatalog().default.price(ImageSize.S4K)


class CountedReads(InMemoryMetadataRepository):
    """Counts how often the settled spend is read from the records."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def usage(self, *args: Any, **kwargs: Any) -> UsageReport:
        self.reads += 1
        return super().usage(*args, **kwargs)


async def test_each_periods_spend_is_read_once_and_kept_in_step_with_what_settles() -> None:
    metadata = CountedReads()
    service = make_service(
        Budgets(user_monthly=usd("0.20"), total_monthly=usd("0.30")), metadata=metadata
    )
    for _ in range(2):
        await service.generate_images(ALICE, request())
    made = await service.generate_images(BOB, request())
    assert made.standing is not None
    # One read of everyone's month served Alice's, Bob's and the server's figures ...
    assert metadata.reads == 1
    # ... and what settled since is counted: $0.201 of the server's $0.30.
    assert made.standing.kind is BudgetKind.SERVER_MONTHLY
    assert made.standing.used == usd("0.201")
    refusal = await refused(service, ALICE, request())
    assert "You have used $0.134 of $0.20" in refusal.message  # Alice's is the tighter now
    assert metadata.reads == 1


async def test_a_new_day_is_read_from_the_records_again() -> None:
    metadata = CountedReads()
    clock = FixedClock(datetime(2026, 11, 24, 23, 0, tzinfo=UTC))
    service = make_service(Budgets(user_daily=usd("1")), metadata=metadata, clock=clock)
    await service.generate_images(ALICE, request())
    await service.generate_images(ALICE, request())
    assert metadata.reads == 1
    clock.current += timedelta(hours=2)
    made = await service.generate_images(ALICE, request())
    assert metadata.reads == 2
    assert made.standing is not None
    assert made.standing.used == usd("0.067")


async def test_what_start_up_settles_is_counted() -> None:
    """A record an earlier run left rendering becomes a maybe-billed failure at reconcile."""
    metadata = CountedReads()
    backend = CountingBackend(delay_seconds=5)
    ids = SequentialIds()
    earlier = make_service(
        Budgets(user_monthly=usd("1")), metadata=metadata, backend=backend, ids=ids
    )
    await earlier.generate_images(ALICE, request(), wait_seconds=0)  # killed mid-call, say
    service = make_service(Budgets(user_monthly=usd("1")), metadata=metadata, ids=ids)
    before = await service.generate_images(ALICE, request())
    assert before.standing is not None
    assert before.standing.used == usd("0.067")  # the rendering one counts nothing yet
    report = await service.reconcile()
    assert report.failed == 1
    after = await service.generate_images(ALICE, request())
    assert after.standing is not None
    assert after.standing.used == usd("0.201")


# --- what a review found: no leak, no overshoot, no charge for what was never sent ----


class SlowSpendRecords(InMemoryMetadataRepository):
    """Records whose spend takes a while to read, as a busy month does."""

    def usage(self, emails: Any = None, period: Any = None) -> UsageReport:
        time.sleep(0.3)
        return super().usage(emails, period)


async def test_a_caller_cancelled_while_being_admitted_leaves_nothing_held() -> None:
    """The admission thread cannot be stopped: what it admitted is given back at once."""
    one_at_once = CallLimits(rate_per_minute=100, max_concurrent=1, max_concurrent_total=1)
    service = make_service(
        Budgets(user_monthly=usd("0.10")), one_at_once, metadata=SlowSpendRecords()
    )
    calling = asyncio.ensure_future(service.generate_images(ALICE, request()))
    await asyncio.sleep(0.05)  # inside the slow read of the month's spend
    calling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await calling
    await asyncio.sleep(0.5)  # the thread finishes and its admission is abandoned
    made = await service.generate_images(ALICE, request())  # its place and money are free
    assert isinstance(made.outcomes[0], GenerationResult)
    assert len(backend_of(service).requests) == 1


async def test_images_still_waiting_for_their_turn_at_shutdown_are_not_charged() -> None:
    """Four images, one place: cancelled before being sent, the others leave no record."""
    metadata = InMemoryMetadataRepository()
    one_at_once = CallLimits(rate_per_minute=100, max_concurrent=1, max_concurrent_total=1)
    backend = CountingBackend(delay_seconds=0.3)
    work = BackgroundWork()
    service = attrs.evolve(
        make_service(Budgets(user_monthly=usd("1")), one_at_once, metadata=metadata),
        backend=backend,
        background=work,
    )
    calling = asyncio.ensure_future(service.generate_images(ALICE, request(count=4)))
    await until_sent(backend, 1)
    await work.drain(0.05)  # shutdown: whatever is still running is cancelled
    calling.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await calling
    assert len(backend.requests) == 1
    # Only the one that was sent can be owed (its record rendering, done or failed).
    assert len(metadata.unsettled()) + metadata.usage().total_count <= 1
    assert metadata.usage().total_cost.usd <= FLASH_1K
    again = await service.generate_images(ALICE, request())  # nothing left held
    assert isinstance(again.outcomes[0], GenerationResult)


async def test_true_costs_above_the_list_price_do_not_overshoot_a_tight_budget() -> None:
    """Twenty calls at once whose answers cost $0.0678 each (above the $0.067 list price)
    against $0.268: the reservations are upper estimates, so the records stay within it."""
    usage = TokenUsage(1290, 1120, None, 2410, image_output_tokens=1120)
    backend = CountingBackend(delay_seconds=0.05, token_usage=usage)
    metadata = InMemoryMetadataRepository()
    service = make_service(Budgets(user_monthly=usd("0.268")), backend=backend, metadata=metadata)
    outcomes = await asyncio.gather(
        *(service.generate_images(ALICE, request()) for _ in range(20)), return_exceptions=True
    )
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(made) == 3  # 4 x $0.0718 reserved would pass $0.268
    spent = metadata.usage().total_cost
    assert spent == usd(str(Decimal("0.067845") * 3))
    assert spent.usd <= Decimal("0.268")


async def test_a_refusal_names_the_budget_that_lifts_last() -> None:
    """Both the day and the month are full: 'tomorrow' would be no news, so the month speaks."""
    service = make_service(Budgets(user_daily=usd("0.10"), user_monthly=usd("0.10")))
    await service.generate_images(ALICE, request())
    refusal = await refused(service, ALICE, request())
    assert "monthly budget" in refusal.message
    assert "resets on 2026-12-01" in refusal.message


async def test_an_image_still_rendering_counts_once_at_what_it_reserved() -> None:
    """The deadline passed first: the standing counts the image at its reservation, once."""
    backend = CountingBackend(delay_seconds=0.5)
    service = make_service(Budgets(user_monthly=usd("1")), backend=backend)
    asked = request()
    batch = await service.generate_images(ALICE, asked, wait_seconds=0.05)
    assert isinstance(batch.outcomes[0], PendingGeneration)
    reserved = upper_estimate(
        ModelCatalog().resolve("flash"),
        ImageSize.S1K,
        prompt_chars=len(asked.prompt),
        references=0,
        grounded=False,
    )
    assert batch.standing is not None
    assert batch.standing.this_request == reserved
    assert batch.standing.used == reserved  # nothing settled yet: the reservation alone


class RebuildingRecords(InMemoryMetadataRepository):
    """Records whose index is being rebuilt: their sums are partial meanwhile."""

    progress: RebuildProgress | None = RebuildProgress(read=40_000, total=100_000)

    def rebuilding(self) -> RebuildProgress | None:
        return self.progress


async def test_no_paid_call_passes_a_budget_while_the_index_is_rebuilt() -> None:
    """Partial sums cannot be trusted: refused, saying why; once built, admitted again."""
    records = RebuildingRecords()
    service = make_service(Budgets(user_monthly=usd("1")), metadata=records)
    refusal = await refused(service, ALICE, request())
    assert refusal.reason is LimitReason.BUDGET
    assert "40,000 of 100,000 records read" in refusal.message
    assert "Nothing was sent" in refusal.message
    unbudgeted = make_service(metadata=RebuildingRecords())  # no budget: no sums needed
    assert isinstance(
        (await unbudgeted.generate_images(ALICE, request())).outcomes[0], GenerationResult
    )
    records.progress = None
    made = await service.generate_images(ALICE, request())
    assert isinstance(made.outcomes[0], GenerationResult)
