"""Peak memory of the server while it handles 10 concurrent 4K generations.

The real server runs in a child process with a backend that answers every call with
the same prerendered 4K photo-like PNG after a short delay (so all calls reach the
image work together). Ten MCP sessions call ``generate_image`` at once; the figure is
the child's peak resident set (``VmHWM`` from ``/proc``), the worst of three fresh
servers (the peak depends on how the worker threads interleave). Target: <= 400 MB.

For diagnosis it also runs the same ten generations straight through
``ImageService.generate`` in a fresh child process (no HTTP, no MCP), which separates
what the image work costs from what the web stack costs.

    uv run python -m bench.memory [--quick] [--side 4096] [--count 10] [--repeats 3]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastmcp import Client

from bench.common import (
    ROOT,
    PrerenderedBackend,
    Target,
    base_parser,
    dev_settings_env,
    photo_path,
    print_table,
    print_targets,
    proc_status_kib,
    say,
    server_process,
    temporary_dir,
    write_result,
)
from bench.overhead import size_tier
from image_core.domain import AspectRatio, GenerationRequest
from image_server.app import build_service
from image_server.process_tuning import tune_process
from image_server.settings import load_settings

NAME = "memory"
TARGET_PEAK_MB = 400.0
BACKEND_DELAY_SECONDS = 0.5
SAMPLE_SECONDS = 0.02


def mib(kib: int) -> float:
    """KiB to MB (10^6 bytes), the unit of the target."""
    return round(kib * 1024 / 1e6, 1)


async def server_peak(png_path: Path, side: int, count: int, root: Path) -> dict[str, Any]:
    """Start the server, note its resting memory, fire ``count`` calls, read its peak."""
    arguments = {"prompt": "bench", "aspect_ratio": "1:1", "image_size": size_tier(side).value}
    server_args = ["--root", str(root), "--png", str(png_path)]
    server_args += ["--delay", str(BACKEND_DELAY_SECONDS)]
    with server_process(server_args) as server:
        resting = proc_status_kib(server.pid)
        samples: list[int] = []
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(Client(f"{server.url}/mcp", timeout=300))
                for _ in range(count)
            ]
            connected = proc_status_kib(server.pid)
            calls = asyncio.gather(*(c.call_tool("generate_image", arguments) for c in clients))
            task = asyncio.ensure_future(calls)
            while not task.done():
                samples.append(proc_status_kib(server.pid)["VmRSS"])
                await asyncio.sleep(SAMPLE_SECONDS)
            await task
        after = proc_status_kib(server.pid)
    return {
        "resting_rss_mb": mib(resting["VmRSS"]),
        "sessions_open_rss_mb": mib(connected["VmRSS"]),
        "peak_rss_mb": mib(after["VmHWM"]),
        "highest_sampled_rss_mb": mib(max(samples)),
        "rss_after_mb": mib(after["VmRSS"]),
    }


async def in_process_generations(png: bytes, side: int, count: int, root: Path) -> None:
    """``count`` concurrent ``ImageService.generate`` calls (run inside the child)."""
    settings = load_settings(dev_settings_env(root), dev=True)
    backend = PrerenderedBackend(png, BACKEND_DELAY_SECONDS)
    service = build_service(settings, backend=backend)
    request = GenerationRequest("bench", AspectRatio.R1_1, size_tier(side))
    await asyncio.gather(*(service.generate(None, request) for _ in range(count)))


def child_peak(png_path: Path, side: int, count: int, root: Path) -> dict[str, Any]:
    """Run ``in_process_generations`` in a fresh interpreter and read its peak."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.memory",
            "--child",
            str(png_path),
            "--child-root",
            str(root),
            "--side",
            str(side),
            "--count",
            str(count),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def child_main(png_path: Path, root: Path, side: int, count: int) -> int:
    """Inside the child: resting memory, the generations, then the peak, as JSON."""
    tune_process()  # as ``image-mcp serve`` does
    resting = proc_status_kib_self()
    asyncio.run(in_process_generations(png_path.read_bytes(), side, count, root))
    after = proc_status_kib_self()
    print(
        json.dumps(
            {
                "resting_rss_mb": mib(resting["VmRSS"]),
                "peak_rss_mb": mib(after["VmHWM"]),
                "rss_after_mb": mib(after["VmRSS"]),
            }
        )
    )
    return 0


def proc_status_kib_self() -> dict[str, int]:
    """This process's ``/proc`` memory figures."""
    return proc_status_kib(os.getpid())


def report(results: dict[str, Any]) -> None:
    """Resting and peak memory of both variants."""
    server, child = results["server"], results["service_only"]
    rows = [
        [
            f"server, {results['count']} MCP calls",
            server["resting_rss_mb"],
            server["peak_rss_mb"],
            server["rss_after_mb"],
        ],
        [
            f"ImageService only, {results['count']} calls",
            child["resting_rss_mb"],
            child["peak_rss_mb"],
            child["rss_after_mb"],
        ],
    ]
    print_table(
        f"Memory (MB) with {results['count']} concurrent {results['side']}px generations "
        f"(worst of {results['repeats']} fresh processes; peaks: server "
        f"{results['server_peaks_mb']}, service only {results['service_only_peaks_mb']})",
        ["process", "resting RSS", "peak RSS", "RSS after"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, write JSON (or, with ``--child``, be the measured child)."""
    parser = base_parser(__doc__ or NAME)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes; worst kept")
    parser.add_argument("--child", type=Path, help=None)
    parser.add_argument("--child-root", type=Path, help=None)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child_main(args.child, args.child_root, args.side, args.count)
    if args.quick:
        args.count, args.repeats = min(args.count, 3), 1
    started = time.monotonic()
    png_path = photo_path(args.side, args.results_dir / "data")
    png = png_path.read_bytes()
    say(f"{args.count} concurrent {args.side}px generations ({len(png) / 1e6:.1f} MB PNG)")
    with temporary_dir("bench-memory-") as root:
        servers = [
            asyncio.run(server_peak(png_path, args.side, args.count, root / f"server-{n}"))
            for n in range(args.repeats)
        ]
        services = [
            child_peak(png_path, args.side, args.count, root / f"service-{n}")
            for n in range(args.repeats)
        ]
    server = max(servers, key=lambda r: float(r["peak_rss_mb"]))
    service_only = max(services, key=lambda r: float(r["peak_rss_mb"]))
    results = {
        "side": args.side,
        "count": args.count,
        "png_bytes": len(png),
        "repeats": args.repeats,
        "server_peaks_mb": [r["peak_rss_mb"] for r in servers],
        "service_only_peaks_mb": [r["peak_rss_mb"] for r in services],
        "server": server,
        "service_only": service_only,
    }
    report(results)
    targets = [
        Target(
            f"server peak RSS, {args.count} concurrent {args.side}px generations",
            server["peak_rss_mb"],
            TARGET_PEAK_MB,
            "MB",
        )
    ]
    print_targets(targets)
    write_result(
        NAME, args.results_dir, quick=args.quick, started=started, results=results, targets=targets
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
