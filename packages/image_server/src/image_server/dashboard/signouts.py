"""Server-side sign-out: a signed cookie stays valid until the server says otherwise.

The session cookie is signed, not stored, so clearing it in one browser does nothing to
a copy. Each session therefore carries a random id and the person's sign-out
generation at login; a session is refused when its id was signed out, or when the
person has signed out everywhere since (their generation moved on).

``FileSignOuts`` keeps both in one small JSON file under ``IMG_ROOT/.dashboard/``,
written atomically under a file lock, so sign-outs survive restarts and every process
sharing the data folder sees them at its next request (the file is re-read when its
size or mtime changes). ``MemorySignOuts`` is the same for one process (tests, and
dashboards built without a data folder).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

import attrs

from image_core.errors import StorageError
from image_server.adapters.atomic_files import (
    FileLock,
    read_regular_file,
    storage_error,
    write_atomic,
)

STATE_DIR: Final = ".dashboard"
FILE_NAME: Final = "sign-outs.json"
LOCK_NAME: Final = ".sign-outs.lock"
VERSION: Final = 1


class SignOuts(Protocol):
    """What the session code asks of the sign-out store."""

    def generation(self, email: str) -> int:
        """The person's current sign-out generation (0 until they sign out everywhere)."""
        ...

    def is_signed_out(self, session_id: str) -> bool:
        """Whether this one session was signed out."""
        ...

    def sign_out(self, session_id: str, expires_at: float) -> None:
        """End one session; remembered until it would have expired anyway."""
        ...

    def sign_out_everywhere(self, email: str) -> None:
        """End every session of ``email`` that exists now, in every browser."""
        ...


@attrs.define
class _State:
    """The file's content: generations by email, signed-out session ids with expiry."""

    generations: dict[str, int] = attrs.field(factory=dict)
    sessions: dict[str, float] = attrs.field(factory=dict)

    @classmethod
    def parse(cls, data: bytes | None) -> _State:
        """Read the file; a missing one is empty, a damaged one is a ``StorageError``."""
        if not data:
            return cls()
        try:
            raw: Any = json.loads(data)
            if isinstance(raw, dict) and raw.get("version") == VERSION:
                return cls(
                    {str(k): int(v) for k, v in raw.get("generations", {}).items()},
                    {str(k): float(v) for k, v in raw.get("sessions", {}).items()},
                )
        except (ValueError, TypeError, AttributeError):
            pass
        # Refuse rather than guess: reading it as empty would revive ended sessions.
        raise StorageError(
            f"The dashboard's sign-out list ({STATE_DIR}/{FILE_NAME} in the data "
            "folder) is unreadable; restore it from a backup, or rotate "
            "IMG_JWT_SIGNING_KEY and delete it to sign everyone out."
        )

    def dump(self) -> bytes:
        body = {"version": VERSION, "generations": self.generations, "sessions": self.sessions}
        return json.dumps(body, sort_keys=True).encode()

    def prune(self, now: float) -> None:
        """Forget sign-outs of sessions that have expired on their own."""
        self.sessions = {sid: until for sid, until in self.sessions.items() if until > now}


@attrs.define
class MemorySignOuts:
    """Sign-outs for one process."""

    now: Callable[[], float] = time.time
    state: _State = attrs.field(factory=_State)

    def generation(self, email: str) -> int:
        return self.state.generations.get(email, 0)

    def is_signed_out(self, session_id: str) -> bool:
        return session_id in self.state.sessions

    def sign_out(self, session_id: str, expires_at: float) -> None:
        self.state.prune(self.now())
        self.state.sessions[session_id] = expires_at

    def sign_out_everywhere(self, email: str) -> None:
        self.state.generations[email] = self.generation(email) + 1


class FileSignOuts:
    """Sign-outs shared through ``directory`` by every process (see the module doc)."""

    def __init__(self, directory: Path, now: Callable[[], float] = time.time) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise storage_error("create the dashboard's sign-out folder", exc) from None
        self._path = directory / FILE_NAME
        self._lock = FileLock(directory / LOCK_NAME)
        self._now = now
        self._seen: tuple[int, int, int] | None = None
        self._state = _State()

    def generation(self, email: str) -> int:
        return self._current().generations.get(email, 0)

    def is_signed_out(self, session_id: str) -> bool:
        return session_id in self._current().sessions

    def sign_out(self, session_id: str, expires_at: float) -> None:
        def change(state: _State) -> None:
            state.sessions[session_id] = expires_at

        self._update(change)

    def sign_out_everywhere(self, email: str) -> None:
        def change(state: _State) -> None:
            state.generations[email] = state.generations.get(email, 0) + 1

        self._update(change)

    def _current(self) -> _State:
        """The file's state, re-read only when it changed since the last look."""
        try:
            info = os.stat(self._path, follow_symlinks=False)
        except FileNotFoundError:
            self._seen, self._state = None, _State()
            return self._state
        seen = (info.st_ino, info.st_size, info.st_mtime_ns)
        if seen != self._seen:
            self._state = _State.parse(read_regular_file(self._path))
            self._seen = seen
        return self._state

    def _update(self, change: Callable[[_State], None]) -> None:
        """Read, change and write back under the lock, so no process loses another's sign-out."""
        try:
            with self._lock:
                state = _State.parse(read_regular_file(self._path))
                state.prune(self._now())
                change(state)
                write_atomic(self._path, state.dump())
                self._seen = None
        except OSError as exc:
            raise storage_error("record the sign-out", exc) from None
