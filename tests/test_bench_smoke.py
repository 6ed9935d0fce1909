"""The benchmarks still run: each one, --quick on tiny inputs, writes its JSON.

Figures are not checked here (a timing is never a pass/fail test); only that every
script runs end to end against the current code and reports what it promises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY_RUNS = {
    "overhead": ["--sides", "256"],
    "responsiveness": ["--side", "256", "--count", "3", "--delay", "0.3"],
    "dashboard": ["--sizes", "300", "--no-cache"],
    "serving": ["--side", "256", "--requests", "40", "--seconds", "1"],
    "memory": ["--side", "256", "--count", "2"],
    "soak": ["--calls", "20", "--concurrency", "4"],
    "budget": ["--sizes", "300", "--no-cache"],
}
RESULT_KEYS = {"benchmark", "quick", "measured_at", "duration_s", "machine", "results", "targets"}
TARGET_KEYS = {"name", "value", "limit", "unit", "comparison", "met"}


@pytest.mark.slow
def test_every_benchmark_runs_quickly_and_writes_its_results(tmp_path: Path) -> None:
    """Every script but the peer comparison (it installs the peer), at once; JSON shapes agree."""
    running = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"bench.{name}",
                "--quick",
                "--results-dir",
                str(tmp_path),
                *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, extra in TINY_RUNS.items()
    }
    outputs = {name: process.communicate(timeout=240)[0] for name, process in running.items()}
    for name, process in running.items():
        assert process.returncode == 0, f"bench.{name} failed:\n{outputs[name][-3000:]}"
        body = json.loads((tmp_path / f"{name}.json").read_text())
        assert body.keys() >= RESULT_KEYS, name
        assert body["benchmark"] == name
        assert body["quick"] is True
        assert body["results"], name
        assert body["targets"], name
        for target in body["targets"]:
            assert target.keys() >= TARGET_KEYS, (name, target)
            assert isinstance(target["met"], bool)
        assert "Targets" in outputs[name], f"bench.{name} printed no table"
