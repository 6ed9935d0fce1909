"""Shared helpers for the contract tests: fresh folders and the shipped samples.

The suites themselves live in ``image_core.contracts``; each ``test_*_contract.py``
here subclasses them once per adapter. The samples are re-exported for the
filesystem-specific tests.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from image_core.contracts.samples import (
    COSTS,
    EMAILS,
    GENERATION_LISTS,
    GENERATIONS,
    NOON,
    PNG,
    TIMES,
    make_generation,
    thumbnail,
)

__all__ = [
    "COSTS",
    "EMAILS",
    "GENERATIONS",
    "GENERATION_LISTS",
    "NOON",
    "PNG",
    "TIMES",
    "fresh_dir",
    "make_generation",
    "thumbnail",
]


@contextlib.contextmanager
def fresh_dir() -> Iterator[Path]:
    """An empty temporary folder, removed afterwards (one per test or example)."""
    with tempfile.TemporaryDirectory(prefix="image-mcp-contract-") as folder:
        yield Path(folder)
