"""Whether Gemini still offers the configured models: checked at start-up and daily.

Google retires and renames image models; a retired id only shows when a generation gets
a 404. So the server asks Gemini's models list which ids the key may use, reports each
configured id (available, or missing with its known successor and the variable to set),
shows a missing one to admins on the dashboard, and lets generations with a missing id
fail at once with that hint (``ModelWatch.missing``, the core's ``ModelAvailability``).
A check that cannot be made warns and changes nothing: start-up never waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, Protocol, runtime_checkable

import anyio
import attrs

from image_core.catalog import ModelCatalog
from image_core.domain import ModelSpec
from image_core.errors import ImageMcpError
from image_server.model_settings import model_variable

log = logging.getLogger("image_server.models")

CHECK_EVERY_SECONDS: Final = 24 * 3600
MAX_NAMED_IDS: Final = 8
"""At most this many listed image ids are named in one hint."""
RETRY_FAILED_SECONDS: Final = 3600
"""A check that could not be made is tried again sooner than the daily one."""


@runtime_checkable
class ModelLister(Protocol):
    """A backend that can say which model ids exist (``GeminiImageBackend``)."""

    async def list_models(self) -> frozenset[str]:
        """Every model id the key may use; raises ``ImageMcpError`` when it cannot tell."""
        ...


@attrs.frozen
class ModelStatus:
    """One configured model as the models list shows it."""

    alias: str
    model_id: str
    available: bool
    hint: str | None = None
    """For a missing model: what to do, with the exact variable to set."""

    def line(self) -> str:
        """One line for logs and ``check --online``."""
        if self.available:
            return f"{self.alias}: {self.model_id} is available"
        return f"{self.alias}: {self.hint}"


@attrs.frozen
class ModelReport:
    """What one check found: each configured model's status, or why there was no answer."""

    checked_at: datetime
    statuses: tuple[ModelStatus, ...] = ()
    error: str | None = None

    @property
    def missing(self) -> tuple[ModelStatus, ...]:
        """The configured models Gemini did not list."""
        return tuple(s for s in self.statuses if not s.available)


def assess(catalog: ModelCatalog, available: Iterable[str], checked_at: datetime) -> ModelReport:
    """Each offered model's id against the ids Gemini listed."""
    listed = frozenset(available)
    statuses = tuple(
        ModelStatus(m.alias, m.model_id, True)
        if m.model_id in listed
        else ModelStatus(m.alias, m.model_id, False, missing_hint(catalog, m, listed))
        for m in catalog
    )
    return ModelReport(checked_at, statuses)


def missing_hint(catalog: ModelCatalog, spec: ModelSpec, listed: frozenset[str]) -> str:
    """What to tell an admin about a configured id Gemini no longer lists."""
    variable = model_variable(spec.alias)
    gone = f"Gemini no longer lists {spec.model_id} ({spec.display_name}) for this API key"
    successor = closest_successor(catalog, spec, listed)
    if successor is not None:
        model_id, name = successor
        return (
            f"{gone}; its known successor {model_id} ({name}) is available: set "
            f"{variable}={model_id} and restart."
        )
    images = sorted(i for i in listed if "image" in i)[:MAX_NAMED_IDS]
    offer = f" Image models the key can use: {', '.join(images)}." if images else ""
    return (
        f"{gone}, and no known successor is listed: set {variable} to a current image "
        f"model id and restart.{offer}"
    )


def closest_successor(
    catalog: ModelCatalog, spec: ModelSpec, listed: frozenset[str]
) -> tuple[str, str] | None:
    """Id and name of the first model down the ``successor`` chain that Gemini lists."""
    seen = {spec.model_id}
    current: ModelSpec | None = spec
    while current is not None and current.successor and current.successor not in seen:
        seen.add(current.successor)
        facts = catalog.facts(current.successor)
        if current.successor in listed:
            return current.successor, facts.display_name if facts else current.successor
        current = facts
    return None


@attrs.define
class ModelWatch:
    """The latest models-list check, for the core (fail fast), the dashboard and the logs."""

    catalog: ModelCatalog
    lister: ModelLister | None = None
    report: ModelReport | None = None

    def missing(self, model_id: str) -> str | None:
        """The hint for a configured id the last check found missing, else ``None``."""
        if self.report is None:
            return None
        for status in self.report.missing:
            if status.model_id == model_id:
                checked = self.report.checked_at.strftime("%Y-%m-%d %H:%M UTC")
                return f"{status.hint} (Checked {checked}; an administrator has to do this.)"
        return None

    def notices(self) -> tuple[str, ...]:
        """One sentence per missing model, for admins on the dashboard."""
        if self.report is None:
            return ()
        return tuple(f"Model {s.alias}: {s.hint}" for s in self.report.missing)

    async def check(self) -> ModelReport:
        """Ask the models list once; log what it found; keep the result."""
        now = datetime.now(UTC)
        if self.lister is None:
            return ModelReport(now, error="no models list to ask (the offline placeholder)")
        try:
            listed = await self.lister.list_models()
        except Exception as exc:  # a check that fails must never stop the server
            why = exc.message if isinstance(exc, ImageMcpError) else type(exc).__name__
            log.warning(
                "could not check which Gemini models exist (%s); generations go ahead as "
                "configured",
                why,
                extra={"event": "model_check", "outcome": "unknown"},
            )
            return ModelReport(now, error=why)
        self.report = assess(self.catalog, listed, now)
        for status in self.report.statuses:
            level = logging.INFO if status.available else logging.WARNING
            log.log(
                level,
                "model check: %s",
                status.line(),
                extra={
                    "event": "model_check",
                    "alias": status.alias,
                    "model_id": status.model_id,
                    "outcome": "available" if status.available else "missing",
                },
            )
        return self.report

    async def run(self) -> None:
        """Check now, then every day (sooner after a failed check), until cancelled."""
        while True:
            report = await self.check()
            await anyio.sleep(RETRY_FAILED_SECONDS if report.error else CHECK_EVERY_SECONDS)
