"""Theory of operation: the read model's projection, pure: ledger records in, documents out.

``mca.readmodel`` writes what these functions make (and documents the collections); they are
apart so that what only reads or checks the projection (the deployment's ``projection()``, the
chaos test, the unit tests) needs neither the writer nor a database driver. A session's
document carries its domain events in ``seq`` order; a result document goes to the collection
its capability's route names (``Routes``, from the cluster's task types through
``mca.catalog.result_routes``), else to ``results``. Every function is deterministic: the same
record gives the same document on any replica, which is what makes rewriting safe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from mca.catalog import OTHER_RESULTS
from protocol.entries import Entry
from protocol.ledger import AgentRecord, SessionEventRecord, SessionRecord

SESSIONS = "coordination_sessions"
AGENTS = "agent_capabilities"
EVENTS = "events"
META = "meta"

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
#: Where the document of a result goes, by the subtask's capability, and its domain event:
#: capability -> (collection, event), from the cluster's task types (``result_routes``). A
#: capability not in it has its documents in ``OTHER_RESULTS`` (``results``, ``ResultRecorded``).
Routes = Mapping[str, tuple[str, str]]
#: The read model's own collections (besides those of results).
OWN_COLLECTIONS = (SESSIONS, AGENTS, EVENTS, META)


def session_document(record: SessionRecord, routes: Routes) -> dict[str, Any]:
    """Everything the log knows about one session, its events included, as one document."""
    decision = record.decision.value if record.decision else None
    committed = decision == "commit"
    return {
        "_id": record.session_id,
        "version": len(record.events),
        "idempotency_key": record.idempotency_key,
        "owner": record.owner,
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
                "document": _result_route(record, subtask_id, routes)[0] if o.document else None,
            }
            for subtask_id, o in record.results.items()
        },
        "settled": record.settled,
        # Embedded, not one document each: the store charges per document written, and the
        # events only ever change with the session (the same version covers both). ``_id`` and
        # ``session_id`` would repeat the session's own; ``events_of`` puts them back.
        "events": [
            {"seq": seq, "event": name, "kind": e.kind, "state": e.state, "detail": e.detail}
            for seq, name, e in _named_events(record, routes)
        ],
    }


def _result_route(record: SessionRecord, subtask_id: str, routes: Routes) -> tuple[str, str]:
    capability = next((a.capability for a in record.assignments if a.subtask_id == subtask_id), "")
    return routes.get(capability, OTHER_RESULTS)


def session_events(record: SessionRecord, routes: Routes, after: int = 0) -> list[dict[str, Any]]:
    """The domain events of the session's events with a sequence number above ``after``, in
    sequence order (as ``events_of`` returns them)."""
    sid = record.session_id
    return [
        {
            "_id": f"{sid}:{seq}:{name}",
            "session_id": sid,
            "seq": seq,
            "event": name,
            "kind": e.kind,
            "state": e.state,
            "detail": e.detail,
        }
        for seq, name, e in _named_events(record, routes, after)
    ]


def _named_events(
    record: SessionRecord, routes: Routes, after: int = 0
) -> Iterator[tuple[int, str, SessionEventRecord]]:
    """(sequence number, domain event name, ledger event) for the session's events after
    ``after``: one ledger event may name several domain events (a result, the session's end)."""
    for seq, event in enumerate(record.events[after:], start=after + 1):
        yield seq, DOMAIN_EVENTS.get(event.kind, event.kind), event
        if event.kind == "finished":
            subtask_id = event.detail.split(" ", 1)[0]
            outcome = record.results.get(subtask_id)
            if outcome is not None and outcome.ok and outcome.document:
                yield seq, _result_route(record, subtask_id, routes)[1], event
        if event.kind in ("finished", "decided") and event.state in TERMINAL_EVENTS:
            yield seq, TERMINAL_EVENTS[event.state], event


def result_documents(record: SessionRecord, routes: Routes) -> list[tuple[str, dict[str, Any]]]:
    """(collection, document) for every result of the session that carries a document."""
    documents = []
    for a in record.assignments:
        outcome = record.results.get(a.subtask_id)
        if outcome is None or not outcome.document:
            continue
        collection, _ = _result_route(record, a.subtask_id, routes)
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
    # Agent events stay in their own collection; seq = the incarnation keeps (session_id, seq) unique.
    return {
        "_id": f"agent:{agent.agent_id}:{agent.incarnation}",
        "session_id": f"agent:{agent.agent_id}",
        "seq": agent.incarnation,
        "event": "AgentRegistered",
        "agent_id": agent.agent_id,
        "capabilities": list(agent.capabilities),
        "capacity": agent.capacity,
    }


def snapshot(record: SessionRecord) -> SessionRecord:
    """A copy of ``record`` that later applies cannot change, cheap enough to take under the
    guard (a few microseconds, against tens for the projection). The ledger grows a record's
    ``events`` and ``results`` in place, so those are copied; every other field holds an
    immutable value (frozen dataclasses, tuples, enums, strings) that applying replaces."""
    copy = object.__new__(SessionRecord)
    copy.__dict__.update(record.__dict__)
    copy.events = record.events[:]
    copy.results = record.results.copy()
    return copy


def log_identity(entries: Callable[[int], Iterable[tuple[int, Entry]]]) -> str:
    """A name for this decision log: a digest of its first entry (the same on every replica of
    one cluster, different for a cluster started afresh: its first registration carries a new
    incarnation)."""
    first = next(iter(entries(0)), None)
    return record_identity(first[1] if first else None)


def record_identity(first: Entry | None) -> str:
    """``log_identity`` from the first record itself (a log that keeps only a window of its
    records remembers its first one for this)."""
    return hashlib.sha256(repr(first).encode()).hexdigest()[:16] if first is not None else ""
