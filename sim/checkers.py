"""Cluster-wide checkers: what must hold after every step of a simulation, and at its end.

They look at ground truth the machines cannot fake: the ledger the log applied, the messages
that actually left a node, the executions the hosts actually started, each agent's reservation
table and its durable side-effect store. A failed check raises ``Violation`` naming the checker.

after every step
  atomicity           no session where one agent executed and another released on abort
  single-decision     every Commit/Abort ever sent agrees with the one decision applied
  commit-after-decision  no Commit is sent and no execution starts before decided(commit) applies
  exactly-once        one session per idempotency key; one accepted result per subtask; a
                      subtask executes at most once per agent incarnation
  capacity            no agent's live reservations exceed its capacity
  no-unilateral       an agent drops a yes vote only after the abort is applied
  negotiation         every execution runs with the parameters the log negotiated, and those
                      hold every parameter a yes vote of the session offered
at the end (faults healed)
  no-lost-session     every accepted and every acknowledged session is terminal and settled
  no-reservation-left no agent still holds a reservation or is still in doubt
  outcome             completed sessions keep every side effect; failed and cancelled ones none
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.entries import Accepted, Entry, Finished, Settled
from protocol.ledger import ApplyResult, Ledger
from protocol.messages import Abort, Commit, Message, Release, Vote
from protocol.model import Assignment, Decision, Params
from protocol.participant import Participant
from protocol.participant_table import RESERVING, Held
from protocol.session_table import SessionState

CHECKERS = (
    "atomicity",
    "single-decision",
    "commit-after-decision",
    "exactly-once",
    "capacity",
    "no-unilateral",
    "negotiation",
    "no-lost-session",
    "no-reservation-left",
    "outcome",
    "invariant",
)


class Violation(Exception):
    """A checker found a broken property of the coordination core (a bug, or a planted one)
    during a simulation; ``checker`` names it. Not the ``Violation`` records of ``npa.checks``
    and ``wpa.checks``, which are broken rules of a generated plan."""

    def __init__(self, checker: str, detail: str) -> None:
        super().__init__(f"{checker}: {detail}")
        self.checker = checker
        self.detail = detail


@dataclass(frozen=True)
class _Final:
    """A settled session as the checks at the end need it: the ledger may retire it before."""

    state: SessionState
    decision: Decision | None
    assignments: tuple[Assignment, ...]


@dataclass
class _SessionSeen:
    executed_by: set[str]
    aborted_by: set[str]


class Checkers:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._seen: dict[str, _SessionSeen] = {}
        self._key_session: dict[str, str] = {}
        self._acknowledged: dict[str, str] = {}
        self._accepted_results: dict[str, int] = {}
        self._executions: set[tuple[str, int]] = set()
        self._offered: dict[str, set[str]] = {}  # session -> parameter names its yes votes offered
        self._final: dict[str, _Final] = {}  # settled sessions, kept past their retirement

    def _session(self, session_id: str) -> _SessionSeen:
        return self._seen.setdefault(session_id, _SessionSeen(set(), set()))

    # --- hooks the world calls ----------------------------------------------------------------

    def sent(self, message: Message) -> None:
        if isinstance(message, Vote):
            if message.yes and message.offers:
                self._offered.setdefault(message.session_id, set()).update(n for n, _ in message.offers)
            return
        if isinstance(message, Release):
            record = self._ledger.session(message.session_id)
            if record is None or not record.terminal or record.decision is not Decision.COMMIT:
                raise Violation(
                    "single-decision", f"Release for {message.subtask_id} before its committed session ended"
                )
            if message.compensate != (record.state is not SessionState.COMPLETED):
                raise Violation(
                    "single-decision",
                    f"Release(compensate={message.compensate}) for {record.state.value} {message.session_id}",
                )
            return
        if not isinstance(message, (Commit, Abort)):
            return
        record = self._ledger.session(message.session_id)
        decision = record.decision if record else None
        said = Decision.COMMIT if isinstance(message, Commit) else Decision.ABORT
        if decision is None:
            if said is Decision.COMMIT:
                raise Violation(
                    "commit-after-decision", f"Commit for {message.subtask_id} sent before decided(commit) was applied"
                )
            raise Violation("single-decision", f"Abort for {message.subtask_id} sent before any decision was applied")
        if decision is not said:
            raise Violation(
                "single-decision", f"{said.value} sent for {message.session_id}, log decided {decision.value}"
            )

    def execution_started(
        self, agent_id: str, incarnation: int, session_id: str, subtask_id: str, parameters: Params
    ) -> None:
        record = self._ledger.session(session_id)
        if record is None or record.decision is not Decision.COMMIT:
            raise Violation(
                "commit-after-decision", f"{agent_id} started {subtask_id} before decided(commit) was applied"
            )
        if (subtask_id, incarnation) in self._executions:
            raise Violation("exactly-once", f"{agent_id} executed {subtask_id} twice in incarnation {incarnation}")
        self._executions.add((subtask_id, incarnation))
        if parameters != record.parameters:
            raise Violation("negotiation", f"{subtask_id} ran with {parameters}, log negotiated {record.parameters}")
        missing = self._offered.get(session_id, set()) - {name for name, _ in record.parameters}
        if missing:
            raise Violation("negotiation", f"{session_id} committed without {sorted(missing)} its yes votes offered")
        seen = self._session(session_id)
        seen.executed_by.add(agent_id)
        self._atomic(session_id, seen)

    def applied(self, entry: Entry, result: ApplyResult) -> None:
        if isinstance(entry, Accepted):
            known = self._key_session.get(entry.idempotency_key)
            # A key whose session was retired may start a new one: the dedup window is over.
            if known is not None and result.session_id != known and not self._ledger.retired(known):
                raise Violation(
                    "exactly-once", f"key {entry.idempotency_key} made sessions {known} and {result.session_id}"
                )
            self._key_session[entry.idempotency_key] = result.session_id
        elif isinstance(entry, Finished) and entry.subtask_id and result.applied:
            count = self._accepted_results.get(entry.subtask_id, 0) + 1
            self._accepted_results[entry.subtask_id] = count
            if count > 1:
                raise Violation("exactly-once", f"{count} results accepted for {entry.subtask_id}")
        elif isinstance(entry, Settled) and result.applied:
            record = self._ledger.session(entry.session_id)
            if record is not None:
                self._final[entry.session_id] = _Final(record.state, record.decision, record.assignments)

    def acknowledged(self, key: str, session_id: str) -> None:
        known = self._acknowledged.setdefault(key, session_id)
        if known != session_id and (self._ledger.retired(known) or self._ledger.retired(session_id)):
            # The key's dedup window ended between the two answers (one came late): two tasks.
            self._acknowledged[key] = max(known, session_id, key=lambda sid: int(sid[1:]))
        elif known != session_id:
            raise Violation("exactly-once", f"key {key} was answered with {known} and with {session_id}")

    def participant_stepped(self, p: Participant, before: dict[str, tuple[str, Held]]) -> None:
        if p.reserved() > p.limit:
            raise Violation("capacity", f"{p.agent_id} holds {p.reserved()} of {p.limit}")
        for sub, (session_id, was) in before.items():
            if was is not Held.PREPARED:
                continue
            h = p.holdings.get(sub)
            now = h.held if h is not None else Held.ABSENT
            if now in (Held.PREPARED, Held.COMMITTED):
                continue
            record = self._ledger.session(session_id)
            final = self._final.get(session_id)
            decision = record.decision if record else final.decision if final else None
            if now is Held.ABORTED and decision is Decision.ABORT:
                seen = self._session(session_id)
                seen.aborted_by.add(p.agent_id)
                self._atomic(session_id, seen)
            elif now is Held.COMPENSATED and decision is Decision.COMMIT and (final or (record and record.terminal)):
                pass  # the session failed after commit before this agent heard the commit
            else:
                raise Violation(
                    "no-unilateral", f"{p.agent_id} left its yes vote on {sub} ({now.value}) without the log's word"
                )

    def _atomic(self, session_id: str, seen: _SessionSeen) -> None:
        if seen.executed_by and seen.aborted_by:
            raise Violation(
                "atomicity",
                f"{session_id}: {sorted(seen.executed_by)} executed, {sorted(seen.aborted_by)} aborted",
            )

    # --- the end ------------------------------------------------------------------------------

    def ended_states(self) -> dict[str, str]:
        """The state of every session the log created, retired ones included."""
        states = {sid: final.state.value for sid, final in self._final.items()}
        states.update({sid: r.state.value for sid, r in self._ledger.sessions.items()})
        return states

    def at_end(self, participants: list[Participant], stores: dict[str, dict[str, Params]]) -> None:
        for key, sid in self._acknowledged.items():
            if sid not in self._ledger.sessions and sid not in self._final:
                raise Violation("no-lost-session", f"acknowledged session {sid} (key {key}) is not in the log")
        for record in self._ledger.sessions.values():
            if not record.terminal or not record.settled:
                raise Violation(
                    "no-lost-session", f"{record.session_id} ended {record.state.value}, settled={record.settled}"
                )
        for p in participants:
            held = sorted(sub for sub, h in p.holdings.items() if h.held in RESERVING)
            if held or p.recovering:
                raise Violation("no-reservation-left", f"{p.agent_id} still holds {held} (recovering={p.recovering})")
        ended = dict(self._final)  # retired sessions too
        ended.update({sid: _Final(r.state, r.decision, r.assignments) for sid, r in self._ledger.sessions.items()})
        for sid, final in ended.items():
            for a in final.assignments:
                present = a.subtask_id in stores.get(a.agent_id, {})
                if final.state is SessionState.COMPLETED and not present:
                    raise Violation("outcome", f"{a.subtask_id} of completed {sid} left no effect")
                if final.state is not SessionState.COMPLETED and present:
                    raise Violation("outcome", f"{a.subtask_id} of {final.state.value} {sid} was not compensated")
