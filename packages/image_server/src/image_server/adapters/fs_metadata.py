"""Generation records: JSON sidecars are the truth, a SQLite index answers the queries.

Two rooms, composed here: ``fs_sidecars`` keeps each record in ``{uuid}.json`` next to
its PNG and is always what a record is read from; ``sqlite_index`` keeps the disposable
``index.sqlite3`` that only finds and sums them. Indexing parses only the indexed fields
(``RecordCodec.load_indexed_fields``), in worker processes for a large rebuild, which
keeps a rebuild of 100k sidecars fast; a sidecar damaged elsewhere is skipped with a
warning when it is read.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from datetime import date
from pathlib import Path
from types import TracebackType

from image_core.budgets import Period
from image_core.domain import DailySpend, GalleryPage, Generation, UsageReport, prompt_matches
from image_core.ledger import CostRow, PersonSpend, RebuildProgress
from image_core.names import is_image_id
from image_core.ports import MetadataRepository
from image_core.serialization import IndexedFields, RecordCodec
from image_server.adapters.atomic_files import storage_error
from image_server.adapters.fs_sidecars import PROCESSES_FROM, SidecarFiles
from image_server.adapters.sqlite_index import BACKGROUND_REBUILD_FROM, INDEX_NAME, SqliteIndex

__all__ = ["INDEX_NAME", "FilesystemMetadataRepository"]


class FilesystemMetadataRepository:
    """``MetadataRepository`` over sidecar files and a SQLite index; call ``close()``."""

    def __init__(
        self,
        root: Path,
        *,
        background_rebuild_from: int = BACKGROUND_REBUILD_FROM,
        parse_processes: int | None = None,
        processes_from: int = PROCESSES_FROM,
    ) -> None:
        """A rebuild of more than ``background_rebuild_from`` records runs in the background;
        from ``processes_from`` on, ``parse_processes`` worker processes parse the sidecars
        (``None``: one per usable CPU)."""
        self._sidecars = SidecarFiles(
            root, RecordCodec(), processes=parse_processes, processes_from=processes_from
        )
        try:
            root.mkdir(parents=True, exist_ok=True)
            self._index = SqliteIndex(root, self._sidecars, background_from=background_rebuild_from)
        except OSError as exc:
            raise storage_error("open the generation records", exc) from exc

    def close(self) -> None:
        """Close the index connection (idempotent)."""
        self._index.close()

    def __enter__(self) -> FilesystemMetadataRepository:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def add(self, generation: Generation) -> None:
        """Write the sidecar (never over an existing one), then index it; undo on failure."""
        self._sidecars.write_new(generation)
        try:
            self._index.add(_indexed(generation))
        except BaseException:
            self._sidecars.remove(generation.id)
            raise

    def replace(self, generation: Generation) -> None:
        """Overwrite the sidecar (the truth), then its index row."""
        self._sidecars.overwrite(generation)
        self._index.add(_indexed(generation))

    def unsettled(self) -> list[Generation]:
        """Records still rendering; an index row behind its sidecar is brought in step.

        During a background rebuild: those indexed so far (start-up does not wait for
        the rest; one the rebuild finds later is settled at the next start).
        """
        found: list[Generation] = []
        for id_text in self._index.rendering():
            generation = self._sidecars.load(id_text)
            if generation is None:
                continue
            if generation.is_settled:  # the sidecar was replaced, its row not yet
                self._index.add(_indexed(generation))
            else:
                found.append(generation)
        return found

    def remove(self, generation_id: uuid.UUID) -> None:
        """Remove the sidecar, then its index row."""
        self._sidecars.remove(generation_id)
        self._index.remove(str(generation_id))

    def get(self, generation_id: uuid.UUID) -> Generation | None:
        """The record read from its sidecar; ``None`` when missing or unreadable."""
        if not is_image_id(generation_id):
            return None
        return self._sidecars.load(str(generation_id))

    def page_for_user(
        self, email: str, offset: int, limit: int, containing: str | None = None
    ) -> GalleryPage:
        """A page of one person's generations, newest first, ties broken by id."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must not be negative")
        if containing is not None:
            return self._matching_page(email, offset, limit, containing)
        total, ids = self._index.page(email, offset, limit)
        items = tuple(g for id_text in ids if (g := self._sidecars.load(id_text)) is not None)
        return GalleryPage(items, total, offset, limit)

    def _matching_page(self, email: str, offset: int, limit: int, words: str) -> GalleryPage:
        """The prompts are searched in the index; only the page's records are read."""
        matching = [i for i, prompt in self._index.prompts(email) if prompt_matches(prompt, words)]
        page = matching[offset : offset + limit]
        items = tuple(g for id_text in page if (g := self._sidecars.load(id_text)) is not None)
        return GalleryPage(items, len(matching), offset, limit)

    def usage(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> UsageReport:
        """Image count and exact cost per person, largest spend first, then by email."""
        return self._index.usage(emails, period)

    def daily_spend(self, since: date, emails: Collection[str] | None = None) -> list[DailySpend]:
        """Spend per UTC day and person from ``since`` on, oldest day first."""
        return self._index.daily_spend(since, emails)

    def users(self) -> list[str]:
        """Every owner with at least one generation, sorted."""
        return self._index.users()

    def spend(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> list[PersonSpend]:
        """``usage`` with each person's list-price figure, from the index alone."""
        return self._index.spend(emails, period)

    def cost_rows(
        self, emails: Collection[str] | None = None, period: Period | None = None
    ) -> Iterator[CostRow]:
        """Settled records of the period, oldest first, from the index alone (no sidecar)."""
        return self._index.cost_rows(emails, period)

    def rebuilding(self) -> RebuildProgress | None:
        """How far a background rebuild of the index is, while one runs."""
        return self._index.rebuilding()

    def wait_until_built(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild to end; whether none is running any more."""
        return self._index.wait_until_built(timeout)

    def rebuild_index(self) -> int:
        """Rebuild the whole index from the sidecars now (after editing them by hand)."""
        return self._index.rebuild()


def _indexed(generation: Generation) -> IndexedFields:
    return IndexedFields.of(generation)


_: type[MetadataRepository] = FilesystemMetadataRepository
