"""Theory of operation: the durable read model, a projection of the decision log.

The Raft log is the source of truth; people and tools query history in a document store
(SecantusDB in the embedded default, MongoDB in production) through PyMongo's async client:

* ``coordination_sessions``: one document per session (task, plan, votes, decision, negotiated
  parameters, results, state); unique on ``_id`` (the session id) and on ``idempotency_key``;
* ``agent_capabilities``: one document per agent (capabilities, capacity, incarnation);
* ``events``: the domain events (``CoordinationStarted``, ``TaskCompleted``,
  ``MealPlanGenerated``, ``AgentRegistered``...), one or more per session event (``session_id``,
  ``seq``: the same sequence numbers ``Watch`` streams) and one per agent registration; unique on
  ``(session_id, seq, event)``;
* ``meal_plans``, ``workout_plans`` (and ``results`` for other capabilities): the documents
  results carry, one per subtask (``_id`` is the subtask id: the first result applied wins, so
  there is exactly one);
* ``meta``: the checkpoint, the number of log entries the projection has caught up with.

The projection is pure (``session_document`` and friends: a ledger record in, documents out) and
every write is idempotent, so writing a document twice, or projecting everything again, is
always safe: that is how the read model is rebuilt from the log. Documents carry a version (a
session's event count, an agent's incarnation) and a write only replaces an older version, so a
deposed leader that flushes late cannot overwrite what its successor wrote.

Only the leader writes. Applied entries mark sessions and agents dirty on pysyncobj's tick thread
(under the log's guard); the writer, on the event loop, takes a consistent snapshot of the dirty
records under the guard and writes it in one bulk request per collection, then advances the
checkpoint. When a replica becomes leader it compares the stored checkpoint with its own log and
re-projects everything if the read model is behind. A store that is down never slows the
coordination: the writer keeps the records dirty and retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReplaceOne
from pymongo.errors import BulkWriteError, PyMongoError

from protocol.entries import Accepted, Entry, Registered
from protocol.ledger import AgentRecord, Ledger, SessionRecord

SESSIONS = "coordination_sessions"
AGENTS = "agent_capabilities"
EVENTS = "events"
META = "meta"
#: How often the writer flushes dirty records (seconds): a batch per flush, not a write per entry.
FLUSH_SECONDS = 0.05
#: Longest wait between retries while the store is unreachable.
RETRY_SECONDS_MAX = 2.0
#: Most sessions projected per hold of the log's guard: the tick thread waits while we hold it,
#: and a long hold delays Raft heartbeats (a re-projection of thousands of sessions goes in
#: chunks, with the guard released between them).
SESSIONS_PER_TAKE = 200
#: Duplicate key: the filter lost to a newer version (or an identical event already exists).
_DUPLICATE_KEY = 11000

#: Domain events named after the session events that mark them.
DOMAIN_EVENTS = {
    "accepted": "TaskAccepted",
    "planned": "CoordinationStarted",
    "negotiated": "ParametersNegotiated",
    "decided": "DecisionReached",
    "finished": "SubtaskFinished",
    "settled": "SessionSettled",
}
#: A session's event that ends it in this state is also the domain event named here.
TERMINAL_EVENTS = {"completed": "TaskCompleted", "failed": "TaskFailed", "cancelled": "TaskCancelled"}
#: Where the document of a result goes, by the subtask's capability, and its domain event.
RESULT_COLLECTIONS = {
    "meal_plan": ("meal_plans", "MealPlanGenerated"),
    "workout_plan": ("workout_plans", "WorkoutPlanGenerated"),
}
OTHER_RESULTS = ("results", "ResultRecorded")
ALL_COLLECTIONS = (SESSIONS, AGENTS, EVENTS, META, *(c for c, _ in (*RESULT_COLLECTIONS.values(), OTHER_RESULTS)))

log = logging.getLogger(__name__)


# --- the projection (pure) --------------------------------------------------------------------


def session_document(record: SessionRecord) -> dict[str, Any]:
    """Everything the log knows about one session, as one document."""
    decision = record.decision.value if record.decision else None
    committed = decision == "commit"
    return {
        "_id": record.session_id,
        "version": len(record.events),
        "idempotency_key": record.idempotency_key,
        "task_type": record.task.task_type,
        "success_criteria": list(record.task.success_criteria),
        "subtasks": [
            {"capability": s.capability, "demand": s.demand, "inputs": dict(s.inputs)} for s in record.task.subtasks
        ],
        "state": record.state.value,
        "reason": record.reason,
        "assignments": [
            {"subtask_id": a.subtask_id, "agent_id": a.agent_id, "capability": a.capability, "demand": a.demand}
            for a in record.assignments
        ],
        # The log records the decision, not the votes: a commit relied on a yes from every
        # participant; an abort's reason says which vote (or timeout) ended it.
        "votes": [{"subtask_id": a.subtask_id, "agent_id": a.agent_id, "vote": "yes"} for a in record.assignments]
        if committed
        else [],
        "decision": decision,
        "parameters": dict(record.parameters),
        "results": {
            subtask_id: {
                "ok": o.ok,
                "output": dict(o.output),
                "error": o.error,
                "document": _result_collection(record, subtask_id)[0] if o.document else None,
            }
            for subtask_id, o in record.results.items()
        },
        "settled": record.settled,
    }


def _result_collection(record: SessionRecord, subtask_id: str) -> tuple[str, str]:
    capability = next((a.capability for a in record.assignments if a.subtask_id == subtask_id), "")
    return RESULT_COLLECTIONS.get(capability, OTHER_RESULTS)


def session_events(record: SessionRecord, after: int = 0) -> list[dict[str, Any]]:
    """The domain events of the session's events with a sequence number above ``after``."""
    documents = []
    for seq, event in enumerate(record.events[after:], start=after + 1):
        names = [DOMAIN_EVENTS.get(event.kind, event.kind)]
        if event.kind == "finished":
            subtask_id = event.detail.split(" ", 1)[0]
            outcome = record.results.get(subtask_id)
            if outcome is not None and outcome.ok and outcome.document:
                names.append(_result_collection(record, subtask_id)[1])
        if event.kind in ("finished", "decided") and event.state in TERMINAL_EVENTS:
            names.append(TERMINAL_EVENTS[event.state])
        for name in names:
            documents.append(
                {
                    "_id": f"{record.session_id}:{seq}:{name}",
                    "session_id": record.session_id,
                    "seq": seq,
                    "event": name,
                    "kind": event.kind,
                    "state": event.state,
                    "detail": event.detail,
                }
            )
    return documents


