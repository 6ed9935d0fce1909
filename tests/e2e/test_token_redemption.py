"""One authorization code, one refresh token: exactly one redemption, however many race.

A stolen refresh token sent many times at once must not fork into many token families,
neither inside one server process nor across processes sharing the state folder.
Everything runs over loopback against the real OAuth proxy and the fake Google.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest

from image_server.oauth_redemption import LEDGER_FOLDER, RedemptionLedger
from tests.e2e.oauth_client import (
    DEFAULT_REDIRECT_URI,
    Discovery,
    TokenSet,
    authorization_url,
    discover,
    follow_browser,
    obtain_token,
    pkce_pair,
    refresh,
    register_client,
)
from tests.e2e.test_oauth_flow import CLIENT_ID, CLIENT_SECRET, EMAIL, serve, whoami
from tests.fakes.fake_google import FakeGoogle
from tests.support.live_server import free_port

RACERS = 8
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        fake.next_email = EMAIL
        yield fake


async def fresh_code(mcp_url: str, http: httpx2.AsyncClient) -> tuple[Discovery, dict[str, str]]:
    """Walk the flow up to the authorization code; return the /token form for it."""
    discovery = await discover(mcp_url, http=http)
    client_id = await register_client(discovery, DEFAULT_REDIRECT_URI, http=http)
    verifier, challenge = pkce_pair()
    url = authorization_url(
        discovery,
        client_id=client_id,
        redirect_uri=DEFAULT_REDIRECT_URI,
        state="s",
        code_challenge=challenge,
    )
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as browser:
        callback = await follow_browser(url, redirect_uri=DEFAULT_REDIRECT_URI, browser=browser)
    form = {
        "grant_type": "authorization_code",
        "code": callback["code"],
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "client_id": client_id,
        "code_verifier": verifier,
        "resource": discovery.resource,
    }
    return discovery, form


def refresh_form(token: TokenSet) -> dict[str, str]:
    assert token.refresh_token is not None
    return {
        "grant_type": "refresh_token",
        "refresh_token": token.refresh_token,
        "client_id": token.client_id,
        "resource": token.resource,
    }


async def race(token_endpoints: list[str], form: dict[str, str]) -> list[httpx2.Response]:
    """Send the same /token form ``RACERS`` times at once, spread over the endpoints."""
    answers: list[httpx2.Response] = []
    start = anyio.Event()

    async def one(endpoint: str, http: httpx2.AsyncClient) -> None:
        await start.wait()
        answers.append(await http.post(endpoint, data=form))

    limits = httpx2.Limits(max_connections=RACERS * 2)
    async with (
        httpx2.AsyncClient(timeout=20, limits=limits) as http,
        anyio.create_task_group() as tg,
    ):
        for i in range(RACERS):
            tg.start_soon(one, token_endpoints[i % len(token_endpoints)], http)
        await anyio.sleep(0.05)
        start.set()
    return answers


def refusing_ports(answers: list[httpx2.Response]) -> set[int | None]:
    """The ports of the server processes that refused a redemption."""
    return {a.request.url.port for a in answers if a.status_code != 200}


def outcome(answers: list[httpx2.Response]) -> tuple[list[httpx2.Response], list[str]]:
    """The successes, and the error code of every refusal."""
    won = [a for a in answers if a.status_code == 200]
    errors = [str(a.json().get("error")) for a in answers if a.status_code != 200]
    return won, errors


# ----------------------------------------------------------------- one process


@pytest.mark.anyio
async def test_one_code_redeemed_eight_times_at_once_succeeds_once(
    google: FakeGoogle, tmp_path: Path
) -> None:
    with serve(google, tmp_path / "state") as server:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
            discovery, form = await fresh_code(server.mcp_url, http)

        won, errors = outcome(await race([discovery.token_endpoint], form))

        assert len(won) == 1, [a.text for a in won]
        assert errors == ["invalid_grant"] * (RACERS - 1)
        assert await whoami(server.mcp_url, won[0].json()["access_token"]) == EMAIL


@pytest.mark.anyio
async def test_one_refresh_token_redeemed_eight_times_at_once_succeeds_once(
    google: FakeGoogle, tmp_path: Path
) -> None:
    with serve(google, tmp_path / "state") as server:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
            token = await obtain_token(server.mcp_url, http=http)

        won, errors = outcome(await race([token.token_endpoint], refresh_form(token)))

        assert len(won) == 1, [a.text for a in won]
        assert errors == ["invalid_grant"] * (RACERS - 1)
        renewed = won[0].json()
        assert await whoami(server.mcp_url, renewed["access_token"]) == EMAIL
        # The one new family lives on; the spent token stays spent.
        async with httpx2.AsyncClient(timeout=10) as http:
            again = await refresh(
                TokenSet(
                    access_token=renewed["access_token"],
                    refresh_token=renewed["refresh_token"],
                    expires_in=None,
                    scope="",
                    client_id=token.client_id,
                    redirect_uri=token.redirect_uri,
                    token_endpoint=token.token_endpoint,
                    resource=token.resource,
                    raw=renewed,
                ),
                http=http,
            )
            assert again.refresh_token != renewed["refresh_token"]
            replay = await http.post(token.token_endpoint, data=refresh_form(token))
        assert replay.json()["error"] == "invalid_grant"


@pytest.mark.anyio
async def test_a_code_claimed_by_a_process_that_died_stays_dead(
    google: FakeGoogle, tmp_path: Path
) -> None:
    """A crash between claim and consume leaves the code unusable, also after culling."""
    state = tmp_path / "state"
    with serve(google, state) as server:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
            discovery, form = await fresh_code(server.mcp_url, http)
            dead = RedemptionLedger(state / LEDGER_FOLDER).claim("code", form["code"], None)
            assert dead is not None  # ...and then that process died
            await server.auth.cull_expired_state()

            refused = await http.post(discovery.token_endpoint, data=form)

    assert refused.json()["error"] == "invalid_grant"
    assert refused.status_code in {400, 401}


@pytest.mark.anyio
async def test_hourly_culling_removes_expired_markers(google: FakeGoogle, tmp_path: Path) -> None:
    """The ledger does not grow forever: the proxy's cull also sweeps it."""
    state = tmp_path / "state"
    with serve(google, state) as server:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
            token = await obtain_token(server.mcp_url, http=http)
            await refresh(token, http=http)
        markers = state / LEDGER_FOLDER
        live = set(markers.iterdir())
        assert len(live) == 2  # the spent code and the spent refresh token
        expired = markers / "refresh-expired"
        expired.write_text("1\n")

        await server.auth.cull_expired_state()

        assert set(markers.iterdir()) == live


