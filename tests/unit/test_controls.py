"""The controls a request may carry: ``count``, ``thinking`` and ``search_grounding``.

Against the in-memory doubles: each of ``count`` images is its own call, record and
cost; a thinking level or grounding a model lacks is refused before any call, naming
the models that have it; grounding's queries are recorded and priced.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from image_core.domain import (
    MAX_IMAGES_PER_CALL,
    CostEstimate,
    FailedImage,
    GenerationRequest,
    GenerationResult,
    GenerationStatus,
    Grounding,
    GroundingSource,
    PendingGeneration,
)
from image_core.errors import BackendRefused, BackendUnavailable, InvalidRequest
from image_core.serialization import RecordCodec
from tests.unit.test_service import ALICE, World, make_world

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world() -> World:
    return make_world(tiny=True)


def ask(**controls: object) -> GenerationRequest:
    return GenerationRequest.parse("a lighthouse at dusk", **controls)  # type: ignore[arg-type]


# --- count -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_count_three_makes_three_calls_records_and_costs(world: World) -> None:
    """Three backend calls, three ids, three done records whose costs add up."""
    batch = await world.service.generate_images(ALICE, ask(count=3))
    assert len(world.requests()) == 3
    results = [o for o in batch.outcomes if isinstance(o, GenerationResult)]
    assert len(results) == 3
    ids = {r.generation.id for r in results}
    assert len(ids) == 3
    for image_id in ids:
        record = world.metadata.get(image_id)
        assert record is not None
        assert record.status is GenerationStatus.DONE
        assert world.images.exists(image_id)
    assert batch.cost == CostEstimate(Decimal("0.067") * 3)
    assert world.metadata.usage().total_cost == batch.cost
    assert world.metadata.usage().total_count == 3


@pytest.mark.anyio
async def test_the_calls_of_a_count_run_at_once(world: World) -> None:
    """Four images that take 0.3 s each take well under four times that."""
    world.backend.delay_seconds = 0.3
    loop = asyncio.get_running_loop()
    started = loop.time()
    batch = await world.service.generate_images(ALICE, ask(count=4))
    assert loop.time() - started < 0.9
    assert len(batch.outcomes) == 4


@pytest.mark.parametrize("count", [0, -1, MAX_IMAGES_PER_CALL + 1, 100])
def test_a_count_out_of_range_is_refused_clearly(count: int) -> None:
    with pytest.raises(InvalidRequest, match=r"count .* 1 to 4 images"):
        ask(count=count)


@pytest.mark.anyio
async def test_one_failure_of_three_keeps_and_bills_the_other_two(world: World) -> None:
    """A refusal is reported as such; the two images that came are stored and billed."""
    world.backend.failures = [BackendRefused("Gemini's safety filter stopped the answer.")]
    settled: list[object] = []

    async def seen(outcome: object) -> None:
        settled.append(outcome)

    batch = await world.service.generate_images(ALICE, ask(count=3), on_settled=seen)
    failed = [o for o in batch.outcomes if isinstance(o, FailedImage)]
    done = [o for o in batch.outcomes if isinstance(o, GenerationResult)]
    assert len(failed) == 1
    assert len(done) == 2
    assert "safety filter" in failed[0].message
    assert failed[0].generation is None  # a refusal is not billed, nothing kept
    assert world.metadata.usage().total_count == 2
    assert world.metadata.usage().total_cost == CostEstimate(Decimal("0.134"))
    assert batch.cost == CostEstimate(Decimal("0.134"))
    assert len(settled) == 3  # told of each image as it settled


@pytest.mark.anyio
async def test_a_failure_that_may_be_billed_keeps_its_failed_record(world: World) -> None:
    world.backend.failures = [BackendUnavailable("Gemini did not answer.", may_be_billed=True)]
    batch = await world.service.generate_images(ALICE, ask(count=2))
    failed = next(o for o in batch.outcomes if isinstance(o, FailedImage))
    assert failed.generation is not None
    assert failed.generation.status is GenerationStatus.FAILED
    assert batch.cost == CostEstimate(Decimal("0.067") * 2)
    assert world.metadata.usage().total_cost == batch.cost


@pytest.mark.anyio
async def test_when_every_image_fails_the_first_error_is_raised(world: World) -> None:
    world.backend.failures = [BackendRefused("no."), BackendRefused("no.")]
    with pytest.raises(BackendRefused):
        await world.service.generate_images(ALICE, ask(count=2))
    assert world.nothing_stored()


@pytest.mark.anyio
async def test_images_still_rendering_at_the_deadline_are_pending(world: World) -> None:
    world.backend.delay_seconds = 0.5
    batch = await world.service.generate_images(ALICE, ask(count=2), wait_seconds=0.05)
    assert all(isinstance(o, PendingGeneration) for o in batch.outcomes)
    await asyncio.sleep(0.8)
    assert world.metadata.usage().total_count == 2


@pytest.mark.anyio
async def test_generate_alone_still_answers_one_image(world: World) -> None:
    result = await world.service.generate(ALICE, ask())
    assert isinstance(result, GenerationResult)
    with pytest.raises(InvalidRequest, match="generate_images"):
        await world.service.generate(ALICE, ask(count=2))


# --- thinking ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_thinking_level_the_model_offers_reaches_the_backend_and_the_record(
    world: World,
) -> None:
    result = await world.service.generate(ALICE, ask(thinking="High"))
    assert isinstance(result, GenerationResult)
    assert world.requests()[0].thinking_level == "high"
    assert result.generation.thinking_level == "high"


@pytest.mark.anyio
async def test_a_level_the_model_lacks_is_refused_naming_its_levels(world: World) -> None:
    with pytest.raises(InvalidRequest, match=r"'medium'.*flash.*minimal, high") as refused:
        await world.service.generate(ALICE, ask(thinking="medium"))
    assert world.requests() == []
    assert world.nothing_stored()
    assert "thinking" in refused.value.message


@pytest.mark.anyio
async def test_thinking_on_a_model_without_levels_names_the_models_that_have_them(
    world: World,
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await world.service.generate(ALICE, ask(thinking="high", model="pro"))
    message = refused.value.message
    assert "pro" in message
    assert "takes no thinking level" in message
    assert "'flash'" in message
    assert "'lite'" in message
    assert world.requests() == []


# --- search grounding --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_grounding_is_sent_recorded_and_priced_per_query(world: World) -> None:
    world.backend.grounding = Grounding(
        queries=("lighthouse dusk", "lighthouse photo"),
        sources=(GroundingSource("https://example.org/a", "example.org"),),
    )
    result = await world.service.generate(ALICE, ask(search_grounding=True))
    assert isinstance(result, GenerationResult)
    assert world.requests()[0].search_grounding is True
    g = result.generation
    assert g.search_grounding is True
    assert g.grounding is not None
    assert g.grounding.queries == ("lighthouse dusk", "lighthouse photo")
    assert g.grounding.cost == CostEstimate(Decimal("0.028"))
    assert g.cost == CostEstimate(Decimal("0.067") + Decimal("0.028"))
    stored = world.metadata.get(g.id)
    assert stored == g
    assert world.metadata.usage().total_cost == g.cost


@pytest.mark.anyio
async def test_grounding_on_a_model_without_it_is_refused_naming_who_can(world: World) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await world.service.generate(ALICE, ask(search_grounding=True, model="lite"))
    message = refused.value.message
    assert "Google Search" in message
    assert "'flash'" in message
    assert "'pro'" in message
    assert world.requests() == []


def test_without_controls_nothing_is_sent_or_recorded_for_them() -> None:
    request = ask()
    assert (request.count, request.thinking, request.search_grounding) == (1, None, False)


# --- records -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_record_with_the_controls_round_trips(world: World) -> None:
    world.backend.grounding = Grounding(
        queries=("q",), sources=(GroundingSource("https://example.org/a", None),)
    )
    result = await world.service.generate(ALICE, ask(search_grounding=True, thinking="minimal"))
    assert isinstance(result, GenerationResult)
    serializer = RecordCodec()
    raw = serializer.dump_generation(result.generation)
    body = json.loads(raw)
    assert body["thinking_level"] == "minimal"
    assert body["grounding"]["queries"] == ["q"]
    assert serializer.load_generation(raw) == result.generation


@pytest.mark.parametrize("sample", ["sidecar_v1_sample.json", "sidecar_v2_sample.json"])
def test_an_old_sidecar_without_the_controls_still_loads(sample: str) -> None:
    raw = (DATA / sample).read_bytes()
    assert "thinking_level" not in raw.decode()
    loaded = RecordCodec().load_generation(raw)
    assert loaded.thinking_level is None
    assert loaded.search_grounding is False
    assert loaded.grounding is None
    assert isinstance(loaded.id, uuid.UUID)


def test_a_thinking_value_that_cannot_be_a_level_is_refused_without_echoing_it() -> None:
    with pytest.raises(InvalidRequest, match="not a thinking level") as refused:
        ask(thinking="x" * 5000)
    assert len(refused.value.message) < 200


@pytest.mark.anyio
async def test_a_caller_that_leaves_mid_count_leaves_every_image_rendering_on(
    world: World,
) -> None:
    """Cancelling the caller ends only its wait: each paid image is stored and counted."""
    world.backend.delay_seconds = 0.3
    caller = asyncio.create_task(world.service.generate_images(ALICE, ask(count=3)))
    await asyncio.sleep(0.1)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0.6)
    assert len(world.requests()) == 3
    assert world.metadata.usage().total_count == 3
    assert world.metadata.usage().total_cost == CostEstimate(Decimal("0.067") * 3)
