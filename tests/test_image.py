"""The Dockerfile, built for real and its result run as the container would run it.

Docker cannot run here, so scripts/build-image builds the Dockerfile with podman (chroot
isolation, on a local Debian base standing in for the slim Python image) and unpacks the
result. No container can be started on these machines, so each test enters the unpacked
file system with ``chroot --userspec`` as the image's own user, with the image's own
environment, entry point and command, on this machine's loopback network.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from tests.fakes.fake_gemini import FakeGemini
from tests.support.live_server import free_port

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_HOST = "images.example.test"
SECRET_VARIABLES = ("GOOGLE_OAUTH_CLIENT_SECRET", "IMG_JWT_SIGNING_KEY", "GEMINI_API_KEY")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@dataclass(frozen=True)
class BuiltImage:
    """The unpacked file system of the built image and its configuration."""

    rootfs: Path
    config: Mapping[str, Any]
    size_bytes: int

    @property
    def user(self) -> str:
        """``uid:gid`` the image runs as."""
        return str(self.config["Config"]["User"])

    @property
    def env(self) -> dict[str, str]:
        """The image's ENV lines."""
        return dict(line.split("=", 1) for line in self.config["Config"]["Env"])

    @property
    def command(self) -> list[str]:
        """ENTRYPOINT then CMD, as the container starts."""
        config = self.config["Config"]
        return [*config["Entrypoint"], *config["Cmd"]]

    def chroot(self, argv: list[str], env: Mapping[str, str]) -> list[str]:
        """``argv`` run inside the image as its user, with exactly ``env``."""
        pairs = [f"{name}={value}" for name, value in env.items()]
        inside = ["chroot", f"--userspec={self.user}", str(self.rootfs), "/usr/bin/env", "-i"]
        return [*inside, *pairs, *argv]


def missing_tools() -> list[str]:
    """What this machine lacks to build the image."""
    missing = [tool for tool in ("podman", "mmdebstrap", "chroot") if not shutil.which(tool)]
    if os.geteuid() != 0:
        missing.append("root")
    return missing


@pytest.fixture(scope="session")
def built_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """Build the Dockerfile once per run (about two minutes on a fresh machine)."""
    missing = missing_tools()
    if missing:
        message = (
            f"building the image needs {', '.join(missing)} (apt-get install podman mmdebstrap)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(f"{message}; set CI=1 to make this fail")
    rootfs = tmp_path_factory.mktemp("image") / "rootfs"
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image"), str(rootfs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (config,) = json.loads(Path(f"{rootfs}.json").read_text())
    return BuiltImage(rootfs, config, int(result.stdout.split()[-1]))


@dataclass
class Response:
    """Status, headers (lower-case names) and body of one HTTP exchange."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def request(port: int, path: str, host: str = PUBLIC_HOST, method: str = "GET") -> Response:
    """One request to the server with an explicit Host header, as a reverse proxy sends it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"Host": host})
        answer = connection.getresponse()
        headers = {k.lower(): v for k, v in answer.getheaders()}
        return Response(answer.status, headers, answer.read())
    finally:
        connection.close()


@dataclass
class Running:
    """The image's server process and the lines it writes."""

    process: subprocess.Popen[str]
    lines: list[str]
    port: int


