"""Theory of operation: the simulated clock and what it schedules.

Everything that happens in a run is one of the typed events below, put on one priority queue
ordered by (time, sequence). The sequence number breaks ties in scheduling order, so a seed
replays exactly; no two entries compare equal, so events themselves need no ordering.

Each node reads the clock through its own offset, which only jumps forward (a node whose clock
runs ahead sees its leases expire early). A node's timers are kept here, keyed by (node, key)
with a token: setting a timer again or cancelling it makes the queued ``Fire`` stale, and a
clock jump queues the node's live timers again at their new, earlier wall time.

The trace of a run (its digest names a run in ``mca sim`` output) writes each event as the
tagged tuple the first simulator scheduled (each event's ``trace``), so digests recorded before
the events were typed still identify the same runs.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from protocol.effects import StartExecution
from protocol.entries import Entry
from protocol.messages import Message
from protocol.model import Outcome
from protocol.timers import TimerKey


@dataclass(frozen=True, slots=True)
class Deliver:
    """A message reaches ``dest`` (``mca``: every replica acting as leader) unless cut off."""

    src: str
    dest: str
    message: Message

    def trace(self) -> tuple[object, ...]:
        return ("deliver", self.src, self.dest, self.message)


@dataclass(frozen=True, slots=True)
class Fire:
    """A node's timer is due, if ``token`` is still the timer's current one."""

    node: str
    key: TimerKey
    token: int

    def trace(self) -> tuple[object, ...]:
        return ("timer", self.node, self.key, self.token)


@dataclass(frozen=True, slots=True)
class Apply:
    """The decision log applies its next pending batch."""

    def trace(self) -> tuple[object, ...]:
        return ("apply",)


@dataclass(frozen=True, slots=True)
class Cut:
    """A leader's loop goes idle: the records it gathered are appended as one batch. ``due``:
    the lazy records that opened the batch waited ``LAZY_SECONDS`` for company; they go now."""

    node: str
    due: bool = False

    def trace(self) -> tuple[object, ...]:
        return ("cut", self.node, self.due)


@dataclass(frozen=True, slots=True)
class ExecDone:
    """An execution an agent started ends, if that incarnation of the agent still lives."""

    node: str
    incarnation: int
    execution: StartExecution

    def trace(self) -> tuple[object, ...]:
        return ("exec_done", self.node, self.incarnation, self.execution)


@dataclass(frozen=True, slots=True)
class Elect:
    """The replicas elect a leader, if they have none."""

    def trace(self) -> tuple[object, ...]:
        return ("elect",)


@dataclass(frozen=True, slots=True)
class StepDown:
    """A deposed leader notices and stops acting."""

    node: str

    def trace(self) -> tuple[object, ...]:
        return ("stepdown", self.node)


@dataclass(frozen=True, slots=True)
class ClientSubmit:
    """A client sends task ``task`` (an index into the workload): a retry, or a repeat on purpose."""

    client: str
    task: int
    repeat: bool = False

    def trace(self) -> tuple[object, ...]:
        return ("submit", self.client, self.task, "repeat" if self.repeat else "retry")


@dataclass(frozen=True, slots=True)
class ClientCancel:
    """A client asks (again) to cancel the session of task ``task``."""

    client: str
    task: int

    def trace(self) -> tuple[object, ...]:
        return ("cancel", self.client, self.task)


@dataclass(frozen=True, slots=True)
class Crash:
    """``victim`` (an agent id, or "leader": whichever replica leads then) crashes."""

    victim: str

    def trace(self) -> tuple[object, ...]:
        return ("crash", self.victim)


@dataclass(frozen=True, slots=True)
class Restart:
    """A crashed node comes back (an agent as a new incarnation)."""

    node: str

    def trace(self) -> tuple[object, ...]:
        return ("restart", self.node)


@dataclass(frozen=True, slots=True)
class Depose:
    """The leader is cut off from the other replicas; they elect another."""

    def trace(self) -> tuple[object, ...]:
        return ("depose",)


@dataclass(frozen=True, slots=True)
class Partition:
    """The link between ``a`` and ``b`` goes down for ``length`` seconds."""

    a: str
    b: str
    length: float

    def trace(self) -> tuple[object, ...]:
        return ("partition", self.a, self.b, self.length)


@dataclass(frozen=True, slots=True)
class Unpartition:
    """The link between ``a`` and ``b`` comes back."""

    a: str
    b: str

    def trace(self) -> tuple[object, ...]:
        return ("unpartition", self.a, self.b)


@dataclass(frozen=True, slots=True)
class ClockJump:
    """``node``'s clock jumps ``jump`` seconds forward."""

    node: str
    jump: float

    def trace(self) -> tuple[object, ...]:
        return ("clock_jump", self.node, self.jump)


