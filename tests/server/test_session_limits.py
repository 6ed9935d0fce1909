"""The session budget as bookkeeping: who is admitted, whose session makes room."""

from __future__ import annotations

import anyio
import pytest
from fastmcp.server.dependencies import AccessToken
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.types import Message, Receive, Scope, Send

from image_server.session_limits import (
    Holder,
    OpenSession,
    SessionGate,
    SessionLimits,
    SessionTable,
)
from tests.dashboard.support import ALLOWED, make_service

ADA = Holder("ada@example.com", allowed=True)
MALLORY = Holder("mallory@example.com", allowed=False)
LIMITS = SessionLimits(allowed_per_person=3, stranger_per_person=2, strangers_in_all=3)


def table_with(*sessions: tuple[str, Holder, float, int]) -> SessionTable:
    table = SessionTable(LIMITS)
    for sid, holder, last_active, in_flight in sessions:
        table.sessions[sid] = OpenSession(holder, {}, last_active, in_flight)
    return table


def test_a_stranger_is_refused_at_the_limit_counting_opens_in_progress() -> None:
    table = table_with(("m1", MALLORY, 0.0, 0))
    assert table.room_for(MALLORY) == (True, None)
    table.start_opening(MALLORY)
    assert table.room_for(MALLORY) == (False, None)
    table.end_opening(MALLORY)
    assert table.room_for(MALLORY) == (True, None)


def test_an_allowed_person_at_the_limit_gives_up_the_oldest_idle_session() -> None:
    table = table_with(("a1", ADA, 5.0, 0), ("a2", ADA, 1.0, 1), ("a3", ADA, 3.0, 0))
    assert table.room_for(ADA) == (True, "a3")  # a2 is older but busy


def test_an_allowed_person_whose_sessions_are_all_busy_is_refused() -> None:
    table = table_with(("a1", ADA, 5.0, 1), ("a2", ADA, 1.0, 1), ("a3", ADA, 3.0, 2))
    assert table.room_for(ADA) == (False, None)


def test_strangers_together_are_bounded_and_allowed_people_are_not_counted() -> None:
    others = [Holder(f"s{n}@example.com", allowed=False) for n in range(3)]
    table = table_with(*((f"s{n}", h, 0.0, 0) for n, h in enumerate(others)))
    assert table.room_for(MALLORY) == (False, None)
    assert table.room_for(ADA) == (True, None)


def test_someone_claiming_an_allowed_email_unverified_has_a_separate_budget() -> None:
    """Same address, not allowed (unverified): it cannot spend or evict Ada's sessions."""
    impostor = Holder(ADA.key, allowed=False)
    table = table_with(("a1", ADA, 0.0, 0), ("a2", ADA, 0.0, 0), ("a3", ADA, 0.0, 0))
    assert table.room_for(impostor) == (True, None)
    assert table.held_by(impostor) == []


def test_only_idle_sessions_past_their_holders_idle_time_are_stale() -> None:
    limits = SessionLimits(stranger_idle_seconds=10, allowed_idle_seconds=100)
    table = SessionTable(limits)
    table.sessions.update(
        {
            "m-idle": OpenSession(MALLORY, {}, 0.0, 0),
            "m-busy": OpenSession(MALLORY, {}, 0.0, 1),
            "a-idle": OpenSession(ADA, {}, 0.0, 0),
        }
    )
    assert table.stale(50.0) == ["m-idle"]
    assert sorted(table.stale(150.0)) == ["a-idle", "m-idle"]


@pytest.mark.parametrize(
    "bad", [{"stranger_per_person": 0}, {"allowed_idle_seconds": float("inf")}]
)
def test_limits_must_be_positive(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        SessionLimits(**bad)  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_session_is_idle_once_its_answer_is_sent_though_the_handler_lingers(
    anyio_backend: str,
) -> None:
    """A client that opens its next session as soon as an answer arrives finds this one idle.

    The SDK's handler may run on after the last byte has gone (it tidies its streams);
    counting the session busy until then refused opens of a person at the limit under load.
    """
    email = sorted(ALLOWED)[0]
    lingering = anyio.Event()
    answered = anyio.Event()

    async def mcp_app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"mcp-session-id", b"s1")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})
        answered.set()
        await lingering.wait()

    gate = SessionGate(mcp_app, service=make_service().service, mcp_path="/mcp")
    token = AccessToken(token="t", client_id="c", scopes=[], claims={"email": email,
                        "email_verified": True})  # fmt: skip
    scope: Scope = {"type": "http", "path": "/mcp", "method": "POST", "headers": [],
                    "user": AuthenticatedUser(token)}  # fmt: skip

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        del message

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gate, scope, receive, send)
        await answered.wait()
        assert gate.table.sessions["s1"].in_flight == 0
        lingering.set()
    assert gate.table.sessions["s1"].in_flight == 0
