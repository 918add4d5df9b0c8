"""The shape of a run: how many sessions and clients, how long the fault window lasts and how
long the run may settle after it, and the core's timing and retention. What the options leave
open (``None``) is drawn from the seed, first thing in a run, so that seeds also explore the
corners a fixed choice would never reach; the fault plan (``sim.faults``) says what goes wrong."""

from __future__ import annotations

import random
from dataclasses import dataclass

from protocol.batching import RECORDS_PER_BATCH_MAX
from protocol.model import Timing


@dataclass(frozen=True)
class SimOptions:
    """The shape of a run; the fault plan says what goes wrong in it."""

    sessions: int = 12
    clients: int = 2
    fault_window: float = 4.0
    settle_limit: float = 60.0
    events_max: int = 400_000
    #: ``None`` draws the timing from the seed, so that runs also explore leases shorter than
    #: the prepare timeout, slow retries, tight execution deadlines (two bugs hid there).
    timing: Timing | None = None
    #: Settled sessions the ledger keeps before retiring them; ``None`` draws it from the seed
    #: (often a handful, so that retirement, and key reuse after it, happen under faults).
    settled_sessions_kept: int | None = None
    #: Records per Raft entry at most (``GroupCommit``); ``None`` draws it from the seed (often
    #: one or two, so that bursts are cut into several batches under faults).
    batch_size: int | None = None

    def resolve(self, rng: random.Random) -> tuple[Timing, int, int]:
        """The timing, the settled sessions kept and the records per batch, drawing from
        ``rng`` what is left open."""
        timing = self.timing if self.timing is not None else _draw_timing(rng)
        kept = self.settled_sessions_kept
        if kept is None:
            kept = rng.choice((1, 3, 8, 10_000))
        size = self.batch_size
        if size is None:
            size = rng.choice((1, 2, 4, RECORDS_PER_BATCH_MAX))
        return timing, kept, size


def _draw_timing(rng: random.Random) -> Timing:
    u = rng.uniform
    retry = u(0.01, 0.2)
    return Timing(
        retry=retry,
        retry_max=u(retry, 1.0),
        prepare_timeout=u(0.1, 2.0),
        lease=u(0.05, 1.5),
        execution_timeout=u(0.2, 3.0),
        register_retry=u(0.05, 0.3),
    )
