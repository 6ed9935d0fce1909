"""The real clock and id source."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from image_core.ports import Clock, IdSource


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        """Timezone-aware UTC now."""
        return datetime.now(UTC)


class RandomIds:
    """uuid4 from the operating system's random source: unguessable public file names."""

    def new_id(self) -> uuid.UUID:
        """A fresh uuid4."""
        return uuid.uuid4()


_clock: type[Clock] = SystemClock
_ids: type[IdSource] = RandomIds
