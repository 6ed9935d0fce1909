"""A paid image is never lost: the deadline, a caller that leaves, restarts, get_image.

The service writes a pending record before the request is sent and renders detached
from its caller; these tests drive it with the in-memory doubles.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import attrs
import pytest

from image_core.background import BackgroundWork
from image_core.domain import (
    CostEstimate,
    EncodedImage,
    Generation,
    GenerationRequest,
    GenerationResult,
    GenerationStatus,
    PendingGeneration,
)
from image_core.errors import (
    BackendRefused,
    BackendUnavailable,
    NotAllowed,
    NotAllowedReason,
    ReferenceNotFound,
    StorageError,
)
from image_core.service import INTERRUPTED, ImageService
from image_core.testing import InMemoryMetadataRepository, make_png
from tests.unit.test_service import ADMIN, ALICE, BOB, FIRST_ID, STRANGER, World, make_world

FLASH_1K = CostEstimate(Decimal("0.067"))


@pytest.fixture
def anyio_backend() -> str:
    """The service is asyncio-only (detached tasks)."""
    return "asyncio"


@attrs.define
class Slow:
    """A world whose backend takes ``delay`` seconds, and the work it runs detached."""

    world: World
    work: BackgroundWork
    service: ImageService


def slow_world(delay: float = 0.3) -> Slow:
    """Tiny PNGs, a backend that takes ``delay`` s, background work the test can drain."""
    world = make_world(tiny=True)
    world.backend.delay_seconds = delay
    work = BackgroundWork()
    return Slow(world, work, attrs.evolve(world.service, background=work))


def fox() -> GenerationRequest:
    """The request every test sends."""
    return GenerationRequest.parse("a red fox")


def status_of(world: World) -> GenerationStatus | None:
    """The status of the first generation's record, if any."""
    record = world.metadata.get(FIRST_ID)
    return record.status if record else None


@pytest.mark.anyio
async def test_the_pending_record_is_written_before_the_request_is_sent() -> None:
    """While the backend works, the record exists as rendering, out of galleries and costs."""
    slow = slow_world()
    waiting = asyncio.create_task(slow.service.generate(ALICE, fox()))
    await asyncio.sleep(0.1)
    assert len(slow.world.requests()) == 1
    assert status_of(slow.world) is GenerationStatus.RENDERING
    assert slow.world.metadata.page_for_user(ALICE.email, 0, 10).total == 0
    assert slow.world.metadata.usage().total_cost == CostEstimate.zero()
    result = await waiting
    assert result.generation.status is GenerationStatus.DONE
    assert status_of(slow.world) is GenerationStatus.DONE


@pytest.mark.anyio
async def test_the_deadline_answers_still_rendering_and_the_image_arrives_anyway() -> None:
    """wait_seconds passes first: a pending answer in time; the image and cost follow."""
    slow = slow_world(0.4)
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await slow.service.generate(ALICE, fox(), wait_seconds=0.05)
    assert loop.time() - started < 0.3
    assert isinstance(outcome, PendingGeneration)
    assert outcome.generation.id == FIRST_ID
    assert outcome.generation.status is GenerationStatus.RENDERING
    assert outcome.expected_seconds >= 5
    assert await slow.work.drain(5) == 0
    assert status_of(slow.world) is GenerationStatus.DONE
    assert slow.world.images.exists(FIRST_ID)
    assert slow.world.metadata.usage().total_count == 1
    assert slow.world.metadata.usage().total_cost == FLASH_1K


@pytest.mark.anyio
async def test_a_quick_image_within_the_deadline_is_the_usual_result() -> None:
    """An image ready before the deadline is returned as always."""
    slow = slow_world(0.01)
    outcome = await slow.service.generate(ALICE, fox(), wait_seconds=5)
    assert isinstance(outcome, GenerationResult)
    assert outcome.generation.status is GenerationStatus.DONE


