"""End to end against a peer: our generate_image and nanobanana-mcp-server's, same fake Gemini.

Both servers run as their own processes over MCP's HTTP transport on loopback, pointed at
one fake Gemini (tests/fakes/fake_gemini.py) that answers both with the same photo-like
PNG; one fastmcp client calls them alternately, so machine noise falls on both alike.
Figures: median end-to-end time per call and its ratio to the peer's, and the size of
the reply (text, image and structured content as they travel in the JSON-RPC result).
A second table says where a call's time goes, for both servers alike: the client SDK's
tool listing after the call (on a fresh session it lists the tools to check the result)
and its check of the result against the output schema, the CPU time the server's
process spent on the call (Linux, from ``/proc``), and the time the fake took to build
its answer (the same for both, and part of both end-to-end times).

The peer (PyPI ``andrew-nanobanana-mcp-server``, pinned below) is installed into its own
virtual environment under bench/results, never into the project's.

    uv run python -m bench.peer [--quick] [--rounds N]
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fastmcp import Client
from mcp.client.session import ClientSession
from tests.fakes.fake_gemini import FakeGemini

from bench.common import (
    LOOPBACK,
    UNLIMITED_CALLS,
    Target,
    base_parser,
    free_port,
    median,
    print_table,
    print_targets,
    say,
    stop_process,
    temporary_dir,
    write_result,
)

PEER = "andrew-nanobanana-mcp-server==0.7.0"
KEY = "bench-key"
SIZES = ("1K", "4K")
PROMPT = "a lighthouse on a cliff at dusk, photo"


def peer_venv(results_dir: Path) -> Path:
    """The peer's own virtual environment, made on first use."""
    venv = results_dir / "peer-venv"
    command = venv / "bin" / "nanobanana-mcp-server"
    if not command.exists():
        say(f"installing {PEER} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", PEER]
        subprocess.run(pip, check=True)
    return command


