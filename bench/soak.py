"""Soak: thousands of generations at a steady concurrency, watching errors and memory.

The real server (``bench/server.py``: ``build_app`` with dev settings) runs in a child
process with a backend that answers every call with the same photo-like 1K PNG after a
short delay, like a fast Gemini. Sixteen MCP sessions call ``generate_image`` until
2,000 calls are done (or the time limit passes); the child's resident set is sampled
as calls complete. Figures: errors (target 0), throughput, and whether memory stops
growing: the peak over the last quarter of the run against the peak over the second
quarter (target at most 1.10x, i.e. a plateau, not a leak).

    uv run python -m bench.soak [--quick] [--calls 2000] [--concurrency 16]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastmcp import Client

from bench.common import (
    Target,
    base_parser,
    photo_path,
    print_table,
    print_targets,
    proc_status_kib,
    say,
    server_process,
    temporary_dir,
    write_result,
)


async def soak(url: str, pid: int, calls: int, concurrency: int, limit_s: float) -> dict[str, Any]:
    """Run the calls through ``concurrency`` sessions; RSS sampled every few completions."""
    done = 0
    errors: list[str] = []
    samples: list[tuple[int, float]] = []
    started = time.monotonic()
    deadline = started + limit_s
    next_index = 0

    async def worker() -> None:
        nonlocal done, next_index
        async with Client(f"{url}/mcp", timeout=120) as client:
            while time.monotonic() < deadline:
                if next_index >= calls:
                    return
                next_index += 1
                result = await client.call_tool(
                    "generate_image", {"prompt": f"soak {next_index}"}, raise_on_error=False
                )
                if result.is_error:
                    errors.append(str(result.content[0])[:200])
                done += 1
                if done % 25 == 0:
                    samples.append((done, proc_status_kib(pid)["VmRSS"] / 1024))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    quarter = max(1, len(samples) // 4)
    second = [rss for _, rss in samples[quarter : 2 * quarter]] or [0.0]
    last = [rss for _, rss in samples[-quarter:]] or [0.0]
    return {
        "calls": done,
        "errors": len(errors),
        "first_errors": errors[:5],
        "seconds": elapsed,
        "calls_per_second": done / elapsed if elapsed else 0.0,
        "rss_mib_samples": samples,
        "rss_mib_second_quarter_peak": max(second),
        "rss_mib_last_quarter_peak": max(last),
        "growth": max(last) / max(second) if max(second) else 0.0,
        "finished": done >= calls,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server, soak it, write the figures."""
    parser = base_parser(__doc__ or "soak")
    parser.add_argument("--calls", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.05, help="backend answer delay (s)")
    parser.add_argument("--limit", type=float, default=900.0, help="stop after this many s")
    args = parser.parse_args(argv)
    calls = args.calls or (200 if args.quick else 2000)
    started = time.monotonic()
    data_dir: Path = args.results_dir / "data"
    png = photo_path(1024, data_dir)
    with temporary_dir("bench-soak-") as root:
        arguments = ["--root", str(root), "--png", str(png), "--delay", str(args.delay)]
        with server_process(arguments) as server:
            say(f"soak: {calls} calls, {args.concurrency} at a time, at most {args.limit:.0f} s")
            results = asyncio.run(soak(server.url, server.pid, calls, args.concurrency, args.limit))
            results["stored_pngs"] = len(list(root.glob("*.png")))
    print_table(
        "soak against the real server (fast fake backend, 1K photo PNG)",
        ["calls", "errors", "calls/s", "RSS 2nd quarter", "RSS last quarter", "growth"],
        [
            [
                results["calls"],
                results["errors"],
                f"{results['calls_per_second']:.1f}",
                f"{results['rss_mib_second_quarter_peak']:.0f} MiB",
                f"{results['rss_mib_last_quarter_peak']:.0f} MiB",
                f"{results['growth']:.2f}x",
            ]
        ],
    )
    targets = [
        Target("soak errors", results["errors"], 0, "errors"),
        Target("soak calls finished", results["calls"], calls, "calls", at_least=True),
        Target("RSS last ÷ second quarter", results["growth"], 1.10, "x"),
    ]
    print_targets(targets)
    write_result(
        "soak", args.results_dir, quick=args.quick, started=started, results=results,
        targets=targets,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
