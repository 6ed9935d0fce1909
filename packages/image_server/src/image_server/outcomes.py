"""Core error -> logged outcome and log level: one table for every driver.

Refusals the product expects (not allowed, a bad request, a safety block) are part of
normal operation and log at INFO; a busy upstream is a WARNING; only what an operator
must fix (a rejected key, a full disk) is an ERROR, so an ERROR line always means work.
"""

from __future__ import annotations

import logging
from typing import Final

import attrs

from image_core.errors import (
    BackendMisconfigured,
    BackendRefused,
    BackendUnavailable,
    ImageMcpError,
    InvalidRequest,
    NotAllowed,
    StorageError,
)


@attrs.frozen
class Outcome:
    """How a failed use case is named in the logs, and how loudly."""

    name: str
    level: int


FAILED: Final = Outcome("failed", logging.ERROR)

_TABLE: Final[tuple[tuple[type[ImageMcpError], Outcome], ...]] = (
    (NotAllowed, Outcome("not_allowed", logging.INFO)),
    (InvalidRequest, Outcome("invalid", logging.INFO)),
    (BackendRefused, Outcome("refused", logging.INFO)),
    (BackendUnavailable, Outcome("unavailable", logging.WARNING)),
    (BackendMisconfigured, Outcome("misconfigured", logging.ERROR)),
    (StorageError, Outcome("storage", logging.ERROR)),
)


def outcome_of(error: ImageMcpError) -> Outcome:
    """The first matching row (subclasses before their bases); anything else is a fault."""
    for kind, outcome in _TABLE:
        if isinstance(error, kind):
            return outcome
    return FAILED
