"""The two-phase participant: every (state, cue) pair follows the table or is rejected, and a
yes vote binds: the agent reserves before voting, asks when its lease runs out, and releases
only on the coordinator's word."""

from __future__ import annotations

import itertools

import pytest

from protocol.defects import PARTICIPANT_UNILATERAL_ABORT
from protocol.effects import CancelTimer, Effect, Send, SetTimer, StartCompensation, StartExecution, StopExecution
from protocol.errors import IllegalTransition
from protocol.events import Booted, ExecutionDone, ParticipantEvent, TimerFired
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
from protocol.model import Assignment
from protocol.participant import Holding, Participant, Refusal
from protocol.participant_table import PARTICIPANT_TRANSITIONS, RESERVING, Cue, Held
from protocol.timers import Lease, RegisterRetry, ResultRetry
from tests.unit.helpers import OK, TIMING

NOW = 5.0
MEAL = Assignment("s1.0", "npa", "plan_meal", 1)


def ready(capacity: int = 1, defects: frozenset[str] = frozenset()) -> Participant:
    p = Participant("npa", ("plan_meal",), capacity, 1, TIMING, lambda a: (("kcal", 2.0),), defects)
    p.step(Booted(), NOW)
    p.step(RegisterReply(1, "npa", 1), NOW)
    return p


def messages(effects: list[Effect], kind: type) -> list[object]:
    return [e.message for e in effects if isinstance(e, Send) and isinstance(e.message, kind)]


EVENTS: dict[Cue, ParticipantEvent] = {
    Cue.PREPARE_OK: Prepare(1, 1, "s1", MEAL),
    Cue.PREPARE_REFUSED: Prepare(1, 1, "s1", Assignment("s1.0", "npa", "plan_sleep", 1)),
    Cue.PREPARE: Prepare(1, 1, "s1", MEAL),
    Cue.COMMIT: Commit(1, 1, "s1", "s1.0"),
    Cue.ABORT: Abort(1, 1, "s1", "s1.0"),
    Cue.RELEASE: Release(1, 1, "s1", "s1.0", compensate=False),
    Cue.RELEASE_COMPENSATE: Release(1, 1, "s1", "s1.0", compensate=True),
    Cue.LEASE_EXPIRED: TimerFired(Lease("s1", "s1.0")),
    Cue.RESULT_RETRY: TimerFired(ResultRetry("s1", "s1.0")),
    Cue.EXECUTION_DONE: ExecutionDone("s1", "s1.0", 1, OK),
    Cue.RESULT_ACCEPTED: ResultAccepted(1, 1, "s1", "s1.0"),
}

# A Prepare is PREPARE_OK/REFUSED for a subtask the agent does not know, PREPARE otherwise.
PAIRS = [
    (h, c)
    for h, c in itertools.product(Held, Cue)
    if (c in (Cue.PREPARE_OK, Cue.PREPARE_REFUSED)) == (h is Held.ABSENT)
    or c not in (Cue.PREPARE_OK, Cue.PREPARE_REFUSED, Cue.PREPARE)
]


@pytest.mark.parametrize(("held", "cue"), PAIRS)
def test_every_state_and_cue(held: Held, cue: Cue) -> None:
    p = ready()
    if held is not Held.ABSENT:
        p.holdings["s1.0"] = Holding("s1", MEAL, held, outcome=OK)
    move = PARTICIPANT_TRANSITIONS[held].get(cue)
    if move is None:
        with pytest.raises(IllegalTransition):
            p.step(EVENTS[cue], NOW)
        return
    effects = p.step(EVENTS[cue], NOW)
    now_held = p.holdings["s1.0"].held if "s1.0" in p.holdings else Held.ABSENT
    assert now_held is move.to
    if move.ignored:  # an explicit ignore really does nothing
        assert effects == []


def test_ignore_is_only_ever_a_self_loop_and_every_action_is_a_participant_method() -> None:
    for held, row in PARTICIPANT_TRANSITIONS.items():
        for cue, move in row.items():
            if move.ignored:
                assert move.to is held, (held, cue)
            else:
                assert callable(getattr(Participant, move.action, None)), move.action
            if move.to is Held.ABSENT:  # dropping a subtask runs no action
                assert move.ignored, (held, cue)


def test_contradictions_are_rejected() -> None:
    # A yes vote binds and one decision is final: these pairs must never be allowed.
    for held in (Held.COMMITTED, Held.EXECUTED, Held.RELEASED, Held.COMPENSATED):
        assert Cue.ABORT not in PARTICIPANT_TRANSITIONS[held]
    for held in (Held.REFUSED, Held.ABORTED):
        assert Cue.COMMIT not in PARTICIPANT_TRANSITIONS[held]
    assert PARTICIPANT_TRANSITIONS[Held.PREPARED][Cue.LEASE_EXPIRED].to is Held.PREPARED


def test_a_yes_vote_reserves_first_and_carries_the_offers() -> None:
    p = ready()
    effects = p.step(EVENTS[Cue.PREPARE_OK], NOW)
    (vote,) = messages(effects, Vote)
    assert isinstance(vote, Vote) and vote.yes and vote.offers == (("kcal", 2.0),)
    assert p.reserved() == 1
    assert SetTimer(Lease("s1", "s1.0"), NOW + TIMING.lease) in effects


