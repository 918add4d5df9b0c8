"""Theory of operation: the decision log on pysyncobj (Raft).

Each MCA replica owns one ``RaftDecisionLog``. Raft orders the entries; every replica applies
each entry a majority holds to its own ``Ledger`` through the replicated method ``_apply`` and tells its
subscribers, so the leader's host hears every applied record, whoever appended it.

An entry is a ``Batch`` of records (group commit, ``protocol.batching``): applying it applies
the records in order, telling the subscribers of each (``Applied``) right after it applies, so
the leader steps with the ledger exactly as of that record, as if it had been appended alone;
then ``on_batch`` subscribers hear that the batch is done, so the host wakes its loop once per
batch instead of once per record.

Appends are asynchronous: ``append`` hands the batch to pysyncobj, pickled, with a callback and
returns at once; the leader keeps the objects it pickled until the entry applies, and applies
those (every other replica, and a journal replay, unpickles). The host batches (group commit),
so pysyncobj's own batching is off: with ``appendEntriesUseBatch`` a command waited for the next
tick and the next append period (5 ms each, so a Raft round trip cost 10-20 ms and a session
several of them), and both periods had to be short, which made every replica tick 200 times a
second and send 400 encrypted heartbeats a second whether or not anything happened. Without it,
pysyncobj wakes its tick thread through a pipe on every append and sends at once; a follower's
answer wakes the leader's poll, which applies at once (followers learn how far a majority holds
the log with the next append or heartbeat: ``_PromptSyncObj``). The periods are then only the
heartbeat and the idle poll, and can be long.

Raft traffic is authenticated and encrypted with pysyncobj's password option, also on the
embedded default, but sealed with AES-GCM (``RaftSealer``) instead of pysyncobj's Fernet: one C
call per message instead of AES-CBC, HMAC and base64 in Python (about 150 us per message both
ways with Fernet, 13 us with AES-GCM; Fernet was a fifth of a follower's CPU). The journal lives
in the data folder and survives a process crash (it is not fsynced: a power cut can lose the
tail, as DESIGN.md notes).

Retention: the replicated state is the ledger (which retires settled sessions itself, see
``protocol.ledger``) and a window of the latest ``RECORDS_KEPT`` applied records (for the read
model's catch-up; ``history_from`` says where it starts), plus the first record, which names
the log. pysyncobj compacts its journal into a snapshot of that state every
``LOG_COMPACTION_ENTRIES`` entries or ``LOG_COMPACTION_SECONDS``, so neither the journal nor the
snapshot grows with the number of sessions ever run. It does so in a forked child, which
compresses at a quick level (``_QuickSerializer``); in a soak run, such a child of a
replica (a process with gRPC and Ray threads) crashed once in a while (the parent goes on and
compacts at a later point), and the forks coincided with leader changes under load: keeping the
state small (the retention windows) keeps each compaction short.

Threads: pysyncobj applies entries on its own tick thread, holding ``guard`` while it applies an
entry and calls the subscribers. Subscribers run on that thread and must hand any I/O to their
own loop (``loop.call_soon_threadsafe``); a host that reads the ledger from another thread takes
``guard`` first, so it never sees an entry half applied. The tick thread holds a lock of its
own for each tick except while it waits for its sockets; an append takes that lock when it is
free and adds the entry and sends it to the followers on the appending thread (the leader's
loop) instead of waking the tick thread to do it (``_PromptSyncObj._applyCommand``: a lone
task's p50 went from 17 to 15 ms).
"""

from __future__ import annotations

import gzip
import itertools
import logging
import os
import pickle
import queue
import select
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj import pickle as pysyncobj_pickle
from pysyncobj.atomic_replace import atomicReplace
from pysyncobj.poller import POLL_EVENT_TYPE, PollPoller
from pysyncobj.serializer import Serializer

from mca.tls import private_folder
from protocol.batching import records
from protocol.entries import Batch, Entry
from protocol.events import Applied
from protocol.ledger import ApplyResult, Ledger

