"""Does the server stay responsive while it works? ``/health`` latency under load.

The real server runs in a child process with a backend that takes 2 s and then returns
a 4K photo-like PNG. A second child opens 20 MCP sessions and calls ``generate_image``
in all of them at once; meanwhile this process asks ``/health`` over and over (one
request at a time, 10 ms apart) and keeps the latencies seen while generations were
in flight; three such rounds in a row, samples pooled. Target: p99 <= 50 ms. The same
prober on the idle server gives the baseline.

    uv run python -m bench.responsiveness [--quick] [--side 4096] [--count 20] [--rounds 3]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2
from fastmcp import Client

from bench.common import (
    ROOT,
    Target,
    base_parser,
    photo_path,
    print_table,
    print_targets,
    say,
    server_process,
    summary_ms,
    temporary_dir,
    write_result,
)
from bench.overhead import size_tier

NAME = "responsiveness"
TARGET_P99_MS = 50.0
PROBE_GAP_SECONDS = 0.01
IDLE_PROBES = 200
LOAD_TIMEOUT_SECONDS = 300.0


async def probe(
    url: str, *, count: int | None = None, until: asyncio.Event | None = None
) -> list[tuple[float, float]]:
    """``(sent_at, seconds)`` for sequential ``GET /health``, ``count`` times or until set."""
    samples: list[tuple[float, float]] = []
    async with httpx2.AsyncClient(timeout=30) as client:
        while (count is None or len(samples) < count) and not (until and until.is_set()):
            sent = time.time()
            started = time.perf_counter()
            response = await client.get(f"{url}/health")
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            samples.append((sent, elapsed))
            await asyncio.sleep(PROBE_GAP_SECONDS)
    return samples


async def load_worker(url: str, count: int, size: str) -> dict[str, Any]:
    """Open ``count`` MCP sessions, then call ``generate_image`` in all of them at once."""
    arguments = {"prompt": "bench", "aspect_ratio": "1:1", "image_size": size}
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(Client(f"{url}/mcp", timeout=LOAD_TIMEOUT_SECONDS))
            for _ in range(count)
        ]

        async def one(client: Client[Any]) -> float:
            started = time.perf_counter()
            await client.call_tool("generate_image", arguments)
            return time.perf_counter() - started

        began = time.time()
        durations = await asyncio.gather(*(one(c) for c in clients))
        ended = time.time()
    return {"began": began, "ended": ended, "durations": list(durations)}


async def loaded_round(url: str, side: int, count: int) -> tuple[list[float], dict[str, Any]]:
    """One load worker against the server, probed throughout; samples inside its window."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.responsiveness",
        "--load-worker",
        url,
        "--count",
        str(count),
        "--side",
        str(side),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    done = asyncio.Event()
    prober = asyncio.create_task(probe(url, until=done))
    try:
        out, _ = await asyncio.wait_for(worker.communicate(), LOAD_TIMEOUT_SECONDS)
    finally:
        done.set()
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    samples = await prober
    if worker.returncode != 0:
        raise RuntimeError(f"the load worker failed with exit code {worker.returncode}")
    load = json.loads(out)
    during = [s for sent, s in samples if load["began"] <= sent <= load["ended"]]
    if not during:
        raise RuntimeError("no /health sample fell inside the load window")
    return during, load


async def measure(
    png_path: Path,
    side: int,
    count: int,
    delay: float,
    root: Path,
    *,
    rounds: int = 3,
    idle_probes: int = IDLE_PROBES,
) -> dict[str, Any]:
    """Idle baseline, then ``rounds`` loads in a row with the prober alongside each."""
    server_args = ["--root", str(root), "--png", str(png_path), "--delay", str(delay)]
    during: list[float] = []
    per_round: list[dict[str, Any]] = []
    durations: list[float] = []
    with server_process(server_args) as server:
        idle = await probe(server.url, count=idle_probes)
        for number in range(rounds):
            samples, load = await loaded_round(server.url, side, count)
            during += samples
            durations += load["durations"]
            window = round(load["ended"] - load["began"], 3)
            per_round.append({"window_s": window, **summary_ms(samples)})
            say(f"  round {number + 1}: p99 {per_round[-1]['p99_ms']} ms over {window} s")
    return {
        "side": side,
        "generations": count,
        "backend_delay_s": delay,
        "rounds": per_round,
        "idle": summary_ms([s for _, s in idle]),
        "under_load": summary_ms(during),
        "load_window_s": round(sum(r["window_s"] for r in per_round) / rounds, 3),
        "generation": summary_ms(durations),
    }


def report(results: dict[str, Any]) -> None:
    """Idle and loaded /health latency, and how long the generations took."""
    rows = [
        [name, figures["n"], figures["p50_ms"], figures["p99_ms"], figures["max_ms"]]
        for name, figures in (
            ("/health idle", results["idle"]),
            (
                f"/health, {results['generations']} x {results['side']}px in flight",
                results["under_load"],
            ),
            ("generate_image call", results["generation"]),
        )
    ]
    print_table(
        f"Responsiveness (ms; backend takes {results['backend_delay_s']} s; "
        f"{len(results['rounds'])} rounds, mean load window {results['load_window_s']} s)",
        ["request", "n", "p50", "p99", "max"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, write JSON (or, with ``--load-worker``, be the load)."""
    parser = base_parser(__doc__ or NAME)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--delay", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="loads in a row; samples pooled")
    parser.add_argument("--load-worker", metavar="URL", help=None)
    args = parser.parse_args(argv)
    if args.load_worker:
        outcome = asyncio.run(load_worker(args.load_worker, args.count, size_tier(args.side).value))
        print(json.dumps(outcome))
        return 0
    if args.quick:
        args.count = min(args.count, 5)
    started = time.monotonic()
    png_path = photo_path(args.side, args.results_dir / "data")
    say(f"{args.count} x {args.side}px generations, backend delay {args.delay} s")
    with temporary_dir("bench-responsiveness-") as root:
        results = asyncio.run(
            measure(
                png_path,
                args.side,
                args.count,
                args.delay,
                root,
                rounds=1 if args.quick else args.rounds,
                idle_probes=50 if args.quick else IDLE_PROBES,
            )
        )
    report(results)
    targets = [
        Target(
            f"/health p99 with {args.count} x {args.side}px in flight",
            results["under_load"]["p99_ms"],
            TARGET_P99_MS,
            "ms",
        )
    ]
    print_targets(targets)
    write_result(
        NAME, args.results_dir, quick=args.quick, started=started, results=results, targets=targets
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
