"""Who may hold MCP sessions, and how many: bounded per person, tighter for strangers.

Anyone with a Google account may connect, but the MCP SDK keeps every open session in
one process-wide table with one cap for everyone: one identity opening sessions in a
loop would fill it, and then the people on the allow-list are told "too many open
sessions". ``SessionGate`` sits after authentication in front of the MCP endpoint and
admits a new session only within its holder's budget:

- a person who may generate holds up to ``allowed_per_person`` sessions; at the limit
  their own oldest idle session is closed to make room (a client that reconnects
  without closing the old session never locks itself out);
- anyone else (a "stranger") holds up to ``stranger_per_person`` sessions, each
  closed after ``stranger_idle_seconds`` without a request, and strangers together
  hold at most ``strangers_in_all``: neither one stranger nor many can take the room
  allow-listed people need.

A session is closed the way a client closes it, with a ``DELETE`` carrying its id and
its owner's credential, so the SDK frees it and its id answers 404 from then on.

With ``refuse_strangers`` (``IMG_LOGIN_REQUIRES_ACCESS=1``), a token of someone who
may not generate (never allowed, or removed from the list) is refused on every MCP
request, not only when it asks for an image.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Final

import attrs
from fastmcp.server.dependencies import AccessToken
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.transport_security import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from image_core.access import owner_key
from image_core.domain import Identity
from image_core.service import ImageService, not_allowed
from image_server.callers import identity_of
from image_server.hints import user_message

log = logging.getLogger("image_server")

SESSION_HEADER: Final = "mcp-session-id"
_SESSION_HEADER_BYTES: Final = SESSION_HEADER.encode("ascii")
_INVALID_REQUEST: Final = -32600
TOO_MANY_SESSIONS: Final = 429
FORBIDDEN: Final = 403


@attrs.frozen(kw_only=True)
class SessionLimits:
    """The budgets ``SessionGate`` enforces (defaults are the production values)."""

    allowed_per_person: int = 16
    allowed_idle_seconds: float = 30 * 60
    """Also the SDK's own idle timeout, so a forgotten session ends either way."""
    stranger_per_person: int = 2
    stranger_idle_seconds: float = 5 * 60
    strangers_in_all: int = 200

    def __attrs_post_init__(self) -> None:
        counts = (self.allowed_per_person, self.stranger_per_person, self.strangers_in_all)
        idles = (self.allowed_idle_seconds, self.stranger_idle_seconds)
        if min(counts) < 1 or not all(math.isfinite(s) and s > 0 for s in idles):
            msg = "session limits must be positive"
            raise ValueError(msg)


@attrs.frozen
class Holder:
    """Whose budget a session counts against: a key (the email) and whether they may generate."""

    key: str
    allowed: bool


@attrs.define
class OpenSession:
    """One session the gate counts: whose, when last used, how many requests run in it."""

    holder: Holder
    scope: Scope = attrs.field(repr=False)
    """The opening request's scope (with its credential): closing the session reuses it."""
    last_active: float
    in_flight: int = 0


@attrs.define
class SessionTable:
    """The open sessions by id, with per-holder counts; pure bookkeeping, no I/O."""

    limits: SessionLimits
    sessions: dict[str, OpenSession] = attrs.field(factory=dict)
    opening: dict[Holder, int] = attrs.field(factory=dict)
    """Opening requests admitted but not answered yet, by holder."""

    def held_by(self, holder: Holder) -> list[tuple[str, OpenSession]]:
        """The holder's open sessions, by id."""
        return [(sid, s) for sid, s in self.sessions.items() if s.holder == holder]

    def stale(self, now: float) -> list[str]:
        """Sessions idle past their holder's idle time (none with a request in flight)."""
        return [
            sid
            for sid, s in self.sessions.items()
            if s.in_flight == 0 and now - s.last_active > self._idle_limit(s.holder)
        ]

    def _idle_limit(self, holder: Holder) -> float:
        if holder.allowed:
            return self.limits.allowed_idle_seconds
        return self.limits.stranger_idle_seconds

    def room_for(self, holder: Holder) -> tuple[bool, str | None]:
        """``(admit, evict)``: whether a new session fits, and which session to close first."""
        held = self.held_by(holder)
        count = len(held) + self.opening.get(holder, 0)
        if not holder.allowed:
            strangers = sum(not s.holder.allowed for s in self.sessions.values())
            strangers += sum(n for h, n in self.opening.items() if not h.allowed)
            fits = count < self.limits.stranger_per_person
            return fits and strangers < self.limits.strangers_in_all, None
        if count < self.limits.allowed_per_person:
            return True, None
        idle = [(s.last_active, sid) for sid, s in held if s.in_flight == 0]
        if not idle:
            return False, None
        return True, min(idle)[1]

    def start_opening(self, holder: Holder) -> None:
        """Count an admitted opening request until it is answered."""
        self.opening[holder] = self.opening.get(holder, 0) + 1

    def end_opening(self, holder: Holder) -> None:
        """The opening request was answered (its session, if any, is in ``sessions``)."""
        left = self.opening.get(holder, 0) - 1
        if left > 0:
            self.opening[holder] = left
        else:
            self.opening.pop(holder, None)


