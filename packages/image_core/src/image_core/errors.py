"""One exception hierarchy whose messages are safe to show to the person who asked.

The shell maps these onto MCP tool errors and HTTP statuses; nothing here may carry a
secret, a stack trace or a file-system path.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # domain imports this module; the annotation only needs the name
    from image_core.domain import TokenUsage


class ImageMcpError(Exception):
    """Base class: ``message`` is written for the person using the product."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ImageMcpError):
    """The request itself is wrong; asking again unchanged will fail again."""


class UnknownModel(InvalidRequest):
    """A model name that the catalog does not know (the message lists the choices)."""


class UnsupportedByModel(InvalidRequest):
    """The model in use does not take the size or ratio asked for (the message says who does).

    ``chosen_default`` is true when nobody named the model in the request: it is the
    person's own default choice, which the shell can say where to change.
    """

    def __init__(self, message: str, *, chosen_default: bool = False) -> None:
        super().__init__(message)
        self.chosen_default = chosen_default


class ReferenceNotFound(InvalidRequest):
    """A reference image name that is not an earlier generation."""


class InvalidImage(InvalidRequest):
    """Bytes that are not a usable image (corrupt, empty, too large, a decompression bomb)."""


class NotAllowedReason(enum.StrEnum):
    """Why a caller was refused: the facts a shell needs to add its own hint."""

    NOT_SIGNED_IN = "not_signed_in"
    UNVERIFIED = "unverified"
    NOT_LISTED = "not_listed"
    NOT_YOURS = "not_yours"


class NotAllowed(ImageMcpError):
    """The caller is signed in but not on the allow-list (or not signed in at all).

    ``reason`` and ``email`` let the shell say what to do in its own terms (which
    setting lists the allowed emails, which identity provider to sign in with).
    """

    def __init__(
        self,
        message: str,
        reason: NotAllowedReason = NotAllowedReason.NOT_LISTED,
        email: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.email = email


class BackendError(ImageMcpError):
    """The image backend did not produce an image.

    ``may_be_billed`` is true when the request may have been processed (and charged)
    although no image came back: a timeout, a broken connection, an unreadable answer.
    ``token_usage`` is what an answer without an image (words, a safety block) reported
    it billed, when the backend said.
    """

    def __init__(
        self,
        message: str,
        *,
        may_be_billed: bool = False,
        token_usage: TokenUsage | None = None,
    ) -> None:
        super().__init__(message)
        self.may_be_billed = may_be_billed
        self.token_usage = token_usage


class BackendRefused(BackendError):
    """The backend declined on purpose (safety filter, policy, no image in the answer)."""


class BackendUnavailable(BackendError):
    """A passing failure (rate limit, overload, timeout); trying later may work."""


class BackendMisconfigured(BackendError):
    """The backend rejected our configuration (bad key, retired model id)."""


class StorageError(ImageMcpError):
    """Writing or reading the data volume failed; nothing partial is left behind."""


class CorruptRecord(StorageError):
    """A stored record (sidecar, prefs) could not be read back."""


class LimitReason(enum.StrEnum):
    """Which limit refused a request before anything was sent."""

    BUDGET = "budget"
    RATE = "rate"
    CONCURRENCY = "concurrency"
    UPLOADS = "uploads"
    """How many uploaded photos one person may keep."""


class LimitReached(ImageMcpError):
    """A budget, the rate limit or the concurrency limit refused the request unsent.

    Nothing reached the backend and nothing was recorded; asking later (or for less)
    may work. ``reason`` says which limit, ``email`` whose request it was, and
    ``facts`` the figures behind it (plain strings, safe to log).
    """

    def __init__(
        self,
        message: str,
        reason: LimitReason,
        email: str,
        facts: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.email = email
        self.facts = dict(facts or {})


class InvalidConfiguration(ImageMcpError):
    """A setting has a value that cannot work; the message names the setting."""
