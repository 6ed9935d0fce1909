"""What the dashboard needs from the composition root, and the keys it derives.

The session cookie is signed with a key derived from ``IMG_JWT_SIGNING_KEY`` by HKDF
with a dashboard-only label, so a cookie signature can never be replayed as (or
forged from) an MCP token signature, even though both come from one secret.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from image_core.errors import InvalidConfiguration
from image_server.edge import (
    DASHBOARD_SESSION_INFO,
    GOOGLE_ISSUER,
    GOOGLE_OPENID_CONFIGURATION,
    MIN_SECRET_CHARS,
    dashboard_session_key,
    origin_of,
)

#: Where the outer app mounts the dashboard; Google's registered redirect URI ends with it.
MOUNT_PATH: Final = "/ui"
CALLBACK_PATH: Final = "/auth/callback"
MIN_SESSION_SECONDS: Final = 60
MAX_SESSION_SECONDS: Final = 7 * 24 * 3600

SESSION_KEY_LABEL: Final = DASHBOARD_SESSION_INFO


def _strip_slash(url: str) -> str:
    return url.rstrip("/")


def _check_public_url(_: object, __: attrs.Attribute[Any], value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidConfiguration(
            f"Dashboard public URL {value!r} is not an absolute http(s) URL."
        )
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise InvalidConfiguration(f"Dashboard public URL {value!r} must not have a path.")


def _check_secret(_: object, __: attrs.Attribute[Any], value: str) -> None:
    if len(value) < MIN_SECRET_CHARS:
        raise InvalidConfiguration(
            f"The dashboard session secret must have at least {MIN_SECRET_CHARS} characters."
        )


def _check_max_age(_: object, __: attrs.Attribute[Any], value: int) -> None:
    if not MIN_SESSION_SECONDS <= value <= MAX_SESSION_SECONDS:
        raise InvalidConfiguration(
            f"Dashboard sessions must last between {MIN_SESSION_SECONDS} s and 7 days."
        )


@attrs.frozen(kw_only=True)
class DashboardConfig:
    """Settings for ``build_dashboard``; secrets stay out of ``repr``."""

    public_url: str = attrs.field(converter=_strip_slash, validator=_check_public_url)
    auth_disabled: bool
    client_id: str | None
    client_secret: str | None = attrs.field(repr=False)
    session_secret: str = attrs.field(repr=False, validator=_check_secret)
    secure_cookies: bool
    openid_configuration_url: str = GOOGLE_OPENID_CONFIGURATION
    issuer: str = GOOGLE_ISSUER
    session_max_age_seconds: int = attrs.field(default=8 * 3600, validator=_check_max_age)
    open_on_network: bool = False
    """Login is off and the server listens beyond loopback: every page shows a warning."""

    def __attrs_post_init__(self) -> None:
        if not self.auth_disabled and not (self.client_id and self.client_secret):
            raise InvalidConfiguration(
                "The dashboard needs GOOGLE_OAUTH_CLIENT_ID and GOOGLE_OAUTH_CLIENT_SECRET "
                "for Google login (or IMG_AUTH_DISABLED=1 for local use)."
            )

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of the public URL, as browsers send it in ``Origin``."""
        return origin_of(self.public_url) or self.public_url

    @property
    def callback_url(self) -> str:
        """The redirect URI registered with Google, never derived from request headers."""
        return f"{self.public_url}{MOUNT_PATH}{CALLBACK_PATH}"

    @property
    def cookie_name(self) -> str:
        """``__Host-`` prefixed when Secure: browsers then enforce Path=/ and no Domain."""
        return "__Host-imgmcp_ui" if self.secure_cookies else "imgmcp_ui"

    def session_signing_key(self) -> str:
        """The cookie-signing key, domain-separated from every other use of the secret."""
        return dashboard_session_key(self.session_secret)
