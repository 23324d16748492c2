"""A year of the bundled orders_daily, day by day against range-native chunks; and an hourly day chunked.

Each figure is a whole `dagspec` process (start-up, imports, every step into the DuckDB warehouse), timed from
outside in a fresh DAGSPEC_HOME over the sample source (`dagspec sample-data`), with its peak memory (the
child's ru_maxrss). `python bench/range_bench.py [last-date] [chunk]` (defaults 2025-12-31, 31).
The hourly part reruns bench/subdaily_bench.py's day (24 partitions) with batch_size 24.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAST = sys.argv[1] if len(sys.argv) > 1 else "2025-12-31"
CHUNK = sys.argv[2] if len(sys.argv) > 2 else "31"
DAYS = (date.fromisoformat(LAST) - date(2025, 1, 1)).days + 1
DAGSPEC = [sys.executable, "-m", "dagspec.cli"]


def run(args: list[str], home: Path) -> tuple[float, float]:
    """(wall seconds, peak MB) of one child process."""
    env = {**os.environ, "DAGSPEC_HOME": str(home), "PYTHONPATH": str(ROOT / "include"), "CI": "true"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(DAGSPEC + args, env=env, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024  # ru_maxrss of children is the largest one so far (KB on Linux)


def year(seed: Path, chunk: str | None) -> tuple[float, float]:
    home = Path(tempfile.mkdtemp(prefix="dagspec-bench-range-"))
    try:
        shutil.copy(seed, home / "source.db")
        args = ["run", "orders_daily", "--date", "2025-01-01", "--to", LAST]
        return run(args + (["--chunk", chunk] if chunk else []), home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def hourly() -> None:
    sys.argv = [sys.argv[0]]
    sys.path.insert(0, str(ROOT / "bench"))
    import subdaily_bench

    original = subdaily_bench.definition

    def chunked(schedule: str) -> dict:
        return {**original(schedule), "batch_size": 24}

    subdaily_bench.definition = chunked
    print("\nhourly day with batch_size 24 (one source read for the 24 partitions):")
    subdaily_bench.main()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        run(["sample-data", "--end", "2025-12-31"], home)  # the year the runs cover, whatever today is
        seed = home / "source.db"
        # Range-native first: ru_maxrss of children only grows, so its peak is not the day-by-day run's.
        ranged, ranged_mb = year(seed, CHUNK)
        daily, daily_mb = year(seed, None)
    print(f"orders_daily 2025-01-01 .. {LAST} ({DAYS} partitions), whole `dagspec run` process, DuckDB warehouse")
    print(f"  day by day:          {daily:7.1f} s  {daily / DAYS * 1000:6.0f} ms/partition  peak <= {daily_mb:.0f} MB")
    print(f"  --chunk {CHUNK:>3}:         {ranged:7.1f} s  {ranged / DAYS * 1000:6.0f} ms/partition  "
          f"peak {ranged_mb:.0f} MB")
    print(f"  ratio: {daily / ranged:.1f}x (target >= 15x)")
    hourly()


if __name__ == "__main__":
    main()
