"""Who is calling an MCP endpoint, as the verified OAuth token says.

Shared by the tools, the resources and the session limits, so every MCP driver reads
the caller the same way.
"""

from __future__ import annotations

from fastmcp.server.dependencies import AccessToken, get_access_token

from image_core.access import owner_key
from image_core.domain import Identity


def identity_from_token() -> Identity | None:
    """The caller as the OAuth token describes them; ``None`` when there is no token."""
    return identity_of(get_access_token())


def identity_of(token: AccessToken | None) -> Identity | None:
    """The person a verified access token names; ``None`` without a token or an email."""
    if token is None:
        return None
    email = token.claims.get("email")
    if not isinstance(email, str):
        return None
    verified = token.claims.get("email_verified")
    return Identity(email=email, email_verified=verified is True or str(verified).lower() == "true")


def logged_email(identity: Identity | None) -> str | None:
    """The email as records store it (lower-cased), so logs and records spell it alike."""
    return owner_key(identity.email) if identity is not None else None
