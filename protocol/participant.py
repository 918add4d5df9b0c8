"""The two-phase participant inside every agent: a pure machine driven by ``step``.

The per-subtask transitions live in ``participant_table.py``: each (state, cue) names the next
state and the ``Participant`` method that acts; ``step`` turns an event into a cue, takes the
move and calls the action, which returns the effects. This module adds what spans
subtasks: the capacity check at prepare time, the agent's incarnation and the highest leader
term it has seen (fencing), and recovery after a restart. A restarted agent starts in
``recovering``: it registers its new incarnation and ignores coordinator traffic until the
``RegisterReply`` tells it which subtasks it still owns; only then does it take new work, so
a reservation made before the crash is never double-booked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol.defects import NO_DEFECTS, PARTICIPANT_UNILATERAL_ABORT, Defects
from protocol.effects import CancelTimer, Effect, Send, SetTimer, StartCompensation, StartExecution, StopExecution
from protocol.errors import IllegalTransition, InvariantViolation
from protocol.events import Booted, ExecutionDone, ParticipantEvent, TimerFired
from protocol.frozen import fast_init
from protocol.messages import (
    Abort,
    Ack,
    Commit,
    Prepare,
    QueryDecision,
    Register,
    RegisterReply,
    Release,
    Result,
    ResultAccepted,
    Vote,
)
from protocol.model import Assignment, Outcome, Params, Timing
from protocol.participant_table import PARTICIPANT_TRANSITIONS, RESERVING, Cue, Held
from protocol.progress import NEVER, PeerProgress
from protocol.timers import Lease, RegisterRetry, ResultRetry
from protocol.transitions import action_names

MCA = "mca"


@fast_init
@dataclass(frozen=True)
class Refusal:
    """The agent's own verdict on a subtask it could hold: it cannot do this one (a request it
    finds infeasible, say). The participant votes no with ``reason`` and reserves nothing."""

    reason: str


#: The agent's verdict on an assignment, asked once per subtask before anything is reserved:
#: the parameters it offers with its yes vote, or a refusal.
OfferFn = Callable[[Assignment], Params | Refusal]


@dataclass
class Holding:
    """What this agent knows of one subtask."""

    session_id: str
    assignment: Assignment
    held: Held
    parameters: Params = ()
    offers: Params = ()
    refusal: str = ""  # the agent's own reason to vote no
    outcome: Outcome | None = None
    accepted: bool = False  # the coordinator has the result; pull slowly
    backoff: float = 0.0  # the current interval between resends of the result
    result_sent_at: float = NEVER  # when the result last went to the coordinator


class Participant:
    def __init__(
        self,
        agent_id: str,
        capabilities: tuple[str, ...],
        capacity: int,
        incarnation: int,
        timing: Timing,
        offer: OfferFn | None = None,
        defects: Defects = NO_DEFECTS,
    ) -> None:
        if capacity < 1:
            raise InvariantViolation(f"agent {agent_id} needs a capacity of at least 1")
        self.agent_id = agent_id
        self.capabilities = capabilities
        self.capacity = capacity
        self.incarnation = incarnation
        self.recovering = True
        #: The most this agent may hold: its capacity, or more while it honours commitments
        #: inherited from a previous incarnation that had a larger capacity.
        self.limit = capacity
        self.holdings: dict[str, Holding] = {}
        #: What this agent heard from the MCA: a result goes again only if it was lost.
        self._mca = PeerProgress()
        self._live: dict[str, int] = {}  # subtask -> demand, for the holdings that reserve
        self._reserved = 0  # the sum of ``_live``, kept by ``_track``: every prepare asks for it
        self.term_seen = 0
        self._timing = timing
        self._offer = offer
        self._defects = defects

    # --- queries ------------------------------------------------------------------------------

    def reserved(self) -> int:
        return self._reserved

    def _track(self, sub: str) -> None:
        """Keep the live-reservation index and its total in step with ``holdings`` (O(1) per
        step; summing the index instead would cost O(live subtasks) on every prepare)."""
        self._reserved -= self._live.pop(sub, 0)
        h = self.holdings.get(sub)
        if h is not None and h.held in RESERVING:
            self._live[sub] = h.assignment.demand
            self._reserved += h.assignment.demand

    # --- the step function --------------------------------------------------------------------

    def step(self, event: ParticipantEvent, now: float) -> list[Effect]:
        if isinstance(event, Booted):
            return self._register(now)
        if isinstance(event, TimerFired) and isinstance(event.key, RegisterRetry):
            return self._register(now) if self.recovering else []
        if isinstance(event, RegisterReply):
            return self._registered(event, now)
        if isinstance(event, (Prepare, Commit, Abort, Release, ResultAccepted)):
            if event.term < self.term_seen or event.incarnation != self.incarnation:
                return []  # a deposed leader, or a message for an earlier life of this agent
            self.term_seen = event.term
            if self.recovering:
                return []  # the coordinator resends once our registration is applied
            self._mca.heard(MCA, now)
            return self._message(event, now)
        if isinstance(event, ExecutionDone):
            if event.attempt != self.incarnation:
                return []
            return self._on(event.subtask_id, Cue.EXECUTION_DONE, event, now)
        if isinstance(event, TimerFired) and isinstance(event.key, Lease | ResultRetry):
            cue = Cue.LEASE_EXPIRED if isinstance(event.key, Lease) else Cue.RESULT_RETRY
            return self._on(event.key.subtask_id, cue, event, now)
        raise InvariantViolation(f"participant {self.agent_id} got an unknown event {event!r}")

    def _message(self, msg: Prepare | Commit | Abort | Release | ResultAccepted, now: float) -> list[Effect]:
        if isinstance(msg, Prepare):
            sub = msg.assignment.subtask_id
            if sub not in self.holdings:
                holding = Holding(msg.session_id, msg.assignment, Held.ABSENT)
                ok = self._admits(msg.assignment)
                if ok and self._offer is not None:
                    verdict = self._offer(msg.assignment)
                    if isinstance(verdict, Refusal):
                        ok, holding.refusal = False, verdict.reason
                    else:
                        holding.offers = verdict
                self.holdings[sub] = holding
                return self._on(sub, Cue.PREPARE_OK if ok else Cue.PREPARE_REFUSED, msg, now)
            return self._on(sub, Cue.PREPARE, msg, now)
        if isinstance(msg, (Release, ResultAccepted)):  # the answer to our result, if we sent one
            answered = self.holdings.get(msg.subtask_id)
            if answered is not None and answered.result_sent_at > NEVER:
                self._mca.answered(MCA, answered.result_sent_at, now)
        if isinstance(msg, Release):
            cue = Cue.RELEASE_COMPENSATE if msg.compensate else Cue.RELEASE
        else:
            cue = {Commit: Cue.COMMIT, Abort: Cue.ABORT, ResultAccepted: Cue.RESULT_ACCEPTED}[type(msg)]
        if msg.subtask_id not in self.holdings:
            placeholder = Assignment(msg.subtask_id, self.agent_id, "", 0)
            self.holdings[msg.subtask_id] = Holding(msg.session_id, placeholder, Held.ABSENT)
        return self._on(msg.subtask_id, cue, msg, now)

    def _admits(self, a: Assignment) -> bool:
        return a.capability in self.capabilities and self.reserved() + a.demand <= self.capacity

    def _on(self, sub: str, cue: Cue, event: ParticipantEvent, now: float) -> list[Effect]:
        holding = self.holdings.get(sub)
        if holding is None:
            if cue in (Cue.LEASE_EXPIRED, Cue.RESULT_RETRY):
                return []  # a timer that outlived its subtask
            raise IllegalTransition("participant", Held.ABSENT, cue, f"{self.agent_id} {sub}")
        move = PARTICIPANT_TRANSITIONS[holding.held].get(cue)
        if move is None:
            raise IllegalTransition("participant", holding.held, cue, f"{self.agent_id}#{self.incarnation} {sub}")
        holding.held = move.to
        if holding.held is Held.ABSENT:
            del self.holdings[sub]  # a stale message about nothing we hold leaves no trace
            self._track(sub)
            return []
        effects = [] if move.ignored else _ACTIONS[move.action](self, holding, event, now)
        self._track(sub)
        reserved = self.reserved()
        if reserved > self.limit:
            raise InvariantViolation(f"{self.agent_id} reserved {reserved} of {self.limit}")
        self.limit = max(self.capacity, reserved)
        return effects

    # --- actions: one per table move, named there; each knows its state from the table --------
    #
    # Every action takes (holding, event, now) and returns the effects of its move. The holding
    # is already in the move's target state when it runs.

    def _vote_yes(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        lease = Lease(h.session_id, h.assignment.subtask_id)
        return [self._vote(h, True), SetTimer(lease, now + self._timing.lease)]

    def _vote_no(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        return [self._vote(h, False, h.refusal or self._refusal(h.assignment))]

    def _revote_yes(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        return [self._vote(h, True)]  # a vote is final for the incarnation: the same one again

    def _revote_no(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        # A prepare is a self-loop in every row, so ``h.held`` is the state it found.
        return [self._vote(h, False, h.refusal or f"subtask is already {h.held.value}")]

    def _execute(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        if isinstance(event, Commit):
            h.parameters = event.parameters
        lease = Lease(h.session_id, h.assignment.subtask_id)
        # No acknowledgement: the result answers the commit (two messages fewer per subtask).
        # A commit that comes again (the coordinator heard nothing for its retry interval: a
        # long execution, or a lost commit) is acknowledged, so that it stops coming.
        return [CancelTimer(lease), self._start(h)]

    def _ack_commit(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        return [self._ack(h, "commit")]

    def _abort(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        return [CancelTimer(Lease(h.session_id, h.assignment.subtask_id)), self._ack(h, "abort")]

    def _release(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        return self._let_go(h, stop=False, compensate=False)

    def _stop_and_release(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        return self._let_go(h, stop=True, compensate=False)

    def _compensate(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        return self._let_go(h, stop=False, compensate=True)

    def _stop_and_compensate(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        return self._let_go(h, stop=True, compensate=True)

    def _let_go(self, h: Holding, stop: bool, compensate: bool) -> list[Effect]:
        sid, sub = h.session_id, h.assignment.subtask_id
        effects: list[Effect] = [CancelTimer(Lease(sid, sub)), CancelTimer(ResultRetry(sid, sub))]
        if stop:  # still running: give the capacity back for real
            effects.append(StopExecution(sid, sub))
        if compensate:
            effects.append(StartCompensation(sid, sub))
        return [*effects, self._ack(h, "release")]

    def _ask_decision(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        if PARTICIPANT_UNILATERAL_ABORT in self._defects:  # planted bug: decide alone
            h.held = Held.ABORTED
            return []
        sid, sub = h.session_id, h.assignment.subtask_id
        query = QueryDecision(self.agent_id, self.incarnation, sid, sub)
        return [Send(MCA, query), SetTimer(Lease(sid, sub), now + self._timing.lease)]

    def _report_result(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        if not isinstance(event, ExecutionDone):
            raise InvariantViolation(f"participant {self.agent_id} has no outcome in {event!r}")
        h.outcome = event.outcome
        h.backoff = self._timing.retry
        return [self._result(h, now), SetTimer(ResultRetry(h.session_id, h.assignment.subtask_id), now + h.backoff)]

    def _compensate_late_execution(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        return [StartCompensation(h.session_id, h.assignment.subtask_id)]  # it finished after we were told to undo it

    def _note_accepted(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        h.accepted = True  # an earlier life's result was recorded: once done, pull the final word
        return []

    def _pull_slowly(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        h.accepted = True
        return [SetTimer(ResultRetry(h.session_id, h.assignment.subtask_id), now + self._timing.lease)]

    def _resend_result(self, h: Holding, event: ParticipantEvent, now: float) -> list[Effect]:
        sid, sub = h.session_id, h.assignment.subtask_id
        retry = ResultRetry(sid, sub)
        if h.accepted or h.outcome is None:  # only the final word is missing: pull it
            pull = QueryDecision(self.agent_id, self.incarnation, sid, sub)
            return [Send(MCA, pull), SetTimer(retry, now + self._timing.lease)]
        # Again only if it was lost: the MCA answered a later result, or went silent
        # (``protocol.progress``); not because its log is busy with a thousand others.
        again = [self._result(h, now)] if self._mca.lost(MCA, h.result_sent_at, now, h.backoff) else []
        h.backoff = min(h.backoff * 2, self._timing.retry_max)
        return [*again, SetTimer(retry, now + h.backoff)]

    def _refusal(self, a: Assignment) -> str:
        if a.capability not in self.capabilities:
            return f"agent {self.agent_id} does not offer capability {a.capability!r}"
        free = self.capacity - self.reserved()
        return f"agent {self.agent_id} has {free} of {self.capacity} capacity free, needs {a.demand}"

    def _vote(self, h: Holding, yes: bool, reason: str = "") -> Send:
        vote = Vote(
            self.agent_id, self.incarnation, h.session_id, h.assignment.subtask_id, yes, reason, h.offers if yes else ()
        )
        return Send(MCA, vote)

    def _ack(self, h: Holding, kind: str) -> Send:
        return Send(MCA, Ack(self.agent_id, self.incarnation, h.session_id, h.assignment.subtask_id, kind))

    def _result(self, h: Holding, now: float) -> Send:
        if h.outcome is None:
            raise InvariantViolation(f"no outcome to report for {h.assignment.subtask_id}")
        h.result_sent_at = now
        return Send(MCA, Result(self.agent_id, self.incarnation, h.session_id, h.assignment.subtask_id, h.outcome))

    def _start(self, h: Holding) -> StartExecution:
        return StartExecution(h.session_id, h.assignment, h.parameters, self.incarnation)

    # --- registration -------------------------------------------------------------------------

    def _register(self, now: float) -> list[Effect]:
        register = Register(self.agent_id, self.capabilities, self.capacity, self.incarnation)
        return [Send(MCA, register), SetTimer(RegisterRetry(), now + self._timing.register_retry)]

    def _registered(self, reply: RegisterReply, now: float) -> list[Effect]:
        if not self.recovering or reply.incarnation != self.incarnation or reply.term < self.term_seen:
            return []
        self.term_seen = reply.term
        self.recovering = False
        effects: list[Effect] = [CancelTimer(RegisterRetry())]
        for sid, a, parameters in reply.committed:  # owned before the crash: run it again
            h = Holding(sid, a, Held.COMMITTED, parameters=parameters)
            self.holdings[a.subtask_id] = h
            self._track(a.subtask_id)
            effects.append(self._start(h))
        for sid, a in reply.finished:  # result already in the log: hold until the release
            self.holdings[a.subtask_id] = Holding(sid, a, Held.EXECUTED, accepted=True)
            self._track(a.subtask_id)
            effects.append(SetTimer(ResultRetry(sid, a.subtask_id), now + self._timing.lease))
        # Commitments made by the previous incarnation are honoured even if this one was started
        # with less capacity; no new work is taken until the agent is back under its capacity.
        self.limit = max(self.capacity, self.reserved())
        return effects


Action = Callable[[Participant, Holding, ParticipantEvent, float], list[Effect]]

#: Every action the table names, resolved once at import: a misspelt name fails right here.
_ACTIONS: dict[str, Action] = {name: getattr(Participant, name) for name in action_names(PARTICIPANT_TRANSITIONS)}
