"""What admission costs a tool call at 1k, 10k and 100k generations, with budgets and without.

The data folder is the dashboard benchmark's (``bench.dashboard.dataset``: 20 people
with a Zipf-like share, six months of history, cached under ``bench/results/data``).
One *check* is what every ``generate_image`` call pays before anything is sent: the
gate admits the request (reading the settled spend of the day and the month from the
index when a budget applies, adding what is reserved, reserving the estimate, counting
the rate window and the places in flight), then the image gives it all back. Measured:

- ``without budgets``: only the rate window and the places (the default configuration);
- ``with budgets``: a daily and a monthly budget per person and the server's monthly
  budget, all applying, for the busiest person, whose month holds the most records.
  The gate reads each period's settled spend from the index once (the person's day,
  everyone's month) and keeps it in step with what settles, so this is the steady state;
- ``first check of a period``: a fresh gate each time, so the spend of the day and the
  month is read from the index (what the first call of each UTC day and month pays, and
  the first after a restart).

The clock is the dataset's "now", so the day and the month are full of records.
Target: a check with every budget adds at most a few milliseconds (median <= 5 ms).

    uv run python -m bench.budget [--quick] [--sizes 1000,10000,100000] [--no-cache]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import (
    Target,
    base_parser,
    int_list,
    print_table,
    print_targets,
    say,
    summary_ms,
    write_result,
)
from bench.dashboard import dataset, users
from image_core.budgets import Budgets
from image_core.catalog import ModelCatalog
from image_core.domain import CostEstimate, GenerationRequest
from image_core.limits import CallLimits, Gate
from image_core.testing import FixedClock
from image_server.adapters.fs_metadata import FilesystemMetadataRepository

NAME = "budget"
TARGET_CHECK_P50_MS = 5.0
FULL_REPS = 500
QUICK_REPS = 20
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
"""The dataset's newest moment (``bench.dashboard.synthetic_generations``)."""
EVERY_BUDGET = Budgets(
    user_daily=CostEstimate(Decimal(1_000_000)),
    user_monthly=CostEstimate(Decimal(1_000_000)),
    total_monthly=CostEstimate(Decimal(1_000_000)),
)
ROOMY = CallLimits(rate_per_minute=10**9, max_concurrent=10, max_concurrent_total=10)


def new_gate(metadata: FilesystemMetadataRepository, budgets: Budgets) -> Gate:
    return Gate(
        budgets=budgets,
        limits=ROOMY,
        catalog=ModelCatalog(),
        metadata=metadata,
        clock=FixedClock(NOW),
    )


def checks(
    metadata: FilesystemMetadataRepository, budgets: Budgets, reps: int, *, fresh: bool = False
) -> list[float]:
    """Seconds per admission and give-back, after a few untimed ones (``fresh``: a new
    gate for each, whose spend is read from the index)."""
    gate = new_gate(metadata, budgets)
    spec = ModelCatalog().default
    asked = GenerationRequest.parse("a lighthouse at dusk")
    busiest = users()[0]
    times: list[float] = []
    for attempt in range(reps + 3):
        if fresh:
            gate = new_gate(metadata, budgets)
        started = time.perf_counter()
        admission = gate.admit(busiest, spec, asked, admin=False)
        gate.release(admission)
        gate.finished(admission)
        if attempt >= 3:
            times.append(time.perf_counter() - started)
    return times


def measure_size(count: int, reps: int, cache_dir: Path | None) -> dict[str, Any]:
    """Both configurations over one data folder (its index built first, untimed)."""
    with dataset(count, cache_dir) as root:
        say(f"{count}: opening the index ...")
        with FilesystemMetadataRepository(root) as metadata:
            metadata.usage()  # builds or opens the index before anything is timed
            busiest_images = metadata.usage({users()[0]}).total_count
            say(f"{count}: checks ...")
            without = checks(metadata, Budgets(), reps)
            with_budgets = checks(metadata, EVERY_BUDGET, reps)
            first = checks(metadata, EVERY_BUDGET, max(3, reps // 50), fresh=True)
    return {
        "generations": count,
        "busiest_person_images": busiest_images,
        "without budgets": summary_ms(without),
        "with budgets": summary_ms(with_budgets),
        "first check of a period": summary_ms(first),
        "added_by_budgets_p50_ms": round(
            (statistics.median(with_budgets) - statistics.median(without)) * 1000, 3
        ),
    }


def report(results: dict[str, Any]) -> None:
    rows = [
        [
            n,
            r["without budgets"]["p50_ms"],
            r["with budgets"]["p50_ms"],
            r["with budgets"]["p99_ms"],
            r["added_by_budgets_p50_ms"],
            r["first check of a period"]["p50_ms"],
        ]
        for n, r in results.items()
    ]
    print_table(
        "Admission check (admit + give back), ms",
        [
            "generations",
            "no budgets p50",
            "budgets p50",
            "budgets p99",
            "added p50",
            "first of a period p50",
        ],
        rows,
    )


def targets_of(results: dict[str, Any]) -> list[Target]:
    largest = results[max(results, key=int)]
    return [
        Target(
            f"budget check p50 at {largest['generations']}",
            largest["with budgets"]["p50_ms"],
            TARGET_CHECK_P50_MS,
            "ms",
        )
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
    reps = QUICK_REPS if args.quick else FULL_REPS
    cache_dir = None if args.no_cache else args.results_dir / "data"
    started = time.monotonic()
    results = {str(n): measure_size(n, reps, cache_dir) for n in sizes}
    report(results)
    targets = targets_of(results)
    print_targets(targets)
    write_result(
        NAME, args.results_dir, quick=args.quick, started=started, results=results, targets=targets
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
