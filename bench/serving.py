"""``/i/{name}`` throughput against a bare Starlette ``FileResponse`` app serving the same file.

Both servers run in child processes on 127.0.0.1 under the same uvicorn settings; the
real one is the whole product (``build_app``: host guard, security headers, the
symlink-proof ``/i/`` route). A bounded asyncio load generator (httpx2, a fixed number
of keep-alive connections, a fixed number of requests or seconds, whichever ends
first) fetches the image from one server, then the other, a few times over; the
figure is the median of the per-pair ratios. Target: >= 0.8 x the bare app.

Two files: a 1K photo-like PNG (what people fetch) and a small PNG (where the
per-request cost, not the copying, dominates).

    uv run python -m bench.serving [--quick] [--connections 8] [--pairs 3]
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2

from bench.common import (
    ServerProcess,
    Target,
    base_parser,
    median,
    photo_png,
    print_table,
    print_targets,
    process_cpu_seconds,
    say,
    server_process,
    temporary_dir,
    write_result,
)
from image_core.names import image_file_name

NAME = "serving"
TARGET_RATIO = 0.8
SMALL_SIDE = 128


async def load(
    server: ServerProcess,
    path: str,
    expected_bytes: int,
    connections: int,
    max_requests: int,
    max_seconds: float,
) -> dict[str, float]:
    """GET ``path`` from ``connections`` workers until the request or time budget runs out.

    Also records the server's CPU time per request: on a small machine the load
    generator may saturate before the server does, and CPU per request still compares.
    """
    url = f"{server.url}{path}"
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    remaining = max_requests
    done = 0
    async with httpx2.AsyncClient(limits=limits, timeout=30) as client:
        await client.get(url)  # warm the route and one connection
        deadline = time.perf_counter() + max_seconds

        async def worker() -> None:
            nonlocal remaining, done
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                response = await client.get(url)
                if response.status_code != 200 or len(response.content) != expected_bytes:
                    raise RuntimeError(f"bad answer from {url}: {response.status_code}")
                done += 1

        cpu_before = process_cpu_seconds(server.pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
        cpu = process_cpu_seconds(server.pid) - cpu_before
    return {
        "requests": done,
        "seconds": round(elapsed, 3),
        "rps": round(done / elapsed, 1),
        "mb_per_s": round(done * expected_bytes / elapsed / 1e6, 1),
        "server_cpu_s": round(cpu, 3),
        "server_cpu_ms_per_request": round(cpu * 1000 / done, 3),
    }


async def compare(files: dict[str, bytes], args: Any, scratch: Path) -> dict[str, Any]:
    """Start both servers once; per file, alternate bare and real runs, then the medians."""
    root = scratch / "root"
    root.mkdir()
    names: dict[str, str] = {}
    for label, image in files.items():
        names[label] = image_file_name(uuid.uuid4())
        path = root / names[label]
        path.write_bytes(image)
        path.chmod(0o644)
    results: dict[str, Any] = {}
    with (
        server_process(["--bare-dir", str(root)]) as bare,
        server_process(["--root", str(root)]) as real,
    ):
        for label, image in files.items():
            say(f"{label}: {len(image):,} bytes")
            runs = [
                await pair_of_runs(bare, real, f"/i/{names[label]}", len(image), args)
                for _ in range(args.pairs)
            ]
            results[label] = summarise(len(image), runs)
    return results


async def pair_of_runs(
    bare: ServerProcess, real: ServerProcess, path: str, size: int, args: Any
) -> dict[str, Any]:
    """One bounded run against each server, back to back, and their ratios."""
    figures: dict[str, Any] = {}
    for kind, server in (("bare", bare), ("image_mcp", real)):
        figures[kind] = await load(
            server, path, size, args.connections, args.requests, args.seconds
        )
    figures["ratio"] = round(figures["image_mcp"]["rps"] / figures["bare"]["rps"], 3)
    figures["cpu_ratio"] = round(
        figures["image_mcp"]["server_cpu_ms_per_request"]
        / figures["bare"]["server_cpu_ms_per_request"],
        3,
    )
    say(
        f"  bare {figures['bare']['rps']} req/s, /i/ {figures['image_mcp']['rps']} req/s, "
        f"ratio {figures['ratio']}; server CPU per request, /i/ over bare: {figures['cpu_ratio']}"
    )
    return figures


def summarise(size: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the pairs of runs of one file."""
    return {
        "file_bytes": size,
        "runs": runs,
        "bare_rps_median": median([r["bare"]["rps"] for r in runs]),
        "image_mcp_rps_median": median([r["image_mcp"]["rps"] for r in runs]),
        "ratio_median": round(median([r["ratio"] for r in runs]), 3),
        "bare_cpu_ms_per_request_median": median(
            [r["bare"]["server_cpu_ms_per_request"] for r in runs]
        ),
        "image_mcp_cpu_ms_per_request_median": median(
            [r["image_mcp"]["server_cpu_ms_per_request"] for r in runs]
        ),
        "cpu_ratio_median": round(median([r["cpu_ratio"] for r in runs]), 3),
    }


def report(results: dict[str, Any], connections: int) -> None:
    """Median requests per second of each server and the ratio."""
    rows = [
        [
            label,
            f"{figures['file_bytes'] / 1e3:,.0f}",
            figures["bare_rps_median"],
            figures["image_mcp_rps_median"],
            figures["ratio_median"],
            figures["bare_cpu_ms_per_request_median"],
            figures["image_mcp_cpu_ms_per_request_median"],
        ]
        for label, figures in results.items()
    ]
    print_table(
        f"Serving /i/{{name}} ({connections} connections; medians over pairs)",
        [
            "file",
            "KB",
            "bare FileResponse req/s",
            "/i/ req/s",
            "ratio",
            "bare CPU ms/req",
            "/i/ CPU ms/req",
        ],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, write JSON."""
    parser = base_parser(__doc__ or NAME)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000, help="per run, at most")
    parser.add_argument("--seconds", type=float, default=8.0, help="per run, at most")
    parser.add_argument("--side", type=int, default=1024, help="the large file's side")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.requests = 1, min(args.requests, 200)
        args.seconds = min(args.seconds, 2.0)
    started = time.monotonic()
    data_dir = args.results_dir / "data"
    files = {
        f"{args.side}px photo PNG": photo_png(args.side, data_dir),
        f"{SMALL_SIDE}px PNG": photo_png(SMALL_SIDE, data_dir),
    }
    with temporary_dir("bench-serving-") as scratch:
        results = asyncio.run(compare(files, args, scratch))
    report(results, args.connections)
    targets = [
        Target(
            f"/i/ throughput / bare FileResponse, {label}",
            figures["ratio_median"],
            TARGET_RATIO,
            "x",
            True,
        )
        for label, figures in results.items()
    ]
    print_targets(targets)
    write_result(
        NAME, args.results_dir, quick=args.quick, started=started, results=results, targets=targets
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