def result_documents(record: SessionRecord) -> list[tuple[str, dict[str, Any]]]:
    """(collection, document) for every result of the session that carries a document."""
    documents = []
    for a in record.assignments:
        outcome = record.results.get(a.subtask_id)
        if outcome is None or not outcome.document:
            continue
        collection, _ = _result_collection(record, a.subtask_id)
        document = {
            "_id": a.subtask_id,
            "version": 1,  # the first result applied wins: a result document never changes
            "session_id": record.session_id,
            "agent_id": a.agent_id,
            "capability": a.capability,
            "ok": outcome.ok,
            "document": outcome.document,  # JSON text; parsed by the writer, outside the guard
        }
        documents.append((collection, document))
    return documents


def _parsed(document: dict[str, Any]) -> dict[str, Any]:
    """A result document with its JSON parsed; one that cannot be (the boundary checks results,
    so this is defence in depth) is stored as the reason instead of stopping the writer."""
    try:
        return document | {"document": json.loads(document["document"])}
    except (ValueError, TypeError) as exc:
        return document | {"document": None, "error": f"not storable JSON: {exc}"[:200]}


def agent_document(agent: AgentRecord) -> dict[str, Any]:
    return {
        "_id": agent.agent_id,
        "version": agent.incarnation,
        "capabilities": list(agent.capabilities),
        "capacity": agent.capacity,
        "incarnation": agent.incarnation,
        "address": agent.address,
    }


def agent_event(agent: AgentRecord) -> dict[str, Any]:
    # Agent events live beside session events; seq = the incarnation keeps (session_id, seq) unique.
    return {
        "_id": f"agent:{agent.agent_id}:{agent.incarnation}",
        "session_id": f"agent:{agent.agent_id}",
        "seq": agent.incarnation,
        "event": "AgentRegistered",
        "agent_id": agent.agent_id,
        "capabilities": list(agent.capabilities),
        "capacity": agent.capacity,
    }


