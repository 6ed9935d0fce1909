"""Run every benchmark, one child process each, then print all figures against their targets.

Each benchmark writes its own JSON; this writes ``summary.json`` next to them. A missed
target is a finding to read, not a failure: the exit status is non-zero only when a
benchmark could not run at all.

    uv run python -m bench.run_all [--quick] [--only overhead,memory]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.common import (
    ROOT,
    base_parser,
    machine_info,
    print_table,
    say,
)

BENCHMARKS = ("overhead", "responsiveness", "dashboard", "serving", "memory", "soak", "peer")


def run_one(name: str, quick: bool, results_dir: str) -> int:
    """``python -m bench.<name>``, its output passed through; its exit status."""
    command = [sys.executable, "-m", f"bench.{name}", "--results-dir", results_dir]
    if quick:
        command.append("--quick")
    say(f"==> {' '.join(command[1:])}")
    started = time.monotonic()
    status = subprocess.run(command, cwd=ROOT, check=False).returncode
    say(f"<== {name}: exit {status} after {time.monotonic() - started:.0f} s\n")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks, then summarise their targets."""
    parser = base_parser(__doc__ or "run_all")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(unknown)}")
    statuses = {name: run_one(name, args.quick, str(args.results_dir)) for name in names}
    rows: list[list[str]] = []
    summary: dict[str, Any] = {"machine": machine_info(), "quick": args.quick, "benchmarks": {}}
    for name in names:
        path = args.results_dir / f"{name}.json"
        if statuses[name] != 0 or not path.exists():
            rows.append([name, "(did not run)", "", "", "FAILED"])
            summary["benchmarks"][name] = {"status": statuses[name]}
            continue
        body = json.loads(path.read_text())
        summary["benchmarks"][name] = {"status": 0, "targets": body["targets"]}
        rows.extend(
            [
                name,
                target["name"],
                f"{target['value']:.3g} {target['unit']}",
                f"{target['comparison']} {target['limit']:g} {target['unit']}",
                "met" if target["met"] else "MISSED",
            ]
            for target in body["targets"]
        )
    print_table("All targets", ["benchmark", "figure", "value", "target", "verdict"], rows)
    path = args.results_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    say(f"wrote {path}")
    return 0 if all(status == 0 for status in statuses.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
