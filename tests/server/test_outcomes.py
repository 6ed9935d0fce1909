"""The one table from a core error to its HTTP status, MCP outcome word and log level."""

from __future__ import annotations

import logging

import pytest

from image_core.errors import (
    BackendMisconfigured,
    BackendRefused,
    BackendUnavailable,
    CorruptRecord,
    ImageMcpError,
    InvalidConfiguration,
    NotAllowed,
    ReferenceNotFound,
    StorageError,
    UnknownModel,
)
from image_server.outcomes import Outcome, outcome_of


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (NotAllowed("x"), Outcome("not_allowed", logging.INFO, 404)),
        (UnknownModel("x"), Outcome("invalid", logging.INFO, 400)),
        (ReferenceNotFound("x"), Outcome("invalid", logging.INFO, 400)),
        (BackendRefused("x"), Outcome("refused", logging.INFO, 503)),
        (BackendUnavailable("x"), Outcome("unavailable", logging.WARNING, 503)),
        (BackendMisconfigured("x"), Outcome("misconfigured", logging.ERROR, 503)),
        (CorruptRecord("x"), Outcome("storage", logging.ERROR, 503)),
        (StorageError("x"), Outcome("storage", logging.ERROR, 503)),
        (InvalidConfiguration("x"), Outcome("failed", logging.ERROR, 503)),
    ],
)
def test_each_core_error_has_one_status_outcome_and_level(
    error: ImageMcpError, expected: Outcome
) -> None:
    """Subclasses take their base's row; anything unlisted is an operator's ERROR."""
    assert outcome_of(error) == expected


def test_not_allowed_hides_existence_with_a_404() -> None:
    """A person refused another's gallery must not learn that it exists."""
    assert outcome_of(NotAllowed("You can only see your own images.")).http_status == 404