# ------------------------------------------------------------- two processes


def start_server_process(
    google: FakeGoogle, state: Path, public_port: int, port: int, log: Path
) -> subprocess.Popen[bytes]:
    """A separate ``python`` process serving the same app over the shared ``state``.

    Both processes are told the same public URL, as two replicas behind one proxy are.
    """
    command = [
        sys.executable,
        "-m",
        "tests.support.oauth_process",
        "--port",
        str(port),
        "--public-url",
        f"http://127.0.0.1:{public_port}",
        "--state",
        str(state),
        "--google",
        google.base_url,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with log.open("wb") as sink:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )


def wait_until_serving(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    url = f"{base}/.well-known/oauth-authorization-server"
    deadline = time.monotonic() + 120  # a cold start on a busy machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server process died: {log.read_text()[-2000:]}")
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server process did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="module")
def replicas(
    google: FakeGoogle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """Two server processes over one state folder, started side by side."""
    state = tmp_path_factory.mktemp("shared") / "state"
    ports = [free_port(), free_port()]
    logs = [state.parent / f"server-{port}.log" for port in ports]
    processes = [
        start_server_process(google, state, ports[0], port, log)
        for port, log in zip(ports, logs, strict=True)
    ]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for process, base, log in zip(processes, bases, logs, strict=True):
            wait_until_serving(process, base, log)
        yield bases[0], bases[1]
    finally:
        for process in processes:
            stop(process)


@pytest.mark.anyio
async def test_two_processes_sharing_the_state_folder_redeem_one_code_once(
    replicas: tuple[str, str],
) -> None:
    first, second = replicas
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
        _, form = await fresh_code(f"{first}/mcp", http)

    answers = await race([f"{first}/token", f"{second}/token"], form)
    won, errors = outcome(answers)

    assert len(won) == 1, [a.text for a in won]
    assert errors == ["invalid_grant"] * (RACERS - 1)
    assert refusing_ports(answers) == {httpx2.URL(first).port, httpx2.URL(second).port}


@pytest.mark.anyio
async def test_two_processes_sharing_the_state_folder_redeem_one_refresh_token_once(
    replicas: tuple[str, str],
) -> None:
    first, second = replicas
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
        token = await obtain_token(f"{first}/mcp", http=http)

    answers = await race([f"{first}/token", f"{second}/token"], refresh_form(token))
    won, errors = outcome(answers)

    assert len(won) == 1, [a.text for a in won]
    assert errors == ["invalid_grant"] * (RACERS - 1)
    assert refusing_ports(answers) == {httpx2.URL(first).port, httpx2.URL(second).port}