#: pysyncobj drops a connection it has read nothing from for ``connectionTimeout`` seconds, and
#: checks only when it is about to send. Followers never talk to each other until an election,
#: so with any timeout shorter than the cluster's uptime a candidate's first vote request always
#: found its link to the other follower "timed out", was dropped, and the first election round
#: failed: failover took two election timeouts (measured: first candidate at 0.45 s, leader at
#: 1.15 s). A dead peer is still noticed at once (its socket closes), and a silent one by Raft's
#: own election and leader-fallback timers.
CONNECTION_IDLE_SECONDS_MAX = 365 * 24 * 3600.0
#: Applied records kept for the read model's catch-up (a new leader re-projects what the records
#: after the store's checkpoint touched; further behind, it re-projects every session).
RECORDS_KEPT = 5_000
#: Longest a tick of pysyncobj's thread applies entries before it sends heartbeats and reads its
#: sockets (``_PromptSyncObj``): a tenth of the shortest election timeout.
APPLY_SECONDS_PER_TICK = 0.02
#: Raft entries between journal compactions (a snapshot of the ledger replaces them).
LOG_COMPACTION_ENTRIES = 5_000
#: Seconds between a replica's compactions however few entries came (pysyncobj's default is
#: 300). Each replica compacts in a slot of its own (``logCompactionSplit``), so this is also how
#: long the journal grows in memory: pysyncobj keeps every entry since the last snapshot in a
#: list, and at 64 tasks in flight 300 s took a replica from 175 to 245 MiB (and a 37 MiB
#: journal) before its snapshot brought it back.
LOG_COMPACTION_SECONDS = 60.0
#: gzip level of a snapshot. pysyncobj writes level 9: 1.4 s of CPU for the 4 MiB state of a long
#: run, four times the pickling (0.36 s), in a child whose parent copies every page it writes to
#: meanwhile. Level 1: 0.09 s, and the file 1.3 MiB instead of 1.0.
SNAPSHOT_GZIP_LEVEL = 1


def _yield_the_cores() -> None:
    """In a forked child: compaction, pickling and compressing the whole state for seconds. At
    the lowest priority it takes only the CPU the replicas and agents leave: at the default
    one, on two cores, it starved the tick threads and cost leader changes in long runs."""
    os.nice(19)


#: Forks of a replica process are pysyncobj's compactions (registered once per process).
_NICE_CHILDREN = False


@dataclass(frozen=True)
class RaftTiming:
    """pysyncobj periods in seconds. Elections start 0.25-0.75 s after the last message from a
    leader: SIGKILL of a leader to the next accepted submit took 0.37-0.66 s on this machine
    (with ``CONNECTION_IDLE_SECONDS_MAX``; 1.35-1.90 s before both changes). Shorter risks
    spurious elections when two busy cores starve the tick thread."""

    #: Heartbeat period (appends are sent at once, not on this period).
    append_entries_period: float = 0.05
    raft_min_timeout: float = 0.25
    raft_max_timeout: float = 0.75
    #: The tick thread's idle poll: a message or an append wakes it sooner.
    tick_period: float = 0.05


class RaftSealer:
    """pysyncobj's encryptor interface (``encrypt_at_time``, ``extract_timestamp``,
    ``decrypt``) on AES-GCM.

    A sealed message is ``timestamp (8 bytes) | nonce (12) | ciphertext and tag``; the timestamp
    is authenticated (associated data), as in Fernet, since pysyncobj refuses a message older
    than the last one on a connection. The key comes from the password by PBKDF2 (the password
    may be a person's, so a captured message must not make guessing it cheap). Nonces never
    repeat under one key: 8 random bytes chosen per sealer and again every 2**32 messages, then
    a counter; a repeat would need two of those random prefixes to collide, which at a few per
    process life is a chance of about 2**-60. Any failure to open raises, and pysyncobj drops
    the connection, as with Fernet. Every replica of a cluster must run the same sealer (the
    journal is unaffected: only what travels between replicas changes).
    """

    _SALT = b"mca raft aes-gcm v1"
    _COUNTER_MAX = 2**32

    def __init__(self, password: str) -> None:
        kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=self._SALT, iterations=100_000)
        self._aead = AESGCM(kdf.derive(password.encode()))
        self._lock = threading.Lock()  # pysyncobj seals on its tick thread; tests may not
        self._prefix = os.urandom(8)
        self._counter = itertools.count()

    def _nonce(self) -> bytes:
        with self._lock:
            n = next(self._counter)
            if n >= self._COUNTER_MAX:
                self._prefix, self._counter = os.urandom(8), itertools.count(1)
                n = 0
            return self._prefix + n.to_bytes(4, "big")

    def encrypt_at_time(self, data: bytes, at: int) -> bytes:
        stamp = at.to_bytes(8, "big")
        nonce = self._nonce()
        return stamp + nonce + self._aead.encrypt(nonce, data, stamp)

    @staticmethod
    def extract_timestamp(token: bytes) -> int:
        if len(token) < 8 + 12 + 16:
            raise ValueError("a sealed Raft message is shorter than its header")
        return int.from_bytes(token[:8], "big")

    def decrypt(self, token: bytes) -> bytes:
        return self._aead.decrypt(token[8:20], token[20:], token[:8])


