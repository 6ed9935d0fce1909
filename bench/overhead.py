"""Per-generation server overhead beyond the backend, next to the Pillow floor.

The backend answers at once with a prerendered photo-like PNG, so everything timed is
the server's own work: check and decode the PNG, make the JPEG preview and the WebP
thumbnail, write the PNG, thumbnail, sidecar and index entry durably, and (over HTTP)
the MCP round trip with a real fastmcp client. The floor is what any server must do at
the very least: ``Image.open(png).load()`` plus ``thumbnail((1024, 1024))``.
Floor and generation are measured alternately in the same run; the target is their
ratio of medians (<= 1.3 at every size).

    uv run python -m bench.overhead [--quick] [--sides 1024,2048,4096]
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastmcp import Client
from PIL import Image

from bench.common import (
    PrerenderedBackend,
    Target,
    base_parser,
    dev_settings_env,
    int_list,
    photo_path,
    print_table,
    print_targets,
    say,
    server_process,
    summary_ms,
    temporary_dir,
    write_result,
)
from image_core.domain import AspectRatio, GenerationRequest, ImageSize
from image_core.service import ImageService
from image_server.adapters.pillow_codec import PillowImageCodec
from image_server.app import build_service
from image_server.settings import load_settings

NAME = "overhead"
PREVIEW_SIDE = 1024
TARGET_RATIO = 1.3
FULL_REPS = {1024: 25, 2048: 12, 4096: 8}
QUICK_REPS = 3


def size_tier(side: int) -> ImageSize:
    """The Gemini size tier a square image of ``side`` pixels belongs to."""
    if side <= 1024:
        return ImageSize.S1K
    return ImageSize.S2K if side <= 2048 else ImageSize.S4K


def floor_once(png: bytes) -> None:
    """The minimum: decode the PNG and downscale it to a 1024 preview, nothing else."""
    image = Image.open(io.BytesIO(png))
    image.load()
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))


def codec_once(codec: PillowImageCodec, png: bytes) -> None:
    """The codec step of a generation alone (check, decode, preview, thumbnail)."""
    codec.process(png, PREVIEW_SIDE, 384)


async def alternate(steps: dict[str, Callable[[], Any]], reps: int) -> dict[str, list[float]]:
    """Run each step once per round (after one warm-up round); seconds per step."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_number in range(reps + 1):
        for name, step in steps.items():
            started = time.perf_counter()
            result = step()
            if asyncio.iscoroutine(result):
                await result
            if round_number:
                times[name].append(time.perf_counter() - started)
    return times


async def in_process(png: bytes, side: int, reps: int, root: Path) -> dict[str, list[float]]:
    """Floor, codec alone and ``ImageService.generate`` (filesystem adapters), alternately."""
    settings = load_settings(dev_settings_env(root), dev=True)
    closing = contextlib.AsyncExitStack()
    service: ImageService = build_service(
        settings, closing=closing, backend=PrerenderedBackend(png)
    )
    codec = PillowImageCodec()
    request = GenerationRequest("bench", AspectRatio.R1_1, size_tier(side))
    try:
        return await alternate(
            {
                "floor": lambda: floor_once(png),
                "codec": lambda: codec_once(codec, png),
                "in_process": lambda: service.generate(None, request),
            },
            reps,
        )
    finally:
        await closing.aclose()


async def over_http(
    png: bytes, png_path: Path, side: int, reps: int, root: Path
) -> dict[str, list[float]]:
    """Floor, ``generate_image`` over MCP HTTP (server in a child) and ``tools/list``, alternately.

    ``tools/list`` is an MCP round trip with next to no work: the protocol's own share.
    """
    arguments = {"prompt": "bench", "aspect_ratio": "1:1", "image_size": size_tier(side).value}
    with server_process(["--root", str(root), "--png", str(png_path)]) as server:
        async with Client(f"{server.url}/mcp", timeout=120) as client:
            return await alternate(
                {
                    "floor_http_run": lambda: floor_once(png),
                    "http": lambda: client.call_tool("generate_image", arguments),
                    "mcp_list_tools": client.list_tools,
                },
                reps,
            )


async def measure(sides: Sequence[int], quick: bool, results_dir: Path) -> dict[str, Any]:
    """Every variant at every size."""
    results: dict[str, Any] = {}
    for side in sides:
        reps = QUICK_REPS if quick else FULL_REPS.get(side, 25)
        png_path = photo_path(side, results_dir / "data")
        png = png_path.read_bytes()
        say(f"{side}x{side}: {len(png) / 1e6:.1f} MB PNG, {reps} rounds")
        with temporary_dir("bench-overhead-") as root:
            local = await in_process(png, side, reps, root / "in-process")
            remote = await over_http(png, png_path, side, reps, root / "http")
        stats = {name: summary_ms(values) for name, values in {**local, **remote}.items()}
        floor = stats["floor"]["p50_ms"]
        floor_http_run = stats["floor_http_run"]["p50_ms"]
        results[str(side)] = {
            "png_bytes": len(png),
            "rounds": reps,
            "stats": stats,
            "ratio_in_process": round(stats["in_process"]["p50_ms"] / floor, 3),
            "ratio_codec": round(stats["codec"]["p50_ms"] / floor, 3),
            "ratio_http": round(stats["http"]["p50_ms"] / floor_http_run, 3),
        }
    return results


def targets_of(results: dict[str, Any]) -> list[Target]:
    """Generation over floor, in-process and over HTTP, at each size."""
    found: list[Target] = []
    for side, figures in results.items():
        for variant in ("in_process", "http"):
            label = variant.replace("_", "-")
            found.append(
                Target(
                    f"overhead {side}px {label} / Pillow floor",
                    figures[f"ratio_{variant}"],
                    TARGET_RATIO,
                    "x",
                )
            )
    return found


def report(results: dict[str, Any]) -> None:
    """The table of medians and ratios."""
    rows = []
    for side, figures in results.items():
        stats = figures["stats"]
        rows.append(
            [
                f"{side}px",
                f"{figures['png_bytes'] / 1e6:.1f}",
                stats["floor"]["p50_ms"],
                stats["codec"]["p50_ms"],
                stats["in_process"]["p50_ms"],
                stats["in_process"]["p99_ms"],
                stats["http"]["p50_ms"],
                stats["http"]["p99_ms"],
                stats["mcp_list_tools"]["p50_ms"],
                figures["ratio_in_process"],
                figures["ratio_http"],
            ]
        )
    print_table(
        "Generation overhead (ms; backend answers instantly)",
        [
            "size",
            "PNG MB",
            "floor p50",
            "codec p50",
            "in-proc p50",
            "in-proc p99",
            "HTTP p50",
            "HTTP p99",
            "list_tools p50",
            "in-proc/floor",
            "HTTP/floor",
        ],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, write JSON."""
    parser = base_parser(__doc__ or NAME)
    parser.add_argument("--sides", type=int_list, default=[1024, 2048, 4096])
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = asyncio.run(measure(args.sides, args.quick, args.results_dir))
    report(results)
    targets = targets_of(results)
    print_targets(targets)
    write_result(
        NAME,
        args.results_dir,
        quick=args.quick,
        started=started,
        results=results,
        targets=targets,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
