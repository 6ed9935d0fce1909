"""Sample records and Hypothesis strategies the contract suites (and your tests) share."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from image_core.domain import (
    AspectRatio,
    CostEstimate,
    EncodedImage,
    Generation,
    GenerationStatus,
    ImageSize,
    TokenUsage,
)
from image_core.testing import make_png

T = TypeVar("T")

AdapterFactory = Callable[[], AbstractContextManager[T]]
"""Opens one fresh adapter in a context (``contextlib.nullcontext(adapter)`` if it needs
no cleanup); the suites call it once per test and once per Hypothesis example."""

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

# Each Hypothesis example opens its own adapter through the factory fixture, so a
# function-scoped factory is safe to share between examples; and the same property
# running once per adapter subclass is the point of a contract, not a flaw.
EXAMPLES = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
)


def fresh(adapter: T) -> AbstractContextManager[T]:
    """A factory's answer for an adapter with nothing to close."""
    return contextlib.nullcontext(adapter)


def make_generation(
    email: str = "ann@example.com",
    *,
    at: datetime = NOON,
    cost: str | Decimal = "0.067",
    generation_id: uuid.UUID | None = None,
    prompt: str = "a fox in the snow",
    status: GenerationStatus = GenerationStatus.DONE,
) -> Generation:
    """A complete, valid generation with the parts a test cares about set."""
    return Generation(
        id=generation_id or uuid.uuid4(),
        email=email,
        prompt=prompt,
        model_alias="flash",
        model_id="gemini-3.1-flash-image",
        image_size=ImageSize.S1K,
        aspect_ratio=AspectRatio.R16_9,
        created_at=at,
        cost=CostEstimate(Decimal(cost)),
        reference_ids=(uuid.uuid4(),),
        token_usage=TokenUsage(1290, 1120, None, 2410),
        backend="gemini",
        width=1344,
        height=768,
        status=status,
        failure="It was refused." if status is GenerationStatus.FAILED else None,
    )


def thumbnail(mime_type: str = "image/webp", fill: bytes = b"t") -> EncodedImage:
    """Stand-in thumbnail bytes: stores keep bytes and media type, they never decode."""
    return EncodedImage(fill * 64, mime_type)


PNG = make_png(3, 2)

# Emails as the service hands them to the ports: normalised, plus two that cannot be
# normalised (kept as given, so they differ only in case and must stay apart).
EMAILS = st.sampled_from(
    ["ann@example.com", "bob@example.org", "zoë@example.com", "Zoë@example.com"]
)
# A few shared instants force ties, which must be broken by id.
TIMES = st.sampled_from([NOON, datetime(2026, 11, 24, 23, 59, 59, 999999, tzinfo=UTC)]) | (
    st.datetimes(
        min_value=datetime(2025, 12, 30),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2026, 1, 3),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
)
# List prices, arbitrary milli-dollars and amounts finer than a micro-dollar.
COSTS = st.sampled_from(["0.067", "0.134", "0.24", "0", "0.0000001", "1.23456789"]).map(
    Decimal
) | st.decimals(min_value=0, max_value=5, places=3, allow_nan=False, allow_infinity=False)
GENERATIONS = st.builds(
    make_generation, EMAILS, at=TIMES, cost=COSTS, generation_id=st.uuids(version=4)
)
GENERATION_LISTS = st.lists(GENERATIONS, max_size=12, unique_by=lambda g: g.id)