@contextlib.contextmanager
def serving(
    command: list[str], env: dict[str, str], port: int, log: Path
) -> Iterator[tuple[str, int]]:
    """Run one MCP server until the block ends; yields its MCP URL (once it lists tools)
    and its process id."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{LOOPBACK}:{port}/mcp"
    try:
        asyncio.run(wait_for_tools(url, process))
        yield url, process.pid
    finally:
        stop_process(process)


class Split:
    """Per-call durations measured in this process, in seconds: the client SDK's tool
    listing and result check (``ClientSession``, wrapped while the block runs) and the
    fake's building of its answer (``FakeGemini._answer``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def take(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, {}
        return taken

    @contextlib.contextmanager
    def measuring(self, gemini: FakeGemini) -> Iterator[None]:
        originals = ClientSession.list_tools, ClientSession.validate_tool_result
        answer = gemini._answer

        def timed_async(name: str, call: Callable[..., Awaitable[Any]]) -> Any:
            @functools.wraps(call)
            async def timed(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await call(*args, **kwargs)
                finally:
                    self.add(name, time.perf_counter() - started)

            return timed

        @functools.wraps(answer)
        def timed_answer(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return answer(*args, **kwargs)
            finally:
                self.add("fake_answer", time.perf_counter() - started)

        setattr(ClientSession, "list_tools", timed_async("listing", originals[0]))  # noqa: B010
        setattr(ClientSession, "validate_tool_result", timed_async("checking", originals[1]))  # noqa: B010
        setattr(gemini, "_answer", timed_answer)  # noqa: B010
        try:
            yield
        finally:
            setattr(ClientSession, "list_tools", originals[0])  # noqa: B010
            setattr(ClientSession, "validate_tool_result", originals[1])  # noqa: B010
            setattr(gemini, "_answer", answer)  # noqa: B010


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of process ``pid`` so far (Linux), else ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_for_tools(url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll until the server answers tools/list (at most a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        with contextlib.suppress(Exception):
            async with Client(url) as client:
                await client.list_tools()
                return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"{url} did not start within a minute")


def reply_bytes(result: Any) -> int:
    """What the tool result weighs on the wire: texts, base64 images, structured JSON."""
    size = 0
    for item in result.content:
        size += len(getattr(item, "text", "") or "") + len(getattr(item, "data", "") or "")
    if result.structured_content:
        size += len(json.dumps(result.structured_content))
    return size


async def call(url: str, arguments: dict[str, Any]) -> tuple[float, int]:
    """One generate_image call on a fresh session: seconds and reply size."""
    async with Client(url, timeout=600) as client:
        started = time.perf_counter()
        result = await client.call_tool("generate_image", arguments, raise_on_error=True)
        return time.perf_counter() - started, reply_bytes(result)


async def alternate(
    ours: tuple[str, int], peer: tuple[str, int], size: str, rounds: int, split: Split
) -> dict[str, Any]:
    """``rounds`` calls to each server at ``size``, interleaved; a warm-up call first."""
    ours_args = {"prompt": PROMPT, "image_size": size}
    peer_args = {"prompt": PROMPT, "resolution": size.lower(), "model_tier": "nb2"}
    await call(ours[0], ours_args)
    await call(peer[0], peer_args)
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    sizes: dict[str, list[int]] = {"ours": [], "peer": []}
    parts: dict[str, dict[str, list[float]]] = {"ours": {}, "peer": {}}
    for _ in range(rounds):
        for name, (url, pid), arguments in (("ours", ours, ours_args), ("peer", peer, peer_args)):
            split.take()
            cpu_before = cpu_seconds(pid)
            seconds, weight = await call(url, arguments)
            cpu_after = cpu_seconds(pid)
            measured = split.take()
            if cpu_before is not None and cpu_after is not None:
                measured["server_cpu"] = cpu_after - cpu_before
            measured["checking"] = measured.get("checking", 0.0) - measured.get("listing", 0.0)
            for part, value in measured.items():
                parts[name].setdefault(part, []).append(value)
            times[name].append(seconds)
            sizes[name].append(weight)
    return {
        "ours_median_s": median(times["ours"]),
        "peer_median_s": median(times["peer"]),
        "ratio": median(times["ours"]) / median(times["peer"]),
        "ours_reply_bytes": max(sizes["ours"]),
        "peer_reply_bytes": max(sizes["peer"]),
        # server_cpu: the mean (a clock tick is 10 ms); the rest: medians.
        "split_s": {
            name: {
                part: (sum(v) / len(v) if part == "server_cpu" else median(v))
                for part, v in found.items()
            }
            for name, found in parts.items()
        },
    }


SPLIT_PARTS = (
    ("listing", "tool listing after the call"),
    ("checking", "result check"),
    ("server_cpu", "server CPU per call"),
    ("fake_answer", "fake builds its answer"),
)


def split_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows of the second table: per size and server, where a call's time goes."""
    rows = []
    for size, r in results.items():
        for name in ("ours", "peer"):
            found = r["split_s"][name]
            cells = [
                f"{found[part] * 1000:.1f} ms" if part in found else "-" for part, _ in SPLIT_PARTS
            ]
            rows.append([size, name, f"{r[f'{name}_median_s'] * 1000:.0f} ms", *cells])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Start the fake Gemini and both servers, measure each size, write the figures."""
    parser = base_parser(__doc__ or "peer")
    parser.add_argument("--rounds", type=int, default=0, help="calls per server and size")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 10)
    started = time.monotonic()
    peer_command = peer_venv(args.results_dir)
    results: dict[str, Any] = {}
    split = Split()
    with FakeGemini(api_key=KEY) as gemini, temporary_dir("bench-peer-") as scratch:
        ours_port, peer_port = free_port(), free_port()
        base = {"PATH": os.environ.get("PATH", ""), "HOME": str(scratch)}
        ours_env = {
            **base,
            "IMG_ROOT": str(scratch / "ours"),
            "IMG_PORT": str(ours_port),
            "GEMINI_API_KEY": KEY,
            "IMG_GEMINI_BASE_URL": gemini.base_url,
            **UNLIMITED_CALLS,
        }
        peer_env = {
            **base,
            "FASTMCP_TRANSPORT": "http",
            "FASTMCP_HOST": LOOPBACK,
            "FASTMCP_PORT": str(peer_port),
            "GEMINI_API_KEY": KEY,
            "GEMINI_BASE_URL": gemini.base_url,
            "NANOBANANA_USE_INTERACTIONS": "false",
            "IMAGE_OUTPUT_DIR": str(scratch / "peer"),
        }
        ours_command = [sys.executable, "-m", "image_server", "dev"]
        with (
            serving(ours_command, ours_env, ours_port, scratch / "ours.log") as ours,
            serving([str(peer_command)], peer_env, peer_port, scratch / "peer.log") as peer,
        ):
            for size in SIZES:
                say(f"{size}: {rounds} calls to each server, alternating")
                with split.measuring(gemini):
                    results[size] = asyncio.run(alternate(ours, peer, size, rounds, split))
    rows = [
        [
            size,
            f"{r['ours_median_s'] * 1000:.0f} ms",
            f"{r['peer_median_s'] * 1000:.0f} ms",
            f"{r['ratio']:.2f}x",
            f"{r['ours_reply_bytes'] / 1000:.0f} KB",
            f"{r['peer_reply_bytes'] / 1000:.0f} KB",
        ]
        for size, r in results.items()
    ]
    print_table(
        "generate_image end to end against the peer (same fake Gemini)",
        ["size", "ours (median)", "peer (median)", "ours / peer", "our reply", "peer reply"],
        rows,
    )
    print_table(
        "Where a call's time goes (medians; CPU: mean per call)",
        ["size", "server", "end to end", *(label for _, label in SPLIT_PARTS)],
        split_rows(results),
    )
    targets = [Target(f"time ÷ peer, {size}", r["ratio"], 0.8, "x") for size, r in results.items()]
    print_targets(targets)
    write_result(
        "peer", args.results_dir, quick=args.quick, started=started, results=results,
        targets=targets,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