def test_no_room_means_a_no_vote_that_says_why() -> None:
    p = ready(capacity=1)
    p.step(EVENTS[Cue.PREPARE_OK], NOW)
    (vote,) = messages(p.step(Prepare(1, 1, "s2", Assignment("s2.0", "npa", "plan_meal", 1)), NOW), Vote)
    assert isinstance(vote, Vote) and not vote.yes and "0 of 1 capacity free" in vote.reason
    assert p.reserved() == 1


def test_a_repeated_prepare_gets_the_same_vote() -> None:
    p = ready()
    first = messages(p.step(EVENTS[Cue.PREPARE_OK], NOW), Vote)
    again = messages(p.step(EVENTS[Cue.PREPARE_OK], NOW), Vote)
    assert first == again and p.reserved() == 1


def test_lease_expiry_asks_and_keeps_the_reservation() -> None:
    p = ready()
    p.step(EVENTS[Cue.PREPARE_OK], NOW)
    effects = p.step(EVENTS[Cue.LEASE_EXPIRED], NOW + 1)
    assert messages(effects, QueryDecision) == [QueryDecision("npa", 1, "s1", "s1.0")]
    assert p.holdings["s1.0"].held is Held.PREPARED and p.reserved() == 1


def test_the_planted_bug_aborts_alone() -> None:
    p = ready(defects=frozenset({PARTICIPANT_UNILATERAL_ABORT}))
    p.step(EVENTS[Cue.PREPARE_OK], NOW)
    assert p.step(EVENTS[Cue.LEASE_EXPIRED], NOW + 1) == []
    assert p.holdings["s1.0"].held is Held.ABORTED and p.reserved() == 0


def test_commit_starts_once_the_result_answers_it_and_a_repeat_is_acknowledged() -> None:
    p = ready()
    p.step(EVENTS[Cue.PREPARE_OK], NOW)
    first = p.step(Commit(1, 1, "s1", "s1.0", (("kcal", 3.0),)), NOW)
    assert [e for e in first if isinstance(e, StartExecution)] == [StartExecution("s1", MEAL, (("kcal", 3.0),), 1)]
    assert CancelTimer(Lease("s1", "s1.0")) in first
    assert not messages(first, Ack)  # the result will answer it
    again = p.step(EVENTS[Cue.COMMIT], NOW)  # the coordinator heard nothing for a while: say so
    assert not [e for e in again if isinstance(e, StartExecution)]
    assert messages(again, Ack) == [Ack("npa", 1, "s1", "s1.0", "commit")]


def test_results_are_resent_until_accepted_then_pulled_slowly() -> None:
    p = ready()
    p.step(EVENTS[Cue.PREPARE_OK], NOW)
    p.step(EVENTS[Cue.COMMIT], NOW)
    effects = p.step(EVENTS[Cue.EXECUTION_DONE], NOW)
    assert messages(effects, Result) == [Result("npa", 1, "s1", "s1.0", OK)]
    # The MCA said nothing since (the commit at NOW) for a whole retry interval: again.
    assert messages(p.step(EVENTS[Cue.RESULT_RETRY], NOW + TIMING.retry), Result)
    assert p.step(EVENTS[Cue.RESULT_ACCEPTED], NOW) == [SetTimer(ResultRetry("s1", "s1.0"), NOW + TIMING.lease)]
    assert messages(p.step(EVENTS[Cue.RESULT_RETRY], NOW), QueryDecision)
    assert p.reserved() == 1  # held until the session's release


def test_release_with_compensation_undoes_and_releases() -> None:
    p = ready()
    p.step(EVENTS[Cue.PREPARE_OK], NOW)
    p.step(EVENTS[Cue.COMMIT], NOW)
    effects = p.step(EVENTS[Cue.RELEASE_COMPENSATE], NOW)
    assert StartCompensation("s1", "s1.0") in effects
    assert messages(effects, Ack) == [Ack("npa", 1, "s1", "s1.0", "release")]
    assert p.reserved() == 0
    # the execution ends after the compensation: undo again, report nothing
    late = p.step(EVENTS[Cue.EXECUTION_DONE], NOW)
    assert late == [StartCompensation("s1", "s1.0")]


def test_a_stale_commit_for_a_subtask_not_held_is_dropped_without_a_trace() -> None:
    p = ready()
    assert p.step(EVENTS[Cue.COMMIT], NOW) == []
    assert p.step(EVENTS[Cue.RESULT_ACCEPTED], NOW) == []
    assert "s1.0" not in p.holdings and p.reserved() == 0
    assert messages(p.step(EVENTS[Cue.PREPARE_OK], NOW), Vote)  # the subtask id is still usable


def test_fencing_ignores_a_deposed_leader_and_an_earlier_life() -> None:
    p = ready()
    p.step(Prepare(5, 1, "s9", Assignment("s9.0", "npa", "plan_meal", 1)), NOW)
    assert p.step(Prepare(4, 1, "s1", MEAL), NOW) == []  # older term
    assert p.step(Prepare(5, 2, "s1", MEAL), NOW) == []  # meant for another incarnation
    assert "s1.0" not in p.holdings


