"""Theory of operation: the MCA leader's protocol host.

One ``Leader`` exists per term on the replica that Raft elected. It is the single entry point
for everything the leader hears: client requests, agent messages, applied entries and timers.
It validates at the boundary (bad input is answered with a typed status and appends nothing),
keeps one ``Coordinator`` per unsettled session, routes each event to it, and answers the
clients once the entry that settles their request is applied.

Followers run no ``Leader``; they apply entries to their ledger and nothing else. A deposed
leader that has not noticed yet may still act, but its appends are never applied and its
messages carry an old term that agents ignore once they have heard the new one.
"""

from __future__ import annotations

import re

from protocol.coordinator import Coordinator
from protocol.defects import NO_DEFECTS, NO_IDEMPOTENCY, Defects
from protocol.effects import Append, Effect, Send
from protocol.entries import Accepted, Decided, Finished, Planned, Registered, Settled
from protocol.errors import (
    CoordinationError,
    InvalidMessage,
    InvariantViolation,
    Overloaded,
    SessionAlreadyTerminal,
    StaleRegistration,
    UnknownSession,
)
from protocol.events import (
    AgentRestarted,
    Applied,
    BecameLeader,
    CancelRequested,
    CoordinatorEvent,
    LeaderEvent,
    TimerFired,
)
from protocol.ledger import ApplyResult, Ledger, owned_key
from protocol.messages import (
    Ack,
    Cancel,
    CancelReply,
    QueryDecision,
    Register,
    RegisterReply,
    Release,
    Result,
    Submit,
    SubmitReply,
    Vote,
)
from protocol.model import Decision, Limits, TaskSpec, Timing, name_problem
from protocol.planner import AdmissionQueue, check_capable
from protocol.progress import PeerProgress
from protocol.recovery import recover
from protocol.session_table import SessionState
from protocol.timers import ExecutionDeadline, PrepareDeadline, Retry

#: The default bounds (``Limits``), shared: the dataclass is frozen.
LIMITS = Limits()


