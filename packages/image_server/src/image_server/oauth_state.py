"""The OAuth proxy's state folder: bounded in size, healed at start, leases for clients.

fastmcp keeps its OAuth state (client registrations, pending logins, consent tokens,
codes, tokens) as one JSON file per entry in a ``FileTreeStore``. Anyone may register
a client or start a login, so without bounds a stranger fills the data volume. This
module holds the store the proxy gets instead:

* every collection a stranger can write has a fixed number of entries; the oldest
  pending entries make room for new ones, and a registration that would push out a
  client in use is refused (``StateBudgetExceeded``, answered 503);
* entries a stranger can write have a size limit;
* a registration expires a day after it was made unless a token is issued for it;
  each token issued extends it to the idle lease (``ClientLeases``);
* at start-up, collection metadata that is damaged or points at the folder's old
  absolute path (a restored or moved ``IMG_ROOT``) is rebuilt, unreadable entries and
  half-written temporary files are removed, with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, SupportsFloat

import anyio
import attrs
from key_value.aio._utils.managed_entry import ManagedEntry
from key_value.aio._utils.time_to_live import now
from key_value.aio.protocols.key_value import AsyncKeyValue
from key_value.aio.stores.filetree import (
    FileTreeStore,
    FileTreeV1CollectionSanitizationStrategy,
    FileTreeV1KeySanitizationStrategy,
)
from key_value.aio.wrappers.base import BaseWrapper
from typing_extensions import override

from image_server.adapters.atomic_files import write_atomic

log = logging.getLogger(__name__)

#: fastmcp's collection names (``OAuthProxy.__init__``).
CLIENTS: Final = "mcp-oauth-proxy-clients"
TRANSACTIONS: Final = "mcp-oauth-transactions"
CONSENT_TOKENS: Final = "mcp-consent-csrf-tokens"
CODES: Final = "mcp-authorization-codes"
UPSTREAM_TOKENS: Final = "mcp-upstream-tokens"

#: Pending logins, consent-page tokens and unredeemed codes each: the oldest go first.
MAX_PENDING: Final = 500
#: The largest entry a stranger can make the server write (a registration is ~1.7 KB).
MAX_ENTRY_BYTES: Final = 8192
#: How long a registration lives before any token is issued for it.
UNUSED_CLIENT_SECONDS: Final = 24 * 3600

_INFO_SUFFIX: Final = "-info.json"


class StateBudgetExceeded(Exception):
    """A write would take the OAuth state over its budget; nothing was written."""


@attrs.frozen
class StateBudget:
    """Per-collection limits; collections not named here are unbounded (login needed)."""

    max_entries: Mapping[str, int]
    #: Entries still valid this many seconds from now are in use and never pushed out.
    keep_if_valid_beyond: Mapping[str, float]
    #: The lifetime an entry gets when fastmcp stores it without one.
    default_ttl: Mapping[str, float]
    #: Collections whose entries must stay under ``MAX_ENTRY_BYTES``.
    size_limited: frozenset[str]
    #: Short-lived collections written without fsync: a crash only restarts a sign-in,
    #: and a flood of them does not queue disk flushes next to the images.
    ephemeral: frozenset[str] = frozenset()

    @classmethod
    def for_proxy(cls, max_clients: int) -> StateBudget:
        return cls(
            max_entries={
                CLIENTS: max_clients,
                TRANSACTIONS: MAX_PENDING,
                CONSENT_TOKENS: MAX_PENDING,
                CODES: MAX_PENDING,
            },
            keep_if_valid_beyond={CLIENTS: UNUSED_CLIENT_SECONDS},
            default_ttl={CLIENTS: UNUSED_CLIENT_SECONDS},
            size_limited=frozenset({CLIENTS, TRANSACTIONS, CONSENT_TOKENS}),
            ephemeral=frozenset({TRANSACTIONS, CONSENT_TOKENS}),
        )


class StateFileStore(FileTreeStore):
    """fastmcp's file store under ``directory``, within ``budget``, healed on opening.

    Each bounded collection keeps an in-memory index of its entries' expiry times
    (rebuilt from disk at start), so making room never lists the directory.
    """

    def __init__(self, directory: Path, budget: StateBudget) -> None:
        self._root = directory.resolve()
        self._budget = budget
        #: sanitized collection name -> file stem -> expiry (unix seconds, inf = never)
        self._index: dict[str, dict[str, float]] = {}
        self.heal()
        super().__init__(
            data_directory=self._root,
            key_sanitization_strategy=FileTreeV1KeySanitizationStrategy(self._root),
            collection_sanitization_strategy=FileTreeV1CollectionSanitizationStrategy(self._root),
        )

    # ------------------------------------------------------------------ healing

    def heal(self) -> None:
        """Repair what would otherwise fail every request: run once, at start-up.

        Metadata that is unreadable or names another folder is removed (fastmcp writes
        it anew, pointing here); entries keep working. Unreadable entries are removed:
        the connectors they belonged to sign in again. Expired entries go as well.
        """
        stale_tmp = [p for p in self._root.rglob("*.tmp") if p.is_file()]
        for path in stale_tmp:
            path.unlink(missing_ok=True)
        for info in sorted(self._root.glob(f"*{_INFO_SUFFIX}")):
            if not self._info_is_sound(info):
                info.unlink(missing_ok=True)
                log.warning(
                    "OAuth state: rebuilt %s, which was damaged or named another folder "
                    "(was IMG_ROOT moved or restored?); connectors keep working",
                    info.name,
                    extra={"event": "oauth_state_healed"},
                )
        for directory in sorted(p for p in self._root.iterdir() if p.is_dir()):
            damaged = self._index_collection(directory)
            if damaged:
                log.warning(
                    "OAuth state: removed %d unreadable entries from %s; the connectors "
                    "they belonged to must reconnect",
                    damaged,
                    directory.name,
                    extra={"event": "oauth_state_healed"},
                )

    def _info_is_sound(self, info: Path) -> bool:
        try:
            data = json.loads(info.read_text(encoding="utf-8"))
            datetime.fromisoformat(data["created_at"])
            return (
                isinstance(data["collection"], str)
                and isinstance(data["version"], int)
                and Path(data["directory"]) == self._root / info.name[: -len(_INFO_SUFFIX)]
            )
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def _index_collection(self, directory: Path) -> int:
        """Index ``directory``'s live entries; remove expired and unreadable ones."""
        index = self._index.setdefault(directory.name, {})
        damaged = 0
        now = time.time()
        for path in directory.glob("*.json"):
            if not path.is_file():
                continue
            try:
                expires = _expiry(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                damaged += 1
                path.unlink(missing_ok=True)
                continue
            if expires <= now:
                path.unlink(missing_ok=True)
            else:
                index[path.stem] = expires
        return damaged

    # ------------------------------------------------------------------ budget

    @override
    async def _put_managed_entry(
        self, *, key: str, collection: str, managed_entry: ManagedEntry
    ) -> None:
        budget = self._budget
        if managed_entry.expires_at is None and collection in budget.default_ttl:
            managed_entry.expires_at = (managed_entry.created_at or now()) + timedelta(
                seconds=budget.default_ttl[collection]
            )
        text = self._serialization_adapter.dump_json(entry=managed_entry)
        if collection in budget.size_limited and len(text) > MAX_ENTRY_BYTES:
            msg = f"an OAuth entry of {len(text)} bytes is over the {MAX_ENTRY_BYTES}-byte limit"
            raise StateBudgetExceeded(msg)
        name, stem = self._names(collection, key)
        index = self._index.setdefault(name, {})
        cap = budget.max_entries.get(collection)
        if cap is not None and stem not in index:
            self._make_room(name, index, cap, budget.keep_if_valid_beyond.get(collection))
        index[stem] = _timestamp(managed_entry.expires_at)  # reserved before the write
        try:
            if collection in budget.ephemeral:
                write_atomic(self._path(name, stem), text.encode(), durable=False)
            else:
                await anyio.to_thread.run_sync(write_atomic, self._path(name, stem), text.encode())
        except BaseException:
            index.pop(stem, None)
            raise

    @override
    async def _get_managed_entry(self, *, key: str, collection: str) -> ManagedEntry | None:
        # One thread hop per read; fastmcp's store takes several (open, read, close).
        path = self._path(*self._names(collection, key))
        try:
            text = await anyio.to_thread.run_sync(path.read_text)
        except FileNotFoundError:
            return None
        return self._serialization_adapter.load_json(json_str=text)

    def _path(self, name: str, stem: str) -> Path:
        """The file of an entry; sanitized names cannot leave the state folder."""
        if not (name.isprintable() and stem.isprintable()) or "/" in name + stem or "." in name:
            msg = f"refusing an OAuth state path outside {self._root}"
            raise ValueError(msg)
        return self._root / name / f"{stem}.json"

    def _names(self, collection: str, key: str) -> tuple[str, str]:
        """The directory and file stem of an entry, as ``FileTreeStore`` names them."""
        return (
            self._collection_sanitization_strategy.sanitize(value=collection),
            self._key_sanitization_strategy.sanitize(value=key),
        )

    def _make_room(
        self, name: str, index: dict[str, float], cap: int, keep_beyond: float | None
    ) -> None:
        """Remove the entries closest to expiry until one more fits; or refuse."""
        now = time.time()
        while len(index) >= cap:
            victim = min(index, key=index.__getitem__)  # the first to expire
            if keep_beyond is not None and index[victim] > now + keep_beyond:
                msg = (
                    f"all {cap} OAuth client registrations are in use; "
                    "raise IMG_OAUTH_MAX_CLIENTS or wait for idle ones to expire"
                )
                raise StateBudgetExceeded(msg)
            self._remove(name, index, victim)

    def _remove(self, name: str, index: dict[str, float], stem: str) -> None:
        (self._root / name / f"{stem}.json").unlink(missing_ok=True)
        index.pop(stem, None)

    @override
    async def _delete_managed_entry(self, *, key: str, collection: str) -> bool:
        deleted = await super()._delete_managed_entry(key=key, collection=collection)
        name, stem = self._names(collection, key)
        self._index.get(name, {}).pop(stem, None)
        return deleted

    @override
    async def _cull(self) -> None:
        await super()._cull()
        now = time.time()
        for index in self._index.values():
            for stem in [s for s, expires in index.items() if expires <= now]:
                del index[stem]

    def entry_count(self, collection: str) -> int:
        """How many live entries ``collection`` holds (for tests and diagnostics)."""
        return len(self._index.get(self._names(collection, "")[0], {}))


class ClientLeases(BaseWrapper):
    """Extends a client's registration each time a token is issued for it.

    fastmcp stores the upstream token set (which names the client) on every code
    exchange and refresh; that write is the sign of a client in use.
    """

    def __init__(self, key_value: AsyncKeyValue, *, idle_seconds: float) -> None:
        self.key_value = key_value
        self._idle_seconds = idle_seconds

    @override
    async def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        collection: str | None = None,
        ttl: SupportsFloat | None = None,
    ) -> None:
        await self.key_value.put(key=key, value=value, collection=collection, ttl=ttl)
        client_id = value.get("client_id") if collection == UPSTREAM_TOKENS else None
        if isinstance(client_id, str) and client_id:
            client = await self.key_value.get(key=client_id, collection=CLIENTS)
            if client is not None:
                await self.key_value.put(
                    key=client_id, value=client, collection=CLIENTS, ttl=self._idle_seconds
                )


def _expiry(data: Any) -> float:
    """The expiry of a stored entry's JSON (inf if none); ``ValueError`` if unreadable."""
    if not isinstance(data, dict) or not isinstance(data.get("value"), (str, dict)):
        raise ValueError("not a stored entry")  # noqa: TRY004 (one "unreadable" class)
    expires_at = data.get("expires_at")
    if expires_at is None:
        return math.inf
    return datetime.fromisoformat(str(expires_at)).timestamp()


def _timestamp(moment: datetime | None) -> float:
    return math.inf if moment is None else moment.timestamp()
