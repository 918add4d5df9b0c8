"""Theory of operation: the ledger, the state machine behind the decision log.

Raft (pysyncobj in the runtime, a model in the simulator) orders the entries; every replica
applies them to its own ``Ledger`` and so holds the same coordination state: the sessions, the
idempotency keys, the agents' incarnations. Whatever the leader does, it does after reading
this state; whatever it decides, it appends here first.

Applying is deterministic (no clock, no randomness, no I/O) and idempotent: an entry that
repeats or contradicts an earlier one is recorded as ``applied=False`` and the result says what
the state already holds. That is how the log gives

* exactly-once submit: a repeated idempotency key returns the session it created first;
* at most one decision per session: the first ``Decided`` applied wins, later ones report it;
* exactly-once results: the first ``Finished`` for a subtask wins.

Retention: the ledger is replicated state, held in memory on every replica and written into
every Raft snapshot, so it cannot keep every session forever. It keeps every unsettled session
and the latest ``SETTLED_SESSIONS_KEPT`` settled ones; a session settled before those is
*retired*: it leaves the ledger together with its idempotency key (its documents stay in the
read model). The idempotency window is therefore the retention window: a key reused after its
session was retired starts a new task, as Temporal's workflow-id reuse policy allows after
retention. Retirement is counted in applied records, not in time, so every replica retires the
same sessions at the same point of the log. For the same reason the window is a constant of
the protocol, not a replica's configuration: two replicas configured differently (a rolling
change) would retire different sessions and then issue different ids for the same record. (A
configurable window would have to travel in the log.)

A ``Decided(commit)`` is also checked against the agents' current incarnations: if an agent
restarted after voting yes, its reservation is gone, so the commit becomes an abort here, on
every replica alike, instead of binding an agent that no longer holds the capacity.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from protocol.defects import NO_DEFECTS, NO_IDEMPOTENCY, Defects
from protocol.entries import (
    Accepted,
    Decided,
    Entry,
    Finished,
    Negotiated,
    Planned,
    Registered,
    Settled,
)
from protocol.errors import IllegalTransition, InvalidTask, InvariantViolation
from protocol.frozen import fast_init
from protocol.model import SUCCESS_CRITERIA, Assignment, Decision, Outcome, Params, TaskSpec, assignments_of
from protocol.session_table import (
    SESSION_TRANSITIONS,
    TERMINAL_STATES,
    SessionEvent,
    SessionState,
)


@dataclass
class AgentRecord:
    agent_id: str
    capabilities: tuple[str, ...]
    capacity: int
    incarnation: int
    address: str = ""


@fast_init
@dataclass(frozen=True)
class SessionEventRecord:
    """One step of a session's history; its position (from 1) is its sequence number, the same
    on every replica because it is derived from the log."""

    kind: str
    state: str
    detail: str = ""


@dataclass
class SessionRecord:
    """One coordination session as the decision log knows it."""

    session_id: str
    idempotency_key: str
    task: TaskSpec
    #: Who submitted it (a principal, ``role:name``); empty in the simulator.
    owner: str = ""
    state: SessionState = SessionState.INITIALIZED
    assignments: tuple[Assignment, ...] = ()
    parameters: Params = ()
    decision: Decision | None = None
    reason: str = ""
    results: dict[str, Outcome] = field(default_factory=dict)
    settled: bool = False
    events: list[SessionEventRecord] = field(default_factory=list)

    def record(self, kind: str, detail: str = "") -> None:
        self.events.append(SessionEventRecord(kind, self.state.value, detail))

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def fire(self, event: SessionEvent) -> None:
        """Take one transition of the session table; anything else is a bug."""
        moves = SESSION_TRANSITIONS[self.state]
        if event not in moves:
            raise IllegalTransition("session", self.state, event)
        self.state = moves[event]

    def assignment(self, subtask_id: str) -> Assignment:
        for a in self.assignments:
            if a.subtask_id == subtask_id:
                return a
        raise InvariantViolation(f"session {self.session_id} has no subtask {subtask_id}")


class ApplyResult(NamedTuple):
    """What applying one entry did. ``applied`` is False for a repeat or a contradiction.

    A named tuple, not a frozen dataclass: one is built per applied record on every replica,
    and a named tuple of nine fields is the cheapest to build (1.4 us, against 1.7 through
    ``protocol.frozen.fast_init`` and 5.6 for a plain frozen dataclass). It is as immutable,
    and never stored."""

    applied: bool
    session_id: str = ""
    created: bool = False
    decision: Decision | None = None
    state: SessionState | None = None
    #: Registered: did the incarnation change (a restart), and what the agent still owns.
    restarted: bool = False
    committed: tuple[tuple[str, Assignment, Params], ...] = ()
    finished: tuple[tuple[str, Assignment], ...] = ()
    #: Settled: the sessions this record retired (they leave the ledger; a projection that has
    #: not written them yet keeps these last versions).
    retired: tuple[SessionRecord, ...] = ()


def owned_key(owner: str, idempotency_key: str) -> str:
    """The key of ``by_key``: idempotency keys are scoped by owner. Keys and principals are
    printable, so the unit separator cannot be part of either; without an owner (the
    simulator, snapshots from before ownership) it is the key itself."""
    return f"{owner}\x1f{idempotency_key}" if owner else idempotency_key


#: Settled sessions the ledger keeps (older ones retire with their idempotency keys: this is also
#: the dedup window). Every Raft snapshot pickles them: at 5,000, about 2 MB and half a second of
#: one core per compaction; at 100 sessions/s, 50 s of history.
SETTLED_SESSIONS_KEPT = 5_000


class Ledger:
    """The coordination state every replica derives from the applied entries."""

    def __init__(self, defects: Defects = NO_DEFECTS, settled_kept: int | None = None) -> None:
        """``settled_kept`` other than ``SETTLED_SESSIONS_KEPT`` is for the simulator and tests,
        where every replica shares the value."""
        self.sessions: dict[str, SessionRecord] = {}
        self.by_key: dict[str, str] = {}
        self.agents: dict[str, AgentRecord] = {}
        # Sessions not yet settled, in order of acceptance: what recovery and planning scan.
        self._active: dict[str, SessionRecord] = {}
        # Capacity owed per agent by unsettled sessions, kept as records apply (a plan adds,
        # a settle subtracts) so admission reads it in O(agents), not O(sessions in flight).
        self._load: dict[str, int] = {}
        self._defects = defects
        self._kept = settled_kept or SETTLED_SESSIONS_KEPT
        self._kept_settled: deque[str] = deque()  # settled sessions still kept, oldest first
        self._issued = 0  # session ids issued so far: s1 .. s{_issued}
        self.retired_total = 0

    def __setstate__(self, state: dict[str, object]) -> None:
        """A Raft snapshot taken before retention existed lacks its fields: rebuild them from
        what it holds (the same on every replica that restores it)."""
        self.__dict__.update(state)
        if "_issued" in state:
            return
        self._issued = max((int(sid[1:]) for sid in self.sessions if sid[1:].isdigit()), default=0)
        self._load = {}
        for record in self._active.values():
            self._owe(record.assignments, +1)
        settled = sorted((r for r in self.sessions.values() if r.settled), key=lambda r: int(r.session_id[1:]))
        self._kept_settled = deque(r.session_id for r in settled)
        self._kept = SETTLED_SESSIONS_KEPT
        self.retired_total = 0

    # --- queries ------------------------------------------------------------------------------

    def session(self, session_id: str) -> SessionRecord | None:
        return self.sessions.get(session_id)

    def retired(self, session_id: str) -> bool:
        """Whether ``session_id`` named a session that settled and has left the ledger."""
        number = session_id[1:]
        # Only what the ledger issues: "s" and ASCII decimal digits ("s²" is a digit to isdigit(),
        # not to int(); 5,000 digits are past int()'s limit).
        if session_id in self.sessions or session_id[:1] != "s" or not (number.isascii() and number.isdecimal()):
            return False
        return len(number) <= 19 and 1 <= int(number) <= self._issued

    @property
    def in_flight(self) -> int:
        """How many sessions are not settled yet."""
        return len(self._active)

    def active_sessions(self) -> Iterator[SessionRecord]:
        return iter(list(self._active.values()))

    def incarnation(self, agent_id: str) -> int:
        agent = self.agents.get(agent_id)
        return agent.incarnation if agent else 0

    def load(self) -> dict[str, int]:
        """Capacity each agent owes to sessions not yet settled (a copy the caller may change)."""
        return {agent_id: used for agent_id, used in self._load.items() if used}

    def _owe(self, assignments: tuple[Assignment, ...], sign: int) -> None:
        for a in assignments:
            self._load[a.agent_id] = self._load.get(a.agent_id, 0) + sign * a.demand

    # --- apply --------------------------------------------------------------------------------

    def apply(self, entry: Entry) -> ApplyResult:
        if isinstance(entry, Accepted):
            return self._accepted(entry)
        if isinstance(entry, Registered):
            return self._registered(entry)
        record = self.sessions.get(entry.session_id)
        if record is None:
            if self.retired(entry.session_id):
                return ApplyResult(False, entry.session_id)  # a late repeat: the session is long settled
            raise InvariantViolation(f"{type(entry).__name__} for unknown session {entry.session_id}")
        if isinstance(entry, Planned):
            return self._planned(record, entry)
        if isinstance(entry, Negotiated):
            return self._negotiated(record, entry)
        if isinstance(entry, Decided):
            return self._decided(record, entry)
        if isinstance(entry, Finished):
            return self._finished(record, entry)
        if isinstance(entry, Settled):
            return self._settled(record)
        raise InvariantViolation(f"unknown entry {entry!r}")

    def _accepted(self, entry: Accepted) -> ApplyResult:
        key = owned_key(entry.owner, entry.idempotency_key)
        existing = self.by_key.get(key)
        if existing is not None and NO_IDEMPOTENCY not in self._defects:
            record = self.sessions[existing]
            return ApplyResult(False, existing, state=record.state)
        try:
            entry.task.validate()
        except InvalidTask as exc:
            raise InvariantViolation(f"an invalid task reached the log: {exc}") from exc
        self._issued += 1
        session_id = f"s{self._issued}"
        record = SessionRecord(session_id, entry.idempotency_key, entry.task, entry.owner)
        self.sessions[session_id] = record
        self._active[session_id] = record
        self.by_key[key] = session_id
        record.record("accepted", entry.task.task_type)
        if entry.agents:  # planned at submit: exactly as if a Planned record followed
            self._planned(record, Planned(session_id, assignments_of(session_id, entry.task, entry.agents)))
        return ApplyResult(True, session_id, created=True, state=record.state)

    def _registered(self, entry: Registered) -> ApplyResult:
        agent = self.agents.get(entry.agent_id)
        if agent is not None and entry.incarnation < agent.incarnation:
            return ApplyResult(False)  # a delayed registration of an earlier life
        restarted = agent is not None and entry.incarnation != agent.incarnation
        self.agents[entry.agent_id] = AgentRecord(
            entry.agent_id, entry.capabilities, entry.capacity, entry.incarnation, entry.address
        )
        committed: list[tuple[str, Assignment, Params]] = []
        finished: list[tuple[str, Assignment]] = []
        for record in self._active.values():
            if record.state is not SessionState.EXECUTING:
                continue
            for a in record.assignments:
                if a.agent_id != entry.agent_id:
                    continue
                if a.subtask_id in record.results:
                    finished.append((record.session_id, a))
                else:
                    committed.append((record.session_id, a, record.parameters))
        return ApplyResult(True, restarted=restarted, committed=tuple(committed), finished=tuple(finished))

    def _planned(self, record: SessionRecord, entry: Planned) -> ApplyResult:
        if record.state is not SessionState.INITIALIZED:
            return ApplyResult(False, record.session_id, state=record.state)
        self._check_plan(record, entry.assignments)
        if self._stale_plan(entry.assignments):
            # An agent re-registered without the capability (or never registered) after the
            # leader planned: deterministic on every replica, and the leader plans again.
            return ApplyResult(False, record.session_id, state=record.state)
        record.assignments = entry.assignments
        self._owe(entry.assignments, +1)
        record.fire(SessionEvent.PLANNED)
        record.record("planned", ", ".join(f"{a.subtask_id}->{a.agent_id}" for a in entry.assignments))
        return ApplyResult(True, record.session_id, state=record.state)

    def _check_plan(self, record: SessionRecord, assignments: tuple[Assignment, ...]) -> None:
        # Invariant: at least one capable agent participates, one per subtask, each capable.
        wanted = [s.capability for s in record.task.subtasks]
        if not assignments or [a.capability for a in assignments] != wanted:
            raise InvariantViolation(f"plan for {record.session_id} does not match its subtasks")
        if len({a.subtask_id for a in assignments}) != len(assignments):
            raise InvariantViolation(f"plan for {record.session_id} repeats a subtask id")

    def _stale_plan(self, assignments: tuple[Assignment, ...]) -> bool:
        for a in assignments:
            agent = self.agents.get(a.agent_id)
            if agent is None or a.capability not in agent.capabilities:
                return True
        return False

    def _negotiated(self, record: SessionRecord, entry: Negotiated) -> ApplyResult:
        if record.state is not SessionState.NEGOTIATING or record.decision is not None:
            return ApplyResult(False, record.session_id, state=record.state)
        if record.parameters:
            return ApplyResult(False, record.session_id, state=record.state)
        record.parameters = entry.parameters
        record.record("negotiated", ", ".join(f"{n}={v:g}" for n, v in entry.parameters))
        return ApplyResult(True, record.session_id, state=record.state)

    def _decided(self, record: SessionRecord, entry: Decided) -> ApplyResult:
        if record.decision is not None or record.terminal:
            return ApplyResult(False, record.session_id, decision=record.decision, state=record.state)
        decision, reason = entry.decision, entry.reason
        if decision is Decision.COMMIT:
            if record.state is not SessionState.NEGOTIATING:
                raise InvariantViolation(f"commit for {record.session_id} in state {record.state}")
            stale = self._void_votes(record, entry)
            if stale:
                decision, reason = Decision.ABORT, stale
        record.decision, record.reason = decision, reason
        if decision is Decision.COMMIT:
            record.fire(SessionEvent.DECIDED_COMMIT)
        elif entry.cancelled:
            record.fire(SessionEvent.CANCELLED)
        else:
            record.fire(SessionEvent.DECIDED_ABORT)
        record.record("decided", f"{decision.value}: {reason}" if reason else decision.value)
        return ApplyResult(True, record.session_id, decision=decision, state=record.state)

    def _void_votes(self, record: SessionRecord, entry: Decided) -> str:
        """Why a commit must become an abort (an agent restarted after voting), or ''."""
        if [agent for agent, _ in entry.incarnations] != [a.agent_id for a in record.assignments]:
            raise InvariantViolation(f"commit for {record.session_id} lacks a vote per subtask")
        for agent_id, voted in entry.incarnations:  # one per subtask, in plan order
            if voted != self.incarnation(agent_id):
                return f"agent {agent_id} restarted after voting yes; its reservation is gone"
        return ""

    def _finished(self, record: SessionRecord, entry: Finished) -> ApplyResult:
        if not entry.subtask_id:  # cancellation of an executing session
            if record.state is not SessionState.EXECUTING:
                return ApplyResult(False, record.session_id, state=record.state)
            record.reason = "cancelled by request"
            record.fire(SessionEvent.CANCELLED)
            record.record("finished", "cancelled by request")
            return ApplyResult(True, record.session_id, state=record.state)
        if record.decision is not Decision.COMMIT:
            raise InvariantViolation(f"result for {entry.subtask_id} of an uncommitted session")
        record.assignment(entry.subtask_id)  # raises for a subtask the plan does not have
        if entry.subtask_id in record.results:
            return ApplyResult(False, record.session_id, state=record.state)
        record.results[entry.subtask_id] = entry.outcome
        if record.state is SessionState.EXECUTING:
            if not entry.outcome.ok:
                record.reason = f"subtask {entry.subtask_id} failed: {entry.outcome.error}"
                record.fire(SessionEvent.FINISHED_FAILED)
            elif len(record.results) == len(record.assignments):
                unmet = self._unmet_criterion(record)
                if unmet:
                    record.reason = unmet
                    record.fire(SessionEvent.FINISHED_FAILED)
                else:
                    record.fire(SessionEvent.FINISHED_OK)
        status = "ok" if entry.outcome.ok else f"failed: {entry.outcome.error}"
        record.record("finished", f"{entry.subtask_id} {status}")
        return ApplyResult(True, record.session_id, state=record.state)

    @staticmethod
    def _unmet_criterion(record: SessionRecord) -> str:
        outcomes = [record.results[a.subtask_id] for a in record.assignments]
        for name in record.task.success_criteria:
            why = SUCCESS_CRITERIA[name](outcomes)
            if why is not None:
                return f"success criterion {name} not met: {why}"
        return ""

    def _settled(self, record: SessionRecord) -> ApplyResult:
        if not record.terminal:
            raise InvariantViolation(f"settle of {record.session_id} in state {record.state}")
        if record.settled:
            return ApplyResult(False, record.session_id, state=record.state)
        record.settled = True
        del self._active[record.session_id]
        self._owe(record.assignments, -1)
        self._kept_settled.append(record.session_id)
        retired = []
        while len(self._kept_settled) > self._kept:
            retired.append(self._retire(self._kept_settled.popleft()))
        record.record("settled")
        return ApplyResult(True, record.session_id, state=record.state, retired=tuple(retired))

    def _retire(self, session_id: str) -> SessionRecord:
        record = self.sessions.pop(session_id)
        key = owned_key(record.owner, record.idempotency_key)
        if self.by_key.get(key) == session_id:
            del self.by_key[key]
        self.retired_total += 1
        return record