class _TickPoller(PollPoller):  # type: ignore[misc]
    """pysyncobj's own poller, waiting without ``lock`` and dispatching with it.

    pysyncobj's tick thread holds ``lock`` for a whole tick (``_PromptSyncObj._onTick``) except
    while it waits for its sockets, so a thread that takes ``lock`` may use pysyncobj (its log,
    its connections) as if it were the tick thread: the append path does (``_applyCommand``).
    Only ``poll`` changes; it reads the two attributes pysyncobj 0.3's ``PollPoller`` keeps."""

    _PollPoller__poll: Any
    _PollPoller__descrToCallbacks: dict[int, Callable[[int, int], None]]

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__()
        self._lock = lock

    def poll(self, timeout: float) -> None:
        self._lock.release()  # held by the tick (``_onTick``)
        try:
            events = self._PollPoller__poll.poll(timeout * 1000)
        finally:
            self._lock.acquire()
        callbacks = self._PollPoller__descrToCallbacks
        for descr, flags in events:  # pysyncobj's translation of poll's flags
            mask = POLL_EVENT_TYPE.ERROR if flags & (select.POLLERR | select.POLLHUP) else 0
            if flags & select.POLLIN:
                mask |= POLL_EVENT_TYPE.READ
            if flags & select.POLLOUT:
                mask |= POLL_EVENT_TYPE.WRITE
            callbacks[descr](descr, mask)


class _QuickSerializer(Serializer):  # type: ignore[misc]
    """pysyncobj's snapshot writer with a quicker gzip level (``SNAPSHOT_GZIP_LEVEL``).

    As in pysyncobj, a forked child pickles the state into a temporary file and moves it into
    place, and the tick thread polls for the child (``checkSerializing``); a snapshot is still a
    gzip file, read, sent to a lagging follower and loaded by pysyncobj's own code. The child's
    life is shorter: while it runs, the replica pays for a copy of every page it writes to.
    Without ``fork`` (not this platform), pysyncobj's own path runs."""

    _Serializer__pid: int
    _Serializer__currentID: int
    _Serializer__fileName: str | None
    _Serializer__useFork: bool

    def serialize(self, data: object, id: int) -> None:
        if self._Serializer__fileName is None or not self._Serializer__useFork:
            super().serialize(data, id)
            return
        if self._Serializer__pid != 0:
            return
        self._Serializer__currentID = id
        pid = os.fork()
        if pid != 0:
            self._Serializer__pid = pid
            return
        try:  # the child: nothing here may return into the parent's code
            tmp = self._Serializer__fileName + ".tmp"
            with open(tmp, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=SNAPSHOT_GZIP_LEVEL) as g:
                pysyncobj_pickle.dump(data, g)
            atomicReplace(tmp, self._Serializer__fileName)
            os._exit(0)
        except BaseException:
            os._exit(1)


