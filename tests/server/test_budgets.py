"""Budgets over the real adapters: the data folder's records, the Gemini adapter, fake Gemini.

Spend comes from the records, so it holds across a restart; calls in flight reserve
their estimate, so twenty at once cannot overshoot; nothing refused reaches Gemini.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from pathlib import Path

import pytest

from image_core.domain import GenerationBatch, GenerationRequest
from image_core.errors import BackendUnavailable, LimitReached, LimitReason
from image_server.app import build_service
from image_server.settings import Settings, load_settings
from tests.fakes.fake_gemini import FakeGemini

pytestmark = pytest.mark.anyio

GEMINI_KEY = "gemini-budget-key-0123456789"


def settings_for(root: Path, gemini: FakeGemini, **extra: str) -> Settings:
    return load_settings(
        {
            "IMG_ROOT": str(root),
            "GEMINI_API_KEY": GEMINI_KEY,
            "IMG_GEMINI_BASE_URL": gemini.base_url,
            **extra,
        },
        dev=True,
    )


async def twenty_at_once(settings: Settings) -> list[GenerationBatch | BaseException]:
    async with contextlib.AsyncExitStack() as closing:
        service = build_service(settings, closing=closing)
        asked = GenerationRequest.parse("a lighthouse at dusk")
        return await asyncio.gather(
            *(service.generate_images(None, asked) for _ in range(20)), return_exceptions=True
        )


async def test_twenty_calls_against_thirty_cents_send_four_and_a_restart_remembers(
    tmp_path: Path,
) -> None:
    """4 x $0.067 fit in $0.30; the 16 others are refused with the figures, unsent."""
    with FakeGemini(api_key=GEMINI_KEY) as gemini:
        gemini.delay_seconds = 0.2  # all twenty are admitted while the first are in flight
        settings = settings_for(
            tmp_path,
            gemini,
            IMG_BUDGET_USER_MONTHLY="0.30",
            IMG_MAX_CONCURRENT="20",
            IMG_MAX_CONCURRENT_TOTAL="20",
            IMG_RATE_PER_MINUTE="100",
        )
        outcomes = await twenty_at_once(settings)
        made = [o for o in outcomes if isinstance(o, GenerationBatch)]
        refusals = [o for o in outcomes if isinstance(o, LimitReached)]
        assert (len(made), len(refusals)) == (4, 16), outcomes
        assert len(gemini.requests) == 4
        for refusal in refusals:
            assert refusal.reason is LimitReason.BUDGET
            assert "more than is left of your monthly budget" in refusal.message
            assert " of $0.30; it resets on " in refusal.message
            assert "at 00:00 UTC (months are counted in UTC)" in refusal.message
            assert "Nothing cheaper fits in the $0.013 left" in refusal.message
        # A new service over the same data folder: the spend is read from the records.
        gemini.delay_seconds = 0
        async with contextlib.AsyncExitStack() as closing:
            again = build_service(settings, closing=closing)
            with pytest.raises(LimitReached) as caught:
                await again.generate_images(None, GenerationRequest.parse("one more"))
        assert caught.value.reason is LimitReason.BUDGET
        assert caught.value.facts["reserved_usd"] == "0"
        assert caught.value.facts["spent_usd"] == str(sum(b.cost.usd for b in made))
        assert len(gemini.requests) == 4


async def test_a_timed_out_call_frees_its_place_and_keeps_its_cost_counted(
    tmp_path: Path,
) -> None:
    """A hung Gemini answer holds its place only until IMG_GEMINI_TIMEOUT ends it; the
    timeout may have been billed, so its estimate stays spent."""
    with FakeGemini(api_key=GEMINI_KEY) as gemini:
        gemini.script("slow:10")
        settings = settings_for(
            tmp_path,
            gemini,
            IMG_GEMINI_TIMEOUT="1",
            IMG_MAX_CONCURRENT="1",
            IMG_BUDGET_USER_MONTHLY="0.20",
        )
        async with contextlib.AsyncExitStack() as closing:
            service = build_service(settings, closing=closing)
            with pytest.raises(BackendUnavailable) as caught:
                await service.generate_images(None, GenerationRequest.parse("a hung call"))
            assert caught.value.may_be_billed
            made = await service.generate_images(None, GenerationRequest.parse("next"))
        assert made.standing is not None
        # The timed-out one at its list price, and this one at its true cost.
        assert made.standing.used.usd == Decimal("0.067") + made.cost.usd
        assert len(gemini.requests) == 2
