"""Theory of operation: the leader's appends to the Raft log.

The policy is ``protocol.batching.GroupCommit``; this is its I/O. An ``Append`` effect adds its
record to the open batch (the replica's effect runner calls ``group.add``), and the first record
of a batch schedules ``cut`` with ``call_soon``: the batch goes to Raft as one entry when the
loop goes idle, never on a timer. A lazy record (one nobody waits for) that opens a batch
schedules ``expire`` in ``LAZY_SECONDS`` instead: it goes with the next record that is not lazy,
or then. When Raft applies (or drops) an appended batch, pysyncobj
says so on its tick thread; ``settled`` runs on the loop and cuts the records that waited while
the pipeline was full. A batch is appended only under the term of the leader that made it.

Counts for ``Replica.batching``: entries appended, the records they carried, and the time from
append to apply.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

from mca.leadership import Leadership
from mca.raftlog import RaftDecisionLog
from protocol.batching import LAZY_SECONDS, CutWhen, GroupCommit
from protocol.effects import Append
from protocol.leader import Leader


class Appends:
    def __init__(self, log_of: Callable[[], RaftDecisionLog], leadership: Leadership, batching: dict[str, int]) -> None:
        self._log = log_of
        self._leadership = leadership
        self._batching = batching
        self.group = GroupCommit()
        #: The replica's event loop, once it runs (``settled`` is handed over to it).
        self.loop: asyncio.AbstractEventLoop | None = None

    def add(self, append: Append, term: int) -> None:
        """An ``Append`` effect of the leader of ``term``: into the open batch."""
        when = self.group.add(append.entry, term, append.lazy)
        if when is CutWhen.IDLE:
            asyncio.get_running_loop().call_soon(self.cut)
        elif when is CutWhen.DUE:
            asyncio.get_running_loop().call_later(LAZY_SECONDS, self.expire)

    def expire(self) -> None:
        """A lazy record waited ``LAZY_SECONDS`` for company: it goes alone."""
        if self.group.expire():
            self.cut()

    def cut(self) -> None:
        """The loop went idle after the first record of a batch: append what the turn made."""
        batch, term = self.group.cut()
        leader = self._leadership.leader
        if batch is None or leader is None or leader.term != term:
            return
        appended_at = time.perf_counter()
        if self._log().append(batch, term, functools.partial(self._settled_on_tick_thread, leader, appended_at)):
            self.group.appended()
            self._batching["entries"] += 1
            self._batching["records"] += len(batch.records)
            if self.group.ready() and self.loop is not None:  # a burst: the next full batch
                self.loop.call_soon(self.cut)

    def _settled_on_tick_thread(self, leader: Leader, appended_at: float, applied: bool) -> None:
        """One of our batches applied (or was dropped): the pipeline has room again."""
        if applied:
            self._batching["apply_wait_us"] += int((time.perf_counter() - appended_at) * 1e6)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._settled, leader)

    def _settled(self, leader: Leader) -> None:
        if leader is self._leadership.leader and self.group.settled():
            self.cut()