class _PromptSyncObj(SyncObj):  # type: ignore[misc]
    """pysyncobj, sending new entries at once but not an extra round of messages per apply,
    and applying the entries a majority holds in slices of ``APPLY_SECONDS_PER_TICK`` (see the override).

    Without its own batching, pysyncobj sends append-entries at once when a command arrives
    (what we want: the host batches) and again after every apply, only to tell the followers
    how far a majority now holds the log. That second round doubled the Raft messages, each pickled and
    encrypted (a quarter of every replica's Raft CPU went to Fernet), and nothing waits for
    it: the leader has applied, and followers learn it with the next entry or
    heartbeat (``append_entries_period``). A new leader applies everything before serving
    (its barrier), so a follower's lag costs nothing. This relies on one private method of
    pysyncobj 0.3 and two of its attributes (the version pyproject.toml pins); without the
    method, pysyncobj behaves as shipped.
    """

    # pysyncobj's private state that ``_SyncObj__applyLogEntries`` reads and caps.
    _SyncObj__raftCommitIndex: int
    _SyncObj__raftLastApplied: int

    def __init__(self, *args: object, sealer: RaftSealer, **kwargs: object) -> None:
        self._sealer = sealer  # before SyncObj's init: its transport asks for the encryptor
        #: Held by the tick thread for a tick, but not while it waits for its sockets
        #: (``_TickPoller``): whoever holds it may act as the tick thread. Not reentrant: the
        #: tick thread appending within its own tick queues, as pysyncobj does.
        self._tick_lock = threading.Lock()
        self._tick_poller = _TickPoller(self._tick_lock)
        super().__init__(*args, **kwargs)

    @property
    def _SyncObj__serializer(self) -> _QuickSerializer:
        return self._quick_serializer

    @_SyncObj__serializer.setter
    def _SyncObj__serializer(self, made: Serializer) -> None:
        # SyncObj's init makes pysyncobj's own from its configuration; ours only overrides a
        # method and adds no state, so the object it made becomes one of ours.
        made.__class__ = _QuickSerializer
        self._quick_serializer: _QuickSerializer = made

    @property
    def _poller(self) -> _TickPoller:
        return self._tick_poller

    @_poller.setter
    def _poller(self, _created: object) -> None:
        pass  # SyncObj's init makes its own poller; its transport and ticks use ours

    def _onTick(self, timeToWait: float = 0.0) -> None:
        with self._tick_lock:
            super()._onTick(timeToWait)

    def _applyCommand(self, command: object, callback: object, commandType: object = None) -> None:
        """Append ``command`` and send it to the followers on the caller's thread when the tick
        thread is not in a tick; otherwise queue it and wake the tick thread, as pysyncobj does.

        Waking the tick thread cost a Raft round trip 0.4-0.55 ms before anything was sent (the
        woken thread waits for a core while the caller's loop, already running, goes idle), and
        the leader a wakeup of that thread per entry."""
        if not self._tick_lock.acquire(blocking=False):
            super()._applyCommand(command, callback, commandType)
            return
        try:
            if commandType is not None:  # as pysyncobj queues it: one byte of type first
                command = struct.pack("B", commandType) + command  # type: ignore[operator]
            try:
                self._SyncObj__commandsQueue.put_nowait((command, callback))
            except queue.Full:
                self._SyncObj__callErrCallback(FAIL_REASON.QUEUE_FULL, callback)
                return
            self._checkCommandsToApply()
        finally:
            self._tick_lock.release()

    @property
    def encryptor(self) -> RaftSealer:
        """What pysyncobj's transport seals and opens every message with (``RaftSealer``)."""
        return self._sealer

    def _getEncryptor(self) -> RaftSealer:
        return self._sealer

    def _SyncObj__applyLogEntries(self) -> bool:  # pysyncobj's name for its private method
        """Apply ready entries for at most ``APPLY_SECONDS_PER_TICK``, then let the tick go on.

        pysyncobj applies every entry a majority holds (its commit index) before it sends the
        next heartbeat and reads its sockets. On the leader, applying an entry of 64 records (the ledger, then the
        leader stepped per record) takes 15-25 ms on a busy core, and a burst makes several ready
        at once: measured at 1,024 in flight, 60-100 ms per tick, over 200 ms with a garbage
        collection on top, near the shortest election timeout. So it applies one entry at a
        time (pysyncobj's own loop, with the index it sees capped) until the budget is
        spent, and wakes its own poll at once when entries remain: the heartbeat and the
        waiting messages go first, nothing waits for the idle poll. Order and content are
        unchanged; only when each entry applies moves."""
        ready = self._SyncObj__raftCommitIndex  # pysyncobj's name: held by a majority
        start = self._SyncObj__raftLastApplied
        deadline = time.monotonic() + APPLY_SECONDS_PER_TICK
        try:
            while self._SyncObj__raftLastApplied < ready:
                before = self._SyncObj__raftLastApplied
                self._SyncObj__raftCommitIndex = before + 1
                SyncObj._SyncObj__applyLogEntries(self)
                if self._SyncObj__raftLastApplied == before or time.monotonic() >= deadline:
                    break  # no progress: an entry pysyncobj refused (logged; retried next tick)
        finally:
            self._SyncObj__raftCommitIndex = ready
        if start < self._SyncObj__raftLastApplied < ready:
            notifier = getattr(self, "_SyncObj__pipeNotifier", None)
            if notifier is not None:
                notifier.notify()
        return False


if not hasattr(SyncObj, "_SyncObj__applyLogEntries"):  # another pysyncobj: keep its behaviour
    del _PromptSyncObj._SyncObj__applyLogEntries


