"""A real uvicorn server on a free loopback port, in a background thread."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

_PORTS_PER_WORKER = 1500
_FIRST_PORT = 20000
"""Below the kernel's ephemeral range (32768 and up here): the ports clients dial from."""


def _worker_number() -> int:
    """Which pytest-xdist worker this is (``gw3`` is 3); 0 without xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = name.removeprefix("gw")
    return int(digits) % 8 if digits.isdigit() else 0


_turns = itertools.count()


def free_port() -> int:
    """A free loopback port of this test worker's own range, never handed out twice in a row.

    Asking the kernel for port 0 gives an ephemeral port, the same kind every outgoing
    connection takes for its own end: a test that stops a server and starts it again
    on the same port (a restart) could find it taken by a client socket meanwhile, or
    by another worker. Each worker walks its own range below the ephemeral ones instead.
    """
    first = _FIRST_PORT + _worker_number() * _PORTS_PER_WORKER
    for _ in range(_PORTS_PER_WORKER):
        port = first + next(_turns) % _PORTS_PER_WORKER
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free loopback port in this worker's range")


@contextlib.contextmanager
def live_server(app: ASGIApp, port: int | None = None, timeout: float = 15.0) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``http://127.0.0.1:PORT``)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
