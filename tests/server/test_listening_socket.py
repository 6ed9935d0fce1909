"""The socket ``serve`` listens on: connections it accepts send small writes at once.

asyncio turns Nagle's algorithm off only for sockets that name ``IPPROTO_TCP``; a
listener from ``socket.create_server`` does not, and then every MCP answer written in
parts stalled about 40 ms on the client's delayed acknowledgement.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from image_server.__main__ import listen

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def accepted_nodelay(listener: socket.socket) -> int:
    """TCP_NODELAY of a connection accepted by an asyncio server on ``listener``."""
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    async with server:
        host, port = listener.getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_accepted_connections_have_nagle_switched_off(host: str) -> None:
    try:
        listener = listen(host, 0)
    except Exception as exc:  # pragma: no cover - a machine without IPv6 loopback
        if host == "::1":
            pytest.fail(f"IPv6 loopback unavailable: {exc}")
        raise
    assert await accepted_nodelay(listener) == 1


async def test_a_plain_create_server_socket_would_not_which_is_the_bug() -> None:
    """The probe tells the two apart: the standard library's listener gets Nagle on."""
    listener = socket.create_server(("127.0.0.1", 0))
    assert await accepted_nodelay(listener) == 0
