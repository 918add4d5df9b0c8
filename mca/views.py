"""Theory of operation: what a replica shows.

The ledger's records as the protobuf views TaskService answers with (sessions, agents, progress
events), and the core's status names as gRPC codes. Pure functions of what they are given: the
replica holds the log's guard while they read the ledger. ``ReplicaViews`` is that replica side:
it takes the guard for TaskService's views, and gathers the figures of ``GET /metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import grpc

from mca.livestate import Progress
from protocol._pb import coordination_pb2 as pb
from protocol.errors import UnknownSession
from protocol.ledger import Ledger, SessionRecord

if TYPE_CHECKING:
    from mca.exporter import Figures
    from mca.raftlog import RaftDecisionLog
    from mca.replica import Replica

#: An agent with no heartbeat for this long is shown as offline.
HEARTBEAT_STALE_SECONDS = 3.0

#: ``Replica.batching`` as counters of ``GET /metrics`` (``mca_<name>``): how well batching works.
BATCHING_COUNTERS = {
    "entries": "raft_entries_total",
    "records": "raft_records_total",
    "apply_wait_us": "raft_append_to_apply_microseconds_total",
    "calls_out": "agent_stream_writes_total",
    "messages_out": "agent_messages_sent_total",
    "answers": "agent_messages_received_total",
    "calls_in": "agent_deliver_calls_total",
    "messages_in": "agent_deliver_messages_total",
}

#: The core's status names (``CoordinationError.status``) as gRPC codes.
STATUS = {
    "OK": grpc.StatusCode.OK,
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
}


def session_view(record: SessionRecord) -> Any:
    """A session as TaskService shows it (the caller holds the log's guard)."""
    subtasks = []
    for a in record.assignments:
        outcome = record.results.get(a.subtask_id)
        subtasks.append(
            pb.SubtaskView(
                subtask_id=a.subtask_id,
                agent_id=a.agent_id,
                capability=a.capability,
                finished=outcome is not None,
                ok=bool(outcome and outcome.ok),
                output=[pb.Param(name=n, value=v) for n, v in (outcome.output if outcome else ())],
                error=outcome.error if outcome else "",
                document=outcome.document if outcome else "",
            )
        )
    return pb.SessionView(
        session_id=record.session_id,
        idempotency_key=record.idempotency_key,
        task_type=record.task.task_type,
        state=record.state.value,
        reason=record.reason,
        decision=record.decision.value if record.decision else "",
        parameters=[pb.Param(name=n, value=v) for n, v in record.parameters],
        subtasks=subtasks,
        last_seq=len(record.events),
    )


def agent_views(
    ledger: Ledger, heard: Mapping[str, float], stored: Mapping[str, Mapping[str, Any]], now: float
) -> list[Any]:
    """The registered agents as ListAgents shows them: offline unless heard within
    ``HEARTBEAT_STALE_SECONDS`` (here, ``heard``) or alive in the live state (``stored``); busy
    when their load reaches their capacity (the caller holds the log's guard)."""
    load = ledger.load()
    views = []
    for agent in ledger.agents.values():
        seen = heard.get(agent.agent_id)
        used = load.get(agent.agent_id, 0)
        fresh = seen is not None and now - seen <= HEARTBEAT_STALE_SECONDS
        if not fresh and agent.agent_id not in stored:
            status = "offline"
        elif used >= agent.capacity:
            status = "busy"
        else:
            status = "available"
        views.append(
            pb.AgentView(
                agent_id=agent.agent_id,
                capabilities=list(agent.capabilities),
                capacity=agent.capacity,
                load=used,
                status=status,
                incarnation=agent.incarnation,
            )
        )
    return views


def progress_event(report: Progress, seq: int, state: str) -> Any:
    return pb.SessionEvent(
        session_id=report.session_id,
        seq=seq,
        kind="progress",
        state=state,
        detail=report.note,
        subtask_id=report.subtask_id,
        progress=report.fraction,
    )


class ReplicaViews:
    """What ``replica`` shows, read under its log's guard (``log_of`` gives the log)."""

    def __init__(self, replica: Replica, log_of: Callable[[], RaftDecisionLog]) -> None:
        self._replica = replica
        self._log = log_of

    def figures(self) -> Figures:
        """What ``GET /metrics`` shows (``mca.exporter``; any thread)."""
        from mca.exporter import Figures  # prometheus_client: a replica's, not an agent host's (agent_checks)

        replica = self._replica
        log = self._log()
        buckets, total = replica.metrics.latency_histogram()
        counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
            name: dict(series) for name, series in replica.metrics.series().items()
        }
        for key, name in BATCHING_COUNTERS.items():
            counters[name] = {(): replica.batching[key]}
        with log.guard:
            ledger = log.ledger
            load = ledger.load()
            agents = {a.agent_id: (load.get(a.agent_id, 0), a.capacity) for a in ledger.agents.values()}
            return Figures(
                replica=replica.config.me.replica_id,
                leader=replica.is_leader,
                term=log.term,
                applied=log.applied_index,
                in_flight=ledger.in_flight,
                sessions=len(ledger.sessions),
                counters=counters,
                latency_buckets=buckets,
                latency_sum=total,
                read_model_lag=replica.read_model.lag(log.applied_index) if replica.read_model is not None else None,
                agents=agents,
            )

    def session(self, record: SessionRecord) -> Any:
        with self._log().guard:  # the tick thread may be applying an entry to this record
            return session_view(record)

    def unknown(self, session_id: str) -> str:
        """Why ``session_id`` is not in the ledger: never issued, or settled and retired."""
        return str(UnknownSession(session_id, self._log().ledger.retired(session_id)))
