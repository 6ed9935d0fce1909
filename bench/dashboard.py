"""Dashboard speed at 1k, 10k and 100k generations: cold start, cost table, first gallery page.

Synthetic sidecars (``RecordCodec.dump_generation``, 20 users with a skewed share each,
six months of history) are written straight to a data folder, cached under
``bench/results/data`` between runs. For each size:

- cold start: a fresh ``python`` process imports the server and runs ``build_app``,
  first with the SQLite index missing (so it is rebuilt from every sidecar), then again
  with the index in place. The target applies to ``build_app`` (what the data costs);
  the imports (the same at any size) and the whole launch are reported beside it;
- in-process p50/p99 of ``usage_for(admin)`` (the cost table), ``daily_spend_for``
  (the 30-day chart) and ``gallery(viewer, email, 0, 24)`` (first page, busiest user);
- over HTTP (real server in a child, login off): ``GET /ui/`` and the first gallery page.

Targets at the largest size (100k): cost table and first gallery page p50 <= 50 ms,
cold start (``build_app``) <= 3 s. The operating system's file cache is warm (the data
were just written or read); dropping it needs root and would disturb everything else.

    uv run python -m bench.dashboard [--quick] [--sizes 1000,10000,100000] [--no-cache]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import httpx2

from bench.common import (
    ROOT,
    Target,
    base_parser,
    dev_settings_env,
    int_list,
    print_table,
    print_targets,
    say,
    server_process,
    summary_ms,
    temporary_dir,
    write_result,
)
from image_core.access import AccessPolicy
from image_core.catalog import ModelCatalog
from image_core.domain import AspectRatio, Generation, Identity, ImageSize, TokenUsage
from image_core.names import record_file_name
from image_core.serialization import RecordCodec
from image_server.app import build_service
from image_server.settings import load_settings

NAME = "dashboard"
DATASET_VERSION = 1
USERS = 20
ADMIN = "admin@example.com"
HISTORY_DAYS = 180
TARGET_QUERY_P50_MS = 50.0
TARGET_COLD_START_S = 3.0
FULL_QUERY_REPS = 100
FULL_HTTP_REPS = 50
QUICK_REPS = 5
WORDS = (
    "harbour dawn fishing boats soft fog golden light film grain portrait old cartographer "
    "maps oil painting warm palette isometric city block night neon signs rain reflections "
    "watercolour fox snowy birch forest children's book style pastel colours a the with in"
)

VOCABULARY = WORDS.split(" ")

# Runs in a fresh interpreter: measures imports and build_app, prints JSON.
COLD_START_CHILD = """
import json, sys, time
started = time.perf_counter()
from image_server.app import build_app
from image_server.settings import load_settings
imported = time.perf_counter()
app = build_app(load_settings({"IMG_ROOT": sys.argv[1]}, dev=True))
built = time.perf_counter()
print(json.dumps({"imports_s": imported - started, "build_app_s": built - imported}))
"""


def users() -> list[str]:
    """The synthetic people, busiest first."""
    return [f"user{i:02d}@example.com" for i in range(USERS)]


def synthetic_generations(count: int, seed: int = 1) -> Iterator[Generation]:
    """``count`` plausible records: skewed per user, mixed models, sizes and ratios."""
    rng = random.Random(seed)
    people = users()
    weights = [1 / (rank + 1) for rank in range(USERS)]  # Zipf-like: a few heavy users
    specs = list(ModelCatalog())
    ratios = list(AspectRatio)[:10]
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    for _ in range(count):
        spec = rng.choice(specs)
        size = rng.choice([ImageSize.S1K, ImageSize.S1K, ImageSize.S2K, ImageSize.S4K])
        size = size if size in spec.sizes else ImageSize.S1K
        ratio = rng.choice(ratios)
        width, height = ratio.dimensions(size)
        yield Generation(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            email=rng.choices(people, weights)[0],
            prompt=" ".join(rng.choices(VOCABULARY, k=rng.randint(6, 60))),
            model_alias=spec.alias,
            model_id=spec.model_id,
            image_size=size,
            aspect_ratio=ratio if ratio in spec.aspect_ratios else None,
            created_at=now - timedelta(seconds=rng.uniform(0, HISTORY_DAYS * 86400)),
            cost=spec.price(size),
            token_usage=TokenUsage(rng.randint(10, 400), 1290, None, None),
            backend="gemini",
            width=width,
            height=height,
        )


def write_dataset(root: Path, count: int) -> None:
    """``count`` sidecars in ``root``, written plainly (no fsync: this is test data)."""
    root.mkdir(parents=True, exist_ok=True)
    codec = RecordCodec()
    for generation in synthetic_generations(count):
        (root / record_file_name(generation.id)).write_bytes(codec.dump_generation(generation))


@contextlib.contextmanager
def dataset(count: int, cache_dir: Path | None) -> Iterator[Path]:
    """A data folder holding ``count`` sidecars: cached when ``cache_dir`` is given."""
    if cache_dir is None:
        with temporary_dir(f"bench-dashboard-{count}-") as root:
            _make(root, count)
            yield root
        return
    root = cache_dir / f"dashboard-v{DATASET_VERSION}-{count}"
    marker = root / ".complete"
    if not marker.exists():
        if root.exists():
            shutil.rmtree(root)
        _make(root, count)
        marker.write_text(f"{count}\n")
    yield root


def _make(root: Path, count: int) -> None:
    say(f"writing {count} synthetic sidecars ...")
    started = time.monotonic()
    write_dataset(root, count)
    say(f"  done in {time.monotonic() - started:.1f} s")


def drop_index(root: Path) -> None:
    """Remove the derived SQLite index so the next start rebuilds it."""
    for path in root.glob("index.sqlite3*"):
        path.unlink()


def cold_start(root: Path) -> dict[str, float]:
    """Launch a fresh interpreter that builds the app on ``root``; time it from outside."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", COLD_START_CHILD, str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    total = time.perf_counter() - started
    inside = json.loads(done.stdout.strip().splitlines()[-1])
    return {"total_s": round(total, 3), **{k: round(v, 3) for k, v in inside.items()}}


