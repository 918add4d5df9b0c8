"""The decision log interface: the one place where coordination decisions become durable.

Implementations: ``sim.raftmodel.SimDecisionLog`` (a linearizable model whose leader can change,
for the simulator) and, in the runtime, a pysyncobj-replicated log. Both apply entries to a
``Ledger`` in log order on every replica and report each applied record with its result. An
entry is a ``Batch`` of records (group commit): Raft appends and applies it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from protocol.entries import Batch, Entry
from protocol.events import Applied
from protocol.ledger import Ledger


class DecisionLog(Protocol):
    @property
    def ledger(self) -> Ledger:
        """The state every applied entry has been applied to (read-only for callers)."""
        ...

    def append(self, batch: Batch, term: int) -> bool:
        """Append ``batch`` as the leader of ``term``; returns at once.

        ``False`` means this replica no longer leads in ``term`` and dropped the batch. ``True``
        promises nothing more: the batch is applied later, or lost with the leader if it never
        reached a majority. Callers learn of it through ``subscribe``, never by waiting.
        """
        ...

    def subscribe(self, callback: Callable[[Applied], None]) -> None:
        """Call ``callback`` with every record applied from now on, in log order."""
        ...

    def applied_entries(self, start: int = 0) -> Iterator[tuple[int, Entry]]:
        """The applied records from index ``start``, in order."""
        ...
