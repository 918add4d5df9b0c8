"""Benchmark: how fast the simulator explores, and what faults cost.

Prints seeds/second and events/second for three fault plans, each beside the fault-free plan
measured in the same run (the baseline), with the ratio; the per-seed peak memory; and the
wall time of a 10,000-seed run across every core, the figure `mca sim --seeds 10000` users
will see. The machine is shared and noisy: compare ratios, not absolute times.

    python bench/sim_throughput.py [--seeds N] [--big N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
import tracemalloc

from sim.runner import run_many, run_seed


def _rate(faults: str, seeds: int) -> tuple[float, float, float]:
    """Median over three rounds of (seeds/s, events/s, median ms per seed) on one core."""
    rounds = []
    for r in range(3):
        per_seed = []
        events = 0
        started = time.perf_counter()
        for seed in range(r * seeds, (r + 1) * seeds):
            t = time.perf_counter()
            events += run_seed(seed, faults).events
            per_seed.append(time.perf_counter() - t)
        took = time.perf_counter() - started
        rounds.append((seeds / took, events / took, statistics.median(per_seed) * 1000))
    rounds.sort()
    return rounds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=300, help="seeds per round for the one-core rates")
    parser.add_argument("--big", type=int, default=10_000, help="seeds for the all-core run")
    args = parser.parse_args()

    base = _rate("none", args.seeds)
    print(f"{'plan':<22}{'seeds/s':>10}{'events/s':>12}{'ms/seed p50':>14}{'vs none':>10}")
    print(f"{'none (baseline)':<22}{base[0]:>10.0f}{base[1]:>12.0f}{base[2]:>14.2f}{1.0:>10.2f}")
    for plan in ("drop,duplicate,delay", "crash,partition", "all"):
        r = _rate(plan, args.seeds)
        print(f"{plan:<22}{r[0]:>10.0f}{r[1]:>12.0f}{r[2]:>14.2f}{r[0] / base[0]:>10.2f}")

    tracemalloc.start()
    run_seed(0, "all")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak memory of one seed (all faults): {peak / 1024:.0f} KiB")

    summary = run_many(range(args.big), "all")
    cores = multiprocessing.cpu_count()
    print(
        f"mca sim --seeds {args.big} --faults all on {cores} cores: {summary.seconds:.1f} s, "
        f"{summary.seeds / summary.seconds:.0f} seeds/s, violations={summary.violations}"
    )


if __name__ == "__main__":
    main()
