"""Theory of operation: when a replica leads.

Raft making this replica leader is not enough to run a ``protocol.leader.Leader``: entries that
earlier leaders got to a majority may not be applied here yet, and the leader decides from the
ledger. So for each term Raft gives it, ``Leadership`` appends a barrier entry and takes over
only once the barrier is applied (then so is every entry before it); a barrier that fails (leader
churn) is appended again. It looks at Raft every 10 ms on the event loop, holding the log's
guard, so taking over and stepping down fall between two applied entries. Stepping down drops
the ``Leader`` and tells the host (``dropped``), which lets go of what it held for that term.

``leader`` is the one place the replica keeps its ``Leader``; the hot path reads it as a plain
attribute.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

from mca.metrics import Metrics
from mca.raftlog import RaftDecisionLog
from protocol.effects import Effect
from protocol.events import BecameLeader
from protocol.leader import Leader
from protocol.model import Limits, Timing


class Leadership:
    def __init__(
        self,
        log_of: Callable[[], RaftDecisionLog],
        timing: Timing,
        limits: Limits,
        metrics: Metrics,
        perform: Callable[[list[Effect]], None],
        dropped: Callable[[], None],
    ) -> None:
        self._log = log_of
        self._timing = timing
        self._limits = limits
        self._metrics = metrics
        self._perform = perform
        self._dropped = dropped
        #: The core this replica runs while it leads, else None (set and cleared under the guard).
        self.leader: Leader | None = None
        self._ready_term = 0

    async def watch(self) -> None:
        barrier_term = 0  # the term whose barrier we appended
        while True:
            log = self._log()
            effects: list[Effect] = []
            with log.guard:
                leading, term = log.is_leader, log.term
                if self.leader is not None and (not leading or self.leader.term != term):
                    self._drop()
                if leading and self.leader is None:
                    if self._ready_term == -term:  # the barrier failed (leader churn): append it again
                        barrier_term = 0
                    if barrier_term != term:
                        barrier_term = term
                        self._ready_term = 0
                        log.barrier(term, functools.partial(self._barrier_applied, term))
                    elif self._ready_term == term:
                        # Every entry the previous leaders got to a majority is applied: take over.
                        self.leader = Leader(term, log.ledger, self._timing, limits=self._limits)
                        self._metrics.count("leader_changes_total")
                        effects = self.leader.step(BecameLeader(), time.monotonic())
                if not leading:
                    barrier_term = 0
            self._perform(effects)
            await asyncio.sleep(0.01)

    def _barrier_applied(self, term: int, ok: bool) -> None:
        self._ready_term = term if ok else -term

    def _drop(self) -> None:
        self.leader = None
        self._dropped()
