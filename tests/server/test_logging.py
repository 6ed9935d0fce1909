"""Structured logs: JSON lines, secrets scrubbed, no OAuth codes in access logs."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from image_server.logging_setup import REDACTED
from tests.support.logs import json_lines, json_logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    with json_logs("INFO", ["super-secret-key-1", None, "x"]) as stream:
        yield stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return json_lines(stream)


def test_records_are_single_json_objects_with_extra_fields(captured: io.StringIO) -> None:
    """Fields passed as extra become top-level keys."""
    logging.getLogger("image_server.generation").info(
        "stored", extra={"id": "abc", "cost_usd": "0.067"}
    )
    (record,) = lines(captured)
    assert record["msg"] == "stored"
    assert record["id"] == "abc"
    assert record["level"] == "INFO"
    assert record["logger"] == "image_server.generation"


def test_secret_values_are_scrubbed_from_messages_fields_and_tracebacks(
    captured: io.StringIO,
) -> None:
    """Even a library that prints the key cannot leak it."""
    log = logging.getLogger("somelib")
    log.warning(
        "calling https://api?key=%s", "super-secret-key-1", extra={"url": "super-secret-key-1"}
    )
    try:
        raise RuntimeError("header x-goog-api-key: super-secret-key-1")
    except RuntimeError:
        log.exception("boom")
    text = captured.getvalue()
    assert "super-secret-key-1" not in text
    assert REDACTED in text


def test_short_values_are_not_treated_as_secrets(captured: io.StringIO) -> None:
    """A one-letter 'secret' would redact half of every line."""
    logging.getLogger("x").info("xxx")
    assert lines(captured)[0]["msg"] == "xxx"


def test_access_log_paths_lose_their_query_strings(captured: io.StringIO) -> None:
    """OAuth callbacks carry one-time codes in the query."""
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5",
        "GET",
        "/auth/callback?code=abc&state=s",
        "1.1",
        302,
    )
    (record,) = lines(captured)
    assert "code=abc" not in str(record["msg"])
    assert "/auth/callback" in str(record["msg"])