class SessionGate:
    """ASGI middleware in front of ``/mcp``, after authentication (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: ImageService,
        mcp_path: str,
        limits: SessionLimits | None = None,
        refuse_strangers: bool = False,
        stranger_body_max: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        # Only allowed people upload photos: everyone else keeps the small body cap, so
        # a valid token off the allow-list cannot make the server buffer a large body.
        self.stranger_body_max = stranger_body_max
        self.service = service
        self.mcp_path = mcp_path.rstrip("/")
        self.limits = limits or SessionLimits()
        self.refuse_strangers = refuse_strangers
        self.clock = clock
        self.table = SessionTable(self.limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, admit or account for one request to the MCP endpoint."""
        if scope["type"] != "http" or str(scope["path"]).rstrip("/") != self.mcp_path:
            await self.app(scope, receive, send)
            return
        found = self._holder(scope)
        if found is None:  # no credential (401 follows), or login is off: nobody to tell apart
            await self.app(scope, receive, send)
            return
        holder, identity = found
        if self.refuse_strangers and not holder.allowed:
            log.info("mcp request refused", extra={"event": "refused", "email": holder.key})
            message = user_message(not_allowed(identity))
            await _error(FORBIDDEN, message)(scope, receive, send)
            return
        if not holder.allowed and self.stranger_body_max is not None:
            capped = RequestBodyLimitMiddleware(
                functools.partial(self._route, holder), self.stranger_body_max
            )
            await capped(scope, receive, send)
            return
        await self._route(holder, scope, receive, send)

    async def _route(self, holder: Holder, scope: Scope, receive: Receive, send: Send) -> None:
        """Open a session, or use the one the request names."""
        session_id = _header(scope, _SESSION_HEADER_BYTES)
        if session_id is None:
            await self._open(holder, scope, receive, send)
        else:
            await self._use(session_id, holder, scope, receive, send)

    def _holder(self, scope: Scope) -> tuple[Holder, Identity | None] | None:
        """Whose budget the request counts against; ``None`` when it carries no credential."""
        user = scope.get("user")
        if self.service.access_is_open or not isinstance(user, AuthenticatedUser):
            return None
        token = user.access_token
        identity = identity_of(token) if isinstance(token, AccessToken) else None
        if identity is None:
            subject = getattr(token, "subject", None) or token.client_id
            return Holder(f"subject:{subject}", allowed=False), None
        return Holder(owner_key(identity.email), self.service.may_generate(identity)), identity

    async def _open(self, holder: Holder, scope: Scope, receive: Receive, send: Send) -> None:
        """A request without a session id: it may open one, if the holder has room."""
        await self._close_stale()
        table = self.table
        admit, evict = table.room_for(holder)
        if not admit:
            await self._refuse(holder, scope, receive, send)
            return
        # Counted before any await, so concurrent opens cannot all squeeze into one place.
        table.start_opening(holder)
        opened: list[str] = []

        settled: list[str] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status", 500) < 400:
                sid = _header(message, _SESSION_HEADER_BYTES)
                if sid is not None and sid not in table.sessions:
                    table.sessions[sid] = OpenSession(holder, dict(scope), self.clock(), 1)
                    opened.append(sid)
            await send(message)
            if _is_last_body(message):  # answered: idle from now, as the client sees it
                settled.extend(opened)
                for sid in opened:
                    self._settle(sid)

        try:
            if evict is not None:
                await self._close(evict, "oldest idle session of a person at the limit")
            await self.app(scope, receive, watch)
        finally:
            table.end_opening(holder)
            for sid in opened:
                if sid not in settled:
                    self._settle(sid)

    async def _refuse(self, holder: Holder, scope: Scope, receive: Receive, send: Send) -> None:
        """429 with the holder's limit and a hint; nothing is opened."""
        log.warning(
            "refused to open an MCP session",
            extra={"event": "session_refused", "email": holder.key},
        )
        limit = (
            self.limits.allowed_per_person if holder.allowed else self.limits.stranger_per_person
        )
        text = (
            f"Too many open MCP sessions for this account (at most {limit}). "
            "Close one, or wait for an idle one to expire."
        )
        await _error(TOO_MANY_SESSIONS, text, retry_after=60)(scope, receive, send)

    async def _use(
        self, session_id: str, holder: Holder, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A request in an existing session: keep it alive while it runs."""
        session = self.table.sessions.get(session_id)
        if session is None or session.holder != holder:
            await self.app(scope, receive, send)  # the SDK answers 404 or serves it
            return
        session.in_flight += 1
        status: list[int] = []
        settled = False

        async def watch(message: Message) -> None:
            nonlocal settled
            if message["type"] == "http.response.start":
                status.append(int(message.get("status", 500)))
            await send(message)
            if _is_last_body(message) and not settled:
                settled = True
                self._settle(session_id)

        try:
            await self.app(scope, receive, watch)
        finally:
            if not settled:
                self._settle(session_id)
        ended = scope.get("method") == "DELETE" and status and status[0] < 400
        if ended or (status and status[0] == 404):
            self.table.sessions.pop(session_id, None)

    def _settle(self, session_id: str) -> None:
        session = self.table.sessions.get(session_id)
        if session is not None:
            session.in_flight -= 1
            session.last_active = self.clock()

    async def _close_stale(self) -> None:
        for sid in self.table.stale(self.clock()):
            await self._close(sid, "idle")

    async def _close(self, session_id: str, why: str) -> None:
        """End a session as its client would: a DELETE with its id and its credential."""
        session = self.table.sessions.pop(session_id, None)
        if session is None:
            return
        log.info(
            "closing an MCP session (%s)",
            why,
            extra={"event": "session_closed", "email": session.holder.key},
        )
        scope = {
            **session.scope,
            "method": "DELETE",
            "query_string": b"",
            # The credential was verified when the session opened; the route only looks
            # for its presence, and the SDK checks it is the session owner's.
            "headers": [
                (_SESSION_HEADER_BYTES, session_id.encode("latin-1")),
                *((k, v) for k, v in session.scope["headers"] if k.lower() == b"authorization"),
            ],
        }
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def discard(message: Message) -> None:
            del message  # the answer to a close nobody asked for is dropped

        try:
            await self.app(scope, receive, discard)
        except Exception:
            log.exception("could not close an MCP session", extra={"event": "session_closed"})


def _is_last_body(message: Message) -> bool:
    """The end of an answer: the client has it all, whatever the handler does next.

    Settling here rather than when the handler returns matters under load: a client
    that opens its next session as soon as an answer arrives must find this one idle.
    """
    return message["type"] == "http.response.body" and not message.get("more_body", False)


def _header(holder: Scope | Message, name: bytes) -> str | None:
    for key, value in holder.get("headers", []):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _error(status: int, message: str, *, retry_after: int | None = None) -> ASGIApp:
    """A JSON-RPC error without an id, as the SDK answers transport-level refusals."""
    body = json.dumps(
        {"jsonrpc": "2.0", "id": None, "error": {"code": _INVALID_REQUEST, "message": message}}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if retry_after is not None:
        headers.append((b"retry-after", b"%d" % retry_after))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        del scope, receive
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
