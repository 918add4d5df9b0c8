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

Some records nobody waits for: a session's ``Settled`` (unless sessions wait in the admission
queue for the room it frees), and a result while another result of the same session is still
to come (the session ends with the last one). Alone, each would be a Raft entry of its own: at
one task in flight, 4.2 entries per two-agent task instead of 3.1 (measured). Such a record is *lazy*: it
does not open a batch of its own but waits, in its place among the records, for the next record
that is not lazy, and is cut with it; if none comes within ``LAZY_SECONDS``, the host's timer
(``expire``) cuts it anyway. A lazy record keeps its order and its meaning; it only travels in
company, so an entry per record becomes an entry per turn that matters.

A batch belongs to one term: records a deposed leader produced are dropped with its leadership
(``drop``), never appended under the next term. Applying a batch applies its records in order,
each exactly as if it had been appended alone (``records``), so idempotency, the apply results
and what every replica derives do not depend on how the records were batched. The simulator
runs this class too, so every fault plan exercises batching.
"""

from __future__ import annotations

import enum

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
#: How long a lazy record (or message: ``protocol.effects``) waits for company at most. Well
#: under the retry interval (``Timing.retry``, 50 ms), so that waiting never looks like a loss
#: to the peer that expects an answer; above the time between two tasks of a client that has
#: one in flight (15-20 ms on this machine), so that a session's ``Settled`` rides with the
#: next session's first record.
LAZY_SECONDS = 0.02


class CutWhen(enum.Enum):
    """What the host should schedule after ``GroupCommit.add``."""

    #: ``cut`` when the loop goes idle (a record that is not lazy opened the batch).
    IDLE = "idle"
    #: ``expire`` in ``LAZY_SECONDS`` (a lazy record opened the batch).
    DUE = "due"


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
        #: Whether a waiting record must not wait for company: one that is not lazy, or lazy
        #: ones whose time is up. Records left over after a cut keep it (a burst goes on).
        self._urgent = False

    def __len__(self) -> int:
        return len(self._records)

    def add(self, entry: Entry, term: int, lazy: bool = False) -> CutWhen | None:
        """Add a record of the leader of ``term``; what the host should schedule, if anything:
        ``IDLE`` when the record is the first that must not wait and the pipeline has room,
        ``DUE`` when a lazy record opens the batch."""
        if self._records and term != self._term:
            self._records.clear()  # the earlier leader's records died with its term
            self._urgent = False
        opens = not self._records
        self._term = term
        self._records.append(entry)
        if lazy:
            return CutWhen.DUE if opens else None
        if self._urgent:
            return None  # a cut is already scheduled (or waits for room in the pipeline)
        self._urgent = True
        return CutWhen.IDLE if self.on_the_way < self._depth else None

    def expire(self) -> bool:
        """``LAZY_SECONDS`` after a lazy record opened a batch: what waits goes without company.
        True when the host should ``cut`` now (else it goes when the pipeline has room)."""
        self._urgent = bool(self._records)
        return self._urgent and self.on_the_way < self._depth

    def cut(self) -> tuple[Batch | None, int]:
        """The batch to append now and the term it belongs to; (None, 0) when there is none or
        the pipeline is full. The host tells ``appended`` if the log took it."""
        if not self._records or self.on_the_way >= self._depth:
            return None, 0
        taken = tuple(self._records[: self._size])
        del self._records[: self._size]
        self._urgent = self._urgent and bool(self._records)
        if BATCH_REORDERED in self._defects:  # planted bug: the order within a batch is lost
            taken = taken[::-1]
        return Batch(taken, self._term), self._term

    def appended(self) -> None:
        self.on_the_way += 1

    def ready(self) -> bool:
        """Whether another batch can be cut now: records wait (more than one batch held) and
        the pipeline has room. The host asks after ``appended`` and schedules ``cut`` again."""
        return self._urgent and self.on_the_way < self._depth

    def settled(self) -> bool:
        """One of our batches applied. True when records wait for the room it made (lazy ones
        only once their time is up): the host schedules ``cut``."""
        self.on_the_way = max(0, self.on_the_way - 1)
        return self._urgent

    def drop(self) -> None:
        """Leadership ended: what was not appended is not ours to append any more, and nothing
        of ours is on its way."""
        self._records.clear()
        self._urgent = False
        self.on_the_way = 0
