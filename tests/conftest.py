"""Suite-wide guards: tests may reach loopback only, so no test can call a real Google API."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None})


def _is_loopback(host: object) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    return isinstance(host, str) and (host.startswith("127.") or host.endswith(".localhost"))


@pytest.fixture(autouse=True, scope="session")
def _loopback_only_network() -> Iterator[None]:
    """Name resolution of anything but loopback fails loudly inside the test process."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            raise OSError(f"tests may not reach {host!r}: only loopback is allowed")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = guarded
    try:
        yield
    finally:
        socket.getaddrinfo = real


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop uvicorn and fastmcp use."""
    return "asyncio"
