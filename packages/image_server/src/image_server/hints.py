"""What a person reads when the core refuses: its facts plus this deployment's hints.

The core speaks domain words ("not on this server's allow-list"); only the shell knows
that the list is the ``IMG_ALLOWED_EMAILS`` setting and that people sign in with
Google. Every driver (the MCP tool and its middleware, the dashboard) renders core
errors through ``user_message`` so they all say the same thing.
"""

from __future__ import annotations

from image_core.errors import ImageMcpError, NotAllowed, NotAllowedReason, UnsupportedByModel

ALLOWED_EMAILS_SETTING = "IMG_ALLOWED_EMAILS"
DEFAULT_MODEL_PAGE = "/ui/prefs"
"""Where a person picks their default model (the dashboard's Default model page)."""


def user_message(error: ImageMcpError) -> str:
    """The text to show for ``error``: the core's message, with a hint where one helps."""
    if isinstance(error, NotAllowed):
        return _not_allowed(error)
    if isinstance(error, UnsupportedByModel) and error.chosen_default:
        return (
            f"{error.message} The default is your own choice on the dashboard's Default "
            f"model page ({DEFAULT_MODEL_PAGE})."
        )
    return error.message


def _not_allowed(error: NotAllowed) -> str:
    if error.reason is NotAllowedReason.NOT_SIGNED_IN:
        return "Sign in with a Google account that has an email address to generate images."
    if error.reason is NotAllowedReason.UNVERIFIED:
        return f"The Google account {error.email} has no verified email address."
    if error.reason is NotAllowedReason.NOT_LISTED:
        return (
            f"{error.email} is signed in but not on this server's allow-list. "
            f"Ask the server's owner to add it to {ALLOWED_EMAILS_SETTING}."
        )
    return error.message
