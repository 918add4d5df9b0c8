"""The ``mca`` command.

``mca sim`` runs the deterministic simulator: the real coordination core under injected faults,
one seed at a time or thousands across processes. It exits 0 when every checker held, 1 when
one did not, printing the command that replays the failing seed. The runtime's subcommands
(``up``, ``down``, ``status``, ``submit``, ``watch``, ``agents``, ``demo``) live in
``mca/commands.py``.
"""

from __future__ import annotations

import argparse
import sys

from mca.commands import add_commands, run
from protocol.defects import PLANTED_BUGS
from sim.faults import FAULT_NAMES, FaultPlan
from sim.runner import SeedReport, Summary, reproduce_command, run_many, run_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mca", description="Multi-agent coordination runtime.")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser(
        "sim",
        help="run the deterministic simulator",
        description="Run the coordination core under a seeded fault plan and check it after every step.",
    )
    sim.add_argument("--seeds", type=int, default=2000, help="number of seeds to run (default 2000)")
    sim.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    sim.add_argument("--seed", type=int, help="run this one seed and describe it")
    sim.add_argument(
        "--faults",
        default="all",
        help=f"'all', 'none', or a comma list of: {', '.join(FAULT_NAMES)} (default all)",
    )
    sim.add_argument(
        "--planted-bug",
        action="append",
        default=[],
        choices=PLANTED_BUGS,
        help="switch on a deliberate defect to show that a checker catches it",
    )
    sim.add_argument("--workers", type=int, default=0, help="worker processes (default: one per core)")
    sim.add_argument("--trace", metavar="FILE", help="with --seed: write every event of the run to FILE")
    add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "sim":
        return _sim(args, parser)
    return run(args)


def _sim(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        FaultPlan.named(0, args.faults)
    except ValueError as exc:
        parser.error(str(exc))
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.trace and args.seed is None:
        parser.error("--trace needs --seed")
    defects = frozenset(args.planted_bug)
    if args.seed is not None:
        report = run_seed(args.seed, args.faults, defects, trace_path=args.trace)
        states = " ".join(f"{k}={v}" for k, v in sorted(report.states.items()))
        print(f"seed={report.seed} sessions={report.sessions} {states} events={report.events} trace={report.trace}")
        return _verdict(report, args.faults, defects)
    with _SeedBar(args.seeds) as bar:
        summary = run_many(
            range(args.start, args.start + args.seeds),
            args.faults,
            defects,
            args.workers,
            stop_at_first=bool(defects),
            progress=bar.update,
        )
    print(summary.line())
    if summary.first is not None:
        return _verdict(summary.first, args.faults, defects)
    if defects:
        print(f"planted bug {', '.join(sorted(defects))} was NOT caught in {summary.seeds} seeds", file=sys.stderr)
    return 0


class _SeedBar:
    """A progress bar of the seeds run (and the violations so far) on stderr when it is a
    terminal; nothing otherwise (the summary line is what a log or CI keeps)."""

    def __init__(self, seeds: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True)
        self._progress = (
            Progress(
                TextColumn("seeds"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[violations]} violations"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            if console.is_terminal
            else None
        )
        self._task = self._progress.add_task("seeds", total=seeds, violations=0) if self._progress else None

    def __enter__(self) -> _SeedBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, summary: Summary) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=summary.seeds, violations=summary.violations)


def _verdict(report: SeedReport, faults: str, defects: frozenset[str]) -> int:
    if not report.violation:
        return 0
    print(f"violation at seed {report.seed}, t={report.at:.3f}s: {report.violation}")
    print(f"reproduce with: {reproduce_command(report.seed, faults, defects)}")
    return 1