class Leader:
    def __init__(
        self, term: int, ledger: Ledger, timing: Timing, defects: Defects = NO_DEFECTS, limits: Limits = LIMITS
    ) -> None:
        self.term = term
        self._limits = limits
        self.ledger = ledger
        self.coordinators: dict[str, Coordinator] = {}
        self._timing = timing
        self._defects = defects
        self._queue = AdmissionQueue()
        self._progress = PeerProgress()
        self._waiting_submits: dict[str, list[tuple[str, TaskSpec]]] = {}
        self._waiting_cancels: dict[str, list[str]] = {}

    def step(self, event: LeaderEvent, now: float) -> list[Effect]:
        if isinstance(event, BecameLeader):
            self._queue = AdmissionQueue()
            self.coordinators, effects = recover(
                self.ledger, self.term, self._timing, now, self._queue, self._progress, self._defects
            )
            return self._hasten(effects)
        if isinstance(event, Submit):
            return self._submit(event)
        if isinstance(event, Cancel):
            return self._cancel(event, now)
        if isinstance(event, Register):
            try:
                check_register(event, self.ledger)
            except CoordinationError:
                return []  # never into the log; the gRPC edge answers with the error's status
            entry = Registered(event.agent_id, event.capabilities, event.capacity, event.incarnation, event.address)
            return [Append(entry)]
        if isinstance(event, (Vote, Ack, QueryDecision, Result)):
            self._progress.heard(event.agent_id, now)
            return self._hasten(self._route(event.session_id, event, now))
        if isinstance(event, TimerFired):
            if not isinstance(event.key, Retry | PrepareDeadline | ExecutionDeadline):
                raise InvariantViolation(f"the leader got a timer not of a coordinator: {event.key!r}")
            return self._hasten(self._route(event.key.session_id, event, now))
        if isinstance(event, Applied):
            return self._hasten(self._applied(event, now))
        raise InvariantViolation(f"leader got an unknown event {event!r}")

    def _hasten(self, effects: list[Effect]) -> list[Effect]:
        """A lazy release or ``Settled`` frees an agent's room; while sessions wait in the
        admission queue for room, nothing that frees it waits for company."""
        return [_at_once(e) for e in effects] if self._queue else effects

    # --- client requests ----------------------------------------------------------------------

    def _submit(self, request: Submit) -> list[Effect]:
        key = request.idempotency_key
        try:
            request.task.validate()
            if problem := name_problem(key):
                raise CoordinationError(f"idempotency_key: {problem}")
            owned = owned_key(request.owner, key)
            existing = self.ledger.by_key.get(owned)
            if existing is not None and NO_IDEMPOTENCY not in self._defects:
                record = self.ledger.sessions[existing]
                if record.task != request.task:
                    raise _key_reused(key, existing)
                return [Send(request.client, SubmitReply(key, existing))]
            check_capable(request.task, self.ledger)
            in_flight = self.ledger.in_flight + len(self._waiting_submits)
            # A retry of a key already on its way to the log adds no session: never refused.
            if owned not in self._waiting_submits and in_flight >= self._limits.sessions_in_flight_max:
                raise Overloaded(in_flight, self._limits.retry_after)
        except CoordinationError as exc:
            return [Send(request.client, SubmitReply(key, error=str(exc), status=exc.status))]
        # A retry of a key already on its way plans nothing: the first one's plan is the plan.
        agents = () if owned in self._waiting_submits else self._queue.at_submit(owned, request.task, self.ledger)
        self._waiting_submits.setdefault(owned, []).append((request.client, request.task))
        return [Append(Accepted(key, request.task, request.owner, agents))]

    def _cancel(self, request: Cancel, now: float) -> list[Effect]:
        record = self.ledger.session(request.session_id)
        try:
            if record is None:
                raise UnknownSession(request.session_id, self.ledger.retired(request.session_id))
            if record.state is SessionState.CANCELLED:  # a retried cancel: same answer again
                return [Send(request.client, CancelReply(record.session_id, state=record.state.value))]
            if record.terminal:
                raise SessionAlreadyTerminal(record.session_id, record.state.value)
        except CoordinationError as exc:
            return [Send(request.client, CancelReply(request.session_id, error=str(exc), status=exc.status))]
        self._waiting_cancels.setdefault(record.session_id, []).append(request.client)
        coordinator = self.coordinators.get(record.session_id)
        if coordinator is None:  # not planned yet: abort before any agent is asked
            return [Append(Decided(record.session_id, Decision.ABORT, "cancelled by request", cancelled=True))]
        return coordinator.step(CancelRequested(), now, self.ledger)

    # --- applied entries ----------------------------------------------------------------------

    def _applied(self, event: Applied, now: float) -> list[Effect]:
        entry = event.entry
        if isinstance(entry, Accepted):
            return self._accepted(entry, event.result, now)
        if isinstance(entry, Registered):
            return self._registered(entry, event.result, now)
        if isinstance(entry, Planned):
            return self._planned(entry, event.result, now)
        return self._session_entry(event, now)

    def _accepted(self, entry: Accepted, result: ApplyResult, now: float) -> list[Effect]:
        key = entry.idempotency_key
        owned = owned_key(entry.owner, key)
        self._queue.accepted_applied(owned)
        record = self.ledger.sessions[result.session_id]
        effects: list[Effect] = []
        for client, task in self._waiting_submits.pop(owned, []):
            if task == record.task:
                effects.append(Send(client, SubmitReply(key, result.session_id)))
            else:  # two different tasks raced under one key: only the first one is the session
                error = _key_reused(key, result.session_id)
                effects.append(Send(client, SubmitReply(key, error=str(error), status=error.status)))
        if result.created and record.state is not SessionState.INITIALIZED:  # planned at submit
            effects += self._begin(result.session_id, now)
        elif result.created:
            self._queue.add(record)
            effects += self._queue.drain(self.ledger)
        return effects

    def _registered(self, entry: Registered, result: ApplyResult, now: float) -> list[Effect]:
        if not result.applied:
            return []
        reply = RegisterReply(self.term, entry.agent_id, entry.incarnation, result.committed, result.finished)
        effects: list[Effect] = [Send(entry.agent_id, reply), *self._queue.drain(self.ledger)]
        if result.restarted:
            self._progress.forget(entry.agent_id)
            for sid, coordinator in list(self.coordinators.items()):
                owner = self.ledger.session(sid)
                if owner is not None and any(a.agent_id == entry.agent_id for a in owner.assignments):
                    effects += coordinator.step(AgentRestarted(entry.agent_id), now, self.ledger)
        return effects

    def _planned(self, entry: Planned, result: ApplyResult, now: float) -> list[Effect]:
        self._queue.planned_applied(entry.session_id)
        if not result.applied:
            record = self.ledger.session(entry.session_id)
            if record is not None and record.state is SessionState.INITIALIZED:  # the plan went stale: plan again
                self._queue.add(record)
                return self._queue.drain(self.ledger)
            return []
        return self._begin(entry.session_id, now)

    def _begin(self, session_id: str, now: float) -> list[Effect]:
        """A session's plan applied: its coordinator takes it from here."""
        coordinator = Coordinator(session_id, self.term, self._timing, self._defects, self._progress)
        self.coordinators[session_id] = coordinator
        return coordinator.begin(now, self.ledger)

    def _session_entry(self, event: Applied, now: float) -> list[Effect]:
        entry, result = event.entry, event.result
        session_id = getattr(entry, "session_id", "")
        effects: list[Effect] = []
        coordinator = self.coordinators.get(session_id)
        if coordinator is None and isinstance(entry, Decided) and result.applied:
            # Decided before any plan (no capable agent, or cancelled early): settle it here.
            self._queue.discard(session_id)
            coordinator = Coordinator(session_id, self.term, self._timing, self._defects, self._progress)
            self.coordinators[session_id] = coordinator
            effects += coordinator.begin(now, self.ledger)
        elif coordinator is not None:
            effects += coordinator.step(event, now, self.ledger)
        if isinstance(entry, Settled) and result.applied:
            self.coordinators.pop(session_id, None)
            effects += self._queue.drain(self.ledger)  # its capacity is free again
        if isinstance(entry, (Decided, Finished, Settled)):
            effects += self._answer_cancels(session_id)
        return effects

    def _answer_cancels(self, session_id: str) -> list[Effect]:
        record = self.ledger.session(session_id)
        if record is None or not record.terminal or session_id not in self._waiting_cancels:
            return []
        clients = self._waiting_cancels.pop(session_id)
        if record.state is SessionState.CANCELLED:
            reply = CancelReply(session_id, state=record.state.value)
        else:
            exc = SessionAlreadyTerminal(session_id, record.state.value)
            reply = CancelReply(session_id, state=record.state.value, error=str(exc), status=exc.status)
        return [Send(client, reply) for client in clients]

    def _route(self, session_id: str, event: CoordinatorEvent, now: float) -> list[Effect]:
        coordinator = self.coordinators.get(session_id)
        if coordinator is None:
            return []  # settled, or never ours: every sender retries or pulls if it still needs us
        return coordinator.step(event, now, self.ledger)