@pytest.mark.anyio
async def test_a_caller_cancelled_mid_call_does_not_cancel_the_paid_work() -> None:
    """The client went away: the image is stored and its cost recorded all the same."""
    slow = slow_world(0.3)
    waiting = asyncio.create_task(slow.service.generate(ALICE, fox()))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert status_of(slow.world) is GenerationStatus.RENDERING
    await slow.work.drain(5)
    assert status_of(slow.world) is GenerationStatus.DONE
    assert slow.world.images.exists(FIRST_ID)
    assert slow.world.metadata.usage().total_cost == FLASH_1K


@pytest.mark.anyio
async def test_a_refusal_after_the_deadline_is_recorded_with_its_reason_at_no_cost() -> None:
    """Nobody is waiting to be told, so the record says why, and a refusal costs nothing."""
    slow = slow_world(0.2)
    slow.world.backend.failures.append(BackendRefused("Blocked by the safety filter."))
    outcome = await slow.service.generate(ALICE, fox(), wait_seconds=0.01)
    assert isinstance(outcome, PendingGeneration)
    await slow.work.drain(5)
    record = slow.world.metadata.get(FIRST_ID)
    assert record is not None
    assert record.status is GenerationStatus.FAILED
    assert record.failure == "Blocked by the safety filter."
    assert record.cost == CostEstimate.zero()
    assert slow.world.metadata.usage().total_cost == CostEstimate.zero()


@pytest.mark.anyio
async def test_a_timeout_after_the_deadline_is_recorded_at_the_list_price() -> None:
    """Gemini may have processed (and billed) a timed-out request: its estimate counts."""
    slow = slow_world(0.2)
    slow.world.backend.failures.append(BackendUnavailable("No answer.", may_be_billed=True))
    await slow.service.generate(ALICE, fox(), wait_seconds=0.01)
    await slow.work.drain(5)
    record = slow.world.metadata.get(FIRST_ID)
    assert record is not None
    assert record.status is GenerationStatus.FAILED
    assert record.cost == FLASH_1K
    usage = slow.world.metadata.usage()
    assert (usage.total_count, usage.total_cost) == (0, FLASH_1K)


@pytest.mark.anyio
async def test_a_maybe_billed_failure_while_the_caller_waits_is_raised_and_recorded() -> None:
    """The caller gets the error as before, and the money possibly spent is counted."""
    world = make_world(tiny=True)
    world.backend.failures.append(BackendUnavailable("Connection broke.", may_be_billed=True))
    with pytest.raises(BackendUnavailable, match="Connection broke"):
        await world.service.generate(ALICE, fox())
    record = world.metadata.get(FIRST_ID)
    assert record is not None
    assert record.status is GenerationStatus.FAILED
    assert record.cost == FLASH_1K


@pytest.mark.anyio
async def test_a_refusal_while_the_caller_waits_keeps_nothing() -> None:
    """Today's behaviour: a clear error, no record, no cost."""
    world = make_world(tiny=True)
    world.backend.failures.append(BackendRefused("Blocked."))
    with pytest.raises(BackendRefused):
        await world.service.generate(ALICE, fox())
    assert world.metadata.get(FIRST_ID) is None
    assert world.nothing_stored()


@pytest.mark.anyio
async def test_the_models_words_beside_the_image_reach_the_result() -> None:
    """Text the backend returned with the image becomes the result's note."""
    world = make_world(tiny=True)
    world.backend.text = "Here is your fox."
    result = await world.service.generate(ALICE, fox())
    assert result.note == "Here is your fox."


# --- start-up reconciliation ---------------------------------------------------------------


@pytest.mark.anyio
async def test_reconcile_settles_what_a_crash_left_rendering() -> None:
    """A stored PNG becomes done (size from its header); no PNG, failed at the estimate."""
    slow = slow_world(5)
    await slow.service.generate(ALICE, fox(), wait_seconds=0.01)
    await slow.service.generate(BOB, fox(), wait_seconds=0.01)
    await slow.work.drain(0)  # the crash: both calls die mid-flight
    first, second = sorted(slow.world.metadata.unsettled(), key=lambda g: g.email)
    png = make_png(30, 20)
    slow.world.images.put(first.id, png, EncodedImage(png, "image/png"))
    report = await slow.service.reconcile()
    assert (report.done, report.failed) == (1, 1)
    done = slow.world.metadata.get(first.id)
    assert done is not None
    assert (done.status, done.width, done.height) == (GenerationStatus.DONE, 30, 20)
    failed = slow.world.metadata.get(second.id)
    assert failed is not None
    assert (failed.status, failed.failure, failed.cost) == (
        GenerationStatus.FAILED,
        INTERRUPTED,
        FLASH_1K,
    )
    assert slow.world.metadata.usage().total_cost == FLASH_1K + FLASH_1K
    assert (await slow.service.reconcile()).done == 0


