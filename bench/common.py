"""Shared helpers for the benchmarks: statistics, tables, JSON results, servers, test data.

Every benchmark prints a table and writes ``bench/results/<name>.json`` (git-ignored).
Figures that have a target are compared as ratios or limits measured in the same run,
never against a fixed time from another machine. Load only ever targets 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import attrs
import httpx2
import PIL
from tests.support.photos import draw_photo

from image_core.domain import BackendImage, BackendRequest
from image_core.ports import ImageSink, StreamingImageBackend

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
LOOPBACK = "127.0.0.1"
PHOTO_VERSION = 2  # bump when photo_png changes, so cached files are redrawn


# -- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The 50th percentile."""
    return percentile(values, 50)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """n, p50, p99, min, max and mean of durations given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
    }


# -- targets, tables and result files ---------------------------------------------------


@attrs.frozen
class Target:
    """One figure checked against its limit: ``value <= limit``, or ``>=`` when ``at_least``."""

    name: str
    value: float
    limit: float
    unit: str
    at_least: bool = False

    @property
    def met(self) -> bool:
        """Whether the figure is on the right side of its limit."""
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "limit": self.limit,
            "unit": self.unit,
            "comparison": ">=" if self.at_least else "<=",
            "met": self.met,
        }

    def row(self) -> list[str]:
        """Table cells: name, value, target, verdict."""
        sign = ">=" if self.at_least else "<="
        return [
            self.name,
            f"{self.value:.3g} {self.unit}",
            f"{sign} {self.limit:g} {self.unit}",
            "met" if self.met else "MISSED",
        ]


def format_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with right-aligned numbers, under a title line."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(cells[0]), rule, *(line(r) for r in cells[1:])])


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print ``format_table`` followed by a blank line."""
    print(format_table(title, headers, rows), end="\n\n", flush=True)


def print_targets(targets: Sequence[Target]) -> None:
    """The figures that have a target, with their verdicts."""
    if targets:
        print_table("Targets", ["figure", "value", "target", "verdict"], [t.row() for t in targets])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _numeric(text: str) -> bool:
    try:
        float(text.split(maxsplit=1)[0])
    except (ValueError, IndexError):
        return False
    return True


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "platform": platform.platform(),
    }


def write_result(
    name: str,
    results_dir: Path,
    *,
    quick: bool,
    started: float,
    results: dict[str, Any],
    targets: Sequence[Target] = (),
) -> Path:
    """Write ``<results_dir>/<name>.json`` and say where it went."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    body = {
        "benchmark": name,
        "quick": quick,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 2),
        "machine": machine_info(),
        "results": results,
        "targets": [t.as_dict() for t in targets],
    }
    path.write_text(json.dumps(body, indent=2) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run with fewer samples")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where to write the JSON (default bench/results)",
    )
    return parser


def int_list(text: str) -> list[int]:
    """``"1024,2048"`` -> ``[1024, 2048]`` (argparse type)."""
    return [int(part) for part in text.split(",") if part.strip()]


# -- synthetic images and a backend that returns them ---------------------------------------


def photo_path(side: int, cache_dir: Path) -> Path:
    """A ``side`` x ``side`` photo-like PNG saved like an encoder would, drawn once and cached."""
    path = cache_dir / f"photo-v{PHOTO_VERSION}-{side}.png"
    if not path.exists():
        buffer = io.BytesIO()
        draw_photo(side, side).save(buffer, "PNG")
        cache_dir.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        temp.write_bytes(buffer.getvalue())
        temp.replace(path)
    return path


def photo_png(side: int, cache_dir: Path) -> bytes:
    """The bytes of ``photo_path(side, cache_dir)``."""
    return photo_path(side, cache_dir).read_bytes()


@attrs.define
class PrerenderedBackend:
    """An ``ImageBackend`` that answers every request with the same PNG after a delay.

    Unlike ``FakeImageBackend`` it draws nothing per call, so what is measured is the
    server's own work on a realistic image, and the event loop never blocks in it.
    """

    png: bytes
    delay_seconds: float = 0.0
    name: str = "bench"

    async def generate(self, request: BackendRequest) -> BackendImage:
        """Wait ``delay_seconds`` (a model thinking), then return the PNG."""
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        return BackendImage(self.png, "image/png")

    async def generate_streaming(self, request: BackendRequest, sink: ImageSink) -> BackendImage:
        """As ``generate``, handing the PNG over in 64 KiB pieces as a download would.

        So the figures include the codec's early decode, as with Gemini.
        """
        image = await self.generate(request)
        for start in range(0, len(image.data), STREAM_PIECE):
            sink.write(image.data[start : start + STREAM_PIECE])
            await asyncio.sleep(0)
        return image


STREAM_PIECE = 64 * 1024
_: type[StreamingImageBackend] = PrerenderedBackend


# -- servers on loopback -------------------------------------------------------------------


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@attrs.frozen
class ServerProcess:
    """A benchmark server running in a child process (see ``bench/server.py``)."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        """The end of the child's output, for error messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.contextmanager
def server_process(
    arguments: Sequence[str], *, timeout: float = 180.0, module: str = "bench.server"
) -> Iterator[ServerProcess]:
    """Run ``python -m bench.server ARGS --port P`` until the block ends; wait for /health.

    ``module`` swaps in another server entry point (to try a change on a copy).
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-server-") as temp:
        log_path = Path(temp) / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, "--port", str(port), *arguments],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = ServerProcess(process, f"http://{LOOPBACK}:{port}", log_path)
        try:
            wait_until_healthy(server, timeout)
            yield server
        finally:
            stop_process(process)


def wait_until_healthy(server: ServerProcess, timeout: float) -> None:
    """Poll ``/health`` until it answers 200; fail with the server's output if it dies."""
    deadline = time.monotonic() + timeout
    with httpx2.Client(timeout=5) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"the benchmark server exited:\n{server.log_tail()}")
            with contextlib.suppress(httpx2.TransportError):
                if client.get(f"{server.url}/health").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the benchmark server did not start:\n{server.log_tail()}")
            time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ask a child we started to stop, then insist."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def proc_status_kib(pid: int) -> dict[str, int]:
    """``VmRSS``, ``VmHWM`` and friends of a live process, in KiB (Linux ``/proc``)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key.startswith("Vm") and rest.strip().endswith("kB"):
            values[key] = int(rest.split()[0])
    return values


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return ticks / os.sysconf("SC_CLK_TCK")


# -- misc ------------------------------------------------------------------------------------


#: Benchmarks load the server with calls by the one local person of dev mode: the
#: per-person rate and concurrency limits are lifted, so what is measured is the server.
UNLIMITED_CALLS: dict[str, str] = {
    "IMG_RATE_PER_MINUTE": "100000",
    "IMG_MAX_CONCURRENT": "1000",
    "IMG_MAX_CONCURRENT_TOTAL": "10000",
}


def dev_settings_env(root: Path, port: int | None = None) -> dict[str, str]:
    """The environment of a local dev server (auth off, no call limits) using ``root``."""
    env = {"IMG_ROOT": str(root), **UNLIMITED_CALLS}
    if port is not None:
        env["IMG_PORT"] = str(port)
    return env


@contextlib.contextmanager
def temporary_dir(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """A scratch folder removed afterwards, even when it holds 100k files."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def say(text: str, stream: TextIO = sys.stdout) -> None:
    """Progress line, flushed so a long run shows where it is."""
    print(text, file=stream, flush=True)