def log_identity(entries: Callable[[int], Iterable[tuple[int, Entry]]]) -> str:
    """A name for this decision log: a digest of its first entry (the same on every replica of
    one cluster, different for a cluster started afresh: its first registration carries a new
    incarnation)."""
    first = next(iter(entries(0)), None)
    return hashlib.sha256(repr(first[1]).encode()).hexdigest()[:16] if first else ""


@dataclass
class Batch:
    """Documents to write, taken from the ledger under its guard."""

    sessions: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    results: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    applied: int = 0
    #: Nothing was left dirty: the store will hold everything up to ``applied``.
    complete: bool = True
    #: Per session, the highest event sequence number in this batch.
    seqs: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sessions) + len(self.agents) + len(self.events) + len(self.results)


# --- the writer -------------------------------------------------------------------------------


class ReadModel:
    """Projects one replica's ledger into the document store at ``url`` while it leads."""

    def __init__(self, url: str, guard: threading.RLock) -> None:
        self.url = url
        self._guard = guard
        # Short timeouts: a store that is away must not hold up a flush for long (we retry).
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000, retryWrites=False, tz_aware=True
        )
        self._db = self._client.get_default_database(default="mca")  # the URL's path names it
        self._dirty_sessions: set[str] = set()
        self._dirty_agents: set[str] = set()
        self._written_seq: dict[str, int] = {}
        self.checkpoint = 0  # entries the store has caught up with, as far as this writer knows
        self.log_id = ""  # which decision log the store projects (see log_identity)
        self.error = ""  # the last store error, for status displays

    # Called on pysyncobj's tick thread, under the guard, once per applied entry.
    def touch(self, session_id: str = "", agent_id: str = "") -> None:
        if session_id:
            self._dirty_sessions.add(session_id)
        if agent_id:
            self._dirty_agents.add(agent_id)

    def forget(self) -> None:
        """Not leading: drop what is dirty (the next leader projects from its own log)."""
        with self._guard:
            self._dirty_sessions.clear()
            self._dirty_agents.clear()
            self._written_seq.clear()

    async def ensure_indexes(self) -> None:
        await self._db[SESSIONS].create_index([("idempotency_key", ASCENDING)], unique=True)
        await self._db[SESSIONS].create_index([("state", ASCENDING)])
        await self._db[EVENTS].create_index(
            [("session_id", ASCENDING), ("seq", ASCENDING), ("event", ASCENDING)], unique=True
        )
        for collection, _ in (*RESULT_COLLECTIONS.values(), OTHER_RESULTS):
            await self._db[collection].create_index([("session_id", ASCENDING)])

    async def catch_up(
        self, ledger: Ledger, applied: Callable[[], int], entries: Callable[[int], Iterable[tuple[int, Entry]]]
    ) -> None:
        """As a new leader: re-project what the entries after the stored checkpoint touched
        (everything, when the store has no checkpoint, or one of another log)."""
        with self._guard:
            self.log_id = log_identity(entries)
        stored = await self._db[META].find_one({"_id": "checkpoint"})
        if stored is not None and stored.get("log") not in (None, self.log_id):
            # These documents project another decision log (a cluster started afresh on an old
            # store): its session ids collide with ours. Start the projection over.
            log.warning("read model holds another log's projection (%s); rebuilding", stored.get("log"))
            for collection in ALL_COLLECTIONS:
                await self._db[collection].delete_many({})
            stored = None
        self.checkpoint = int(stored["applied"]) if stored else 0
        with self._guard:
            if self.checkpoint >= applied():
                return
            for _, entry in entries(self.checkpoint):
                if isinstance(entry, Registered):
                    self._dirty_agents.add(entry.agent_id)
                elif isinstance(entry, Accepted):
                    session_id = ledger.by_key.get(entry.idempotency_key)
                    if session_id is not None:
                        self._dirty_sessions.add(session_id)
                else:
                    self._dirty_sessions.add(entry.session_id)
            self._written_seq.clear()  # their events too: written again, idempotently
        log.info("read model at entry %d, log at %d: re-projecting", self.checkpoint, applied())

    def take(self, ledger: Ledger, applied: int) -> Batch:
        """The documents for what is dirty, at most ``SESSIONS_PER_TAKE`` sessions (call under
        the guard)."""
        batch = Batch(applied=applied)
        chunk = [self._dirty_sessions.pop() for _ in range(min(SESSIONS_PER_TAKE, len(self._dirty_sessions)))]
        for session_id in chunk:
            record = ledger.sessions.get(session_id)
            if record is None:
                continue
            batch.sessions.append(session_document(record))
            written = self._written_seq.get(session_id, 0)
            batch.events.extend(session_events(record, written))
            if any(e.kind == "finished" for e in record.events[written:]):
                batch.results.extend(result_documents(record))
            batch.seqs[session_id] = len(record.events)
        for agent_id in self._dirty_agents:
            agent = ledger.agents.get(agent_id)
            if agent is not None:
                batch.agents.append(agent_document(agent))
                batch.events.append(agent_event(agent))
        self._dirty_agents.clear()
        batch.complete = not self._dirty_sessions
        return batch

    def put_back(self, batch: Batch) -> None:
        """A batch that failed to write: mark its records dirty again."""
        with self._guard:
            self._dirty_sessions.update(d["_id"] for d in batch.sessions)
            self._dirty_agents.update(d["_id"] for d in batch.agents)

    async def write(self, batch: Batch) -> None:
        await self._write_versioned(SESSIONS, batch.sessions)
        await self._write_versioned(AGENTS, batch.agents)
        for collection in sorted({c for c, _ in batch.results}):
            await self._write_versioned(collection, [_parsed(d) for c, d in batch.results if c == collection])
        if batch.events:
            ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in batch.events]
            await self._bulk(EVENTS, ops)
        if batch.complete:  # a partial batch (a chunk of a re-projection) proves nothing yet
            await self._db[META].update_one(
                {"_id": "checkpoint"}, {"$max": {"applied": batch.applied}, "$set": {"log": self.log_id}}, upsert=True
            )
        with self._guard:
            for session_id, seq in batch.seqs.items():
                self._written_seq[session_id] = max(seq, self._written_seq.get(session_id, 0))
        if batch.complete:
            self.checkpoint = max(self.checkpoint, batch.applied)

    async def _write_versioned(self, collection: str, documents: Iterable[dict[str, Any]]) -> None:
        # Replace only an older (or equal) version; against a newer one the upsert collides on
        # _id, which means "a newer projection is already there" and is not an error.
        ops = [ReplaceOne({"_id": d["_id"], "version": {"$lte": d["version"]}}, d, upsert=True) for d in documents]
        if ops:
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
    ) -> None:
        """The writer loop: flush every ``FLUSH_SECONDS`` while leading; back off on errors.
        It never ends on an error: the coordination goes on, and so must its projection."""
        delay = FLUSH_SECONDS
        was_leading = False
        while True:
            await asyncio.sleep(delay)
            if not leading():
                # A follower keeps nothing dirty: on taking over, the checkpoint tells whether
                # the store is behind this replica's log, and if so everything is re-projected.
                self.forget()
                was_leading = False
                continue
            try:
                if not was_leading:
                    if applied() == 0:
                        continue  # nothing to project, and no first entry to name the log by yet
                    await self.ensure_indexes()
                    await self.catch_up(ledger(), applied, entries)
                    was_leading = True
                with self._guard:
                    batch = self.take(ledger(), applied())
                if not batch and batch.applied <= self.checkpoint:
                    continue
                try:
                    await self.write(batch)
                except BaseException:
                    self.put_back(batch)
                    raise
                # More of a re-projection to do: go on at once (the guard was released between).
                delay = 0.0 if not batch.complete else FLUSH_SECONDS
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
        return [d async for d in self._db[EVENTS].find({"session_id": session_id}).sort("seq", ASCENDING)]

    async def agents(self) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self._db[AGENTS].find({})}

    async def results_of(self, session_id: str, collection: str) -> list[dict[str, Any]]:
        return [d async for d in self._db[collection].find({"session_id": session_id}).sort("_id", ASCENDING)]
