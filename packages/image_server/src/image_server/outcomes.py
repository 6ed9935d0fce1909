"""Core error -> HTTP status, logged outcome and log level: one table for every driver.

Refusals the product expects (not allowed, a bad request, a safety block) are part of
normal operation and log at INFO; a busy upstream is a WARNING; only what an operator
must fix (a rejected key, a full disk) is an ERROR, so an ERROR line always means work.

HTTP statuses (the dashboard; the MCP tool answers every error as an ``isError`` result):

- ``NotAllowed`` is **404**, not 403, on every page: someone who may not see another
  person's gallery must not learn that it exists (``tests/dashboard/test_security.py``).
  The default-model form used to answer it with 403; it cannot meet it in practice (a
  viewer who may not generate has no session) and now follows the table.
- ``InvalidRequest`` is 400: the page says what was wrong.
- ``LimitReached`` (a budget, the rate or the concurrency limit) is 429 and logs at INFO:
  limits refusing is the product working.
- Everything else is 503, "try again": an upstream or the data volume is the problem.
- Thumbnails answer any failure with the 404 too: they are ``<img>`` sources, and a
  missing picture must look the same whether it is forbidden, absent or unreadable.
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
    LimitReached,
    NotAllowed,
    StorageError,
)


@attrs.frozen
class Outcome:
    """How a failed use case is named in the logs, how loudly, and its HTTP status."""

    name: str
    level: int
    http_status: int


#: The status that hides whether something exists (and the dashboard's 404 page).
NOT_FOUND: Final = 404
FAILED: Final = Outcome("failed", logging.ERROR, 503)

_TABLE: Final[tuple[tuple[type[ImageMcpError], Outcome], ...]] = (
    (NotAllowed, Outcome("not_allowed", logging.INFO, NOT_FOUND)),
    (LimitReached, Outcome("limited", logging.INFO, 429)),
    (InvalidRequest, Outcome("invalid", logging.INFO, 400)),
    (BackendRefused, Outcome("refused", logging.INFO, 503)),
    (BackendUnavailable, Outcome("unavailable", logging.WARNING, 503)),
    (BackendMisconfigured, Outcome("misconfigured", logging.ERROR, 503)),
    (StorageError, Outcome("storage", logging.ERROR, 503)),
)


def outcome_of(error: ImageMcpError) -> Outcome:
    """The first matching row (subclasses before their bases); anything else is a fault."""
    for kind, outcome in _TABLE:
        if isinstance(error, kind):
            return outcome
    return FAILED
