"""Theory of operation: the simulated network.

A message sent during the fault window may be dropped, duplicated or delayed; each copy takes
its own random delay, so copies and messages overtake one another (reordering needs no knob of
its own). Partitions cut the link between two nodes both ways for a while; a message is checked
against them when it arrives, not when it leaves, so a partition also swallows what was already
on the wire. A message to ``mca`` (from a client or an agent) goes to every replica acting as
leader: the current one and any deposed one that has not noticed yet. After the fault window
only the base delay remains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from protocol.batching import LAZY_SECONDS
from protocol.messages import Message
from sim.faults import FaultPlan
from sim.schedule import Deliver, Hooks, Shared, Unpartition


class Network:
    """The links between nodes: what is on the wire, and which links are cut."""

    def __init__(
        self, shared: Shared, plan: FaultPlan, hooks: Hooks, up: dict[str, bool], step: Callable[[str, object], None]
    ) -> None:
        self._shared = shared
        self._plan = plan
        self._hooks = hooks
        self._up = up
        self._step = step
        self.partitions: set[frozenset[str]] = set()

    def send(self, src: str, dest: str, message: Message, lazy: bool = False) -> None:
        """``lazy``: the host may hold the message up to ``LAZY_SECONDS`` for company (the
        next message to ``dest``); here, any wait up to that, drawn per message."""
        shared, plan = self._shared, self._plan
        faulty = not shared.healed
        rng = shared.rng
        if faulty and rng.random() < plan.drop:
            shared.count("dropped")
            return
        copies = 2 if faulty and rng.random() < plan.duplicate else 1
        for _ in range(copies):
            delay = rng.uniform(0.0005, 0.003)
            if lazy:
                delay += rng.uniform(0.0, LAZY_SECONDS)
            if faulty and rng.random() < plan.delay:
                delay += rng.uniform(0.0, 0.3)
            hook = self._hooks.message_delay
            extra = hook(src, dest, message) if hook else None
            if extra is not None:
                if extra == float("inf"):
                    continue
                delay += extra
            shared.clock.after(delay, Deliver(src, dest, message))

    def deliver(self, src: str, targets: Iterable[str], message: Message) -> None:
        for target in targets:
            if not self._up.get(target, True):
                continue
            if frozenset((src, target)) in self.partitions:
                self._shared.count("partitioned")
                continue
            self._step(target, message)

    def partition(self, a: str, b: str, length: float) -> None:
        first, second = sorted((a, b))  # in order: a frozenset's repr would depend on the hash seed
        self.partitions.add(frozenset((first, second)))
        self._shared.clock.after(length, Unpartition(first, second))

    def unpartition(self, a: str, b: str) -> None:
        self.partitions.discard(frozenset((a, b)))

    def heal(self) -> None:
        self.partitions.clear()
