"""The two-phase coordinator of one session: a pure machine driven by ``step``.

The transitions live in ``coordinator_table.py``; this module classifies each event into an
input of that table and performs the actions of the transition as effects. It reads the ledger
(the applied coordination state) but never writes it: every change it wants goes out as an
``Append`` and comes back as an ``Applied`` event once the log has it.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.coordinator_table import COORDINATOR_TRANSITIONS, Input, Phase
from protocol.defects import COMMIT_BEFORE_APPEND, NO_DEFECTS, Defects
from protocol.effects import Append, CancelTimer, Effect, Send, SetTimer
from protocol.entries import Decided, Finished, Negotiated, Settled
from protocol.errors import IllegalTransition, InvariantViolation
from protocol.events import Applied, TimerFired
from protocol.ledger import Ledger, SessionRecord
from protocol.messages import (
    Abort,
    Ack,
    Commit,
    Message,
    Prepare,
    QueryDecision,
    Release,
    Result,
    ResultAccepted,
    Vote,
)
from protocol.model import Assignment, Decision, Outcome, Timing, params
from protocol.session_table import SessionState
from protocol.timers import ExecutionDeadline, PrepareDeadline, Retry


@dataclass(frozen=True)
class AgentRestarted:
    """The ledger applied a new incarnation of ``agent_id``."""

    agent_id: str


@dataclass(frozen=True)
class CancelRequested:
    """A client asked to cancel this session."""


def directive(record: SessionRecord, a: Assignment, term: int, incarnation: int) -> Message | None:
    """What the agent holding ``a`` should be told now, from the applied state alone."""
    sid, sub = record.session_id, a.subtask_id
    if record.decision is Decision.ABORT:
        return Abort(term, incarnation, sid, sub, record.reason)
    if record.decision is None:
        return None
    if record.terminal:
        return Release(term, incarnation, sid, sub, compensate=record.state is not SessionState.COMPLETED)
    if sub in record.results:
        return ResultAccepted(term, incarnation, sid, sub)
    return Commit(term, incarnation, sid, sub, record.parameters)


class Coordinator:
    """Drives one session's two-phase protocol on the current leader."""

    def __init__(self, session_id: str, term: int, timing: Timing, defects: Defects = NO_DEFECTS) -> None:
        self.session_id = session_id
        self.term = term
        self.phase = Phase.PREPARING
        self._timing = timing
        self._defects = defects
        self._yes: dict[str, Vote] = {}
        self._acked: dict[str, None] = {}
        self._finish_appended: dict[str, None] = {}
        self._cancel_requested = False
        self._cancel_appended = False
        self._settle_appended = False
        self._backoff = timing.retry

    # --- entering a phase (a new plan, or recovery on a new leader) ---------------------------

    def begin(self, now: float, ledger: Ledger) -> list[Effect]:
        """Take up the session where the applied state left it."""
        record = self._record(ledger)
        if record.terminal:
            self.phase = Phase.SETTLING
            return self._settle(record, now, ledger)
        if record.state is SessionState.EXECUTING:
            self.phase = Phase.COMMITTED
            return self._execute(record, now, ledger)
        if record.state is SessionState.NEGOTIATING and record.decision is None:
            self.phase = Phase.PREPARING
            return self._prepare(record, now, ledger)
        raise InvariantViolation(f"cannot coordinate {self.session_id} in state {record.state}")

    # --- the step function --------------------------------------------------------------------

    def step(self, event: object, now: float, ledger: Ledger) -> list[Effect]:
        if ledger.retired(self.session_id):
            return []  # settled and retired (a deposed leader's late timer): nothing is owed
        record = self._record(ledger)
        inp = self._classify(event, record, ledger)
        if inp is None:
            return []
        moves = COORDINATOR_TRANSITIONS[self.phase]
        if inp not in moves:
            raise IllegalTransition("coordinator", self.phase, inp, self.session_id)
        before, self.phase = self.phase, moves[inp]
        return self._act(before, inp, event, record, now, ledger)

    def _classify(self, event: object, record: SessionRecord, ledger: Ledger) -> Input | None:
        if isinstance(event, (Vote, Ack, QueryDecision, Result)) and not _from_participant(event, record):
            return None  # not a subtask of this session, or not from the agent it is assigned to
        if isinstance(event, Result) and event.incarnation != ledger.incarnation(event.agent_id):
            # Only the agent's current life reports results: an earlier life's execution ended
            # with it (the new one executes again, told by RegisterReply), and an incarnation
            # that never registered is a forgery.
            return None
        if isinstance(event, Vote):
            if event.incarnation != ledger.incarnation(event.agent_id):
                return None  # a vote from an earlier life of the agent is void
            if not event.yes:
                return Input.VOTE_NO
            if self.phase is Phase.PREPARING:
                voted = set(self._yes) | {event.subtask_id}
                if all(a.subtask_id in voted for a in record.assignments):
                    return Input.ALL_YES
            return Input.VOTE_YES
        if isinstance(event, Ack):
            if self.phase is Phase.SETTLING and event.kind == self._final_kind(record):
                rest = [a for a in record.assignments if a.subtask_id not in self._acked]
                if [a.subtask_id for a in rest] == [event.subtask_id]:
                    return Input.ALL_ACKED
            return Input.ACK
        if isinstance(event, QueryDecision):
            return Input.QUERY
        if isinstance(event, Result):
            return Input.RESULT
        if isinstance(event, CancelRequested):
            return Input.CANCEL
        if isinstance(event, AgentRestarted):
            return Input.AGENT_RESTARTED
        if isinstance(event, TimerFired):
            return _TIMER_INPUT.get(type(event.key))
        if isinstance(event, Applied):
            entry = event.entry
            if isinstance(entry, Decided):
                if not event.result.applied:
                    return None
                return Input.DECIDED_COMMIT if event.result.decision is Decision.COMMIT else Input.DECIDED_ABORT
            if isinstance(entry, Finished):
                if not event.result.applied:
                    return None
                # Only the entry that ends an executing session is TERMINAL; a result recorded
                # after the end (a late one, kept for exactly-once accounting) is FINISHED.
                ending = record.terminal and self.phase is Phase.COMMITTED
                return Input.TERMINAL if ending else Input.FINISHED
            if isinstance(entry, Settled):
                return Input.SETTLED if event.result.applied else None
            return None
        raise InvariantViolation(f"coordinator got an unknown event {event!r}")

    def _act(
        self,
        before: Phase,
        inp: Input,
        event: object,
        record: SessionRecord,
        now: float,
        ledger: Ledger,
    ) -> list[Effect]:
        if inp is Input.ALL_YES and isinstance(event, Vote):
            self._yes[event.subtask_id] = event
            return self._decide_commit(record, ledger)
        if inp is Input.VOTE_YES and isinstance(event, Vote):
            if before is Phase.PREPARING:
                self._yes[event.subtask_id] = event
                return []
            return self._answer(record, event.subtask_id, ledger) if before is not Phase.DECIDING else []
        if inp is Input.VOTE_NO and isinstance(event, Vote):
            if before is Phase.PREPARING:
                return self._decide_abort(f"agent {event.agent_id} voted no: {event.reason}")
            return []
        if inp is Input.PREPARE_TIMEOUT:
            if before is not Phase.PREPARING:
                return []
            waiting = [a.agent_id for a in record.assignments if a.subtask_id not in self._yes]
            return self._decide_abort(f"prepare timed out waiting for the vote of {', '.join(waiting)}")
        if inp is Input.QUERY and isinstance(event, QueryDecision):
            if before is Phase.PREPARING:
                return self._decide_abort(f"agent {event.agent_id} asked for the decision before it was reached")
            return self._answer(record, event.subtask_id, ledger) if before is not Phase.DECIDING else []
        if inp is Input.RETRY:
            return self._retry(before, record, now, ledger)
        if inp is Input.CANCEL:
            return self._cancel(before, record)
        if inp is Input.AGENT_RESTARTED and isinstance(event, AgentRestarted):
            return self._agent_restarted(before, event.agent_id, record, now, ledger)
        if inp is Input.DECIDED_COMMIT:
            effects = self._stop_preparing()
            effects += self._execute(record, now, ledger)
            if self._cancel_requested:
                effects += self._append_cancel()
            return effects
        if inp is Input.DECIDED_ABORT:
            return self._stop_preparing() + self._settle(record, now, ledger)
        if inp in (Input.ACK, Input.ALL_ACKED) and isinstance(event, Ack):
            return self._ack(before, inp, event, record, ledger)
        if inp is Input.RESULT and isinstance(event, Result):
            return self._result(before, event, record, ledger)
        if inp is Input.FINISHED and isinstance(event, Applied) and isinstance(event.entry, Finished):
            sub = event.entry.subtask_id
            if before is not Phase.COMMITTED or not sub:
                return []
            answer = self._answer(record, sub, ledger)
            return [CancelTimer(ExecutionDeadline(self.session_id, sub)), *answer]
        if inp is Input.TERMINAL:
            stop: list[Effect] = [
                CancelTimer(ExecutionDeadline(self.session_id, a.subtask_id)) for a in record.assignments
            ]
            return stop + self._settle(record, now, ledger)
        if inp is Input.EXECUTION_TIMEOUT and isinstance(event, TimerFired):
            return self._execution_timeout(before, event, record)
        if inp is Input.SETTLED:
            return [CancelTimer(Retry(self.session_id))]
        raise InvariantViolation(f"coordinator has no action for {inp} with {event!r}")

    # --- actions ------------------------------------------------------------------------------

    def _prepare(self, record: SessionRecord, now: float, ledger: Ledger) -> list[Effect]:
        effects: list[Effect] = [
            Send(a.agent_id, Prepare(self.term, ledger.incarnation(a.agent_id), self.session_id, a))
            for a in record.assignments
            if a.subtask_id not in self._yes
        ]
        effects.append(SetTimer(Retry(self.session_id), self._first_retry(now)))
        effects.append(SetTimer(PrepareDeadline(self.session_id), now + self._timing.prepare_timeout))
        return effects

    def _first_retry(self, now: float) -> float:
        """When to resend first after entering a phase (resets the backoff)."""
        self._backoff = self._timing.retry
        return now + self._backoff

    def _next_retry(self, now: float) -> float:
        """When to resend again: the interval doubles up to ``retry_max`` so that a slow
        cluster is not buried under its own resends (they would make it slower still)."""
        self._backoff = min(self._backoff * 2, self._timing.retry_max)
        return now + self._backoff

    def _stop_preparing(self) -> list[Effect]:
        return [CancelTimer(PrepareDeadline(self.session_id)), CancelTimer(Retry(self.session_id))]

    def _decide_commit(self, record: SessionRecord, ledger: Ledger) -> list[Effect]:
        offers: dict[str, float] = {}
        for a in record.assignments:  # in plan order, so the merge is deterministic
            offers.update(dict(self._yes[a.subtask_id].offers))
        incarnations = tuple((a.agent_id, self._yes[a.subtask_id].incarnation) for a in record.assignments)
        effects = self._stop_preparing()
        if offers:
            effects.append(Append(Negotiated(self.session_id, params(offers))))
        effects.append(Append(Decided(self.session_id, Decision.COMMIT, incarnations=incarnations)))
        if COMMIT_BEFORE_APPEND in self._defects:  # planted bug: act before the log has it
            effects += [
                Send(
                    a.agent_id,
                    Commit(self.term, ledger.incarnation(a.agent_id), self.session_id, a.subtask_id, params(offers)),
                )
                for a in record.assignments
            ]
        return effects

    def _decide_abort(self, reason: str, cancelled: bool = False) -> list[Effect]:
        entry = Decided(self.session_id, Decision.ABORT, reason=reason, cancelled=cancelled)
        return [*self._stop_preparing(), Append(entry)]

    def _execute(self, record: SessionRecord, now: float, ledger: Ledger) -> list[Effect]:
        effects: list[Effect] = []
        for a in record.assignments:
            if a.subtask_id in record.results:
                continue
            effects += self._answer(record, a.subtask_id, ledger)
            effects.append(
                SetTimer(ExecutionDeadline(self.session_id, a.subtask_id), now + self._timing.execution_timeout)
            )
        effects.append(SetTimer(Retry(self.session_id), self._first_retry(now)))
        return effects

    def _settle(self, record: SessionRecord, now: float, ledger: Ledger) -> list[Effect]:
        self._acked.clear()
        effects: list[Effect] = []
        for a in record.assignments:
            effects += self._answer(record, a.subtask_id, ledger)
        effects.append(SetTimer(Retry(self.session_id), self._first_retry(now)))
        return effects + self._maybe_settle(record)

    def _answer(self, record: SessionRecord, subtask_id: str, ledger: Ledger) -> list[Effect]:
        a = record.assignment(subtask_id)
        message = directive(record, a, self.term, ledger.incarnation(a.agent_id))
        return [Send(a.agent_id, message)] if message is not None else []

    def _retry(self, before: Phase, record: SessionRecord, now: float, ledger: Ledger) -> list[Effect]:
        if before is Phase.PREPARING:
            effects: list[Effect] = [
                Send(a.agent_id, Prepare(self.term, ledger.incarnation(a.agent_id), self.session_id, a))
                for a in record.assignments
                if a.subtask_id not in self._yes
            ]
            return [*effects, SetTimer(Retry(self.session_id), self._next_retry(now))]
        if before is Phase.COMMITTED:
            pending = [
                a for a in record.assignments if a.subtask_id not in self._acked and a.subtask_id not in record.results
            ]
        elif before is Phase.SETTLING:
            pending = [a for a in record.assignments if a.subtask_id not in self._acked]
        else:
            return []
        if not pending:
            return []
        effects = []
        for a in pending:
            effects += self._answer(record, a.subtask_id, ledger)
        return [*effects, SetTimer(Retry(self.session_id), self._next_retry(now))]

    def _cancel(self, before: Phase, record: SessionRecord) -> list[Effect]:
        if before is Phase.PREPARING:
            # Remembered too: a commit appended by an earlier leader may still win, and then
            # the cancellation applies to the executing session.
            self._cancel_requested = True
            return self._decide_abort("cancelled by request", cancelled=True)
        if before is Phase.DECIDING:
            self._cancel_requested = True
            return []
        if before is Phase.COMMITTED:
            return self._append_cancel()
        return []

    def _append_cancel(self) -> list[Effect]:
        if self._cancel_appended:
            return []
        self._cancel_appended = True
        return [Append(Finished(self.session_id, "", Outcome(False, error="cancelled"), cancelled=True))]

    def _agent_restarted(
        self, before: Phase, agent_id: str, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        mine = [a for a in record.assignments if a.agent_id == agent_id]
        effects: list[Effect] = []
        if before is Phase.PREPARING:
            for a in mine:  # its yes votes died with its reservations: ask again
                self._yes.pop(a.subtask_id, None)
                effects.append(Send(agent_id, Prepare(self.term, ledger.incarnation(agent_id), self.session_id, a)))
            return effects
        if before is Phase.SETTLING and record.decision is Decision.ABORT:
            for a in mine:  # a new life holds nothing of an aborted session
                self._acked[a.subtask_id] = None
            return self._maybe_settle(record)
        if before in (Phase.COMMITTED, Phase.SETTLING):
            for a in mine:
                self._acked.pop(a.subtask_id, None)
                effects += self._answer(record, a.subtask_id, ledger)
            return [*effects, SetTimer(Retry(self.session_id), self._next_retry(now))]
        return []

    def _ack(self, before: Phase, inp: Input, event: Ack, record: SessionRecord, ledger: Ledger) -> list[Effect]:
        if event.incarnation != ledger.incarnation(event.agent_id):
            return []  # an earlier life acknowledged; what the current one holds is what counts
        if before is Phase.COMMITTED and event.kind == "commit":
            self._acked[event.subtask_id] = None
            return []
        if before is Phase.SETTLING and event.kind == self._final_kind(record):
            self._acked[event.subtask_id] = None
            if inp is Input.ALL_ACKED:
                return self._maybe_settle(record)
        return []

    def _maybe_settle(self, record: SessionRecord) -> list[Effect]:
        if self._settle_appended or any(a.subtask_id not in self._acked for a in record.assignments):
            return []
        self._settle_appended = True
        return [CancelTimer(Retry(self.session_id)), Append(Settled(self.session_id))]

    @staticmethod
    def _final_kind(record: SessionRecord) -> str:
        return "abort" if record.decision is Decision.ABORT else "release"

    def _result(self, before: Phase, event: Result, record: SessionRecord, ledger: Ledger) -> list[Effect]:
        if before is Phase.SETTLING or event.subtask_id in record.results:
            return self._answer(record, event.subtask_id, ledger)
        if before is not Phase.COMMITTED:
            return []  # no decision applied yet: a result now is the sender's bug, not ours to log
        if event.subtask_id in self._finish_appended:
            return []
        self._finish_appended[event.subtask_id] = None
        return [Append(Finished(self.session_id, event.subtask_id, event.outcome))]

    def _execution_timeout(self, before: Phase, event: TimerFired, record: SessionRecord) -> list[Effect]:
        if before is not Phase.COMMITTED or not isinstance(event.key, ExecutionDeadline):
            return []
        sub = event.key.subtask_id
        if sub in record.results or sub in self._finish_appended:
            return []
        self._finish_appended[sub] = None
        agent = record.assignment(sub).agent_id
        why = f"agent {agent} reported no result within {self._timing.execution_timeout:g}s"
        return [Append(Finished(self.session_id, sub, Outcome(False, error=why)))]

    def _record(self, ledger: Ledger) -> SessionRecord:
        record = ledger.session(self.session_id)
        if record is None:
            raise InvariantViolation(f"coordinator for unknown session {self.session_id}")
        return record


def _from_participant(message: Vote | Ack | QueryDecision | Result, record: SessionRecord) -> bool:
    """Whether ``message`` names a subtask of the plan and comes from the agent assigned to it.
    Anything else is ignored: a stray or hostile message must not reach the log."""
    return any(a.subtask_id == message.subtask_id and a.agent_id == message.agent_id for a in record.assignments)


_TIMER_INPUT: dict[type, Input] = {
    Retry: Input.RETRY,
    PrepareDeadline: Input.PREPARE_TIMEOUT,
    ExecutionDeadline: Input.EXECUTION_TIMEOUT,
}