@contextlib.contextmanager
def serving(image: BuiltImage, env: Mapping[str, str]) -> Iterator[Running]:
    """Start the image's command inside it; on exit, stop it with SIGTERM as Docker does."""
    port = int(env["IMG_PORT"])
    process = subprocess.Popen(
        image.chroot(image.command, {**image.env, **env}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        wait_for_health(port, process, lines, timeout=60)
        yield Running(process, lines, port)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=10)
        process.stdout.close()


def wait_for_health(
    port: int, process: subprocess.Popen[str], lines: list[str], timeout: float
) -> None:
    """Poll /health the way the health check does (loopback Host) until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the image's server exited with {process.returncode}: {lines[-20:]}")
        try:
            if request(port, "/health", host=f"127.0.0.1:{port}").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"/health did not answer within {timeout} s")


def health_check(image: BuiltImage, port: int) -> int:
    """Run the image's own HEALTHCHECK command inside it; its exit status."""
    test = image.config["Healthcheck"]["Test"]
    assert test[0] == "CMD", test
    result = subprocess.run(
        image.chroot(test[1:], {**image.env, "IMG_PORT": str(port)}),
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode


def production_env(port: int, gemini_url: str, data: str) -> dict[str, str]:
    """What a deployer puts in .env, with fresh secrets."""
    return {
        "IMG_ROOT": data,
        "IMG_PUBLIC_URL": f"https://{PUBLIC_HOST}",
        "IMG_HOST": "127.0.0.1",
        "IMG_PORT": str(port),
        "GOOGLE_OAUTH_CLIENT_ID": "1234-test.apps.googleusercontent.com",
        "GOOGLE_OAUTH_CLIENT_SECRET": f"GOCSPX-{secrets.token_urlsafe(24)}",
        "IMG_JWT_SIGNING_KEY": secrets.token_hex(32),
        "IMG_ALLOWED_EMAILS": "ada@example.com,grace@example.com",
        "IMG_ADMIN_EMAILS": "ada@example.com",
        "GEMINI_API_KEY": f"AIza{secrets.token_urlsafe(30)}",
        "IMG_GEMINI_BASE_URL": gemini_url,
    }


def test_the_image_holds_the_server_on_the_tested_python_and_no_build_tools(
    built_image: BuiltImage,
) -> None:
    """Same Python minor version as this suite; no pip, build backend or sources shipped."""
    probe = subprocess.run(
        built_image.chroot(
            [
                "python",
                "-c",
                "import sys, image_server; print(sys.version_info[:2], image_server.__file__)",
            ],
            built_image.env,
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    version, location = probe.stdout.strip().split(") ")
    assert version + ")" == str(sys.version_info[:2])
    assert location.startswith("/opt/venv/lib/")
    site = next((built_image.rootfs / "opt/venv/lib").glob("python3.*/site-packages"))
    shipped = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert not shipped & {"pip", "setuptools", "hatchling", "pytest", "wheel"}, shipped
    for absent in ("opt/build", "opt/dist", "src"):
        assert not (built_image.rootfs / absent).exists(), absent
    viewer = "image_server/app_ui/viewer.html"  # the MCP App, package data built without Node
    shipped_viewer = (site / viewer).read_bytes()
    assert shipped_viewer == (ROOT / "packages/image_server/src" / viewer).read_bytes()
    assert not list(site.glob("image_server/**/node_modules"))
    print(f"image size: {built_image.size_bytes / 1e6:.0f} MB")


def test_the_image_serves_in_production_mode_and_guards_its_doors(
    built_image: BuiltImage,
) -> None:
    """Healthy, /mcp needs a token, foreign Host refused, JSON logs, no secret printed."""
    port = free_port()
    with FakeGemini() as gemini:
        env = production_env(port, gemini.base_url, "/srv/images/production")
        with serving(built_image, env) as running:
            assert health_check(built_image, port) == 0
            unauthenticated = request(port, "/mcp", method="POST")
            assert unauthenticated.status == 401
            challenge = unauthenticated.headers["www-authenticate"]
            assert f"https://{PUBLIC_HOST}/.well-known/oauth-protected-resource" in challenge
            assert request(port, "/health", host="attacker.example").status == 421
            login = request(port, "/ui/login")
            assert login.status == 200
            assert login.headers["content-type"].startswith("text/html")
            assert request(port, "/i/not-an-image.json").status == 404
        assert gemini.requests == [], "nothing may reach Gemini without a generation"

    assert running.process.returncode in {0, -signal.SIGTERM}, running.lines[-20:]
    text = "".join(running.lines)
    assert "Application shutdown complete" in text
    for line in running.lines:
        if line.strip():
            assert {"ts", "level", "logger", "msg"} <= json.loads(line).keys(), line
    assert '"event": "start"' in text
    for name in SECRET_VARIABLES:
        assert env[name] not in text, f"{name} appears in the server's output"
    assert health_check(built_image, port) != 0, "the health check passes with no server"


@pytest.mark.anyio
async def test_the_image_stores_a_generation_as_its_unprivileged_user(
    built_image: BuiltImage,
) -> None:
    """A tool call through the real MCP client lands in /srv/images, owned by the image's user."""
    port = free_port()
    uid, gid = (int(part) for part in built_image.user.split(":"))
    env = {"IMG_AUTH_DISABLED": "1", "IMG_HOST": "127.0.0.1", "IMG_PORT": str(port)}
    with FakeGemini() as gemini:
        env |= {"GEMINI_API_KEY": "AIza-test", "IMG_GEMINI_BASE_URL": gemini.base_url}
        env["IMG_ROOT"] = "/srv/images/dev"
        with serving(built_image, env):
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                result = await client.call_tool("generate_image", {"prompt": "a lighthouse"})
            assert not result.is_error, result
            stored = sorted((built_image.rootfs / "srv/images/dev").glob("*.png"))
            assert len(stored) == 1, stored
            served = request(port, f"/i/{stored[0].name}", host=f"127.0.0.1:{port}")
            assert served.status == 200
            assert served.body == stored[0].read_bytes()
        assert len(gemini.requests) == 1
    for path in (stored[0], stored[0].with_suffix(".json")):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (uid, gid), path
