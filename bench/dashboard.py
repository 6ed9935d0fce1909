"""Dashboard speed at 1k, 10k and 100k generations: rebuild, cold start, every page, the CSV.

Synthetic sidecars (``RecordCodec.dump_generation``, 20 users with a skewed share each,
six months of history up to the day the data were made, some costs from token counts
beside their list-price estimate) are written straight to a data folder, cached under
``bench/results/data`` between runs (per month, so "this month" always holds records).
For each size:

- index rebuild: a fresh process opens the records with the SQLite index missing and
  waits until the background rebuild is done; once with the sidecars evicted from the
  file cache (``posix_fadvise(DONTNEED)`` on each, no root needed: "cold") and once
  right after (they were just read: "warm");
- cold start: a fresh ``python`` process imports the server and runs ``build_app``, with
  the index present and with it missing (the rebuild then runs in the background, so
  ``build_app`` costs the same);
- in-process p50/p99 of the service calls behind the pages;
- over HTTP (real server in a child, login off): while the index is rebuilt, ``GET
  /ui/`` (it must answer, saying its figures are partial); then, built, the overview
  of each period kind (this month, last month, a chosen month, all time), the busiest
  user's first gallery page, and the CSV of the busiest month and of all time (time to
  the first byte and to the last).

Targets at the largest size (100k): every page p50 <= 50 ms (the CSVs: to the first
byte), rebuild <= 10 s, ``build_app`` <= 3 s, and pages answer during the rebuild.

    uv run python -m bench.dashboard [--quick] [--sizes 1000,10000,100000] [--no-cache]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
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
from image_core.budgets import Period
from image_core.catalog import ModelCatalog
from image_core.domain import (
    AspectRatio,
    CostBasis,
    CostEstimate,
    Generation,
    Identity,
    ImageSize,
    TokenUsage,
)
from image_core.names import record_file_name
from image_core.serialization import RecordCodec
from image_server.adapters.sqlite_index import BACKGROUND_REBUILD_FROM
from image_server.app import build_service
from image_server.settings import load_settings

NAME = "dashboard"
DATASET_VERSION = 2  # 2: history up to the day it is made, costs from usage beside estimates
USERS = 20
ADMIN = "admin@example.com"
HISTORY_DAYS = 180
TARGET_QUERY_P50_MS = 50.0
TARGET_COLD_START_S = 3.0
TARGET_REBUILD_S = 10.0
CSV_REPS = 10
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


def data_day() -> datetime:
    """The newest moment of the synthetic history: the start of today (UTC)."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def synthetic_generations(
    count: int, seed: int = 1, now: datetime | None = None
) -> Iterator[Generation]:
    """``count`` plausible records: skewed per user, mixed models, sizes and ratios.

    About half have a cost from token counts a little off their list-price estimate.
    """
    rng = random.Random(seed)
    people = users()
    weights = [1 / (rank + 1) for rank in range(USERS)]  # Zipf-like: a few heavy users
    specs = list(ModelCatalog())
    ratios = list(AspectRatio)[:10]
    now = now or data_day()
    for _ in range(count):
        spec = rng.choice(specs)
        size = rng.choice([ImageSize.S1K, ImageSize.S1K, ImageSize.S2K, ImageSize.S4K])
        size = size if size in spec.sizes else ImageSize.S1K
        ratio = rng.choice(ratios)
        width, height = ratio.dimensions(size)
        estimate = spec.price(size)
        measured = rng.random() < 0.5
        cost = estimate
        if measured:
            cost = CostEstimate(
                (estimate.usd * Decimal(rng.randint(90, 115)) / 100).quantize(Decimal("0.000001"))
            )
        yield Generation(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            email=rng.choices(people, weights)[0],
            prompt=" ".join(rng.choices(VOCABULARY, k=rng.randint(6, 60))),
            model_alias=spec.alias,
            model_id=spec.model_id,
            image_size=size,
            aspect_ratio=ratio if ratio in spec.aspect_ratios else None,
            created_at=now - timedelta(seconds=rng.uniform(0, HISTORY_DAYS * 86400)),
            cost=cost,
            token_usage=TokenUsage(rng.randint(10, 400), 1290, None, None),
            backend="gemini",
            width=width,
            height=height,
            estimate=estimate if measured else None,
            cost_basis=CostBasis.USAGE if measured else CostBasis.LIST_PRICE,
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
    root = cache_dir / f"dashboard-v{DATASET_VERSION}-{count}-{data_day():%Y-%m}"
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


# Runs in a fresh interpreter: opens the records with the index missing, waits for the rebuild.
REBUILD_CHILD = """
import json, sys, time
from image_server.adapters.fs_metadata import FilesystemMetadataRepository
started = time.perf_counter()
repo = FilesystemMetadataRepository(__import__("pathlib").Path(sys.argv[1]))
opened = time.perf_counter()
assert repo.wait_until_built(600)
built = time.perf_counter()
count = repo.usage().total_count
repo.close()
print(json.dumps({"open_s": opened - started, "rebuild_s": built - started, "indexed": count}))
"""


def drop_index(root: Path) -> None:
    """Remove the derived SQLite index so the next start rebuilds it."""
    for path in root.glob("index.sqlite3*"):
        path.unlink()


def evict_from_cache(root: Path) -> None:
    """Ask the kernel to drop the sidecars' pages from its file cache (no root needed)."""
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.endswith(".json"):
                fd = os.open(entry.path, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def _child(code: str, root: Path) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    total = time.perf_counter() - started
    inside = json.loads(done.stdout.strip().splitlines()[-1])
    return {"total_s": round(total, 3), **{k: round(v, 3) for k, v in inside.items()}}


def cold_start(root: Path) -> dict[str, float]:
    """Launch a fresh interpreter that builds the app on ``root``; time it from outside."""
    return _child(COLD_START_CHILD, root)


def rebuild(root: Path, *, cold: bool) -> dict[str, float]:
    """A full rebuild in a fresh process, the sidecars evicted from the cache first if ``cold``."""
    drop_index(root)
    if cold:
        evict_from_cache(root)
    return _child(REBUILD_CHILD, root)


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


def months(today: date) -> tuple[str, str]:
    """Last month and the one before it, as ``YYYY-MM`` (the export's month, the chosen one)."""
    this = today.replace(day=1)
    last = (this - timedelta(days=1)).replace(day=1)
    before = (last - timedelta(days=1)).replace(day=1)
    return f"{last:%Y-%m}", f"{before:%Y-%m}"


async def queries(root: Path, reps: int) -> dict[str, dict[str, float]]:
    """p50/p99 of the service calls behind the pages, with the index warm."""
    settings = load_settings(dev_settings_env(root), dev=True)
    closing = contextlib.AsyncExitStack()
    service = build_service(settings, closing=closing)
    service = attrs.evolve(service, policy=AccessPolicy(allowed=frozenset(users()), admins={ADMIN}))
    admin = Identity(ADMIN, email_verified=True)
    busiest = users()[0]
    viewer = Identity(busiest, email_verified=True)
    this_month = Period.month_of(service.today())

    async def export_month() -> None:
        async for _ in service.cost_rows_for(admin, this_month):
            pass

    try:
        return {
            "usage_for(admin)": summary_ms(await repeat(lambda: service.usage_for(admin), reps)),
            "spend_overview(admin, all time)": summary_ms(
                await repeat(lambda: service.spend_overview(admin, Period()), reps)
            ),
            "spend_overview(admin, this month)": summary_ms(
                await repeat(lambda: service.spend_overview(admin, this_month), reps)
            ),
            "daily_spend_for(admin, 30)": summary_ms(
                await repeat(lambda: service.daily_spend_for(admin, 30), reps)
            ),
            "gallery(first page)": summary_ms(
                await repeat(lambda: service.gallery(viewer, busiest, 0, 24), reps)
            ),
            "cost_rows_for(admin, this month)": summary_ms(await repeat(export_month, reps)),
        }
    finally:
        await closing.aclose()


async def _timed_get(client: httpx2.AsyncClient, path: str) -> tuple[float, float, str]:
    """Seconds to the first body byte and to the last, and the first bytes' text."""
    started = time.perf_counter()
    first = 0.0
    head = b""
    async with client.stream("GET", path) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes():
            if not head:
                first = time.perf_counter() - started
                head = chunk[:200_000]
    return first, time.perf_counter() - started, head.decode(errors="replace")


async def _series(
    client: httpx2.AsyncClient, path: str, reps: int, warmup: int = 2
) -> tuple[list[float], list[float]]:
    firsts: list[float] = []
    fulls: list[float] = []
    for attempt in range(reps + warmup):
        first, full, _ = await _timed_get(client, path)
        if attempt >= warmup:
            firsts.append(first)
            fulls.append(full)
    return firsts, fulls


async def during_rebuild(client: httpx2.AsyncClient) -> dict[str, Any]:
    """``GET /ui/`` over and over while the index is rebuilt, until it says it is done."""
    times: list[float] = []
    partial = 0
    started = time.perf_counter()
    while True:
        _, full, text = await _timed_get(client, "/ui/?period=all")
        if "being rebuilt" not in text:
            break
        partial += 1
        times.append(full)
        await asyncio.sleep(0.05)
    return {
        "answered_while_rebuilding": partial,
        "rebuild_seen_s": round(time.perf_counter() - started, 3),
        **(summary_ms(times) if times else {}),
    }


async def pages(root: Path, reps: int, csv_reps: int) -> dict[str, dict[str, Any]]:
    """Over loopback HTTP (login off): pages during a rebuild, then each page, built."""
    busiest = users()[0]
    last, chosen = months(datetime.now(UTC).date())
    found: dict[str, dict[str, Any]] = {}
    drop_index(root)
    with server_process(["--root", str(root)]) as server:
        async with httpx2.AsyncClient(base_url=server.url, timeout=120) as client:
            found["GET /ui/ during the rebuild"] = await during_rebuild(client)
            for label, path in (
                ("GET /ui/ (this month)", "/ui/"),
                ("GET /ui/?period=last", "/ui/?period=last"),
                (f"GET /ui/?period={chosen}", f"/ui/?period={chosen}"),
                ("GET /ui/?period=all", "/ui/?period=all"),
                ("GET /ui/gallery/<busiest>", f"/ui/gallery/{busiest}"),
            ):
                _, fulls = await _series(client, path, reps)
                found[label] = summary_ms(fulls)
            for label, path in (
                (f"CSV of {last}", f"/ui/costs.csv?period={last}"),
                ("CSV of all time", "/ui/costs.csv?period=all"),
            ):
                firsts, fulls = await _series(client, path, csv_reps, warmup=1)
                found[f"{label}: first byte"] = summary_ms(firsts)
                found[f"{label}: whole"] = summary_ms(fulls)
    return found


def measure_size(count: int, reps: int, http_reps: int, cache_dir: Path | None) -> dict[str, Any]:
    """Everything for one dataset size."""
    csv_reps = max(3, min(CSV_REPS, http_reps))
    with dataset(count, cache_dir) as root:
        say(f"{count}: index rebuild, sidecars evicted from the cache ...")
        cold = rebuild(root, cold=True)
        say(f"{count}: index rebuild, warm cache ...")
        warm = rebuild(root, cold=False)
        say(f"{count}: cold start, index present ...")
        present = cold_start(root)
        say(f"{count}: cold start, index missing ...")
        drop_index(root)
        missing = cold_start(root)
        rebuild(root, cold=False)
        say(f"{count}: queries ...")
        in_process = asyncio.run(queries(root, reps))
        say(f"{count}: pages over HTTP (rebuilding first) ...")
        over_http = asyncio.run(pages(root, http_reps, csv_reps))
    return {
        "generations": count,
        "rebuild_cold_cache": cold,
        "rebuild_warm_cache": warm,
        "cold_start_index_missing": missing,
        "cold_start_index_present": present,
        "in_process": in_process,
        "http": over_http,
    }


def report(results: dict[str, Any]) -> None:
    """Rebuilds and cold starts, then query and page latencies, per size."""
    starts = [
        [
            f"{figures['generations']:,}",
            figures["rebuild_cold_cache"]["rebuild_s"],
            figures["rebuild_warm_cache"]["rebuild_s"],
            figures["cold_start_index_missing"]["build_app_s"],
            figures["cold_start_index_present"]["build_app_s"],
            figures["cold_start_index_present"]["imports_s"],
        ]
        for figures in results.values()
    ]
    print_table(
        "Rebuild and cold start (s)",
        [
            "generations",
            "rebuild, cold cache",
            "rebuild, warm cache",
            "build_app, no index",
            "build_app, index ok",
            "imports",
        ],
        starts,
    )
    rows = []
    for figures in results.values():
        for kind in ("in_process", "http"):
            for label, stats in figures[kind].items():
                rows.append(
                    [
                        f"{figures['generations']:,}",
                        label,
                        stats.get("p50_ms", "-"),
                        stats.get("p99_ms", "-"),
                        stats.get("answered_while_rebuilding", ""),
                    ]
                )
    print_table(
        "Queries and pages (ms)",
        ["generations", "what", "p50", "p99", "answers while rebuilding"],
        rows,
    )


def targets_of(results: dict[str, Any]) -> list[Target]:
    """Checked at the largest size measured."""
    largest = results[max(results, key=int)]
    n = f"{largest['generations']:,}"
    remote = largest["http"]
    targets = [
        Target(f"{label} p50 at {n}", stats["p50_ms"], TARGET_QUERY_P50_MS, "ms")
        for label, stats in remote.items()
        if (label.startswith("GET /ui/") and "during" not in label) or label.endswith("first byte")
    ]
    targets += [
        Target(
            f"rebuild at {n}, cold cache",
            largest["rebuild_cold_cache"]["rebuild_s"],
            TARGET_REBUILD_S,
            "s",
        ),
        Target(
            f"rebuild at {n}, warm cache",
            largest["rebuild_warm_cache"]["rebuild_s"],
            TARGET_REBUILD_S,
            "s",
        ),
        Target(
            f"cold start at {n}, index missing (build_app)",
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
    if largest["generations"] > BACKGROUND_REBUILD_FROM:
        during = remote["GET /ui/ during the rebuild"]
        targets.append(
            Target(
                f"GET /ui/ answers during the rebuild at {n}",
                during["answered_while_rebuilding"],
                1,
                "answers",
                at_least=True,
            )
        )
    return targets


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
