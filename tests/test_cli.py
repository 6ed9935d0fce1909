"""The ``image-mcp`` command as a person runs it: a real process, its output, its exit code."""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.live_server import free_port

IMAGE_MCP = Path(sys.executable).parent / "image-mcp"
VERSION = importlib.metadata.version("image-server")


def clean_env(**extra: str) -> dict[str, str]:
    """Only PATH and what the test sets: nothing from the developer's shell leaks in."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}


def run(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IMAGE_MCP), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    """``image-mcp dev --port P --root R`` while IMG_PORT and IMG_ROOT say otherwise."""
    port, ignored_port = free_port(), free_port()
    root = tmp_path / "flag-root"
    env = clean_env(IMG_PORT=str(ignored_port), IMG_ROOT=str(tmp_path / "variable-root"))
    process = subprocess.Popen(
        [str(IMAGE_MCP), "dev", "--port", str(port), "--root", str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, port, root
    finally:
        process.terminate()
        process.communicate(timeout=15)


def test_version_prints_the_installed_package_version() -> None:
    """``image-mcp --version`` answers from the package metadata, and exits 0."""
    result = run(["--version"], clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"image-mcp {VERSION}"


def test_dev_prints_one_readable_line_with_the_addresses_and_obeys_its_flags(
    dev_server: tuple[subprocess.Popen[str], int, Path], tmp_path: Path
) -> None:
    """The line a person looks for; --port and --root win over IMG_PORT and IMG_ROOT."""
    process, port, root = dev_server
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    base = f"http://127.0.0.1:{port}"
    assert line == (
        f"image-mcp {VERSION} dev server: dashboard {base}/ui  MCP {base}/mcp  "
        "(login off, placeholder images)"
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                assert json.load(answer) == {"ok": True}
                break
        except OSError:
            assert process.poll() is None, "the dev server exited"
            assert time.monotonic() < deadline, "the dev server did not answer"
            time.sleep(0.1)
    assert root.is_dir()
    assert not (tmp_path / "variable-root").exists()


def test_check_takes_the_same_flags_and_the_flag_wins(tmp_path: Path) -> None:
    """A broken IMG_ROOT is overridden by a good --root; a bad --port is named as a flag."""
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    env = clean_env(IMG_AUTH_DISABLED="1", IMG_ROOT=str(not_a_folder / "data"))
    assert run(["check"], env).returncode == 2
    good = run(["check", "--root", str(tmp_path / "data"), "--host", "127.0.0.1"], env)
    assert good.returncode == 0, good.stderr
    bad_port = run(["check", "--port", "99999"], env)
    assert bad_port.returncode == 2
    assert "--port" in bad_port.stderr


@pytest.mark.parametrize("value", ["1e100", "nan", "-1"])
def test_check_refuses_a_price_serve_could_not_run(tmp_path: Path, value: str) -> None:
    """A price outside $0 to $1,000,000 fails ``check`` naming the variable, not ``serve``."""
    env = clean_env(IMG_AUTH_DISABLED="1", IMG_ROOT=str(tmp_path), IMG_COST_FLASH_1K=value)
    result = run(["check"], env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "IMG_COST_FLASH_1K" in result.stderr


def test_a_folder_where_the_index_belongs_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    """Start-up stops without a traceback, naming the folder and how to get going again."""
    root = tmp_path / "data"
    (root / "index.sqlite3").mkdir(parents=True)
    result = run(["dev", "--port", str(free_port())], clean_env(IMG_ROOT=str(root)))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [text for text in result.stderr.splitlines() if "image-mcp cannot start" in text]
    assert str(root / "index.sqlite3") in line
    assert "Move it out of the data folder" in line


def test_login_off_on_every_interface_is_a_loud_start_up_warning(tmp_path: Path) -> None:
    """``--host 0.0.0.0`` with login off is obeyed, and the log says what that exposes."""
    env = clean_env(IMG_AUTH_DISABLED="1", IMG_ROOT=str(tmp_path / "data"))
    quiet = run(["check"], env)
    loud = run(["check", "--host", "0.0.0.0"], env)
    assert quiet.returncode == loud.returncode == 0
    assert "LISTENS BEYOND THIS MACHINE" not in quiet.stderr
    warning = next(
        json.loads(line) for line in loud.stderr.splitlines() if "LISTENS BEYOND" in line
    )
    assert warning["level"] == "WARNING"
    assert "IMG_HOST=0.0.0.0" in warning["msg"]


def test_a_busy_port_is_one_clear_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    """No traceback: the line says the port is taken and which setting to change."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["dev", "--port", str(port)], clean_env(IMG_ROOT=str(tmp_path)))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = [text for text in result.stderr.splitlines() if "image-mcp cannot start" in text]
    assert f"port {port}" in line
    assert "in use" in line
    assert "--port" in line
    assert "IMG_PORT" in line


@pytest.mark.parametrize("command", ["check", "serve"])
@pytest.mark.parametrize("pattern", ["https://*.com/*", "*.github.io", "https://*.ngrok-free.app"])
def test_a_wildcard_redirect_pattern_stops_check_and_serve_by_name(
    tmp_path: Path, command: str, pattern: str
) -> None:
    """Host wildcards would send codes to any matching host: refused before start."""
    env = clean_env(
        GEMINI_API_KEY="gem-secret-123456",
        GOOGLE_OAUTH_CLIENT_ID="client.apps.example",
        GOOGLE_OAUTH_CLIENT_SECRET="oauth-secret-123456",
        IMG_PUBLIC_URL="https://images.example.com",
        IMG_JWT_SIGNING_KEY="k" * 64,
        IMG_ALLOWED_EMAILS="me@example.com",
        IMG_ROOT=str(tmp_path / "data"),
        IMG_ALLOWED_REDIRECT_URIS=f"http://127.0.0.1:*,{pattern}",
    )
    result = run([command], env)

    assert result.returncode == 2, result.stderr
    (line,) = [text for text in result.stderr.splitlines() if "IMG_ALLOWED_REDIRECT_URIS" in text]
    assert pattern in line
