"""Work that must outlive the request that started it: the paid part of a generation.

The service starts each paid call here instead of awaiting it in the caller's task, so
a client that cancels or disconnects (or a tool deadline) never cancels a call Gemini
will bill. The composition root owns one ``BackgroundWork`` and drains it at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from image_core.errors import ImageMcpError

_T = TypeVar("_T")

log = logging.getLogger("image_core.background")


class BackgroundWork:
    """A set of detached tasks held by strong references until they finish."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run ``work`` detached from the caller: cancelling the caller does not cancel it."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # retrieved, so an unawaited failure is not reported twice
        if error is not None and not isinstance(error, ImageMcpError):
            log.error("background work failed", exc_info=error)

    async def drain(self, grace_seconds: float) -> int:
        """Wait up to ``grace_seconds`` for the work in flight, then cancel what is left.

        Returns how many tasks were cancelled; their records stay pending, and the next
        start-up resolves them.
        """
        pending = set(self._tasks)
        if not pending:
            return 0
        _, left = await asyncio.wait(pending, timeout=grace_seconds)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=1.0)
        return len(left)