def test_a_restarted_agent_takes_no_work_until_it_knows_what_it_owns() -> None:
    p = Participant("npa", ("plan_meal",), 2, 3, TIMING)
    boot = p.step(Booted(), NOW)
    assert messages(boot, Register) == [Register("npa", ("plan_meal",), 2, 3)]
    assert p.step(Prepare(1, 3, "s2", Assignment("s2.0", "npa", "plan_meal", 1)), NOW) == []
    assert messages(p.step(TimerFired(RegisterRetry()), NOW + 1), Register)
    other = Assignment("s0.1", "npa", "plan_meal", 1)
    reply = RegisterReply(2, "npa", 3, committed=(("s1", MEAL, (("kcal", 1.0),)),), finished=(("s0", other),))
    effects = p.step(reply, NOW)
    assert StartExecution("s1", MEAL, (("kcal", 1.0),), 3) in effects
    assert p.holdings["s0.1"].held is Held.EXECUTED and p.reserved() == 2 and not p.recovering
    assert p.step(reply, NOW) == []  # a duplicate reply changes nothing


def test_releasing_a_running_execution_stops_it() -> None:
    p = ready()
    p.step(EVENTS[Cue.PREPARE_OK], NOW)
    p.step(EVENTS[Cue.COMMIT], NOW)
    effects = p.step(EVENTS[Cue.RELEASE], NOW)
    assert StopExecution("s1", "s1.0") in effects and p.reserved() == 0


def test_commitments_inherited_beyond_a_smaller_capacity_are_honoured_but_no_new_work() -> None:
    p = Participant("npa", ("plan_meal",), 1, 2, TIMING)
    p.step(Booted(), NOW)
    owned = tuple((f"s{i}", Assignment(f"s{i}.0", "npa", "plan_meal", 1), ()) for i in (1, 2))
    p.step(RegisterReply(1, "npa", 2, committed=owned), NOW)
    assert p.reserved() == 2 and p.limit == 2
    (vote,) = messages(p.step(Prepare(1, 2, "s3", Assignment("s3.0", "npa", "plan_meal", 1)), NOW), Vote)
    assert isinstance(vote, Vote) and not vote.yes
    p.step(Release(1, 2, "s1", "s1.0", compensate=False), NOW)
    assert p.limit == 1  # back under its own capacity


def test_the_agent_can_refuse_a_subtask_it_cannot_do() -> None:
    """The agent's own verdict (an infeasible request, say) is a no vote with its reason, and
    nothing is reserved; a resent Prepare gets the same answer."""
    p = Participant(
        "npa", ("plan_meal",), 1, 1, TIMING, lambda a: Refusal("vegan, nut-free and 250 g protein cannot meet")
    )
    p.step(Booted(), NOW)
    p.step(RegisterReply(1, "npa", 1), NOW)
    for _ in range(2):
        votes = messages(p.step(Prepare(1, 1, "s1", MEAL), NOW), Vote)
        assert len(votes) == 1 and isinstance(votes[0], Vote)
        assert not votes[0].yes and votes[0].reason == "vegan, nut-free and 250 g protein cannot meet"
        assert p.reserved() == 0
    # The capacity is still there for a subtask it accepts.
    accepting = ready()
    assert [v.yes for v in messages(accepting.step(Prepare(1, 1, "s2", MEAL), NOW), Vote)] == [True]  # type: ignore[attr-defined]


def test_the_running_reservation_total_equals_the_sum_of_what_is_held() -> None:
    p = ready(capacity=6)

    def held_demand() -> int:
        return sum(h.assignment.demand for h in p.holdings.values() if h.held in RESERVING)

    def sub(i: int, demand: int) -> Assignment:
        return Assignment(f"s{i}.0", "npa", "plan_meal", demand)

    steps: list[ParticipantEvent] = [
        Prepare(1, 1, "s1", sub(1, 2)),
        Prepare(1, 1, "s2", sub(2, 3)),
        Prepare(1, 1, "s3", sub(3, 2)),  # no room: refused, reserves nothing
        Prepare(1, 1, "s2", sub(2, 3)),  # a repeat: the same yes, no second reservation
        Commit(1, 1, "s1", "s1.0"),
        Abort(1, 1, "s2", "s2.0"),
        Abort(1, 1, "s3", "s3.0"),
        Prepare(1, 1, "s4", sub(4, 4)),
        ExecutionDone("s1", "s1.0", 1, OK),
        Release(1, 1, "s1", "s1.0", compensate=False),
        Commit(1, 1, "s4", "s4.0"),
        Release(1, 1, "s4", "s4.0", compensate=True),
        Commit(1, 1, "s9", "s9.0"),  # stale, for nothing held
        Prepare(1, 1, "s5", sub(5, 6)),
    ]
    totals = []
    for event in steps:
        p.step(event, NOW)
        assert p.reserved() == held_demand()
        totals.append(p.reserved())
    assert totals == [2, 5, 5, 5, 5, 2, 2, 6, 6, 4, 4, 0, 0, 6]