class _LedgerState(SyncObjConsumer):  # type: ignore[misc]
    """The replicated part: the ledger and the applied entries. Everything assigned before
    ``super().__init__()`` is local to the replica and never serialized into Raft snapshots."""

    def __init__(
        self,
        notify: Callable[[Applied], None],
        batch_done: Callable[[], None],
        guard: threading.RLock,
    ) -> None:
        self._notify = notify
        self._batch_done = batch_done
        self._guard = guard
        #: The batches this replica appended as leader, by their pickled form, until they apply
        #: (or pysyncobj reports them dropped or discarded): applying its own batch, the leader
        #: takes the objects it pickled instead of unpickling and building them again.
        self.own: dict[bytes, Batch] = {}
        super().__init__()
        self.ledger = Ledger()
        self.entries: list[Entry] = []  # the latest applied records, from index offset + 1
        self.offset = 0
        self.first: Entry | None = None
        self.applied = 0
        self.fence = 0  # the term of the latest barrier applied

    @replicated  # type: ignore[untyped-decorator]
    def _apply(self, batch: Batch | Entry | bytes) -> None:
        if isinstance(batch, bytes):  # appended pickled (``RaftDecisionLog.append``)
            kept = self.own.pop(batch, None)
            # Unpickled like every pysyncobj command: the log is authenticated (``RaftSealer``).
            batch = kept if kept is not None else pickle.loads(batch)
        with self._guard:  # the host steps its leader under the same lock: no torn reads
            if isinstance(batch, Batch) and 0 < batch.term < self.fence:
                # A deposed leader's batch that pysyncobj forwarded to its successor after the
                # successor's barrier: the records were decided by a leader that no longer
                # leads; the same on every replica, since barrier and batch are both entries.
                logging.getLogger(__name__).warning("skipped a batch of term %d behind the barrier", batch.term)
                self._batch_done()
                return
            for entry in records(batch):
                try:
                    result = self.ledger.apply(entry)
                except Exception:
                    # A broken invariant is a bug, but raising here would make pysyncobj retry
                    # the same entry forever on every replica (and again after every restart):
                    # the log would be wedged. Every replica rejects the record alike, so the
                    # state stays the same everywhere; the log says loudly that it happened.
                    logging.getLogger(__name__).critical("record rejected by the ledger: %r", entry, exc_info=True)
                    result = ApplyResult(False)
                self._keep(entry)
                try:
                    self._notify(Applied(self.applied, entry, result))
                except Exception:
                    logging.getLogger(__name__).exception("a subscriber failed on record %d", self.applied)
            try:
                self._batch_done()
            except Exception:
                logging.getLogger(__name__).exception("a subscriber failed after record %d", self.applied)

    def _keep(self, entry: Entry) -> None:
        self.applied += 1
        if self.first is None:
            self.first = entry
        self.entries.append(entry)
        if len(self.entries) >= 2 * RECORDS_KEPT:  # trim in chunks: O(1) per record on average
            del self.entries[:RECORDS_KEPT]
            self.offset += RECORDS_KEPT

    @replicated  # type: ignore[untyped-decorator]
    def _barrier(self, term: int) -> int:
        """Once applied, every entry a majority held before it is applied too; from here on, a
        batch of an older term is skipped (the fence)."""
        self.fence = max(self.fence, term)
        return term


