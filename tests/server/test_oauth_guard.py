"""The OAuth write routes answer 413/503 in words a client understands, not a bare 500."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from image_server.oauth_budget import MAX_BODY_BYTES, guard_routes
from image_server.oauth_state import StateBudget, StateFileStore


def app_whose_disk_fails(code: int) -> Starlette:
    """/register reads its body, then its write fails with ``code`` (a full disk)."""

    async def register(request: Request) -> Response:
        body = await request.body()
        if body == b"write":
            raise OSError(code, "write failed")
        return JSONResponse({"read": len(body)}, status_code=201)

    return Starlette(routes=guard_routes([Route("/register", register, methods=["POST"])]))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_a_503_with_retry_after(code: int) -> None:
    with TestClient(app_whose_disk_fails(code)) as client:
        response = client.post("/register", content=b"write")

    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["retry-after"]) > 0


def test_other_write_errors_stay_server_errors() -> None:
    with TestClient(app_whose_disk_fails(errno.EACCES), raise_server_exceptions=False) as client:
        assert client.post("/register", content=b"write").status_code == 500


def test_a_body_over_the_limit_is_refused_declared_or_streamed() -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 1000 + 2):
            yield b"x" * 1000

    with TestClient(app_whose_disk_fails(errno.ENOSPC)) as client:
        declared = client.post("/register", content=b"x" * (MAX_BODY_BYTES + 1))
        streamed = client.post("/register", content=chunks())
        small = client.post("/register", content=b"x" * 100)

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert small.status_code == 201


def test_leftover_temporary_files_are_removed_at_start(tmp_path: Path) -> None:
    """A crash (or a full disk) mid-write leaves ``*.tmp`` files: start-up clears them."""
    collection = tmp_path / "S_mcp_oauth_transactions-6f3deda7"
    collection.mkdir()
    leftover = collection / "tmpab12cd.tmp"
    leftover.write_text("half", encoding="utf-8")

    StateFileStore(tmp_path, StateBudget.for_proxy(10))

    assert not leftover.exists()
