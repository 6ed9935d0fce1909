"""Capture what the server logs as the JSON lines a deployment would see."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from image_server.logging_setup import configure_logging


@contextlib.contextmanager
def json_logs(level: str = "INFO", secrets: Iterable[str | None] = ()) -> Iterator[io.StringIO]:
    """``configure_logging`` into a buffer for the block; the old handlers come back after."""
    stream = io.StringIO()
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    configure_logging(level, secrets, stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in before[0]:
            root.addHandler(handler)
        root.setLevel(before[1])
        logging.getLogger("uvicorn.access").filters.clear()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line written so far, parsed."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]
