"""Who is looking at the dashboard, as the signed session cookie says.

The cookie is signed (Starlette's ``SessionMiddleware``, keyed from the config), not
encrypted, so it holds only what the browser may read: the email, the login time and
the CSRF token. A user session is written only after the ID token was validated and
the email found verified and allow-listed; a login replaces the whole session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any, Final

import attrs
from starlette.requests import Request

from image_core import names
from image_core.domain import Identity
from image_core.service import ImageService
from image_server.dashboard.security import new_csrf_token, new_session_id
from image_server.dashboard.signouts import MemorySignOuts, SignOuts

USER_KEY: Final = "user"
LOGIN_AT_KEY: Final = "login_at"
CSRF_KEY: Final = "csrf"
NEXT_KEY: Final = "next"
SESSION_ID_KEY: Final = "sid"
GENERATION_KEY: Final = "gen"
#: The email the core records for generations made with authentication disabled.


@attrs.frozen
class Viewer:
    """The person behind a request; ``identity`` is ``None`` when auth is disabled."""

    identity: Identity | None
    email: str
    is_admin: bool
    csrf_token: str


def _session(request: Request) -> MutableMapping[str, Any]:
    session: MutableMapping[str, Any] = request.session
    return session


@attrs.frozen
class Sessions:
    """Reads and writes the dashboard's part of the session."""

    service: ImageService
    auth_disabled: bool
    max_age_seconds: int
    now: Callable[[], float] = time.time
    sign_outs: SignOuts = attrs.field(factory=MemorySignOuts)

    def viewer(self, request: Request) -> Viewer | None:
        """The signed-in (or, with auth disabled, local) viewer; ``None`` means sign in.

        A session older than ``max_age_seconds`` (absolute, from login), malformed, for
        an email no longer allowed, or signed out on the server (this session, or all
        of the person's) is dropped.
        """
        session = _session(request)
        if self.auth_disabled:
            return Viewer(None, names.LOCAL_OWNER, True, self._csrf(session))
        email, login_at = session.get(USER_KEY), session.get(LOGIN_AT_KEY)
        if email is None:
            return None
        identity = Identity(email, email_verified=True) if isinstance(email, str) else None
        fresh = isinstance(login_at, int) and 0 <= self.now() - login_at <= self.max_age_seconds
        if identity is None or not fresh or not self.service.may_generate(identity):
            session.clear()
            return None
        csrf = session.get(CSRF_KEY)
        if not isinstance(csrf, str) or not csrf or not self._still_valid(session, identity):
            session.clear()
            return None
        return Viewer(identity, email, self.service.is_admin(identity), csrf)

    def _still_valid(self, session: MutableMapping[str, Any], identity: Identity) -> bool:
        """Not signed out on the server: neither this session nor all of the person's."""
        session_id, generation = session.get(SESSION_ID_KEY), session.get(GENERATION_KEY)
        if not isinstance(session_id, str) or not session_id or not isinstance(generation, int):
            return False
        if generation != self.sign_outs.generation(identity.email):
            return False
        return not self.sign_outs.is_signed_out(session_id)

    def _csrf(self, session: MutableMapping[str, Any]) -> str:
        token = session.get(CSRF_KEY)
        if isinstance(token, str) and token:
            return token
        token = new_csrf_token()
        session[CSRF_KEY] = token
        return token

    def remember_next(self, request: Request, next_path: str | None) -> None:
        """Keep where to go after login, across the trip to Google."""
        session = _session(request)
        if next_path:
            session[NEXT_KEY] = next_path
        else:
            session.pop(NEXT_KEY, None)

    def pending_next(self, request: Request) -> str | None:
        """The remembered destination, if any."""
        value = _session(request).get(NEXT_KEY)
        return value if isinstance(value, str) else None

    def sign_in(self, request: Request, email: str) -> None:
        """Replace the whole session (new cookie, id and CSRF token): no fixation."""
        session = _session(request)
        session.clear()
        session.update(
            {
                USER_KEY: email,
                LOGIN_AT_KEY: int(self.now()),
                CSRF_KEY: new_csrf_token(),
                SESSION_ID_KEY: new_session_id(),
                GENERATION_KEY: self.sign_outs.generation(email),
            }
        )

    def sign_out(self, request: Request) -> None:
        """Forget everything; the cookie is deleted and no copy of it works any more."""
        session = _session(request)
        session_id, login_at = session.get(SESSION_ID_KEY), session.get(LOGIN_AT_KEY)
        if isinstance(session_id, str) and session_id and isinstance(login_at, int):
            self.sign_outs.sign_out(session_id, login_at + self.max_age_seconds)
        session.clear()

    def sign_out_everywhere(self, request: Request, email: str) -> None:
        """End every dashboard session of ``email``, in every browser, this one included."""
        self.sign_outs.sign_out_everywhere(email)
        _session(request).clear()