class UnsettlingMetadata(InMemoryMetadataRepository):
    """Records can be added but not settled: the disk filled up mid-generation."""

    def replace(self, generation: Generation) -> None:
        raise StorageError("No space left on the data volume.")


@pytest.mark.anyio
async def test_a_stored_png_whose_record_cannot_be_settled_is_kept_for_start_up() -> None:
    """The error is raised, the PNG stays, and the next start-up makes it done."""
    world = make_world(tiny=True, metadata=UnsettlingMetadata())
    with pytest.raises(StorageError):
        await world.service.generate(ALICE, fox())
    assert world.images.exists(FIRST_ID)
    assert status_of(world) is GenerationStatus.RENDERING
    healthy = InMemoryMetadataRepository()
    for record in world.metadata.unsettled():
        healthy.add(record)
    restarted = attrs.evolve(world.service, metadata=healthy)
    assert (await restarted.reconcile()).done == 1
    settled = healthy.get(FIRST_ID)
    assert settled is not None
    assert settled.status is GenerationStatus.DONE


# --- get_image --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_find_generation_shows_the_callers_own_image_with_a_preview() -> None:
    """Own image: the record and a preview; by file name or bare id."""
    world = make_world(tiny=True)
    made = await world.service.generate(ALICE, fox())
    found = await world.service.find_generation(ALICE, made.generation.file_name)
    assert found.generation == made.generation
    assert found.preview is not None
    assert (await world.service.find_generation(ALICE, str(FIRST_ID))).preview is not None


@pytest.mark.anyio
async def test_find_generation_refuses_another_persons_image_but_not_an_admin() -> None:
    """Bob may not see Alice's image; the admin may; a stranger is refused outright."""
    world = make_world(tiny=True)
    made = await world.service.generate(ALICE, fox())
    with pytest.raises(NotAllowed) as caught:
        await world.service.find_generation(BOB, made.generation.file_name)
    assert caught.value.reason is NotAllowedReason.NOT_YOURS
    found = await world.service.find_generation(ADMIN, made.generation.file_name)
    assert found.generation.email == ALICE.email
    with pytest.raises(NotAllowed) as refused:
        await world.service.find_generation(STRANGER, made.generation.file_name)
    assert refused.value.reason is NotAllowedReason.NOT_LISTED


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["nonsense", "0b9f4a3e-2c1d-4e8f-9a6b-7c5d3e2f1a09.png"])
async def test_find_generation_of_an_unknown_name_is_a_clear_error(name: str) -> None:
    """Not a generation name, or no such generation: the message says which."""
    world = make_world(tiny=True)
    with pytest.raises(ReferenceNotFound) as caught:
        await world.service.find_generation(ALICE, name)
    assert ("no generation named" in caught.value.message) == name.endswith(".png")


@pytest.mark.anyio
async def test_find_generation_says_still_rendering_then_failed() -> None:
    """Pending: no preview, an expected time. Failed: the record with its reason."""
    slow = slow_world(0.2)
    slow.world.backend.failures.append(BackendRefused("Blocked by the safety filter."))
    pending = await slow.service.generate(ALICE, fox(), wait_seconds=0.01)
    assert isinstance(pending, PendingGeneration)
    found = await slow.service.find_generation(ALICE, pending.generation.file_name)
    assert found.generation.status is GenerationStatus.RENDERING
    assert found.preview is None
    assert found.expected_seconds is not None
    await slow.work.drain(5)
    failed = await slow.service.find_generation(ALICE, pending.generation.file_name)
    assert failed.generation.status is GenerationStatus.FAILED
    assert failed.generation.failure == "Blocked by the safety filter."
    assert failed.preview is None
