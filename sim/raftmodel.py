"""Theory of operation: a model of Raft, the replicas' decision log and who leads it.

Raft itself is not simulated, only what the core can observe of it: ``SimDecisionLog`` is a
linearizable log in which only the current leader's appends are applied, in order, a few
milliseconds later. The leader's records go through the same ``GroupCommit`` as in the runtime:
those its steps produce within a simulated loop turn (up to a millisecond) are appended as one
batch, applied whole or lost whole, and the next batch is cut when the pipeline has room again.

When the leader crashes or is cut off (deposed), a random prefix of its unapplied batches
survives (they had reached a majority) and the rest is lost, as in Raft; the replicas elect a
new leader, with a higher term, after a short delay. A deposed leader keeps acting with its old
term until it notices: its appends never reach a majority, but its messages still go out. Other
replicas are followers that only apply entries, so they are not stepped.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator

from protocol.batching import LAZY_SECONDS, RECORDS_PER_BATCH_MAX, CutWhen, GroupCommit, records
from protocol.defects import Defects
from protocol.entries import Batch, Entry
from protocol.events import Applied, BecameLeader
from protocol.leader import Leader
from protocol.ledger import Ledger
from protocol.model import Timing
from sim.faults import FaultPlan
from sim.schedule import Apply, Cut, Elect, Hooks, Shared, StepDown

REPLICAS = ("mca-1", "mca-2", "mca-3")


class SimDecisionLog:
    """A linearizable model of the Raft decision log (see the module's opening)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.term = 0
        self.leader: str | None = None
        self.entries: list[Entry] = []  # the applied records, in order
        self.pending: deque[Batch] = deque()
        self._subscribers: list[Callable[[Applied], None]] = []

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    def append(self, batch: Batch, term: int) -> bool:
        if term != self.term or self.leader is None:
            return False  # a deposed leader's append never reaches a majority
        self.pending.append(batch)
        return True

    def subscribe(self, callback: Callable[[Applied], None]) -> None:
        self._subscribers.append(callback)

    def apply_next(self) -> bool:
        """Apply the next batch; False when none is pending."""
        if not self.pending:
            return False
        for entry in records(self.pending.popleft()):  # a batch applies its records in order
            result = self._ledger.apply(entry)
            self.entries.append(entry)
            applied = Applied(len(self.entries), entry, result)
            for callback in self._subscribers:
                callback(applied)
        return True

    def lose_leader(self, rng: random.Random, keep: int | None = None) -> None:
        """The leader is gone: a random prefix of its unapplied batches survives."""
        if keep is None:
            keep = rng.randint(0, len(self.pending))
        self.pending = deque(list(self.pending)[:keep])
        self.leader = None

    def applied_entries(self, start: int = 0) -> Iterator[tuple[int, Entry]]:
        for i in range(start, len(self.entries)):
            yield i + 1, self.entries[i]


class Replicas:
    """The three replicas: elections, leaders (current and deposed), and their group commit."""

    def __init__(
        self,
        shared: Shared,
        plan: FaultPlan,
        hooks: Hooks,
        ledger: Ledger,
        timing: Timing,
        defects: Defects,
        up: dict[str, bool],
        step: Callable[[str, object], None],
        batch_size: int = RECORDS_PER_BATCH_MAX,
    ) -> None:
        self._batch_size = batch_size
        self._shared = shared
        self._plan = plan
        self._hooks = hooks
        self._timing = timing
        self._defects = defects
        self._up = up
        self._step = step
        self.log = SimDecisionLog(ledger)
        self.leaders: dict[str, Leader] = {}  # current leader and any deposed one still acting
        self._groups: dict[str, GroupCommit] = {}  # per leader node: records of this loop turn
        self._apply_at = 0.0

    def elect(self) -> None:
        log, shared = self.log, self._shared
        if log.leader is not None:
            return
        candidates = [r for r in REPLICAS if self._up[r] and r not in self.leaders]
        if not candidates:
            candidates = [r for r in REPLICAS if self._up[r]]
        if not candidates:
            shared.clock.after(0.1, Elect())
            return
        node = shared.rng.choice(candidates)
        if node in self.leaders:  # a deposed leader that had not stepped down yet
            self.stand_down(node)
        log.term += 1
        log.leader = node
        self.leaders[node] = Leader(log.term, log.ledger, self._timing, self._defects)
        shared.count("elections")
        self._step(node, BecameLeader())

    def applied(self, applied: Applied) -> None:
        """The log applied an entry: the current leader, if alive, hears of it."""
        leader = self.log.leader
        if leader is not None and self._up[leader] and leader in self.leaders:
            self._step(leader, applied)

    def append(self, node: str, entry: Entry, lazy: bool = False) -> None:
        leader = self.leaders.get(node)
        if leader is None:
            return
        group = self._groups.setdefault(node, GroupCommit(self._defects, size=self._batch_size))
        when = group.add(entry, leader.term, lazy)
        if when is CutWhen.IDLE:
            # The loop goes idle within a simulated turn: whatever else it appends meanwhile
            # (other deliveries, timers) joins this batch.
            self._shared.clock.after(self._shared.rng.uniform(0.0, 0.001), Cut(node))
        elif when is CutWhen.DUE:
            self._shared.clock.after(LAZY_SECONDS, Cut(node, due=True))

    def cut(self, node: str, due: bool = False) -> None:
        group = self._groups.get(node)
        if group is None or (due and not group.expire()):
            return
        batch, term = group.cut()
        leader = self.leaders.get(node)
        if batch is None or leader is None or leader.term != term or not self._up.get(node, False):
            return
        if not self.log.append(batch, term):
            return
        group.appended()
        if group.ready():  # more than a batch waited: cut the next one in the same turn
            self._shared.clock.after(self._shared.rng.uniform(0.0, 0.001), Cut(node))
        shared = self._shared
        lag = shared.rng.uniform(0.001, 0.004)
        if not shared.healed and shared.rng.random() < self._plan.delay:
            lag += shared.rng.uniform(0.0, 0.2)  # a slow follower, a long fsync
        apply_lag = self._hooks.apply_lag
        if apply_lag is not None:
            lag += max((apply_lag(entry) or 0.0 for entry in batch.records), default=0.0)
        # Batches apply in log order, so a slow one holds back those behind it.
        self._apply_at = max(shared.clock.now + lag, self._apply_at)
        shared.clock.at(self._apply_at, Apply())

    def apply(self) -> None:
        leader = self.log.leader
        if self.log.apply_next() and leader is not None:
            group = self._groups.get(leader)
            if group is not None and group.settled():  # the pipeline has room again
                self._shared.clock.after(self._shared.rng.uniform(0.0, 0.001), Cut(leader))

    def depose(self) -> None:
        shared = self._shared
        node = self.log.leader
        if node is None:
            return
        self.log.lose_leader(shared.rng)
        shared.count("deposed")
        # The cut-off leader keeps acting with its old term until it notices.
        shared.clock.after(shared.rng.uniform(0.05, 0.5), StepDown(node))
        shared.clock.after(shared.rng.uniform(0.05, 0.3), Elect())

    def step_down(self, node: str) -> None:
        if self.log.leader != node and self.leaders.pop(node, None) is not None:
            self.stand_down(node)

    def crash_leader(self, keep_pending: int | None = None) -> str | None:
        """The leader crashes: which node that was (the caller takes it down), or None."""
        node = self.log.leader
        if node is None:
            return None
        self.log.lose_leader(self._shared.rng, keep_pending)
        self.leaders.pop(node, None)
        self.stand_down(node)
        return node

    def elect_soon(self) -> None:
        self._shared.clock.after(self._shared.rng.uniform(0.05, 0.3), Elect())

    def stand_down(self, node: str) -> None:
        """``node`` no longer acts as leader: its unappended records and its timers end."""
        self._groups.pop(node, None)
        self._shared.clock.clear_timers(node)
