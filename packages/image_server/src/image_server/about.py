"""The product's name and version, for ``--version``, the start-up line and ``serverInfo``.

The version is the installed ``image-server`` distribution's, read from its metadata, so
a release bumps one number in ``pyproject.toml`` and nothing else.
"""

from __future__ import annotations

import importlib.metadata
from typing import Final

PRODUCT_NAME: Final = "image-mcp"
DISTRIBUTION: Final = "image-server"


def product_version() -> str:
    """The installed version, e.g. ``0.1.0``."""
    return importlib.metadata.version(DISTRIBUTION)
