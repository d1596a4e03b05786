"""Run every benchmark: ``python benchmarks/run.py`` (``--quick`` for a smoke run)."""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_budget_scale
import bench_cancel
import bench_import
import bench_ledgers
import bench_settlement
import bench_stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: check that the benchmarks run")
    args = parser.parse_args()
    quick = args.quick
    bench_stream.main(["--chunks", "2000" if quick else "20000", "--repeats", "1" if quick else "7"])
    print()
    bench_import.main(repeats=1 if quick else 7)
    print()
    bench_settlement.main(rounds=500 if quick else 20_000)
    print()
    bench_cancel.main(rounds=5 if quick else 50, streams=50 if quick else 1000)
    print()
    bench_ledgers.main(total=160 if quick else 4000)
    print()
    bench_budget_scale.main(sizes=(1000, 10_000) if quick else bench_budget_scale.SIZES, rounds=200 if quick else 2000)


if __name__ == "__main__":
    main()
