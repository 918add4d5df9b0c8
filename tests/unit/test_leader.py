"""The leader's boundary and recovery: bad input is answered with a typed status and appends
nothing; a repeated key gets its session back; recovery rebuilds every unsettled session and
is idempotent."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocol.effects import Append, Effect, Send
from protocol.entries import Accepted, Decided, Planned, Registered, Settled
from protocol.errors import InvalidMessage, StaleRegistration
from protocol.events import Applied, BecameLeader, LeaderEvent
from protocol.leader import Leader, check_register
from protocol.ledger import Ledger
from protocol.messages import (
    Ack,
    Cancel,
    CancelReply,
    Prepare,
    Register,
    RegisterReply,
    Release,
    Result,
    Submit,
    SubmitReply,
)
from protocol.model import Decision, Limits, Outcome, SubtaskSpec, TaskSpec
from protocol.session_table import SessionState
from tests.unit.helpers import OK, PLAN, TIMING, WELLNESS, ledger_with_agents, session_in

NOW = 1.0


def drive(leader: Leader, event: LeaderEvent) -> list[Send]:
    """Step the leader and apply its appends at once, as a log with no faults would."""
    sent: list[Send] = []
    queue: list[LeaderEvent] = [event]
    index = 0
    while queue:
        effects: list[Effect] = leader.step(queue.pop(0), NOW)
        for effect in effects:
            if isinstance(effect, Append):
                index += 1
                queue.append(Applied(index, effect.entry, leader.ledger.apply(effect.entry)))
            elif isinstance(effect, Send):
                sent.append(effect)
    return sent


def replies(sent: list[Send], kind: type) -> list[object]:
    return [s.message for s in sent if isinstance(s.message, kind)]


def test_bad_input_is_answered_with_the_field_and_appends_nothing() -> None:
    leader = Leader(1, ledger_with_agents(), TIMING)
    bad = TaskSpec("wellness", (SubtaskSpec("plan_meal", 0),), ("all_subtasks_ok",))
    effects = leader.step(Submit("c", "k1", bad), NOW)
    assert not [e for e in effects if isinstance(e, Append)]
    (reply,) = [e.message for e in effects if isinstance(e, Send)]
    assert isinstance(reply, SubmitReply)
    assert reply.status == "INVALID_ARGUMENT" and "subtasks[0].demand" in reply.error


def test_an_empty_key_is_rejected() -> None:
    effects = Leader(1, ledger_with_agents(), TIMING).step(Submit("c", "", WELLNESS), NOW)
    assert not [e for e in effects if isinstance(e, Append)]
    assert "idempotency_key" in effects[0].message.error  # type: ignore[union-attr]


def test_no_capable_agent_is_a_failed_precondition_before_anything_is_appended() -> None:
    leader = Leader(1, ledger_with_agents(), TIMING)
    task = TaskSpec("sleep", (SubtaskSpec("plan_sleep"),), ("all_subtasks_ok",))
    effects = leader.step(Submit("c", "k1", task), NOW)
    assert not [e for e in effects if isinstance(e, Append)]
    reply = effects[0].message  # type: ignore[union-attr]
    assert isinstance(reply, SubmitReply) and reply.status == "FAILED_PRECONDITION" and "plan_sleep" in reply.error


def test_submit_is_answered_after_the_append_applies_and_the_plan_follows() -> None:
    leader = Leader(1, ledger_with_agents(), TIMING)
    sent = drive(leader, Submit("c", "k1", WELLNESS))
    assert replies(sent, SubmitReply) == [SubmitReply("k1", "s1")]
    assert {s.to for s in sent if isinstance(s.message, Prepare)} == {"wpa", "npa"}
    assert leader.ledger.sessions["s1"].state is SessionState.NEGOTIATING


def test_a_repeated_key_returns_the_same_session_without_appending() -> None:
    leader = Leader(1, ledger_with_agents(), TIMING)
    drive(leader, Submit("c", "k1", WELLNESS))
    effects = leader.step(Submit("c", "k1", WELLNESS), NOW)
    assert effects == [Send("c", SubmitReply("k1", "s1"))]


def test_a_key_reused_for_another_task_is_refused() -> None:
    leader = Leader(1, ledger_with_agents(), TIMING)
    drive(leader, Submit("c", "k1", WELLNESS))
    other = TaskSpec("echo", (SubtaskSpec("plan_meal"),), ("all_subtasks_ok",))
    (reply,) = replies(drive(leader, Submit("c", "k1", other)), SubmitReply)
    assert isinstance(reply, SubmitReply) and reply.status == "FAILED_PRECONDITION" and "different task" in reply.error
    assert len(leader.ledger.sessions) == 1


def test_registration_is_logged_and_answered() -> None:
    leader = Leader(3, Ledger(), TIMING)
    sent = drive(leader, Register("npa", ("plan_meal",), 2, 1))
    assert replies(sent, RegisterReply) == [RegisterReply(3, "npa", 1)]
    assert leader.ledger.incarnation("npa") == 1


def test_cancel_answers_for_unknown_and_finished_sessions() -> None:
    leader = Leader(1, session_in("settled"), TIMING)
    (unknown,) = leader.step(Cancel("c", "s9"), NOW)
    assert isinstance(unknown, Send) and unknown.message == CancelReply(
        "s9", error="session 's9' does not exist", status="NOT_FOUND"
    )
    (done,) = leader.step(Cancel("c", "s1"), NOW)
    assert isinstance(done, Send) and isinstance(done.message, CancelReply)
    assert done.message.status == "FAILED_PRECONDITION" and "already completed" in done.message.error


def test_cancel_before_planning_aborts_and_answers_once_applied() -> None:
    ledger = session_in("accepted")
    leader = Leader(1, ledger, TIMING)
    sent = drive(leader, Cancel("c", "s1"))
    assert replies(sent, CancelReply) == [CancelReply("s1", state="cancelled")]
    assert ledger.sessions["s1"].state is SessionState.CANCELLED and ledger.sessions["s1"].settled


def test_a_session_decided_before_any_plan_is_settled() -> None:
    ledger = session_in("accepted")
    leader = Leader(1, ledger, TIMING)
    drive(leader, Applied(9, Decided("s1", Decision.ABORT, "x"), ledger.apply(Decided("s1", Decision.ABORT, "x"))))
    assert ledger.sessions["s1"].settled


def _recovered(ledger: Ledger) -> tuple[list[str], list[Effect]]:
    leader = Leader(4, ledger, TIMING)
    effects = leader.step(BecameLeader(), NOW)
    return sorted(leader.coordinators), effects


def test_recovery_takes_up_every_unsettled_session_where_it_stands() -> None:
    ledger = ledger_with_agents()
    for key in ("k1", "k2", "k3", "k4", "k5"):
        ledger.apply(Accepted(key, WELLNESS))
    for sid in ("s2", "s3", "s4", "s5"):
        ledger.apply(Planned(sid, tuple(replace(a, subtask_id=f"{sid}.{i}") for i, a in enumerate(PLAN))))
    ledger.apply(Decided("s3", Decision.COMMIT, incarnations=(("wpa", 1), ("npa", 1))))
    ledger.apply(Decided("s4", Decision.ABORT, "no"))
    ledger.apply(Decided("s5", Decision.ABORT, "no"))
    ledger.apply(Settled("s5"))
    coordinators, effects = _recovered(ledger)
    assert coordinators == ["s2", "s3", "s4"]  # s1 waits for room, s5 is settled
    assert [e for e in effects if isinstance(e, Append)] == []  # npa is full: s1 is queued
    kinds = {(e.to, type(e.message).__name__, e.message.session_id) for e in effects if isinstance(e, Send)}  # type: ignore[union-attr]
    assert ("wpa", "Prepare", "s2") in kinds and ("npa", "Commit", "s3") in kinds and ("wpa", "Abort", "s4") in kinds


def test_recovery_is_idempotent() -> None:
    ledger = session_in("failed")
    ledger.apply(Accepted("k2", WELLNESS))
    first = _recovered(ledger)
    second = _recovered(ledger)
    assert first == second
    assert any(isinstance(e, Send) and isinstance(e.message, Release) for e in first[1])


def test_a_restart_reaches_the_coordinators_of_that_agent() -> None:
    ledger = session_in("planned")
    leader = Leader(2, ledger, TIMING)
    leader.step(BecameLeader(), NOW)
    sent = drive(leader, Register("npa", ("plan_meal",), 1, 2))
    prepares = [s for s in sent if isinstance(s.message, Prepare)]
    assert [(s.to, s.message.incarnation) for s in prepares] == [("npa", 2)]  # type: ignore[union-attr]


def test_a_session_waits_for_room_and_is_planned_when_capacity_frees() -> None:
    ledger = ledger_with_agents()  # npa has capacity 1
    leader = Leader(1, ledger, TIMING)
    leader.step(BecameLeader(), NOW)
    drive(leader, Submit("c", "k1", WELLNESS))
    sent = drive(leader, Submit("c", "k2", WELLNESS))
    assert replies(sent, SubmitReply) == [SubmitReply("k2", "s2")]
    waiting_state = ledger.sessions["s2"].state
    assert waiting_state is SessionState.INITIALIZED  # waiting, not failed
    decided = Decided("s1", Decision.ABORT, "test")
    drive(leader, Applied(90, decided, ledger.apply(decided)))
    for sub in ("s1.0", "s1.1"):  # both participants acknowledge the abort: s1 settles
        drive(leader, Ack("wpa" if sub == "s1.0" else "npa", 1, "s1", sub, "abort"))
    assert ledger.sessions["s1"].settled
    assert ledger.sessions["s2"].state is SessionState.NEGOTIATING


def test_a_demand_no_agent_can_ever_meet_is_refused_at_submit() -> None:
    leader = Leader(1, ledger_with_agents(), TIMING)
    task = TaskSpec("big", (SubtaskSpec("plan_meal", 5),), ("all_subtasks_ok",))
    (reply,) = replies(drive(leader, Submit("c", "k", task)), SubmitReply)
    assert isinstance(reply, SubmitReply) and reply.status == "FAILED_PRECONDITION"
    assert "needs a capacity of 5, the largest is 1" in reply.error


def test_two_tasks_racing_under_one_key_get_one_session_and_one_refusal() -> None:
    leader = Leader(1, ledger_with_agents(), TIMING)
    other = TaskSpec("echo", (SubtaskSpec("plan_meal"),), ("all_subtasks_ok",))
    first = leader.step(Submit("c1", "k", WELLNESS), NOW)
    second = leader.step(Submit("c2", "k", other), NOW)  # before the first is applied
    sent: list[Send] = []
    for append in [e for e in first + second if isinstance(e, Append)]:
        sent += drive(leader, Applied(1, append.entry, leader.ledger.apply(append.entry)))
    answers = {s.to: s.message for s in sent if isinstance(s.message, SubmitReply)}
    assert answers["c1"] == SubmitReply("k", "s1")
    assert answers["c2"].status == "FAILED_PRECONDITION" and "different task" in answers["c2"].error


def test_past_the_bound_a_submit_is_refused_as_overload_and_appends_nothing() -> None:
    leader = Leader(1, ledger_with_agents(), TIMING, limits=Limits(sessions_in_flight_max=2, retry_after=0.2))
    assert [type(e) for e in leader.step(Submit("c1", "k1", WELLNESS), NOW)] == [Append]
    assert [type(e) for e in leader.step(Submit("c2", "k2", WELLNESS), NOW)] == [Append]  # not yet applied: counts
    effects = leader.step(Submit("c3", "k3", WELLNESS), NOW)
    (reply,) = replies([e for e in effects if isinstance(e, Send)], SubmitReply)
    assert not [e for e in effects if isinstance(e, Append)]
    assert isinstance(reply, SubmitReply) and reply.status == "RESOURCE_EXHAUSTED"
    assert "retry with the same idempotency key" in reply.error and "200 ms" in reply.error
    # A repeated key of an accepted session is still answered: it adds nothing in flight.
    drive(leader, Submit("c1", "k1", WELLNESS))
    (again,) = replies(drive(leader, Submit("c4", "k1", WELLNESS)), SubmitReply)
    assert isinstance(again, SubmitReply) and again.status == "OK" and again.session_id == "s1"


def test_the_bound_frees_up_as_sessions_settle() -> None:
    ledger = session_in("settled")
    leader = Leader(1, ledger, TIMING, limits=Limits(sessions_in_flight_max=1))
    assert ledger.in_flight == 0 and ledger.load() == {}
    (reply,) = replies(drive(leader, Submit("c", "k2", WELLNESS)), SubmitReply)
    assert isinstance(reply, SubmitReply) and reply.status == "OK"
    assert ledger.in_flight == 1 and sum(ledger.load().values()) == 2  # planned: both agents owe 1


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("127.0.0.1:5000", True),
        ("[::1]:80", True),
        ("agents.example:443", True),
        ("", True),  # the simulator's agents have no address
        ("unix:/var/run/docker.sock", False),  # a gRPC target the leader would dial with its key
        ("dns:///example.com:443", False),
        ("127.0.0.1:0", False),
        ("127.0.0.1:70000", False),
        ("host", False),
    ],
)
def test_a_registered_address_is_host_and_port_only(address: str, ok: bool) -> None:
    message = Register("npa", ("plan_meal",), 1, 1, address)
    if ok:
        check_register(message)
    else:
        with pytest.raises(InvalidMessage, match="address"):
            check_register(message)


def test_a_registration_of_an_earlier_life_is_refused_before_the_log() -> None:
    ledger = Ledger()
    ledger.apply(Registered("npa", ("plan_meal",), 1, 5))
    with pytest.raises(StaleRegistration, match="earlier life"):
        check_register(Register("npa", ("plan_meal",), 1, 4), ledger)
    check_register(Register("npa", ("plan_meal",), 1, 5), ledger)  # the same life again: a retry
    for incarnation in (0, -1, 2**63):
        with pytest.raises(InvalidMessage, match="incarnation"):
            check_register(Register("npa", ("plan_meal",), 1, incarnation), ledger)
    assert Leader(1, ledger, TIMING).step(Register("npa", ("plan_meal",), 1, 4), NOW) == []  # nothing appended


def _appended(effects: list[Effect]) -> list[object]:
    return [e.entry for e in effects if isinstance(e, Append)]


def test_a_task_that_fits_at_submit_is_planned_in_its_accepted_record() -> None:
    leader = Leader(1, ledger_with_agents(), TIMING)
    (accepted,) = _appended(leader.step(Submit("c", "k1", WELLNESS), NOW))
    assert accepted == Accepted("k1", WELLNESS, "", ("wpa", "npa"))
    result = leader.ledger.apply(accepted)
    effects = leader.step(Applied(1, accepted, result), NOW)
    record = leader.ledger.sessions["s1"]
    assert record.assignments == PLAN and record.state is SessionState.NEGOTIATING  # no Planned record
    assert not [e for e in _appended(effects) if isinstance(e, Planned)]
    assert {e.to for e in effects if isinstance(e, Send) and isinstance(e.message, Prepare)} == {"wpa", "npa"}


def test_a_plan_at_submit_reserves_room_until_it_applies() -> None:
    leader = Leader(1, ledger_with_agents(), TIMING)  # npa has room for one
    (first,) = _appended(leader.step(Submit("c", "k1", WELLNESS), NOW))
    (second,) = _appended(leader.step(Submit("c", "k2", WELLNESS), NOW))  # before the first applies
    assert isinstance(first, Accepted) and first.agents == ("wpa", "npa")
    assert isinstance(second, Accepted) and second.agents == ()  # waits in the queue once accepted
    leader.step(Applied(1, first, leader.ledger.apply(first)), NOW)
    leader.step(Applied(2, second, leader.ledger.apply(second)), NOW)
    assert leader.ledger.sessions["s2"].state is SessionState.INITIALIZED
    # and a third task, though it would fit later, does not overtake the one waiting
    leader.ledger.apply(Registered("npa", ("plan_meal",), 5, 2))
    (third,) = _appended(leader.step(Submit("c", "k3", WELLNESS), NOW))
    assert isinstance(third, Accepted) and third.agents == ()


def test_a_plan_at_submit_that_went_stale_waits_and_is_planned_again() -> None:
    ledger = ledger_with_agents()
    ledger.apply(Registered("other", ("plan_meal",), 1, 1))
    leader = Leader(1, ledger, TIMING)
    (accepted,) = _appended(leader.step(Submit("c", "k1", WELLNESS), NOW))
    assert isinstance(accepted, Accepted) and accepted.agents == ("wpa", "npa")
    ledger.apply(Registered("npa", ("plan_workout",), 1, 2))  # npa lost the capability meanwhile
    effects = leader.step(Applied(1, accepted, ledger.apply(accepted)), NOW)
    assert ledger.sessions["s1"].state is SessionState.INITIALIZED
    (planned,) = _appended(effects)
    assert isinstance(planned, Planned) and [a.agent_id for a in planned.assignments] == ["wpa", "other"]


def _apply(leader: Leader, effects: list[Effect], index: int) -> list[Effect]:
    """Apply the appends among ``effects`` (as a log with no faults would), one by one, and
    return everything the leader did, those effects included."""
    done = list(effects)
    for effect in effects:
        if isinstance(effect, Append):
            applied = Applied(index, effect.entry, leader.ledger.apply(effect.entry))
            done += _apply(leader, leader.step(applied, NOW), index + 1)
    return done


def _lazy(effects: list[Effect]) -> list[tuple[str, bool]]:
    """(what, lazy) for the appends and releases among ``effects``."""
    return [
        (type(e.entry).__name__ if isinstance(e, Append) else type(e.message).__name__, e.lazy)
        for e in effects
        if isinstance(e, Append) or (isinstance(e, Send) and isinstance(e.message, Release))
    ]


def test_what_nobody_waits_for_is_lazy_and_what_frees_room_a_session_waits_for_is_not() -> None:
    """A result while the session's other one is still to come, a release after success and
    ``Settled`` may wait for company (``protocol.batching``); the last result may not, and
    nothing that frees an agent's room may while a session waits in the admission queue."""
    for waiting in (False, True):
        ledger = session_in("committed")  # s1 on wpa and npa (capacity 1: full)
        leader = Leader(2, ledger, TIMING)
        leader.step(BecameLeader(), NOW)
        if waiting:  # s2 waits for npa's room
            drive(leader, Submit("c", "k2", WELLNESS))
            assert ledger.sessions["s2"].state is SessionState.INITIALIZED
        first = leader.step(Result("wpa", 1, "s1", "s1.0", OK), NOW)
        assert _lazy(first) == [("Finished", True)]  # s1.1's result is still to come
        last = leader.step(Result("npa", 1, "s1", "s1.1", OK), NOW)
        assert _lazy(last) == [("Finished", False)]
        ended = _apply(leader, first + last, 100)
        assert ledger.sessions["s1"].state is SessionState.COMPLETED
        assert _lazy(ended)[2:] == [("Release", not waiting)] * 2
        acks = [leader.step(Ack(a, 1, "s1", sub, "release"), NOW) for a, sub in (("wpa", "s1.0"), ("npa", "s1.1"))]
        assert _lazy(acks[0]) == [] and _lazy(acks[1]) == [("Settled", not waiting)]


def test_a_failed_result_and_a_compensating_release_go_at_once() -> None:
    ledger = session_in("committed")
    leader = Leader(2, ledger, TIMING)
    leader.step(BecameLeader(), NOW)
    failed = leader.step(Result("wpa", 1, "s1", "s1.0", Outcome(False, error="boom")), NOW)
    assert _lazy(failed) == [("Finished", False)]  # it ends the session: nothing to wait for
    ended = _apply(leader, failed, 100)
    assert ledger.sessions["s1"].state is SessionState.FAILED
    assert [lazy for what, lazy in _lazy(ended) if what == "Release"] == [False, False]
