"""Theory of operation: group commit, the leader's records gathered into one Raft entry.

The leader's machines produce records one step at a time (an ``Append`` effect each). Appending
every record as its own Raft entry cost, per record, a pickle, a write to each follower, an apply
call on each replica and a wakeup of the leader's loop: measured as a quarter of the leader's CPU
on the first version. So the host collects, in one ``GroupCommit``, every record the steps of
one turn of its loop produce, and appends them as one ``Batch`` when the loop goes idle: the host
schedules ``cut`` as a callback right after the first record of a batch, never on a timer, so a
lone request pays one loop turn and a busy leader appends hundreds of records per entry.

A batch belongs to one term: records a deposed leader produced are dropped with its leadership
(``drop``), never appended under the next term. Applying a batch applies its records in order,
each exactly as if it had been appended alone (``records``), so idempotency, the apply results
and what every replica derives do not depend on how the records were batched. The simulator
runs this class too, so every fault plan exercises batching.
"""

from __future__ import annotations

from protocol.defects import BATCH_REORDERED, NO_DEFECTS, Defects
from protocol.entries import Batch, Entry


def records(entry: Entry | Batch) -> tuple[Entry, ...]:
    """The records an applied log entry carries: a batch's, in order; or the entry itself (a
    journal written before group commit holds bare records)."""
    return entry.records if isinstance(entry, Batch) else (entry,)


class GroupCommit:
    """The records of the current loop turn, waiting to be appended as one batch."""

    def __init__(self, defects: Defects = NO_DEFECTS) -> None:
        self._records: list[Entry] = []
        self._term = 0
        self._defects = defects

    def __len__(self) -> int:
        return len(self._records)

    def add(self, entry: Entry, term: int) -> bool:
        """Add a record of the leader of ``term``. True when it opens a new batch: the host then
        schedules ``cut`` for when its loop goes idle."""
        if self._records and term != self._term:
            self._records.clear()  # the earlier leader's records died with its term
        first = not self._records
        self._term = term
        self._records.append(entry)
        return first

    def cut(self) -> tuple[Batch | None, int]:
        """The batch to append now and the term it belongs to; (None, 0) when empty."""
        if not self._records:
            return None, 0
        taken = tuple(self._records)
        self._records.clear()
        if BATCH_REORDERED in self._defects:  # planted bug: the order within a batch is lost
            taken = taken[::-1]
        return Batch(taken), self._term

    def drop(self) -> None:
        """Leadership ended: what was not appended is not ours to append any more."""
        self._records.clear()