async def repeat(func: Callable[[], Awaitable[object]], reps: int, warmup: int = 2) -> list[float]:
    """Seconds per awaited call (worker-thread hop included), after ``warmup`` untimed calls."""
    for _ in range(warmup):
        await func()
    times: list[float] = []
    for _ in range(reps):
        started = time.perf_counter()
        await func()
        times.append(time.perf_counter() - started)
    return times


async def queries(root: Path, reps: int) -> dict[str, dict[str, float]]:
    """p50/p99 of the service calls behind the pages, with the index warm."""
    settings = load_settings(dev_settings_env(root), dev=True)
    closing = contextlib.AsyncExitStack()
    service = build_service(settings, closing=closing)
    service = attrs.evolve(service, policy=AccessPolicy(allowed=frozenset(users()), admins={ADMIN}))
    admin = Identity(ADMIN, email_verified=True)
    busiest = users()[0]
    viewer = Identity(busiest, email_verified=True)
    try:
        return {
            "usage_for(admin)": summary_ms(await repeat(lambda: service.usage_for(admin), reps)),
            "daily_spend_for(admin, 30)": summary_ms(
                await repeat(lambda: service.daily_spend_for(admin, 30), reps)
            ),
            "gallery(first page)": summary_ms(
                await repeat(lambda: service.gallery(viewer, busiest, 0, 24), reps)
            ),
        }
    finally:
        await closing.aclose()


async def pages(root: Path, reps: int) -> dict[str, dict[str, float]]:
    """p50/p99 of the two dashboard pages over loopback HTTP (login off)."""
    busiest = users()[0]
    found: dict[str, dict[str, float]] = {}
    with server_process(["--root", str(root)]) as server:
        async with httpx2.AsyncClient(base_url=server.url, timeout=60) as client:
            for label, path in (
                ("GET /ui/ (costs)", "/ui/"),
                ("GET /ui/gallery/<busiest>", f"/ui/gallery/{busiest}"),
            ):
                times: list[float] = []
                for attempt in range(reps + 2):
                    started = time.perf_counter()
                    response = await client.get(path)
                    elapsed = time.perf_counter() - started
                    response.raise_for_status()
                    if attempt >= 2:
                        times.append(elapsed)
                found[label] = summary_ms(times)
    return found


