"""The redemption ledger: one claim per secret, dead after a crash, culled when expired."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from mcp.server.auth.provider import TokenError

from image_server.oauth_redemption import (
    MAX_MARKER_SECONDS,
    SPENT_GRACE_SECONDS,
    RedemptionLedger,
)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "redeemed"


def test_only_one_of_many_threads_claims_a_secret(folder: Path) -> None:
    """Threads stand in for processes: the claim is a file-system primitive."""
    ledgers = [RedemptionLedger(folder) for _ in range(16)]
    barrier = threading.Barrier(len(ledgers))
    won: list[bool] = []

    def attempt(ledger: RedemptionLedger) -> None:
        barrier.wait()
        won.append(ledger.claim("refresh", "the-token", None) is not None)

    threads = [threading.Thread(target=attempt, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert sorted(won) == [False] * 15 + [True]


def test_a_claim_held_by_a_process_that_died_keeps_the_secret_dead(
    folder: Path, clock: Clock
) -> None:
    """Claimed, never spent nor released (a crash): a restarted ledger still refuses."""
    assert RedemptionLedger(folder, clock).claim("code", "c", clock.now + 300) is not None

    restarted = RedemptionLedger(folder, clock)

    assert restarted.claim("code", "c", clock.now + 300) is None
    assert restarted.cull() == 0
    assert restarted.claim("code", "c", clock.now + 300) is None


def test_a_released_claim_can_be_taken_again(folder: Path, clock: Clock) -> None:
    """A redemption that failed before issuing anything does not burn the secret."""
    ledger = RedemptionLedger(folder, clock)
    claim = ledger.claim("refresh", "r", None)
    assert claim is not None

    claim.release()

    assert ledger.claim("refresh", "r", None) is not None


def test_kinds_and_secrets_do_not_collide(folder: Path, clock: Clock) -> None:
    ledger = RedemptionLedger(folder, clock)

    assert ledger.claim("code", "same", None) is not None
    assert ledger.claim("refresh", "same", None) is not None
    assert ledger.claim("code", "other", None) is not None


def test_markers_name_no_secret_and_are_private(folder: Path, clock: Clock) -> None:
    ledger = RedemptionLedger(folder, clock)
    assert ledger.claim("refresh", "eyJ-secret-refresh-token", None) is not None

    [marker] = folder.iterdir()

    assert "secret" not in marker.name
    assert b"secret" not in marker.read_bytes()
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_cull_keeps_live_markers_and_removes_expired_ones(folder: Path, clock: Clock) -> None:
    """A crashed claim lives as long as its secret; a spent one a grace period."""
    month = 30 * 24 * 3600.0
    ledger = RedemptionLedger(folder, clock)
    assert ledger.claim("refresh", "crashed", clock.now + month) is not None
    spent = ledger.claim("refresh", "spent", clock.now + month)
    assert spent is not None
    spent.spend()

    clock.now += SPENT_GRACE_SECONDS + 1
    assert ledger.cull() == 1
    assert ledger.claim("refresh", "spent", None) is not None  # grace over, culled
    assert ledger.claim("refresh", "crashed", None) is None  # still dead

    clock.now += month
    assert ledger.cull() == 1  # expired with its token (the re-claimed one is younger)
    assert ledger.claim("refresh", "crashed", None) is not None


def test_a_damaged_marker_still_counts_as_claimed_for_the_longest_lifetime(
    folder: Path, clock: Clock
) -> None:
    ledger = RedemptionLedger(folder, clock)
    claim = ledger.claim("code", "c", clock.now + 60)
    assert claim is not None
    claim.path.write_text("")  # e.g. a crash between create and write

    clock.now += SPENT_GRACE_SECONDS * 10
    assert ledger.cull() == 0
    assert ledger.claim("code", "c", None) is None


def test_cull_on_a_missing_folder_is_a_no_op(folder: Path) -> None:
    assert RedemptionLedger(folder).cull() == 0


def test_markers_never_outlast_the_longest_lifetime(folder: Path, clock: Clock) -> None:
    """A secret without an expiry gets the upper bound, not forever."""
    ledger = RedemptionLedger(folder, clock)
    assert ledger.claim("refresh", "no-expiry", None) is not None

    clock.now += MAX_MARKER_SECONDS + 1

    assert ledger.cull() == 1


@pytest.mark.anyio
async def test_redeeming_refuses_a_second_redemption_with_invalid_grant(
    folder: Path, clock: Clock
) -> None:
    ledger = RedemptionLedger(folder, clock)
    async with ledger.redeeming("code", "c", clock.now + 300):
        with pytest.raises(TokenError) as refused:
            async with ledger.redeeming("code", "c", clock.now + 300):
                pytest.fail("a second redemption ran")

    assert refused.value.error == "invalid_grant"
    with pytest.raises(TokenError):
        async with ledger.redeeming("code", "c", clock.now + 300):
            pytest.fail("a spent code was redeemed again")


@pytest.mark.anyio
async def test_redeeming_releases_the_claim_when_the_redemption_fails(
    folder: Path, clock: Clock
) -> None:
    """E.g. Google briefly unreachable during a refresh: the client may retry."""
    ledger = RedemptionLedger(folder, clock)
    with pytest.raises(ConnectionError):
        async with ledger.redeeming("refresh", "r", None):
            raise ConnectionError

    async with ledger.redeeming("refresh", "r", None):
        pass


def block_the_marker(folder: Path) -> Path:
    """Put a folder where the only marker is: nothing can be renamed over it."""
    [marker] = folder.iterdir()
    marker.unlink()
    (marker / "in-the-way").mkdir(parents=True)
    return marker


def names(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir()]


@pytest.mark.anyio
async def test_a_marker_that_cannot_be_updated_does_not_undo_a_redemption(
    folder: Path, clock: Clock
) -> None:
    """Tokens are already issued when the marker is shortened; an error there is logged,
    the redemption stands and the secret stays spent."""
    ledger = RedemptionLedger(folder, clock)
    async with ledger.redeeming("code", "c", None):
        marker = block_the_marker(folder)

    assert ledger.claim("code", "c", None) is None
    assert names(folder) == [marker.name]  # no debris left
    assert ledger.cull() == 0  # and the odd entry does not stop the sweep