class RaftDecisionLog:
    """``protocol.log.DecisionLog`` on pysyncobj, one per replica."""

    def __init__(
        self,
        self_address: str,
        partner_addresses: list[str],
        data_dir: str,
        password: str,
        timing: RaftTiming = RaftTiming(),
        guard: threading.RLock | None = None,
    ) -> None:
        if not password:
            raise ValueError("the Raft password must not be empty: replica traffic is always authenticated")
        private_folder(Path(data_dir))  # the journal holds the ledger: payloads, owners, results
        global _NICE_CHILDREN
        if not _NICE_CHILDREN:
            os.register_at_fork(after_in_child=_yield_the_cores)
            _NICE_CHILDREN = True
        # Replaced, never changed in place (copy on subscribe): the tick thread reads them once
        # per applied record without a lock.
        self._subscribers: tuple[Callable[[Applied], None], ...] = ()
        self._batch_subscribers: tuple[Callable[[], None], ...] = ()
        self._lock = threading.Lock()
        self.guard = guard or threading.RLock()
        self._state = _LedgerState(self._publish, self._publish_batch, self.guard)
        safe = self_address.replace(":", "_")
        conf = SyncObjConf(
            password=password,
            journalFile=os.path.join(data_dir, f"raft-{safe}.journal"),
            fullDumpFile=os.path.join(data_dir, f"raft-{safe}.dump"),
            appendEntriesPeriod=timing.append_entries_period,
            # Send each append at once (a pipe wakes the tick thread) instead of waiting for the
            # next tick and append period: the host already batches (group commit).
            appendEntriesUseBatch=False,
            autoTickPeriod=timing.tick_period,
            raftMinTimeout=timing.raft_min_timeout,
            raftMaxTimeout=timing.raft_max_timeout,
            bindAddress=self_address,  # never 0.0.0.0: Raft listens where it was told to
            connectionTimeout=CONNECTION_IDLE_SECONDS_MAX,
            connectionRetryTime=0.2,
            # A leader that cannot reach a majority steps down after this long (the default is
            # 30 s, during which a cut-off leader would keep answering agents and reads).
            leaderFallbackTimeout=timing.raft_max_timeout,
            commandsWaitLeader=False,
            logCompactionMinEntries=LOG_COMPACTION_ENTRIES,
            logCompactionMinTime=LOG_COMPACTION_SECONDS,
            # Replicas compact at different points of the log, not all three at once: each
            # compaction forks a child that pickles and compresses the state, on the same cores.
            logCompactionSplit=True,
            dynamicMembershipChange=False,
        )
        self._sync = _PromptSyncObj(
            self_address, partner_addresses, conf=conf, consumers=[self._state], sealer=RaftSealer(password)
        )

    # --- DecisionLog --------------------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        return self._state.ledger

    def append(self, batch: Batch, term: int, settled: Callable[[bool], None] | None = None) -> bool:
        """Append as the leader of ``term``. ``settled`` (tick thread) hears True once this
        replica applied the batch, False if pysyncobj dropped it (queue full, leadership lost)."""
        if not self._sync._isLeader() or self._sync.raftCurrentTerm != term:
            return False

        # Pickled here, so that the leader can apply its own objects when the entry comes back
        # (``_LedgerState.own``): unpickling and building them again was 3 % of its CPU.
        # Followers and journal replays unpickle; pysyncobj pickles the bytes as they are.
        blob = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        self._state.own[blob] = batch

        def outcome(result: object, error: object) -> None:
            if error != 0:  # dropped or discarded: it will not apply as ours
                self._state.own.pop(blob, None)
            if settled is not None:
                settled(error == 0)

        self._state._apply(blob, callback=outcome)
        return True

    def barrier(self, term: int, done: Callable[[bool], None]) -> None:
        """Append a no-op as leader of ``term``; ``done(True)`` once it is applied here.

        A new Raft leader may not yet have applied entries its predecessor got to a majority; after its
        own barrier applies it has, so it can serve reads and run recovery on complete state.
        ``done`` runs on the tick thread.
        """

        def applied(result: object, error: object) -> None:
            done(error is None or error == 0)

        self._state._barrier(term, callback=applied)

    def subscribe(self, callback: Callable[[Applied], None]) -> None:
        """``callback`` gets each applied record, on the tick thread, under ``guard``."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

    def on_batch(self, callback: Callable[[], None]) -> None:
        """``callback`` runs after the last record of each applied batch (tick thread, guard held)."""
        with self._lock:
            self._batch_subscribers = (*self._batch_subscribers, callback)

    def applied_entries(self, start: int = 0) -> Iterator[tuple[int, Entry]]:
        """The kept records after index ``start`` (from ``history_from`` at the earliest)."""
        state = self._state
        offset, entries = state.offset, list(state.entries)
        for i in range(max(start - offset, 0), len(entries)):
            yield offset + i + 1, entries[i]

    @property
    def history_from(self) -> int:
        """Index of the oldest record ``applied_entries`` still yields."""
        return self._state.offset + 1

    @property
    def first_record(self) -> Entry | None:
        """The first record ever applied: it names this log (a new cluster has another)."""
        return self._state.first

    @property
    def applied_index(self) -> int:
        """How many records this replica has applied (read under ``guard`` for a stable value)."""
        return self._state.applied

    # --- Raft status --------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return bool(self._sync._isLeader())

    @property
    def term(self) -> int:
        return int(self._sync.raftCurrentTerm)

    @property
    def leader(self) -> str | None:
        node = self._sync._getLeader()
        return str(node) if node is not None else None

    def close(self) -> None:
        self._sync.destroy()

    def _publish(self, applied: Applied) -> None:
        for callback in self._subscribers:
            callback(applied)

    def _publish_batch(self) -> None:
        for callback in self._batch_subscribers:
            callback()