def measure_size(count: int, reps: int, http_reps: int, cache_dir: Path | None) -> dict[str, Any]:
    """Everything for one dataset size."""
    with dataset(count, cache_dir) as root:
        drop_index(root)
        say(f"{count}: cold start, index missing ...")
        rebuild = cold_start(root)
        say(f"{count}: cold start, index present ...")
        warm = cold_start(root)
        say(f"{count}: queries ...")
        in_process = asyncio.run(queries(root, reps))
        say(f"{count}: pages over HTTP ...")
        over_http = asyncio.run(pages(root, http_reps))
    return {
        "generations": count,
        "cold_start_index_missing": rebuild,
        "cold_start_index_present": warm,
        "in_process": in_process,
        "http": over_http,
    }


def report(results: dict[str, Any]) -> None:
    """Cold starts, then query and page latencies, per size."""
    starts = [
        [
            f"{figures['generations']:,}",
            figures["cold_start_index_missing"]["total_s"],
            figures["cold_start_index_missing"]["imports_s"],
            figures["cold_start_index_missing"]["build_app_s"],
            figures["cold_start_index_present"]["total_s"],
            figures["cold_start_index_present"]["build_app_s"],
        ]
        for figures in results.values()
    ]
    print_table(
        "Cold start (s; fresh process until build_app returns)",
        [
            "generations",
            "no index: total",
            "imports",
            "build_app",
            "index ok: total",
            "build_app",
        ],
        starts,
    )
    rows = []
    for figures in results.values():
        for kind in ("in_process", "http"):
            for label, stats in figures[kind].items():
                rows.append(
                    [f"{figures['generations']:,}", label, stats["p50_ms"], stats["p99_ms"]]
                )
    print_table("Queries and pages (ms)", ["generations", "what", "p50", "p99"], rows)


def targets_of(results: dict[str, Any]) -> list[Target]:
    """Checked at the largest size measured."""
    largest = results[max(results, key=int)]
    n = f"{largest['generations']:,}"
    local, remote = largest["in_process"], largest["http"]
    return [
        Target(
            f"cost table p50 at {n} (usage_for)",
            local["usage_for(admin)"]["p50_ms"],
            TARGET_QUERY_P50_MS,
            "ms",
        ),
        Target(
            f"first gallery page p50 at {n} (service)",
            local["gallery(first page)"]["p50_ms"],
            TARGET_QUERY_P50_MS,
            "ms",
        ),
        Target(
            f"GET /ui/ p50 at {n}",
            remote["GET /ui/ (costs)"]["p50_ms"],
            TARGET_QUERY_P50_MS,
            "ms",
        ),
        Target(
            f"GET /ui/gallery p50 at {n}",
            remote["GET /ui/gallery/<busiest>"]["p50_ms"],
            TARGET_QUERY_P50_MS,
            "ms",
        ),
        Target(
            f"cold start at {n}, index rebuilt (build_app)",
            largest["cold_start_index_missing"]["build_app_s"],
            TARGET_COLD_START_S,
            "s",
        ),
        Target(
            f"cold start at {n}, index present (build_app)",
            largest["cold_start_index_present"]["build_app_s"],
            TARGET_COLD_START_S,
            "s",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, write JSON."""
    parser = base_parser(__doc__ or NAME)
    parser.add_argument("--sizes", type=int_list, default=None)
    parser.add_argument(
        "--no-cache", action="store_true", help="write the data to a temporary folder"
    )
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1000] if args.quick else [1000, 10_000, 100_000])
    reps = QUICK_REPS if args.quick else FULL_QUERY_REPS
    http_reps = QUICK_REPS if args.quick else FULL_HTTP_REPS
    cache_dir = None if args.no_cache else args.results_dir / "data"
    started = time.monotonic()
    results = {str(n): measure_size(n, reps, http_reps, cache_dir) for n in sizes}
    report(results)
    targets = targets_of(results)
    print_targets(targets)
    write_result(
        NAME, args.results_dir, quick=args.quick, started=started, results=results, targets=targets
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
