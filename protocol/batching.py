"""Theory of operation: group commit, the leader's records gathered into one Raft entry.

The leader's machines produce records one step at a time (an ``Append`` effect each). Appending
every record as its own Raft entry cost, per record, a pickle, a write to each follower, an apply
call on each replica and a wakeup of the leader's loop: measured as a quarter of the leader's CPU
on the first version. So the host collects, in one ``GroupCommit``, every record the steps of
one turn of its loop produce, and appends them as one ``Batch`` when the loop goes idle: the host
schedules ``cut`` as a callback right after the first record of a batch, never on a timer, so a
lone request pays one loop turn and a busy leader appends hundreds of records per entry.

Batches are pipelined to a bounded depth: at most ``depth`` of them are on their way through
Raft at once. Past that, records wait until one of the batches on the way applies
(``settled``): under load, that is what makes a batch carry many records (each Raft entry has a
fixed cost: a pickle, an encryption and a write per follower, and an answer from each), while a
lone request still goes out at once. A batch carries at most ``size`` records; more wait for
the next one (``ready`` says when to cut again). Unbounded, a burst (a client writing hundreds
of submits at once) made entries of 256-1,024 records, and applying four of those back to back
on pysyncobj's tick thread, which also sends the heartbeats, held the leader silent past the
election timeout: leader changes under load.

A batch belongs to one term: records a deposed leader produced are dropped with its leadership
(``drop``), never appended under the next term. Applying a batch applies its records in order,
each exactly as if it had been appended alone (``records``), so idempotency, the apply results
and what every replica derives do not depend on how the records were batched. The simulator
runs this class too, so every fault plan exercises batching.
"""

from __future__ import annotations

from protocol.defects import BATCH_REORDERED, NO_DEFECTS, Defects
from protocol.entries import Batch, Entry

#: Batches on their way through Raft at once (appended, not yet applied). Two held the leader
#: back under load (10 ms from append to apply: at most 200 entries a second); four gave 137
#: instead of 111 two-agent tasks/s at 64 in flight with as many records per entry.
PIPELINE_DEPTH = 4
#: Records in one batch at most. 64 keeps an entry's apply on the leader (each record steps the
#: leader's machines) to a few milliseconds; entries of this size already cost their fixed part
#: (pickle, encryption, a write per follower) once per 64 records.
RECORDS_PER_BATCH_MAX = 64


def records(entry: Entry | Batch) -> tuple[Entry, ...]:
    """The records an applied log entry carries: a batch's, in order; or the entry itself (a
    journal written before group commit holds bare records)."""
    return entry.records if isinstance(entry, Batch) else (entry,)


class GroupCommit:
    """The records of the current loop turn, waiting to be appended as one batch."""

    def __init__(
        self, defects: Defects = NO_DEFECTS, depth: int = PIPELINE_DEPTH, size: int = RECORDS_PER_BATCH_MAX
    ) -> None:
        self._records: list[Entry] = []  # waiting, in order: the next batch is the first ``size``
        self._term = 0
        self._defects = defects
        self._depth = depth
        self._size = size
        self.on_the_way = 0  # batches appended and not yet applied

    def __len__(self) -> int:
        return len(self._records)

    def add(self, entry: Entry, term: int) -> bool:
        """Add a record of the leader of ``term``. True when the host should schedule ``cut``
        for when its loop goes idle: the record opens a batch and the pipeline has room."""
        if self._records and term != self._term:
            self._records.clear()  # the earlier leader's records died with its term
        first = not self._records
        self._term = term
        self._records.append(entry)
        return first and self.on_the_way < self._depth

    def cut(self) -> tuple[Batch | None, int]:
        """The batch to append now and the term it belongs to; (None, 0) when there is none or
        the pipeline is full. The host tells ``appended`` if the log took it."""
        if not self._records or self.on_the_way >= self._depth:
            return None, 0
        taken = tuple(self._records[: self._size])
        del self._records[: self._size]
        if BATCH_REORDERED in self._defects:  # planted bug: the order within a batch is lost
            taken = taken[::-1]
        return Batch(taken, self._term), self._term

    def appended(self) -> None:
        self.on_the_way += 1

    def ready(self) -> bool:
        """Whether another batch can be cut now: records wait (more than one batch held) and
        the pipeline has room. The host asks after ``appended`` and schedules ``cut`` again."""
        return bool(self._records) and self.on_the_way < self._depth

    def settled(self) -> bool:
        """One of our batches applied. True when records wait for the room it made: the host
        schedules ``cut``."""
        self.on_the_way = max(0, self.on_the_way - 1)
        return bool(self._records)

    def drop(self) -> None:
        """Leadership ended: what was not appended is not ours to append any more, and nothing
        of ours is on its way."""
        self._records.clear()
        self.on_the_way = 0
