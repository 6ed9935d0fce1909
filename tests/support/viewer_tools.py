"""The image viewer's Node tools (MCP Apps SDK, MCP client SDK, esbuild) that
scripts/install-viewer-tools puts in packages/image_server/viewer/node_modules.

Without the install the tests using them skip on a developer machine and fail under
``CI=true``, so a missing install step cannot hide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.mcp_tools import NODE as BUNDLED_NODE

ROOT = Path(__file__).resolve().parents[2]
VIEWER = ROOT / "packages" / "image_server" / "viewer"
MODULES = VIEWER / "node_modules"
BUILT = ROOT / "packages" / "image_server" / "src" / "image_server" / "app_ui" / "viewer.html"
BUILD_TIMEOUT_S = 120.0


def node() -> Path | None:
    """Node 22 from the MCP tools when installed, else the machine's own."""
    if BUNDLED_NODE.exists():
        return BUNDLED_NODE
    found = shutil.which("node")
    return Path(found) if found else None


def require_viewer_tools() -> Path:
    """Node, with the viewer's packages installed; skip locally, fail under CI."""
    runner = node()
    packages = ("esbuild", "@modelcontextprotocol/ext-apps", "@modelcontextprotocol/client")
    if runner is not None and all((MODULES / p / "package.json").exists() for p in packages):
        return runner
    message = "viewer tools missing: run scripts/install-viewer-tools"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_build(*args: str) -> subprocess.CompletedProcess[str]:
    """``node build.mjs ARGS`` in the viewer's folder (see build.mjs for the arguments)."""
    runner = require_viewer_tools()
    done = subprocess.run(
        [str(runner), "build.mjs", *args],
        cwd=VIEWER,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done