@dataclass(frozen=True, slots=True)
class Heal:
    """The fault window ends: every fault heals and every node restarts."""

    def trace(self) -> tuple[object, ...]:
        return ("heal",)


@dataclass(frozen=True, slots=True)
class Call:
    """A scripted scenario's action."""

    fn: Callable[[], None]

    def trace(self) -> tuple[object, ...]:
        return ("call", self.fn)


Scheduled = (
    Deliver
    | Fire
    | Apply
    | Cut
    | ExecDone
    | Elect
    | StepDown
    | ClientSubmit
    | ClientCancel
    | Crash
    | Restart
    | Depose
    | Partition
    | Unpartition
    | ClockJump
    | Heal
    | Call
)


class Clock:
    """The queue of scheduled events, the time, and each node's offset and timers."""

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0  # events run so far
        self.offset: dict[str, float] = {}
        self._queue: list[tuple[float, int, Scheduled]] = []
        self._seq = 0
        self._timers: dict[tuple[str, TimerKey], tuple[int, float]] = {}

    def at(self, when: float, event: Scheduled) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, event))

    def after(self, delay: float, event: Scheduled) -> None:
        self.at(self.now + delay, event)

    def pop(self) -> tuple[float, int, Scheduled] | None:
        """The next entry: (time, sequence, event)."""
        return heapq.heappop(self._queue) if self._queue else None

    def local(self, node: str) -> float:
        return self.now + self.offset.get(node, 0.0)

    def set_timer(self, node: str, key: TimerKey, at: float) -> None:
        self._seq += 1  # the token: unique, and spent from the same sequence as the queue's
        token = self._seq
        self._timers[(node, key)] = (token, at)
        self.at(max(self.now, at - self.offset.get(node, 0.0)), Fire(node, key, token))

    def cancel_timer(self, node: str, key: TimerKey) -> None:
        self._timers.pop((node, key), None)

    def fire(self, event: Fire) -> bool:
        """Whether ``event`` is the timer's current firing (which then ends the timer)."""
        current = self._timers.get((event.node, event.key))
        if current is None or current[0] != event.token:
            return False
        del self._timers[(event.node, event.key)]
        return True

    def clear_timers(self, node: str) -> None:
        for key in [k for k in self._timers if k[0] == node]:
            del self._timers[key]

    def jump(self, node: str, jump: float) -> None:
        self.offset[node] = self.offset.get(node, 0.0) + jump
        for (owner, key), (token, at) in list(self._timers.items()):
            if owner == node:
                self.at(max(self.now, at - self.offset[node]), Fire(node, key, token))


@dataclass
class Shared:
    """What every part of one run's world shares: the clock, the seed's one random source (the
    parts draw from it in a fixed order, so a seed replays), whether the fault window has
    ended, and the counters a run reports."""

    clock: Clock
    rng: random.Random
    healed: bool = False
    stats: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1


class Hooks(Protocol):
    """Where a named scenario bends the world (``World`` holds them; None leaves a part alone):
    extra delay for a message (inf drops it), extra apply delay for a batch holding an entry,
    the outcome an execution must have."""

    message_delay: Callable[[str, str, Message], float | None] | None
    apply_lag: Callable[[Entry], float | None] | None
    execution_outcome: Callable[[StartExecution], Outcome | None] | None
