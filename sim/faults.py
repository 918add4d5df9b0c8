"""The fault plan: every fault knob of a simulation run in one frozen value (after TigerBeetle's
VOPR options). Probabilities are per message (drop, duplicate, delay) or per 100 ms tick of the
fault window (partition, crash, clock jump); ``execution_failure`` is per execution.
``schedule_faults`` draws the tick faults from the seed before the run starts."""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from typing import Any

from sim.schedule import Clock, ClockJump, Crash, Depose, Partition

FAULT_NAMES = ("drop", "duplicate", "delay", "partition", "crash", "clock_jump", "execution_failure")


@dataclass(frozen=True)
class FaultPlan:
    seed: int
    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    partition: float = 0.0
    crash: float = 0.0
    clock_jump: float = 0.0
    execution_failure: float = 0.0

    @classmethod
    def named(cls, seed: int, faults: str) -> FaultPlan:
        """``all``, ``none``, or a comma list of fault names, each at its default rate."""
        wanted = (
            FAULT_NAMES
            if faults == "all"
            else ()
            if faults in ("", "none")
            else tuple(f.strip() for f in faults.split(","))
        )
        unknown = [f for f in wanted if f not in FAULT_NAMES]
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; choose from all, none, {', '.join(FAULT_NAMES)}")
        rates: dict[str, Any] = {name: DEFAULT_RATES[name] for name in wanted}
        return replace(cls(seed), **rates)

    def describe(self) -> str:
        on = [f.name for f in fields(self) if f.name != "seed" and getattr(self, f.name)]
        return ",".join(on) if on else "none"


#: Rates used by ``--faults``: high enough that every seed meets several faults in 4 s.
DEFAULT_RATES = {
    "drop": 0.05,
    "duplicate": 0.05,
    "delay": 0.10,
    "partition": 0.04,
    "crash": 0.04,
    "clock_jump": 0.02,
    "execution_failure": 0.05,
}


def schedule_faults(
    plan: FaultPlan, rng: random.Random, clock: Clock, window: float, replicas: tuple[str, ...], agents: tuple[str, ...]
) -> None:
    """Put the crashes, partitions (two in five depose the leader) and clock jumps of each tick
    of the fault window on the clock."""
    t = 0.1
    while t < window:
        if rng.random() < plan.crash:
            clock.at(t, Crash(rng.choice(("leader", *agents))))
        if rng.random() < plan.partition:
            if rng.random() < 0.4:
                clock.at(t, Depose())
            else:
                a = rng.choice((*replicas, *agents, "c1", "c2"))
                b = rng.choice((*replicas, *agents))
                if a != b:
                    clock.at(t, Partition(a, b, rng.uniform(0.1, 1.0)))
        if rng.random() < plan.clock_jump:
            node = rng.choice((*replicas, *agents))
            clock.at(t, ClockJump(node, rng.uniform(0.2, 2.0)))
        t += 0.1
