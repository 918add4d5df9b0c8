"""Run simulations: one seed, or many across worker processes, and summarise them.

A failing run is reported with the command that reproduces it; the same seed, fault plan and
planted bug replay the same run event for event (``trace`` is a digest of the event sequence).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

from protocol.defects import Defects
from sim.checkers import Violation
from sim.faults import FaultPlan
from sim.options import SimOptions
from sim.world import World


@dataclass(frozen=True)
class SeedReport:
    seed: int
    sessions: int
    states: dict[str, int]
    events: int
    trace: str
    stats: dict[str, int]
    violation: str = ""
    checker: str = ""
    at: float = 0.0


def run_seed(
    seed: int,
    faults: str,
    defects: Defects = frozenset(),
    options: SimOptions | None = None,
    trace_path: str | None = None,
) -> SeedReport:
    world = World(FaultPlan.named(seed, faults), options or SimOptions(), defects)
    violation, checker = "", ""
    with open(trace_path, "w", encoding="utf-8") if trace_path else nullcontext() as sink:
        if sink is not None:

            def write(line: str) -> None:
                sink.write(line + "\n")

            world.trace_sink = write
        try:
            world.run()
        except Violation as exc:
            violation, checker = str(exc), exc.checker
    ended = world.checkers.ended_states()  # every session, the retired ones too
    states: dict[str, int] = {}
    for state in ended.values():
        states[state] = states.get(state, 0) + 1
    if world.ledger.retired_total:
        world.stats["retired"] = world.ledger.retired_total
    return SeedReport(
        seed,
        len(ended),
        states,
        world.events,
        world.trace_digest,
        dict(world.stats),
        violation,
        checker,
        world.now,
    )


def reproduce_command(seed: int, faults: str, defects: Defects) -> str:
    bug = "".join(f" --planted-bug {d}" for d in sorted(defects))
    return f"mca sim --seed {seed} --faults {faults}{bug}"


@dataclass
class Summary:
    seeds: int = 0
    sessions: int = 0
    events: int = 0
    violations: int = 0
    states: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    first: SeedReport | None = None
    seconds: float = 0.0

    def add(self, report: SeedReport) -> None:
        self.seeds += 1
        self.sessions += report.sessions
        self.events += report.events
        for k, v in report.states.items():
            self.states[k] = self.states.get(k, 0) + v
        for k, v in report.stats.items():
            self.stats[k] = self.stats.get(k, 0) + v
        if report.violation:
            self.violations += 1
            if self.first is None or report.seed < self.first.seed:
                self.first = report

    def line(self) -> str:
        parts = [f"seeds={self.seeds}", f"sessions={self.sessions}", f"violations={self.violations}"]
        parts += [f"{k}={self.states[k]}" for k in ("completed", "failed", "cancelled") if k in self.states]
        parts += [f"{k}={self.stats[k]}" for k in ("crashes", "elections", "deposed", "dropped") if k in self.stats]
        rate = self.seeds / self.seconds if self.seconds > 0 else 0.0
        parts += [f"events={self.events}", f"seconds={self.seconds:.1f}", f"seeds_per_s={rate:.1f}"]
        return " ".join(parts)


def _job(args: tuple[int, str, Defects]) -> SeedReport:
    seed, faults, defects = args
    return run_seed(seed, faults, defects)


def run_many(
    seeds: range,
    faults: str,
    defects: Defects = frozenset(),
    workers: int = 0,
    stop_at_first: bool = False,
    progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Run every seed (in ``workers`` processes; 0 means one per core) and summarise;
    ``progress`` hears the summary so far after each seed (``mca sim`` draws a bar)."""
    summary = Summary()
    heard = progress or (lambda _: None)
    started = time.perf_counter()
    jobs = [(s, faults, defects) for s in seeds]
    workers = workers or multiprocessing.cpu_count()
    if workers == 1 or len(jobs) < 20:
        for job in jobs:
            summary.add(_job(job))
            heard(summary)
            if stop_at_first and summary.first is not None:
                break
    else:
        # spawn, not fork: the caller may have threads (gRPC, Ray) that a forked child inherits
        # in a locked state.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for report in pool.imap(_job, jobs, chunksize=16):
                summary.add(report)
                heard(summary)
                if stop_at_first and summary.first is not None:
                    pool.terminate()
                    break
    summary.seconds = time.perf_counter() - started
    return summary
