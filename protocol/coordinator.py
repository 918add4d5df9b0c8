"""The two-phase coordinator of one session: a pure machine driven by ``step``.

The transitions live in ``coordinator_table.py``: each (phase, input) names its next phase and
the method of ``Coordinator`` that acts. ``step`` classifies each event into an input of that
table (``_classify``), takes the move, and calls the named action, which returns the effects;
no action asks which phase it is in, the table already chose by phase. It reads the ledger
(the applied coordination state) but never writes it: every change it wants goes out as an
``Append`` and comes back as an ``Applied`` event once the log has it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from protocol.coordinator_table import COORDINATOR_TRANSITIONS, Input, Phase
from protocol.defects import COMMIT_BEFORE_APPEND, NO_DEFECTS, Defects
from protocol.effects import Append, CancelTimer, Effect, Send, SetTimer
from protocol.entries import Decided, Finished, Negotiated, Settled
from protocol.errors import IllegalTransition, InvariantViolation
from protocol.events import AgentRestarted, Applied, CancelRequested, CoordinatorEvent, TimerFired
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
from protocol.progress import NEVER, PeerProgress
from protocol.session_table import SessionState
from protocol.timers import ExecutionDeadline, PrepareDeadline, Retry
from protocol.transitions import action_names


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

    def __init__(
        self,
        session_id: str,
        term: int,
        timing: Timing,
        defects: Defects = NO_DEFECTS,
        progress: PeerProgress | None = None,
    ) -> None:
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
        #: What the leader heard from the agents (shared by its coordinators), and when this
        #: coordinator last sent a request for each subtask: resends go only where one was lost.
        self._progress = progress if progress is not None else PeerProgress()
        self._sent_at: dict[str, float] = {}

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

    def step(self, event: CoordinatorEvent, now: float, ledger: Ledger) -> list[Effect]:
        if ledger.retired(self.session_id):
            return []  # settled and retired (a deposed leader's late timer): nothing is owed
        record = self._record(ledger)
        inp = self._classify(event, record, ledger)
        if inp is None:
            return []
        if isinstance(event, (Vote, Ack)):  # the answer to a request of ours
            self._progress.answered(event.agent_id, self._sent_at.get(event.subtask_id, NEVER), now)
        move = COORDINATOR_TRANSITIONS[self.phase].get(inp)
        if move is None:
            raise IllegalTransition("coordinator", self.phase, inp, self.session_id)
        self.phase = move.to
        if move.ignored:
            return []
        return _ACTIONS[move.action](self, event, record, now, ledger)

    def _classify(self, event: CoordinatorEvent, record: SessionRecord, ledger: Ledger) -> Input | None:
        """Name the table input ``event`` is, or None for one that is not this session's to
        hear. The phase is read only where it names the input: counting votes (``ALL_YES``)
        and acknowledgements (``ALL_ACKED``) happens in one phase, and only a result applied
        while executing can end the execution (``TERMINAL``)."""
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

    # --- actions: one per table move, named there; each knows its phase from the table --------
    #
    # Every action takes (event, record, now, ledger) and returns the effects of its move. The
    # phase has already been set to the move's target when it runs.

    def _count_yes(self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger) -> list[Effect]:
        vote = _expect(event, Vote)
        self._yes[vote.subtask_id] = vote
        return []

    def _decide_commit(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        vote = _expect(event, Vote)
        self._yes[vote.subtask_id] = vote  # the last yes
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

    def _abort_on_no(self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger) -> list[Effect]:
        vote = _expect(event, Vote)
        return self._decide_abort(f"agent {vote.agent_id} voted no: {vote.reason}")

    def _abort_on_timeout(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        waiting = [a.agent_id for a in record.assignments if a.subtask_id not in self._yes]
        return self._decide_abort(f"prepare timed out waiting for the vote of {', '.join(waiting)}")

    def _abort_on_query(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        query = _expect(event, QueryDecision)
        return self._decide_abort(f"agent {query.agent_id} asked for the decision before it was reached")

    def _abort_on_cancel(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        # Remembered too: a commit appended by an earlier leader may still win, and then the
        # cancellation applies to the executing session.
        self._cancel_requested = True
        return self._decide_abort("cancelled by request", cancelled=True)

    def _remember_cancel(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        self._cancel_requested = True  # the decision on its way decides what a cancel still means
        return []

    def _resend_prepare(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        effects: list[Effect] = [
            self._prepare_message(a, ledger, now)
            for a in record.assignments
            if a.subtask_id not in self._yes and self._lost(a, now)
        ]
        return [*effects, SetTimer(Retry(self.session_id), self._next_retry(now))]

    def _prepare_again(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        agent_id = _expect(event, AgentRestarted).agent_id
        effects: list[Effect] = []
        for a in record.assignments:
            if a.agent_id == agent_id:  # its yes votes died with its reservations: ask again
                self._yes.pop(a.subtask_id, None)
                effects.append(self._prepare_message(a, ledger, now))
        return effects

    def _answer_if_recorded(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        sub = _expect(event, Result).subtask_id
        if sub in record.results:
            return self._answer(record, sub, ledger, now)
        return []  # no decision applied yet: a result now is the sender's bug, not ours to log

    def _start_executing(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        effects = self._stop_preparing()
        effects += self._execute(record, now, ledger)
        if self._cancel_requested:
            effects += self._append_cancel()
        return effects

    def _start_settling(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        return self._stop_preparing() + self._settle(record, now, ledger)

    def _answer_from_ledger(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        if not isinstance(event, (Vote, QueryDecision, Result)):
            raise InvariantViolation(f"coordinator cannot answer {event!r}")
        return self._answer(record, event.subtask_id, ledger, now)

    def _note_commit_ack(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        ack = _expect(event, Ack)
        if ack.kind == "commit" and self._current(ack, ledger):
            self._acked[ack.subtask_id] = None
        return []

    def _record_result(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        result = _expect(event, Result)
        # A result answers the commit (the participant acknowledges only a repeated one): the
        # commit is not resent, and the agent's progress counts.
        self._acked[result.subtask_id] = None
        self._progress.answered(result.agent_id, self._sent_at.get(result.subtask_id, NEVER), now)
        if result.subtask_id in record.results:
            return self._answer(record, result.subtask_id, ledger, now)
        if result.subtask_id in self._finish_appended:
            return []
        self._finish_appended[result.subtask_id] = None
        # Lazy while another result is still to come: the session ends with the last one, and
        # this one rides in its Raft entry (``protocol.batching``). A failure ends it now.
        lazy = result.outcome.ok and not self._every_result_on_its_way(record)
        return [Append(Finished(self.session_id, result.subtask_id, result.outcome), lazy=lazy)]

    def _resend_commit(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        pending = [
            a for a in record.assignments if a.subtask_id not in self._acked and a.subtask_id not in record.results
        ]
        # A commit is answered by its result, after the execution: answers to later messages
        # do not mean it was lost, only silence or the patience does (``PeerProgress.lost``).
        return self._resend(pending, record, now, ledger, in_order=False)

    def _fail_silent_subtask(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        sub = _expect(_expect(event, TimerFired).key, ExecutionDeadline).subtask_id
        if sub in record.results or sub in self._finish_appended:
            return []
        self._finish_appended[sub] = None
        agent = record.assignment(sub).agent_id
        why = f"agent {agent} reported no result within {self._timing.execution_timeout:g}s"
        return [Append(Finished(self.session_id, sub, Outcome(False, error=why)))]

    def _cancel_execution(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        return self._append_cancel()

    def _answer_restarted(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        agent_id = _expect(event, AgentRestarted).agent_id
        effects: list[Effect] = []
        for a in record.assignments:
            if a.agent_id == agent_id:  # the new life has to hear the word again
                self._acked.pop(a.subtask_id, None)
                effects += self._answer(record, a.subtask_id, ledger, now)
        return [*effects, SetTimer(Retry(self.session_id), self._next_retry(now))]

    def _accept_result(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        sub = _expect(_expect(event, Applied).entry, Finished).subtask_id
        if not sub:
            return []
        stop = CancelTimer(ExecutionDeadline(self.session_id, sub))
        if self._every_result_on_its_way(record):
            # Every other result is on its way to the log, and with the last one the session
            # ends: its Release answers this result too (one message fewer per session). Should
            # that append be lost, the agent resends its result and hears ResultAccepted then.
            return [stop]
        return [stop, *self._answer(record, sub, ledger, now)]

    def _every_result_on_its_way(self, record: SessionRecord) -> bool:
        """Whether every subtask's result is applied or appended (the session ends with them)."""
        return all(a.subtask_id in record.results or a.subtask_id in self._finish_appended for a in record.assignments)

    def _end_execution(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        stop: list[Effect] = [CancelTimer(ExecutionDeadline(self.session_id, a.subtask_id)) for a in record.assignments]
        return stop + self._settle(record, now, ledger)

    def _note_final_ack(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        ack = _expect(event, Ack)
        if ack.kind == self._final_kind(record) and self._current(ack, ledger):
            self._acked[ack.subtask_id] = None
        return []

    def _settle_if_all_acked(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        ack = _expect(event, Ack)  # the final word's kind, from the last one missing (see _classify)
        if not self._current(ack, ledger):
            return []
        self._acked[ack.subtask_id] = None
        return self._maybe_settle(record)

    def _resend_final(self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger) -> list[Effect]:
        pending = [a for a in record.assignments if a.subtask_id not in self._acked]
        return self._resend(pending, record, now, ledger)

    def _settle_restarted(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        if record.decision is not Decision.ABORT:  # it may owe a compensation: tell it again
            return self._answer_restarted(event, record, now, ledger)
        agent_id = _expect(event, AgentRestarted).agent_id
        for a in record.assignments:
            if a.agent_id == agent_id:  # a new life holds nothing of an aborted session
                self._acked[a.subtask_id] = None
        return self._maybe_settle(record)

    def _stop_retrying(
        self, event: CoordinatorEvent, record: SessionRecord, now: float, ledger: Ledger
    ) -> list[Effect]:
        return [CancelTimer(Retry(self.session_id))]

    # --- actions ------------------------------------------------------------------------------

    def _prepare(self, record: SessionRecord, now: float, ledger: Ledger) -> list[Effect]:
        effects: list[Effect] = [
            self._prepare_message(a, ledger, now) for a in record.assignments if a.subtask_id not in self._yes
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

    def _decide_abort(self, reason: str, cancelled: bool = False) -> list[Effect]:
        entry = Decided(self.session_id, Decision.ABORT, reason=reason, cancelled=cancelled)
        return [*self._stop_preparing(), Append(entry)]

    def _execute(self, record: SessionRecord, now: float, ledger: Ledger) -> list[Effect]:
        effects: list[Effect] = []
        for a in record.assignments:
            if a.subtask_id in record.results:
                continue
            effects += self._answer(record, a.subtask_id, ledger, now)
            effects.append(
                SetTimer(ExecutionDeadline(self.session_id, a.subtask_id), now + self._timing.execution_timeout)
            )
        effects.append(SetTimer(Retry(self.session_id), self._first_retry(now)))
        return effects

    def _settle(self, record: SessionRecord, now: float, ledger: Ledger) -> list[Effect]:
        self._acked.clear()
        effects: list[Effect] = []
        # A release after a completed session is lazy: the agent has nothing left to do for it
        # and rides it with the next message (a compensation or an abort goes at once).
        lazy = record.state is SessionState.COMPLETED
        for a in record.assignments:
            effects += self._answer(record, a.subtask_id, ledger, now, lazy)
        effects.append(SetTimer(Retry(self.session_id), self._first_retry(now)))
        return effects + self._maybe_settle(record)

    def _answer(
        self, record: SessionRecord, subtask_id: str, ledger: Ledger, now: float, lazy: bool = False
    ) -> list[Effect]:
        a = record.assignment(subtask_id)
        message = directive(record, a, self.term, ledger.incarnation(a.agent_id))
        return [self._request(a, message, now, lazy)] if message is not None else []

    def _request(self, a: Assignment, message: Message, now: float, lazy: bool = False) -> Send:
        """Send ``message`` to the agent holding ``a``, remembering when (``PeerProgress``)."""
        self._sent_at[a.subtask_id] = now
        return Send(a.agent_id, message, lazy)

    def _prepare_message(self, a: Assignment, ledger: Ledger, now: float) -> Send:
        return self._request(a, Prepare(self.term, ledger.incarnation(a.agent_id), self.session_id, a), now)

    def _lost(self, a: Assignment, now: float, in_order: bool = True) -> bool:
        """Whether the last request for ``a`` should go again now: the agent answered a later
        one (unless ``in_order`` is False: a commit, answered by its result), said nothing for
        the whole retry interval, or left it unanswered past the patience (``protocol.progress``).
        An agent still working through earlier requests gets no resend: a long queue causes none."""
        sent_at = self._sent_at.get(a.subtask_id, NEVER)
        return self._progress.lost(a.agent_id, sent_at, now, self._backoff, in_order)

    def _resend(
        self, pending: list[Assignment], record: SessionRecord, now: float, ledger: Ledger, in_order: bool = True
    ) -> list[Effect]:
        if not pending:
            return []
        effects: list[Effect] = []
        for a in pending:
            if self._lost(a, now, in_order):
                effects += self._answer(record, a.subtask_id, ledger, now)
        return [*effects, SetTimer(Retry(self.session_id), self._next_retry(now))]

    @staticmethod
    def _current(ack: Ack, ledger: Ledger) -> bool:
        """An earlier life's acknowledgement counts for nothing: what the current one holds does."""
        return ack.incarnation == ledger.incarnation(ack.agent_id)

    def _append_cancel(self) -> list[Effect]:
        if self._cancel_appended:
            return []
        self._cancel_appended = True
        return [Append(Finished(self.session_id, "", Outcome(False, error="cancelled"), cancelled=True))]

    def _maybe_settle(self, record: SessionRecord) -> list[Effect]:
        if self._settle_appended or any(a.subtask_id not in self._acked for a in record.assignments):
            return []
        self._settle_appended = True
        # Lazy: only the admission queue waits for the room it frees, and the leader hastens it
        # then (``Leader``); otherwise it rides with the next record.
        return [CancelTimer(Retry(self.session_id)), Append(Settled(self.session_id), lazy=True)]

    @staticmethod
    def _final_kind(record: SessionRecord) -> str:
        return "abort" if record.decision is Decision.ABORT else "release"

    def _record(self, ledger: Ledger) -> SessionRecord:
        record = ledger.session(self.session_id)
        if record is None:
            raise InvariantViolation(f"coordinator for unknown session {self.session_id}")
        return record


def _from_participant(message: Vote | Ack | QueryDecision | Result, record: SessionRecord) -> bool:
    """Whether ``message`` names a subtask of the plan and comes from the agent assigned to it.
    Anything else is ignored: a stray or hostile message must not reach the log."""
    return any(a.subtask_id == message.subtask_id and a.agent_id == message.agent_id for a in record.assignments)


E = TypeVar("E")


def _expect(value: object, kind: type[E]) -> E:
    """``value`` as ``kind``: the table chose the action by the input ``_classify`` named from
    the value's type, so anything else is a bug."""
    if not isinstance(value, kind):
        raise InvariantViolation(f"coordinator action expected a {kind.__name__}, got {value!r}")
    return value


Action = Callable[[Coordinator, CoordinatorEvent, SessionRecord, float, Ledger], list[Effect]]

#: Every action the table names, resolved once at import: a misspelt name fails right here.
_ACTIONS: dict[str, Action] = {name: getattr(Coordinator, name) for name in action_names(COORDINATOR_TRANSITIONS)}

_TIMER_INPUT: dict[type, Input] = {
    Retry: Input.RETRY,
    PrepareDeadline: Input.PREPARE_TIMEOUT,
    ExecutionDeadline: Input.EXECUTION_TIMEOUT,
}
