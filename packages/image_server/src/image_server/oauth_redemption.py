"""One-time use of authorization codes and refresh tokens, across processes.

fastmcp's OAuth proxy reads a code (or refresh token), awaits, and only then deletes
it, so requests racing with the same secret all pass the read and all get tokens. The
proxy's state lives in a folder that several server processes may share, so an
in-process lock is not enough: before a redemption goes ahead it must *claim* the
secret by creating a marker file with ``O_CREAT | O_EXCL``, which exactly one caller,
in any process on the same file system, can do.

The marker outlives the redemption:

* redemption succeeded: the proxy has deleted the code or token itself; the marker is
  kept a short while longer (``SPENT_GRACE_SECONDS``) for requests still in flight;
* redemption failed with an error before anything was issued: the marker is removed,
  so a client may retry a refresh after, say, Google was briefly unreachable;
* the process died between claim and the end of the redemption: the marker stays
  until the secret's own expiry, so a half-redeemed secret is dead, never usable again.

Markers are named by a SHA-256 of the secret (never the secret) and hold their expiry
time; ``cull`` removes expired ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final, Literal

import anyio.to_thread
import attrs
from mcp.server.auth.provider import TokenError

from image_server.adapters.atomic_files import write_atomic

__all__ = [
    "LEDGER_FOLDER",
    "MAX_MARKER_SECONDS",
    "SPENT_GRACE_SECONDS",
    "Claim",
    "RedemptionLedger",
    "SecretKind",
]

#: The ledger's sub-folder of the OAuth state folder.
LEDGER_FOLDER: Final = "redeemed"
#: How long a marker stays after a successful redemption.
SPENT_GRACE_SECONDS: Final = 3600.0
#: Upper bound for a marker whose expiry cannot be read (or a secret without one).
MAX_MARKER_SECONDS: Final = 366 * 24 * 3600.0
#: A half-written replacement file older than this is debris from a crash.
_STALE_TEMP_SECONDS: Final = 3600.0
_TEMP_SUFFIX: Final = ".tmp"

log = logging.getLogger(__name__)

SecretKind = Literal["code", "refresh"]
_WHAT: Final[dict[SecretKind, str]] = {
    "code": "authorization code",
    "refresh": "refresh token",
}


@attrs.define
class Claim:
    """The exclusive right to redeem one secret, held by one request."""

    path: Path
    clock: Callable[[], float]

    def spend(self) -> None:
        """The redemption succeeded: keep the marker only a grace period longer.

        Written aside and renamed over the marker, so the marker never disappears.
        """
        _write_expiry(self.path, self.clock() + SPENT_GRACE_SECONDS)

    def release(self) -> None:
        """The redemption failed before issuing anything: the secret may be tried again."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@attrs.define
class RedemptionLedger:
    """Marker files under ``directory``, one per secret being or recently redeemed."""

    directory: Path
    clock: Callable[[], float] = time.time

    def claim(self, kind: SecretKind, secret: str, expires_at: float | None) -> Claim | None:
        """The claim on ``secret``, or ``None`` if another request holds or held it."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / f"{kind}-{hashlib.sha256(secret.encode()).hexdigest()}"
        now = self.clock()
        until = expires_at if expires_at is not None else now + MAX_MARKER_SECONDS
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return None
        with os.fdopen(fd, "w", encoding="ascii") as marker:
            # At least a grace period, so racing requests that loaded the secret just
            # before it expired still meet the marker.
            marker.write(f"{max(until, now + SPENT_GRACE_SECONDS):.0f}\n")
        return Claim(path, self.clock)

    @contextlib.asynccontextmanager
    async def redeeming(
        self, kind: SecretKind, secret: str, expires_at: float | None
    ) -> AsyncIterator[None]:
        """Run the block as the only redemption of ``secret``, or refuse with
        ``invalid_grant`` (what a client gets for a code or token already spent)."""
        claim = await anyio.to_thread.run_sync(self.claim, kind, secret, expires_at)
        if claim is None:
            raise TokenError("invalid_grant", f"This {_WHAT[kind]} was already used.")
        try:
            yield
        except Exception:
            await _settle(claim.release)
            raise
        # Tokens are issued by now: failing to shorten the marker must not lose them
        # (the marker then simply stays until the secret's own expiry).
        await _settle(claim.spend)

    def cull(self) -> int:
        """Delete expired markers (and crash debris); returns how many went."""
        if not self.directory.is_dir():
            return 0
        now = self.clock()
        removed = 0
        for path in self.directory.iterdir():
            try:
                if _expired(path, now):
                    path.unlink()
                    removed += 1
            except OSError:  # gone meanwhile, or not a marker at all (a folder)
                continue
        return removed


async def _settle(step: Callable[[], None]) -> None:
    """Run a claim's last step; a file-system error there only leaves the marker."""
    try:
        await anyio.to_thread.run_sync(step)
    except OSError:
        log.warning("could not update a redemption marker", exc_info=True)


def _expired(path: Path, now: float) -> bool:
    modified = path.stat().st_mtime
    if path.name.endswith(_TEMP_SUFFIX):
        return modified + _STALE_TEMP_SECONDS < now
    try:
        until = float(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        # Empty or damaged (e.g. a crash mid-write): keep it as long as any secret lives.
        until = modified + MAX_MARKER_SECONDS
    return until <= now


def _write_expiry(path: Path, until: float) -> None:
    """Replace the marker's expiry; it never disappears meanwhile (write aside, rename)."""
    write_atomic(path, f"{until:.0f}\n".encode("ascii"), durable=False)
