"""The two-phase coordinator: every (phase, input) pair follows the table or is rejected, and
the protocol's promises hold: nothing is sent before its decision is applied, only abort is
reachable before that, and every participant hears the final word until it acknowledges."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import pytest

from protocol.coordinator import Coordinator
from protocol.coordinator_table import COORDINATOR_TRANSITIONS, Input, Phase
from protocol.defects import COMMIT_BEFORE_APPEND
from protocol.effects import Append, Effect, Send, SetTimer
from protocol.entries import Decided, Finished, Negotiated, Registered, Settled
from protocol.errors import IllegalTransition
from protocol.events import AgentRestarted, Applied, CancelRequested, CoordinatorEvent, TimerFired
from protocol.ledger import ApplyResult, Ledger
from protocol.messages import Abort, Ack, Commit, Prepare, QueryDecision, Release, Result, ResultAccepted, Vote
from protocol.model import Decision, Outcome
from protocol.timers import ExecutionDeadline, PrepareDeadline, Retry
from tests.unit.helpers import OK, TIMING, session_in

NOW = 10.0


def yes(agent: str, sub: str, inc: int = 1, offers: tuple[tuple[str, float], ...] = ()) -> Vote:
    return Vote(agent, inc, "s1", sub, True, offers=offers)


M = TypeVar("M")


@dataclass(frozen=True)
class Out(Generic[M]):
    to: str
    message: M


def sends(effects: list[Effect], kind: type[M]) -> list[Out[M]]:
    return [Out(e.to, e.message) for e in effects if isinstance(e, Send) and isinstance(e.message, kind)]


def appended(effects: list[Effect], kind: type[M]) -> list[M]:
    return [e.entry for e in effects if isinstance(e, Append) and isinstance(e.entry, kind)]


def in_phase(phase: Phase) -> tuple[Coordinator, Ledger]:
    stage = {
        Phase.PREPARING: "planned",
        Phase.DECIDING: "planned",
        Phase.COMMITTED: "committed",
        Phase.SETTLING: "failed",
        Phase.DONE: "settled",
    }[phase]
    ledger = session_in(stage)
    c = Coordinator("s1", 2, TIMING)
    if phase is Phase.DONE:
        c.phase = Phase.DONE
        return c, ledger
    c.begin(NOW, ledger)
    if phase is Phase.DECIDING:
        c.step(Vote("npa", 1, "s1", "s1.1", False, "full"), NOW, ledger)
    assert c.phase is phase
    return c, ledger


def applied(entry: object, **result: object) -> Applied:
    return Applied(1, entry, ApplyResult(True, "s1", **result))  # type: ignore[arg-type]


EVENTS: dict[Input, Callable[[Coordinator, Ledger], CoordinatorEvent]] = {
    Input.VOTE_YES: lambda c, lg: yes("wpa", "s1.0"),
    Input.ALL_YES: lambda c, lg: (c.step(yes("npa", "s1.1"), NOW, lg), yes("wpa", "s1.0"))[1],
    Input.VOTE_NO: lambda c, lg: Vote("wpa", 1, "s1", "s1.0", False, "full"),
    Input.PREPARE_TIMEOUT: lambda c, lg: TimerFired(PrepareDeadline("s1")),
    Input.RETRY: lambda c, lg: TimerFired(Retry("s1")),
    Input.QUERY: lambda c, lg: QueryDecision("wpa", 1, "s1", "s1.0"),
    Input.CANCEL: lambda c, lg: CancelRequested(),
    Input.AGENT_RESTARTED: lambda c, lg: AgentRestarted("wpa"),
    Input.DECIDED_COMMIT: lambda c, lg: applied(Decided("s1", Decision.COMMIT), decision=Decision.COMMIT),
    Input.DECIDED_ABORT: lambda c, lg: applied(Decided("s1", Decision.ABORT), decision=Decision.ABORT),
    Input.ACK: lambda c, lg: Ack("wpa", 1, "s1", "s1.0", "release"),
    Input.ALL_ACKED: lambda c, lg: (
        c.step(Ack("npa", 1, "s1", "s1.1", "release"), NOW, lg),
        Ack("wpa", 1, "s1", "s1.0", "release"),
    )[1],
    Input.RESULT: lambda c, lg: Result("wpa", 1, "s1", "s1.0", OK),
    Input.FINISHED: lambda c, lg: applied(Finished("s1", "s1.0", OK)),
    Input.TERMINAL: lambda c, lg: applied(Finished("s1", "s1.0", OK)),
    Input.EXECUTION_TIMEOUT: lambda c, lg: TimerFired(ExecutionDeadline("s1", "s1.1")),
    Input.SETTLED: lambda c, lg: applied(Settled("s1")),
}

# Inputs the classifier produces in one phase only (ALL_YES needs votes being collected,
# ALL_ACKED a final word being acknowledged, TERMINAL an executing session ending).
ONLY_IN = {Input.ALL_YES: Phase.PREPARING, Input.ALL_ACKED: Phase.SETTLING, Input.TERMINAL: Phase.COMMITTED}
PAIRS = [(p, i) for p, i in itertools.product(Phase, Input) if ONLY_IN.get(i, p) is p]


@pytest.mark.parametrize(("phase", "inp"), PAIRS)
def test_every_phase_and_input(phase: Phase, inp: Input) -> None:
    c, ledger = in_phase(phase)
    if inp is Input.TERMINAL:
        ledger.apply(Finished("s1", "s1.0", Outcome(False, error="boom")))  # the session ends
    event = EVENTS[inp](c, ledger)
    if inp is Input.FINISHED and phase is Phase.COMMITTED:
        ledger.apply(Finished("s1", "s1.0", OK))
    if phase is not Phase.DONE:  # the event really is the input under test
        assert c._classify(event, ledger.sessions["s1"], ledger) is inp
    move = COORDINATOR_TRANSITIONS[phase].get(inp)
    if move is None:
        with pytest.raises(IllegalTransition):
            c.step(event, NOW, ledger)
    else:
        effects = c.step(event, NOW, ledger)
        assert c.phase is move.to
        if move.ignored:  # an explicit ignore really does nothing
            assert effects == []


def test_ignore_is_only_ever_a_self_loop_and_every_action_is_a_coordinator_method() -> None:
    for phase, row in COORDINATOR_TRANSITIONS.items():
        for inp, move in row.items():
            if move.ignored:
                assert move.to is phase, (phase, inp)
            else:
                assert callable(getattr(Coordinator, move.action, None)), move.action


def test_single_phase_inputs_appear_in_no_other_row() -> None:
    for inp, phase in ONLY_IN.items():
        rows = [p for p, moves in COORDINATOR_TRANSITIONS.items() if inp in moves]
        assert rows == [phase]


def test_prepare_goes_to_every_participant_with_its_incarnation_and_the_term() -> None:
    c, ledger = Coordinator("s1", 7, TIMING), session_in("planned")
    effects = c.begin(NOW, ledger)
    prepares = sends(effects, Prepare)
    assert [(s.to, s.message.term, s.message.incarnation) for s in prepares] == [("wpa", 7, 1), ("npa", 7, 1)]
    assert SetTimer(PrepareDeadline("s1"), NOW + TIMING.prepare_timeout) in effects


def test_the_commit_is_appended_first_and_sent_only_once_applied() -> None:
    c, ledger = in_phase(Phase.PREPARING)
    c.step(yes("npa", "s1.1"), NOW, ledger)
    effects = c.step(yes("wpa", "s1.0", offers=(("weekly_kcal", 2100.0),)), NOW, ledger)
    assert not sends(effects, Commit)
    entries = [e.entry for e in effects if isinstance(e, Append)]
    assert entries == [
        Negotiated("s1", (("weekly_kcal", 2100.0),)),
        Decided("s1", Decision.COMMIT, incarnations=(("wpa", 1), ("npa", 1))),
    ]
    ledger.apply(entries[0])
    result = ledger.apply(entries[1])
    effects = c.step(Applied(9, entries[1], result), NOW, ledger)
    commits = sends(effects, Commit)
    assert {s.to for s in commits} == {"wpa", "npa"}
    assert all(s.message.parameters == (("weekly_kcal", 2100.0),) for s in commits)


def test_the_planted_bug_sends_commit_before_the_append() -> None:
    c, ledger = Coordinator("s1", 1, TIMING, frozenset({COMMIT_BEFORE_APPEND})), session_in("planned")
    c.begin(NOW, ledger)
    c.step(yes("npa", "s1.1"), NOW, ledger)
    assert sends(c.step(yes("wpa", "s1.0"), NOW, ledger), Commit)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (Vote("npa", 1, "s1", "s1.1", False, "no room"), "agent npa voted no: no room"),
        (TimerFired(PrepareDeadline("s1")), "prepare timed out waiting for the vote of wpa, npa"),
        (QueryDecision("wpa", 1, "s1", "s1.0"), "agent wpa asked for the decision before it was reached"),
    ],
)
def test_before_a_decision_only_abort_is_reachable(event: CoordinatorEvent, reason: str) -> None:
    c, ledger = in_phase(Phase.PREPARING)
    effects = c.step(event, NOW, ledger)
    assert appended(effects, Decided) == [Decided("s1", Decision.ABORT, reason)]
    assert c.phase is Phase.DECIDING


def test_a_vote_from_an_earlier_life_is_void() -> None:
    c, ledger = in_phase(Phase.PREPARING)
    ledger.apply(Registered("wpa", ("plan_workout",), 2, 2))
    assert c.step(yes("wpa", "s1.0", inc=1), NOW, ledger) == []
    c.step(yes("npa", "s1.1"), NOW, ledger)
    assert c.phase is Phase.PREPARING  # the stale yes did not count


def test_a_restarted_agent_is_asked_again_with_its_new_incarnation() -> None:
    c, ledger = in_phase(Phase.PREPARING)
    c.step(yes("wpa", "s1.0"), NOW, ledger)
    ledger.apply(Registered("wpa", ("plan_workout",), 2, 2))
    effects = c.step(AgentRestarted("wpa"), NOW, ledger)
    assert [(s.to, s.message.incarnation) for s in sends(effects, Prepare)] == [("wpa", 2)]
    c.step(yes("npa", "s1.1"), NOW, ledger)
    assert c.phase is Phase.PREPARING  # the old yes of wpa no longer counts


def test_retry_resends_prepare_only_to_those_without_a_yes() -> None:
    c, ledger = in_phase(Phase.PREPARING)
    c.step(yes("wpa", "s1.0"), NOW, ledger)
    effects = c.step(TimerFired(Retry("s1")), NOW, ledger)
    assert [s.to for s in sends(effects, Prepare)] == ["npa"]


def test_results_are_appended_once_and_acknowledged_after_they_apply() -> None:
    c, ledger = in_phase(Phase.COMMITTED)
    result = Result("wpa", 1, "s1", "s1.0", OK)
    first = c.step(result, NOW, ledger)
    assert appended(first, Finished) == [Finished("s1", "s1.0", OK)]
    assert c.step(result, NOW, ledger) == []  # a duplicate before the apply
    entry = Finished("s1", "s1.0", OK)
    effects = c.step(Applied(5, entry, ledger.apply(entry)), NOW, ledger)
    assert [s.to for s in sends(effects, ResultAccepted)] == ["wpa"]
    assert [s.to for s in sends(c.step(result, NOW, ledger), ResultAccepted)] == ["wpa"]


def test_a_result_answers_the_commit_so_only_the_silent_agent_gets_it_again() -> None:
    """Participants acknowledge only a repeated commit: a result is the answer to the first."""
    c, ledger = in_phase(Phase.COMMITTED)  # commits went to wpa (s1.0) and npa (s1.1) at NOW
    c.step(Result("wpa", 1, "s1", "s1.0", OK), NOW + 0.01, ledger)  # not applied yet
    retry = NOW + 10 * TIMING.retry_max  # long past any wait: whoever has not answered gets it again
    assert [s.to for s in sends(c.step(TimerFired(Retry("s1")), retry, ledger), Commit)] == ["npa"]
    c.step(Ack("npa", 1, "s1", "s1.1", "commit"), retry, ledger)  # the repeated commit's answer
    assert sends(c.step(TimerFired(Retry("s1")), retry + 10 * TIMING.retry_max, ledger), Commit) == []


def test_a_silent_agent_fails_its_subtask_at_the_execution_deadline() -> None:
    c, ledger = in_phase(Phase.COMMITTED)
    effects = c.step(TimerFired(ExecutionDeadline("s1", "s1.1")), NOW, ledger)
    (finished,) = appended(effects, Finished)
    assert not finished.outcome.ok and "npa reported no result" in finished.outcome.error


def test_when_the_last_result_is_on_its_way_the_release_answers_the_earlier_one() -> None:
    c, ledger = in_phase(Phase.COMMITTED)
    for agent, sub in (("wpa", "s1.0"), ("npa", "s1.1")):
        c.step(Result(agent, 1, "s1", sub, OK), NOW, ledger)  # both appended, neither applied
    first, last = Finished("s1", "s1.0", OK), Finished("s1", "s1.1", OK)
    assert sends(c.step(Applied(5, first, ledger.apply(first)), NOW, ledger), ResultAccepted) == []
    releases = sends(c.step(Applied(6, last, ledger.apply(last)), NOW, ledger), Release)
    assert {s.to for s in releases} == {"wpa", "npa"}


@pytest.mark.parametrize(("stage", "compensate"), [("failed", True), ("completed", False)])
def test_the_end_of_a_session_releases_everyone(stage: str, compensate: bool) -> None:
    ledger = session_in(stage)
    c = Coordinator("s1", 1, TIMING)
    effects = c.begin(NOW, ledger)
    releases = sends(effects, Release)
    assert {s.to for s in releases} == {"wpa", "npa"}
    assert all(s.message.compensate is compensate for s in releases)


def test_settled_is_appended_once_every_participant_acknowledged() -> None:
    c, ledger = in_phase(Phase.SETTLING)
    assert c.step(Ack("wpa", 1, "s1", "s1.0", "release"), NOW, ledger) == []
    assert c.step(Ack("npa", 9, "s1", "s1.1", "release"), NOW, ledger) == []  # wrong life
    assert c.step(Ack("npa", 1, "s1", "s1.1", "abort"), NOW, ledger) == []  # wrong word
    effects = c.step(Ack("npa", 1, "s1", "s1.1", "release"), NOW, ledger)
    assert appended(effects, Settled) == [Settled("s1")]
    assert not appended(c.step(Ack("npa", 1, "s1", "s1.1", "release"), NOW, ledger), Settled)


def test_after_an_abort_a_restarted_agent_owes_nothing() -> None:
    ledger = session_in("aborted")
    c = Coordinator("s1", 1, TIMING)
    c.begin(NOW, ledger)
    c.step(Ack("npa", 1, "s1", "s1.1", "abort"), NOW, ledger)
    ledger.apply(Registered("wpa", ("plan_workout",), 2, 2))
    effects = c.step(AgentRestarted("wpa"), NOW, ledger)
    assert appended(effects, Settled) == [Settled("s1")]


def test_a_restarted_agent_still_gets_its_compensation() -> None:
    c, ledger = in_phase(Phase.SETTLING)
    c.step(Ack("wpa", 1, "s1", "s1.0", "release"), NOW, ledger)
    ledger.apply(Registered("wpa", ("plan_workout",), 2, 2))
    effects = c.step(AgentRestarted("wpa"), NOW, ledger)
    assert [(s.to, s.message.incarnation, s.message.compensate) for s in sends(effects, Release)] == [("wpa", 2, True)]


def test_late_votes_and_queries_after_the_decision_are_answered_from_the_log() -> None:
    c, ledger = in_phase(Phase.COMMITTED)
    assert [s.to for s in sends(c.step(yes("npa", "s1.1"), NOW, ledger), Commit)] == ["npa"]
    c, ledger = in_phase(Phase.SETTLING)
    assert sends(c.step(QueryDecision("npa", 1, "s1", "s1.1"), NOW, ledger), Release)


def test_cancel_aborts_before_the_decision_and_finishes_after_it() -> None:
    c, ledger = in_phase(Phase.PREPARING)
    effects = c.step(CancelRequested(), NOW, ledger)
    assert appended(effects, Decided) == [Decided("s1", Decision.ABORT, "cancelled by request", cancelled=True)]
    c, ledger = in_phase(Phase.COMMITTED)
    effects = c.step(CancelRequested(), NOW, ledger) + c.step(CancelRequested(), NOW, ledger)
    (finished,) = appended(effects, Finished)
    assert finished.cancelled


def test_cancel_while_deciding_waits_for_the_decision() -> None:
    c, ledger = in_phase(Phase.PREPARING)
    c.step(yes("npa", "s1.1"), NOW, ledger)
    decided = appended(c.step(yes("wpa", "s1.0"), NOW, ledger), Decided)[0]
    assert c.step(CancelRequested(), NOW, ledger) == []
    effects = c.step(Applied(3, decided, ledger.apply(decided)), NOW, ledger)
    (finished,) = appended(effects, Finished)
    assert finished.cancelled


def test_abort_messages_carry_the_reason() -> None:
    ledger = session_in("aborted")
    effects = Coordinator("s1", 1, TIMING).begin(NOW, ledger)
    assert all(s.message.reason == "no" for s in sends(effects, Abort))


def test_a_cancel_survives_an_earlier_leaders_commit_winning() -> None:
    c, ledger = in_phase(Phase.PREPARING)
    c.step(CancelRequested(), NOW, ledger)  # appends abort(cancelled)...
    old = Decided("s1", Decision.COMMIT, incarnations=(("wpa", 1), ("npa", 1)))
    effects = c.step(Applied(4, old, ledger.apply(old)), NOW, ledger)  # ...but this wins
    (finished,) = appended(effects, Finished)
    assert finished.cancelled