def _at_once(effect: Effect) -> Effect:
    """``effect`` without its permission to wait for company, if it frees an agent's room (a
    lazy result frees none: its session ends with the next one)."""
    if isinstance(effect, Append) and effect.lazy and isinstance(effect.entry, Settled):
        return Append(effect.entry)
    if isinstance(effect, Send) and effect.lazy and isinstance(effect.message, Release):
        return Send(effect.to, effect.message)
    return effect


def _key_reused(key: str, session_id: str) -> CoordinationError:
    return CoordinationError(
        f"idempotency_key: {key[:40]!r} was already used for a different task (session {session_id}); "
        "use a new key for a new task"
    )


#: Bounds on a registration: it is replicated to every replica and kept for the agent's life.
CAPABILITIES_MAX = 64
CAPACITY_MAX = 100_000
ADDRESS_LENGTH_MAX = 256


_ADDRESS = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?):([0-9]{1,5})")

#: An incarnation is the agent's start time in nanoseconds: positive, within 64 bits.
INCARNATION_MAX = 2**63 - 1


def check_register(message: Register, ledger: Ledger | None = None) -> None:
    """Reject a malformed registration with the field to fix (``InvalidMessage``) and, given
    the ledger, one of an earlier life than the registered one (``StaleRegistration``): neither
    reaches the log. The same incarnation again is a retry (its reply may have been lost)."""
    _name("agent_id", message.agent_id)
    incarnation = message.incarnation
    if isinstance(incarnation, bool) or not isinstance(incarnation, int) or not 1 <= incarnation <= INCARNATION_MAX:
        raise InvalidMessage("incarnation", "must be a positive whole number (the agent's start, in nanoseconds)")
    if not message.capabilities or len(message.capabilities) > CAPABILITIES_MAX:
        raise InvalidMessage("capabilities", f"declare 1 to {CAPABILITIES_MAX} capabilities")
    for capability in message.capabilities:
        _name("capabilities", capability)
    if isinstance(message.capacity, bool) or not 1 <= message.capacity <= CAPACITY_MAX:
        raise InvalidMessage("capacity", f"must be a whole number from 1 to {CAPACITY_MAX}")
    address = message.address
    # host:port and nothing else: the leader dials it with its own certificate, so no gRPC target
    # scheme (unix:, dns:///...) that would send it to a socket or host the agent picks.
    matched = _ADDRESS.fullmatch(address) if len(address) <= ADDRESS_LENGTH_MAX else None
    if address and (matched is None or not 1 <= int(matched.group(1)) <= 65535):
        raise InvalidMessage("address", "must be host:port (an IP address or host name, and a port)")
    current = ledger.incarnation(message.agent_id) if ledger is not None else 0
    if incarnation < current:
        raise StaleRegistration(message.agent_id, incarnation, current)


def _name(field: str, value: str) -> None:
    if problem := name_problem(value):
        raise InvalidMessage(field, problem)
