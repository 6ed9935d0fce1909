"""The shell adds this deployment's hints to the core's refusals, in today's exact words."""

from __future__ import annotations

import pytest

from image_core.domain import Identity
from image_core.errors import BackendUnavailable, NotAllowed, NotAllowedReason
from image_core.service import not_allowed
from image_server.hints import user_message


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (None, "Sign in with a Google account that has an email address to generate images."),
        (
            Identity("eve@example.com", email_verified=False),
            "The Google account eve@example.com has no verified email address.",
        ),
        (
            Identity("eve@example.com", email_verified=True),
            "eve@example.com is signed in but not on this server's allow-list. "
            "Ask the server's owner to add it to IMG_ALLOWED_EMAILS.",
        ),
    ],
)
def test_a_refusal_reads_as_it_always_has(identity: Identity | None, expected: str) -> None:
    """The reason and email from the core become the wording users and tests know."""
    assert user_message(not_allowed(identity)) == expected


def test_errors_without_a_hint_keep_the_cores_message() -> None:
    """Other errors, and refusals without a deployment hint, read as the core wrote them."""
    assert user_message(BackendUnavailable("Try again soon.")) == "Try again soon."
    mine = NotAllowed("You can only see your own images.", NotAllowedReason.NOT_YOURS)
    assert user_message(mine) == "You can only see your own images."
