"""Theory of operation: the durable read model, a projection of the decision log.

The Raft log is the source of truth; people and tools query history in a document store
(SecantusDB in the embedded default, MongoDB in production) through PyMongo's async client:

* ``coordination_sessions``: one document per session (task, plan, votes, decision, negotiated
  parameters, results, state) with the session's domain events embedded in its ``events`` array
  (``TaskAccepted``, ``CoordinationStarted``, ``TaskCompleted``, a task type's result events such
  as the wellness plugin's ``MealPlanGenerated``...; each
  with ``seq``, the sequence number ``Watch`` streams, and ``event``, ``kind``, ``state``,
  ``detail``), in ``seq`` order; unique on ``_id`` (the session id), and indexed on ``(owner,
  idempotency_key)`` (not unique: past the dedup window a key names a new session);
* ``agent_capabilities``: one document per agent (capabilities, capacity, incarnation);
* ``events``: one ``AgentRegistered`` per agent registration (``session_id`` is
  ``agent:<agent id>``, ``seq`` its incarnation); unique on ``(session_id, seq, event)``;
* the collections the cluster's task types name for their results' documents (``ResultKind``:
  the wellness plugin's ``meal_plans`` and ``workout_plans``), and ``results`` for capabilities no
  task type names: the documents results carry, one per subtask (``_id`` is the subtask id: the
  first result applied wins, so there is exactly one);
* ``meta``: the checkpoint (the number of log entries the store holds everything of), the log it
  projects and the layout (``format``) of the documents.

``events_of(session_id)`` returns a session's events (or an agent's registrations) in ``seq``
order, each with ``_id`` (``<session>:<seq>:<event>``) and ``session_id`` as well.

The projection is pure (``mca.projection``: ``session_document`` and friends, a ledger record
and the cluster's result routes in, documents out; the routes, capability -> (collection,
event), come from the task types of cluster.yaml through ``mca.catalog.result_routes``) and
every write is idempotent, so writing a document twice, or projecting everything again, is
always safe: that is how the read model is rebuilt from the log. Documents carry a version (a
session's event count, an agent's incarnation) and a write only replaces an older or equal
version, so a deposed leader that flushes late cannot overwrite what its successor wrote.

Cost (DESIGN.md, "Throughput: batch every hop"): SecantusDB spends about 1 ms of CPU per
document it inserts and 2-3 ms per conditional replace (measured here), so the writer sends as
few documents as it can:

* a session's events ride in its document, not one document each;
* a session is written when it settles (its history is complete), or once it has waited
  ``SETTLE_WAIT_SECONDS`` (a long or stuck session still shows up, and is written again when it
  settles): most sessions are written once in their life, whatever the load;
* the first write of a session by this writer is a plain insert (the cheapest write); only if
  the session is already stored (a re-projection, another leader's work) does it fall back to
  the versioned replace, which changes nothing against a newer version. Result and agent
  registration documents never change: they are inserted, and an existing one is kept;
* the writer flushes every ``FLUSH_SECONDS``: a few requests per flush (one per collection with
  something to write, and the checkpoint), whatever the number of entries in between.

Measured on 2 cores (``bench/e2e.py``, 64 in flight): 0.5-0.7 ms of store CPU per two-agent
task (one document per session, indexed on ``_id`` and ``(owner, idempotency_key)`` only: each
secondary index costs SecantusDB 0.25-0.3 ms per document), against 16 ms when every event
was a document of its own and every flush (each 50 ms) rewrote each session that had changed.

Only the leader writes. Each applied entry adds its session (or agent) to a dirty set on
pysyncobj's tick thread, under the log's guard (a set add: the tick thread is never slowed).
On each flush the writer, under the guard, moves the dirty sessions to its pending table, picks
the pending ones that are due (settled, waited long enough, or gone from the ledger), and takes
a cheap snapshot of each (the record with its growing containers copied), at most
``SESSIONS_PER_TAKE`` per hold; it releases the guard before projecting the snapshots into
documents and writing them. The checkpoint it then stores is the applied index at this take,
or less while a session is still pending: the applied index at the last take before that
session changed. Everything up to the checkpoint is in the store. ``lag(applied)`` says how
many applied entries the store is behind; under load it includes the entries of the sessions
in flight (at most ``SETTLE_WAIT_SECONDS`` of them), so a steady lag is normal and a growing one
means the store cannot keep up or is down (``error`` says why).

When a replica becomes leader it compares the stored checkpoint with its own log and
re-projects what the entries after it touched: everything when the store has no checkpoint or
holds documents of an older layout (replaced in place), or another log's projection (emptied
first). A store that is down never slows the coordination: the writer keeps the records pending
and retries with backoff. ``written`` counts the documents sent per collection, for benches
(documents per task) and tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import bson
from bson.errors import InvalidDocument
from pymongo import ASCENDING, AsyncMongoClient, ReplaceOne
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

from mca.catalog import OTHER_RESULTS, TaskType, result_routes
from mca.projection import (
    AGENTS,
    EVENTS,
    META,
    OWN_COLLECTIONS,
    SESSIONS,
    Routes,
    agent_document,
    agent_event,
    log_identity,
    record_identity,
    result_documents,
    session_document,
    snapshot,
)
from protocol.entries import Accepted, Entry, Registered
from protocol.entries import Batch as EntryBatch
from protocol.ledger import Ledger, SessionRecord, owned_key

#: The layout of the documents, stored with the checkpoint. A store in an older layout (1, no
#: ``format``: a document per session event in ``events``) gets every session the log holds
#: re-projected in place; it is not emptied, since a session the log no longer holds has its
#: history there only (``events_of`` still reads its events from ``events``).
FORMAT = 2
#: The index that finds a session by (owner, idempotency key); not unique (``ensure_indexes``).
KEY_INDEX = "owner_key"
#: How often the writer flushes (seconds): a few requests per flush, not a write per entry.
#: Freshness is not what the read model is for (``Watch`` and ``get`` read the ledger).
FLUSH_SECONDS = 0.2
#: Longest a changed session that has not settled waits before it is written anyway: longer
#: than a task takes even under overload (measured: 2.6 s at 150 in flight on 2 cores; a session
#: written before it settles is written twice), short enough that a long or stuck session
#: shows up in the store within seconds.
SETTLE_WAIT_SECONDS = 5.0
#: Longest wait between retries while the store is unreachable.
RETRY_SECONDS_MAX = 2.0
#: Most sessions taken per hold of the log's guard: the tick thread waits while we hold it,
#: and a long hold delays Raft heartbeats (a re-projection of thousands of sessions goes in
#: chunks, with the guard released between them).
SESSIONS_PER_TAKE = 200
#: Retired sessions held for a store that has not taken them yet (beyond, the oldest is lost,
#: loudly): the ledger retires the oldest settled sessions while the store may be down.
RETIRED_HELD_MAX = 50_000
#: Duplicate key: the filter lost to a newer version (or an identical document already exists).
_DUPLICATE_KEY = 11000

log = logging.getLogger(__name__)


def _parsed(document: dict[str, Any]) -> dict[str, Any]:
    """A result document with its JSON parsed; one that cannot be (the boundary checks results,
    so this is defence in depth) is stored as the reason instead of stopping the writer."""
    try:
        return document | {"document": json.loads(document["document"])}
    except (ValueError, TypeError) as exc:
        return document | {"document": None, "error": f"not storable JSON: {exc}"[:200]}


def _storable(document: dict[str, Any]) -> dict[str, Any]:
    """``document``, or, if the store could not hold it, its identity and the reason."""
    try:
        bson.encode(document)
    except (InvalidDocument, OverflowError, ValueError, TypeError) as exc:
        kept = {k: document[k] for k in ("_id", "version", "owner", "idempotency_key", "state") if k in document}
        return kept | {"error": f"not storable: {exc}"[:200]}
    return document


class History(NamedTuple):
    """How far back a log's applied records reach: index of the oldest kept, and the first
    record ever applied (which names the log). The default: every record is kept."""

    oldest: int = 1
    first: Entry | None = None


def _records(entry: Entry | EntryBatch) -> Iterable[Entry]:
    # A group-committed entry (DESIGN.md, "Group commit") carries several records.
    return entry.records if isinstance(entry, EntryBatch) else (entry,)


class Pending(NamedTuple):
    """A session changed since it was last written."""

    #: The store holds this session's entries up to this applied index.
    since: int
    #: When the writer first saw it changed (``time.monotonic``): it is due ``SETTLE_WAIT_SECONDS`` later.
    first: float


@dataclass
class Batch:
    """What one flush writes, taken from the ledger under its guard."""

    #: Snapshots of the sessions to write (projected into documents outside the guard).
    sessions: list[SessionRecord] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    agent_events: list[dict[str, Any]] = field(default_factory=list)
    #: The applied index at the take.
    applied: int = 0
    #: The store holds every entry up to here once this batch is written.
    checkpoint: int = 0
    #: More sessions were due than one take carries: flush again at once.
    more: bool = False
    #: The pending marks of the sessions taken, restored if the write fails.
    taken: dict[str, Pending] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sessions) + len(self.agents)


# --- the writer -------------------------------------------------------------------------------


class ReadModel:
    """Projects one replica's ledger into the document store at ``url`` while it leads; the
    documents of results go where the task types of ``catalog`` say (``result_routes``)."""

    def __init__(self, url: str, guard: threading.RLock, catalog: Mapping[str, TaskType] | None = None) -> None:
        self.url = url
        self._guard = guard
        self.routes: Routes = result_routes(catalog or {})
        self.collections = (*OWN_COLLECTIONS, *sorted({c for c, _ in (*self.routes.values(), OTHER_RESULTS)}))
        # Short timeouts: a store that is away must not hold up a flush for long (we retry).
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000, retryWrites=False, tz_aware=True
        )
        self._db = self._client.get_default_database(default="mca")  # the URL's path names it
        # Shared with the tick thread (under the guard): what applied entries touched.
        self._dirty_sessions: set[str] = set()
        self._retired: dict[str, SessionRecord] = {}  # retired before written (see ``retire``)
        self._dirty_agents: set[str] = set()
        # The writer's own (event loop only): sessions changed but not written yet, in the
        # order they first changed; and, per session this writer has written and that has not
        # settled, how many of its events it wrote (a settled one is dropped: nothing follows).
        self._pending: dict[str, Pending] = {}
        self._written_seq: dict[str, int] = {}
        self._taken = 0  # the applied index at the last take
        self.checkpoint = 0  # entries the store holds everything of, as far as this writer knows
        self.log_id = ""  # which decision log the store projects (see log_identity)
        self.error = ""  # the last store error, for status displays
        self.written: Counter[str] = Counter()  # documents sent, per collection

    # Called on pysyncobj's tick thread, under the guard, once per applied entry: set adds only.
    def touch(self, session_id: str = "", agent_id: str = "") -> None:
        if session_id:
            self._dirty_sessions.add(session_id)
        if agent_id:
            self._dirty_agents.add(agent_id)

    def lag(self, applied: int) -> int:
        """How many of ``applied`` entries the store does not hold yet (see the module notes)."""
        return max(0, applied - self.checkpoint)

    def retire(self, records: Iterable[SessionRecord]) -> None:
        """The ledger retired these sessions (tick thread, under the guard): keep the last
        version of each one this writer has not written yet, so that it still reaches the store."""
        for record in records:
            sid = record.session_id
            if sid in self._pending or sid in self._dirty_sessions:
                self._retired[sid] = record  # a retired record no longer changes
        while len(self._retired) > RETIRED_HELD_MAX:  # the store is down for long: say what is lost
            lost = next(iter(self._retired))
            del self._retired[lost]
            self._pending.pop(lost, None)
            log.error("read model: %s retired before the store took it; its history is lost", lost)

    def forget(self) -> None:
        """Not leading: drop what is dirty (the next leader projects from its own log)."""
        with self._guard:
            self._retired.clear()
            self._dirty_sessions.clear()
            self._dirty_agents.clear()
            self._pending.clear()
            self._written_seq.clear()
            self._taken = 0

    async def ensure_indexes(self) -> None:
        # Sessions are found by (owner, key), but not unique on it: past the dedup window a key
        # names a new task, and the store keeps both sessions (a unique index made the insert
        # of the second collide, and the writer took the collision for "already written").
        # The unique indexes of earlier versions go (on the key alone, then per owner), and so
        # does the index on ``state``: nothing in the runtime queries by state, and keeping it
        # cost the store a third of its CPU per session written (0.27 of 0.9 ms per two-agent
        # task at 64 in flight; SecantusDB spends 0.25-0.3 ms per secondary index entry).
        for old in ("idempotency_key_1", "owner_1_idempotency_key_1", "state_1"):
            with contextlib.suppress(OperationFailure):
                await self._db[SESSIONS].drop_index(old)
        await self._db[SESSIONS].create_index([("owner", ASCENDING), ("idempotency_key", ASCENDING)], name=KEY_INDEX)
        await self._db[EVENTS].create_index(
            [("session_id", ASCENDING), ("seq", ASCENDING), ("event", ASCENDING)], unique=True
        )
        for collection in self.collections[len(OWN_COLLECTIONS) :]:
            await self._db[collection].create_index([("session_id", ASCENDING)])

    async def catch_up(
        self,
        ledger: Ledger,
        applied: Callable[[], int],
        entries: Callable[[int], Iterable[tuple[int, Entry]]],
        history: Callable[[], History] = History,
    ) -> None:
        """As a new leader: re-project what the entries after the stored checkpoint touched
        (everything, when the store has no checkpoint, one of another log, or an older layout,
        or when the log no longer keeps the records after the checkpoint)."""
        with self._guard:
            kept = history()
            self.log_id = log_identity(entries) if kept.first is None else record_identity(kept.first)
        stored = await self._db[META].find_one({"_id": "checkpoint"})
        if stored is not None and stored.get("log") not in (None, self.log_id):
            # These documents project another decision log (a cluster started afresh on an old
            # store): its session ids collide with ours. Start the projection over.
            log.warning("read model holds another log's projection (%s); rebuilding", stored.get("log"))
            for collection in self.collections:
                await self._db[collection].delete_many({})
            stored = None
        self.checkpoint = int(stored["applied"]) if stored else 0
        if stored is not None and stored.get("format") != FORMAT:
            log.warning("read model in format %s; re-projecting in format %d", stored.get("format", 1), FORMAT)
            self.checkpoint = 0  # every session again: equal versions are replaced, in the new layout
        with self._guard:
            # Every session not marked below has its entries up to here in the store.
            self._taken = applied()
            if self.checkpoint >= self._taken:
                return
            behind = Pending(self.checkpoint, float("-inf"))  # due at once
            if self.checkpoint + 1 < kept.oldest:
                # The records after the checkpoint are no longer kept: project everything the
                # ledger still holds (retired sessions left it; their documents are stored).
                self._dirty_agents.update(ledger.agents)
                for kept_id in ledger.sessions:
                    self._pending.setdefault(kept_id, behind)
            for _, entry in entries(self.checkpoint):
                for record in _records(entry):
                    if isinstance(record, Registered):
                        self._dirty_agents.add(record.agent_id)
                    elif isinstance(record, Accepted):
                        session_id = ledger.by_key.get(owned_key(record.owner, record.idempotency_key))
                        if session_id is not None:
                            self._pending.setdefault(session_id, behind)
                    else:
                        self._pending.setdefault(record.session_id, behind)
        log.info("read model at entry %d, log at %d: re-projecting", self.checkpoint, self._taken)

    def take(self, ledger: Ledger, applied: int, now: float) -> Batch:
        """Snapshots of the sessions due for writing, at most ``SESSIONS_PER_TAKE``, and the
        changed agents (call under the guard; ``now`` is ``time.monotonic()``)."""
        pending = self._pending
        for session_id in self._dirty_sessions:
            # Changed only by entries after the last take: the store holds the rest (a session
            # already pending keeps its older mark).
            pending.setdefault(session_id, Pending(self._taken, now))
        self._dirty_sessions.clear()
        batch = Batch(applied=applied)
        waited = now - SETTLE_WAIT_SECONDS
        for session_id, mark in pending.items():
            record = ledger.sessions.get(session_id)
            if record is not None and not record.settled and mark.first > waited:
                continue  # still running: written once it settles, or once it has waited
            if len(batch.taken) == SESSIONS_PER_TAKE:
                batch.more = True
                break
            batch.taken[session_id] = mark
            if record is None:  # retired: its last version, if the ledger handed it over
                record = self._retired.get(session_id)  # dropped once written (``flush``)
            if record is not None:
                batch.sessions.append(snapshot(record))
        for session_id in batch.taken:
            del pending[session_id]
        for agent_id in self._dirty_agents:
            agent = ledger.agents.get(agent_id)
            if agent is not None:
                batch.agents.append(agent_document(agent))
                batch.agent_events.append(agent_event(agent))
        self._dirty_agents.clear()
        batch.checkpoint = min((mark.since for mark in pending.values()), default=applied)
        self._taken = applied
        return batch

    def put_back(self, batch: Batch) -> None:
        """A batch that failed to write: its sessions pending again (due at once, with their
        marks, so the checkpoint stays behind them), its agents dirty again."""
        with self._guard:
            for session_id, mark in batch.taken.items():
                self._pending.setdefault(session_id, mark)
            self._dirty_agents.update(d["_id"] for d in batch.agents)

    async def flush(self, ledger: Callable[[], Ledger], applied: Callable[[], int], now: float | None = None) -> Batch:
        """One pass of the writer: take what is due under the guard, write it outside."""
        with self._guard:
            batch = self.take(ledger(), applied(), time.monotonic() if now is None else now)
        if batch or batch.checkpoint > self.checkpoint:
            try:
                await self.write(batch)
            except BaseException:
                self.put_back(batch)
                raise
            with self._guard:
                for session_id in batch.taken:
                    self._retired.pop(session_id, None)
        return batch

    async def write(self, batch: Batch) -> None:
        """Project the batch's snapshots (outside the guard) and write them, then the checkpoint."""
        new: list[dict[str, Any]] = []
        known: list[dict[str, Any]] = []
        results: list[tuple[str, dict[str, Any]]] = []
        for record in batch.sessions:
            written = self._written_seq.get(record.session_id)
            (known if written is not None else new).append(session_document(record, self.routes))
            if written is None or any(e.kind == "finished" for e in record.events[written:]):
                results.extend((c, _parsed(d)) for c, d in result_documents(record, self.routes))
        try:
            await self._write_documents(new, known, batch, results)
        except InvalidDocument:
            # A document the store cannot hold (the boundary refuses what would make one): write
            # it as its identity and the reason, or its batch would be retried forever and the
            # checkpoint never move. Checked only on failure: encoding every document twice
            # would cost the leader on every write. Rewriting what went through is harmless
            # (inserts that collide are success, replaces are versioned).
            await self._write_documents(
                [_storable(d) for d in new],
                [_storable(d) for d in known],
                batch,
                [(c, _storable(d)) for c, d in results],
            )
        if batch.checkpoint > self.checkpoint:
            await self._db[META].update_one(
                {"_id": "checkpoint"},
                {"$max": {"applied": batch.checkpoint}, "$set": {"log": self.log_id, "format": FORMAT}},
                upsert=True,
            )
            self.written[META] += 1
            self.checkpoint = batch.checkpoint
        for record in batch.sessions:
            if record.settled:
                self._written_seq.pop(record.session_id, None)
            else:
                self._written_seq[record.session_id] = len(record.events)

    async def _write_documents(
        self,
        new: list[dict[str, Any]],
        known: list[dict[str, Any]],
        batch: Batch,
        results: list[tuple[str, dict[str, Any]]],
    ) -> None:
        await self._insert_or_replace(SESSIONS, new)
        await self._write_versioned(SESSIONS, known)
        await self._write_versioned(AGENTS, batch.agents)
        for collection in sorted({c for c, _ in results}):
            await self._insert_once(collection, [d for c, d in results if c == collection])
        await self._insert_once(EVENTS, batch.agent_events)

    async def _insert_or_replace(self, collection: str, documents: list[dict[str, Any]]) -> None:
        # Most documents are new to the store: an insert is its cheapest write. One that is
        # there already (a re-projection, or another leader wrote it) collides on _id and gets
        # the versioned replace instead, which keeps a newer version.
        stored = await self._insert(collection, documents)
        if stored:
            await self._write_versioned(collection, stored)

    async def _insert_once(self, collection: str, documents: list[dict[str, Any]]) -> None:
        # Documents that never change (the first result applied wins; a registration is one
        # incarnation's): one already stored is the same document, so a collision is success.
        await self._insert(collection, documents)

    async def _insert(self, collection: str, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert ``documents``; those whose ``_id`` the store holds already (any other error
        raises)."""
        if not documents:
            return []
        self.written[collection] += len(documents)
        try:
            await self._db[collection].insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise
            return [documents[e["index"]] for e in errors]
        return []

    async def _write_versioned(self, collection: str, documents: Iterable[dict[str, Any]]) -> None:
        # Replace only an older (or equal) version; against a newer one the upsert collides on
        # _id, which means "a newer projection is already there" and is not an error.
        ops = [ReplaceOne({"_id": d["_id"], "version": {"$lte": d["version"]}}, d, upsert=True) for d in documents]
        if ops:
            self.written[collection] += len(ops)
            await self._bulk(collection, ops)

    async def _bulk(self, collection: str, ops: Sequence[ReplaceOne[Any]]) -> None:
        try:
            await self._db[collection].bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            real = [e for e in exc.details.get("writeErrors", []) if e.get("code") != _DUPLICATE_KEY]
            if real:
                raise

    async def run(
        self,
        ledger: Callable[[], Ledger],
        applied: Callable[[], int],
        leading: Callable[[], bool],
        entries: Callable[[int], Iterable[tuple[int, Entry]]],
        history: Callable[[], History] = History,
    ) -> None:
        """The writer loop: flush every ``FLUSH_SECONDS`` while leading; back off on errors.
        It never ends on an error: the coordination goes on, and so must its projection."""
        delay = FLUSH_SECONDS
        was_leading = False
        while True:
            await asyncio.sleep(delay)
            if not leading():
                # A follower keeps nothing dirty: on taking over, the checkpoint tells whether
                # the store is behind this replica's log, and if so what is re-projected.
                self.forget()
                was_leading = False
                delay = FLUSH_SECONDS
                continue
            try:
                if not was_leading:
                    if applied() == 0:
                        continue  # nothing to project, and no first entry to name the log by yet
                    await self.ensure_indexes()
                    await self.catch_up(ledger(), applied, entries, history)
                    was_leading = True
                batch = await self.flush(ledger, applied)
                # More was due than one take carries: go on at once (the guard was released).
                delay = 0.0 if batch.more else FLUSH_SECONDS
                self.error = ""
            except PyMongoError as exc:
                self.error = f"{type(exc).__name__}: {exc}"[:200]
                log.warning("read model: %s; retrying", self.error)
                delay = min(max(delay * 2, 0.2), RETRY_SECONDS_MAX)
            except Exception as exc:  # a bug here must not silently end the projection
                self.error = f"{type(exc).__name__}: {exc}"[:200]
                log.exception("read model: unexpected error; retrying")
                delay = RETRY_SECONDS_MAX

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.close()

    # --- reads (tools, tests, ``mca status``) ------------------------------------------------

    async def stored_checkpoint(self) -> int:
        stored = await self._db[META].find_one({"_id": "checkpoint"})
        return int(stored["applied"]) if stored else 0

    async def sessions(self) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self._db[SESSIONS].find({})}

    async def events_of(self, session_id: str) -> list[dict[str, Any]]:
        """A session's events in ``seq`` order, or an agent's registrations (``agent:<id>``)."""
        document = await self._db[SESSIONS].find_one({"_id": session_id}, {"events": 1})
        if document is None or "events" not in document:  # an agent, or a session in format 1
            found = self._db[EVENTS].find({"session_id": session_id}).sort("seq", ASCENDING)
            return [d async for d in found]
        return [
            {"_id": f"{session_id}:{e['seq']}:{e['event']}", "session_id": session_id, **e}
            for e in document.get("events", [])  # stored in seq order by the projection
        ]

    async def agents(self) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self._db[AGENTS].find({})}

    async def results_of(self, session_id: str, collection: str) -> list[dict[str, Any]]:
        return [d async for d in self._db[collection].find({"session_id": session_id}).sort("_id", ASCENDING)]
