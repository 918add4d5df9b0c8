"""The ledger, the decision log's state machine: exactly-once submit, one decision per
session, one result per subtask, stale votes voided, and bugs rejected loudly."""

from __future__ import annotations

import pytest

from protocol.defects import NO_IDEMPOTENCY
from protocol.entries import Accepted, Decided, Finished, Negotiated, Planned, Registered, Settled
from protocol.errors import InvariantViolation
from protocol.ledger import Ledger
from protocol.model import Assignment, Decision, Outcome, SubtaskSpec, TaskSpec
from protocol.session_table import SessionState
from tests.unit.helpers import OK, PLAN, WELLNESS, ledger_with_agents, session_in


def test_a_repeated_key_returns_the_first_session() -> None:
    ledger = ledger_with_agents()
    first = ledger.apply(Accepted("k1", WELLNESS))
    again = ledger.apply(Accepted("k1", WELLNESS))
    assert first.created and first.session_id == "s1"
    assert not again.created and not again.applied and again.session_id == "s1"
    assert len(ledger.sessions) == 1


def test_the_no_idempotency_defect_really_breaks_it() -> None:
    ledger = Ledger(frozenset({NO_IDEMPOTENCY}))
    ledger.apply(Registered("wpa", ("plan_workout",), 1, 1))
    ids = {ledger.apply(Accepted("k1", WELLNESS)).session_id for _ in range(2)}
    assert len(ids) == 2


def test_an_invalid_task_in_the_log_is_a_bug() -> None:
    with pytest.raises(InvariantViolation):
        ledger_with_agents().apply(Accepted("k", TaskSpec("t", (), ("all_subtasks_ok",))))


def test_plan_moves_to_negotiating_once() -> None:
    ledger = session_in("accepted")
    assert ledger.apply(Planned("s1", PLAN)).applied
    again = ledger.apply(Planned("s1", (PLAN[1], PLAN[0])))
    assert not again.applied
    record = ledger.sessions["s1"]
    assert record.state is SessionState.NEGOTIATING and record.assignments == PLAN


@pytest.mark.parametrize(
    "plan",
    [
        (),  # no participant at all
        (PLAN[0],),  # a subtask left out
        (PLAN[0], Assignment("s1.0", "npa", "plan_meal", 1)),  # a repeated subtask id
    ],
)
def test_a_plan_that_breaks_the_session_invariants_is_a_bug(plan: tuple[Assignment, ...]) -> None:
    ledger = session_in("accepted")
    with pytest.raises(InvariantViolation):
        ledger.apply(Planned("s1", plan))


@pytest.mark.parametrize(
    "plan",
    [
        (PLAN[0], Assignment("s1.1", "wpa", "plan_meal", 1)),  # an agent without the capability
        (PLAN[0], Assignment("s1.1", "ghost", "plan_meal", 1)),  # an unregistered agent
    ],
)
def test_a_plan_gone_stale_is_not_applied(plan: tuple[Assignment, ...]) -> None:
    # e.g. the agent re-registered without the capability after the leader planned: every
    # replica reaches the same verdict, and the session stays initialized to be planned again.
    ledger = session_in("accepted")
    assert not ledger.apply(Planned("s1", plan)).applied
    assert ledger.sessions["s1"].state is SessionState.INITIALIZED


def test_the_first_decision_wins() -> None:
    ledger = session_in("planned")
    first = ledger.apply(Decided("s1", Decision.ABORT, "no vote"))
    second = ledger.apply(Decided("s1", Decision.COMMIT, incarnations=(("wpa", 1), ("npa", 1))))
    assert first.applied and first.decision is Decision.ABORT
    assert not second.applied and second.decision is Decision.ABORT
    assert ledger.sessions["s1"].state is SessionState.FAILED


def test_a_commit_relying_on_a_vote_from_an_earlier_life_becomes_an_abort() -> None:
    ledger = session_in("planned")
    ledger.apply(Registered("npa", ("plan_meal",), 1, 2))  # npa restarted after voting
    result = ledger.apply(Decided("s1", Decision.COMMIT, incarnations=(("wpa", 1), ("npa", 1))))
    assert result.decision is Decision.ABORT
    assert "npa restarted" in ledger.sessions["s1"].reason


def test_a_commit_without_every_vote_is_a_bug() -> None:
    ledger = session_in("planned")
    with pytest.raises(InvariantViolation):
        ledger.apply(Decided("s1", Decision.COMMIT, incarnations=(("wpa", 1),)))


def test_a_commit_before_planning_is_a_bug() -> None:
    ledger = session_in("accepted")
    with pytest.raises(InvariantViolation):
        ledger.apply(Decided("s1", Decision.COMMIT))


def test_cancel_before_execution_is_an_abort_that_says_cancelled() -> None:
    ledger = session_in("planned")
    ledger.apply(Decided("s1", Decision.ABORT, "cancelled by request", cancelled=True))
    assert ledger.sessions["s1"].state is SessionState.CANCELLED
    assert ledger.sessions["s1"].decision is Decision.ABORT


def test_cancel_during_execution() -> None:
    ledger = session_in("committed")
    assert ledger.apply(Finished("s1", "", Outcome(False), cancelled=True)).applied
    assert ledger.sessions["s1"].state is SessionState.CANCELLED


def test_negotiated_parameters_are_recorded_once_and_only_before_the_decision() -> None:
    ledger = session_in("planned")
    assert ledger.apply(Negotiated("s1", (("weekly_kcal", 2100.0),))).applied
    assert not ledger.apply(Negotiated("s1", (("weekly_kcal", 9.0),))).applied
    assert ledger.sessions["s1"].parameters == (("weekly_kcal", 2100.0),)
    ledger.apply(Decided("s1", Decision.ABORT))
    assert not session_in("committed").apply(Negotiated("s1", ())).applied


def test_the_first_result_per_subtask_wins_and_all_ok_completes() -> None:
    ledger = session_in("committed")
    assert ledger.apply(Finished("s1", "s1.0", OK)).applied
    assert not ledger.apply(Finished("s1", "s1.0", Outcome(False, error="late"))).applied
    record = ledger.sessions["s1"]
    states = [record.state]
    ledger.apply(Finished("s1", "s1.1", OK))
    states.append(record.state)
    assert states == [SessionState.EXECUTING, SessionState.COMPLETED]


def test_a_failed_subtask_fails_the_session_and_later_results_are_still_recorded_once() -> None:
    ledger = session_in("failed")
    record = ledger.sessions["s1"]
    assert record.state is SessionState.FAILED and "boom" in record.reason
    assert ledger.apply(Finished("s1", "s1.1", OK)).applied
    assert not ledger.apply(Finished("s1", "s1.1", OK)).applied
    assert record.state is SessionState.FAILED


def test_unmet_success_criteria_fail_the_session() -> None:
    ledger = ledger_with_agents()
    task = TaskSpec("echo", (SubtaskSpec("plan_meal"),), ("outputs_present",))
    ledger.apply(Accepted("k", task))
    ledger.apply(Planned("s1", (Assignment("s1.0", "npa", "plan_meal", 1),)))
    ledger.apply(Decided("s1", Decision.COMMIT, incarnations=(("npa", 1),)))
    ledger.apply(Finished("s1", "s1.0", Outcome(True)))  # ok, but no output
    record = ledger.sessions["s1"]
    assert record.state is SessionState.FAILED and "outputs_present" in record.reason


def test_a_result_for_an_uncommitted_session_is_a_bug() -> None:
    with pytest.raises(InvariantViolation):
        session_in("planned").apply(Finished("s1", "s1.0", OK))


def test_settle_only_terminal_sessions_and_only_once() -> None:
    with pytest.raises(InvariantViolation):
        session_in("committed").apply(Settled("s1"))
    ledger = session_in("completed")
    assert ledger.apply(Settled("s1")).applied
    assert not ledger.apply(Settled("s1")).applied
    assert list(ledger.active_sessions()) == []


def test_registration_tells_a_restarted_agent_what_it_still_owns() -> None:
    ledger = session_in("committed")
    ledger.apply(Finished("s1", "s1.0", OK))
    wpa = ledger.apply(Registered("wpa", ("plan_workout",), 2, 2))
    npa = ledger.apply(Registered("npa", ("plan_meal",), 1, 2))
    assert wpa.restarted and wpa.finished == (("s1", PLAN[0]),) and wpa.committed == ()
    assert npa.committed == (("s1", PLAN[1], ()),) and npa.finished == ()


def test_a_delayed_registration_of_an_earlier_life_is_ignored() -> None:
    ledger = ledger_with_agents()
    ledger.apply(Registered("npa", ("plan_meal",), 1, 3))
    assert not ledger.apply(Registered("npa", ("plan_meal",), 1, 2)).applied
    assert ledger.incarnation("npa") == 3


def test_an_entry_for_an_unknown_session_is_a_bug() -> None:
    with pytest.raises(InvariantViolation):
        ledger_with_agents().apply(Settled("s9"))


def test_load_counts_unsettled_sessions_only() -> None:
    assert session_in("committed").load() == {"wpa": 1, "npa": 1}
    assert session_in("settled").load() == {}


def test_every_applied_step_of_a_session_is_an_event_with_its_state() -> None:
    ledger = session_in("settled")
    events = ledger.sessions["s1"].events
    assert [e.kind for e in events] == ["accepted", "planned", "decided", "finished", "finished", "settled"]
    assert [e.state for e in events] == [
        "initialized",
        "negotiating",
        "executing",
        "executing",
        "completed",
        "completed",
    ]
    assert events[1].detail == "s1.0->wpa, s1.1->npa"
    ledger.apply(Settled("s1"))  # a repeat adds nothing
    assert len(events) == 6


def settle_one(ledger: Ledger, key: str) -> str:
    """Accept, abort and settle one session; its id."""
    sid = ledger.apply(Accepted(key, WELLNESS)).session_id
    ledger.apply(Decided(sid, Decision.ABORT, "no room"))
    ledger.apply(Settled(sid))
    return sid


def test_keys_are_scoped_by_owner() -> None:
    ledger = Ledger()
    mine = ledger.apply(Accepted("job-1", WELLNESS, owner="client:alice"))
    theirs = ledger.apply(Accepted("job-1", WELLNESS, owner="client:mallory"))
    again = ledger.apply(Accepted("job-1", WELLNESS, owner="client:alice"))
    assert mine.created and theirs.created and mine.session_id != theirs.session_id
    assert not again.applied and again.session_id == mine.session_id
    record = ledger.session(mine.session_id)
    assert record is not None and record.owner == "client:alice" and record.idempotency_key == "job-1"


def test_settled_sessions_retire_past_the_window_with_their_keys() -> None:
    ledger = Ledger(settled_kept=2)
    ledger.apply(Registered("wpa", ("plan_workout",), 2, 1))
    live = ledger.apply(Accepted("live", WELLNESS)).session_id
    sids = [settle_one(ledger, f"k{i}") for i in range(4)]
    assert [ledger.retired(s) for s in sids] == [True, True, False, False]
    assert ledger.session(sids[0]) is None and "k0" not in ledger.by_key and ledger.retired_total == 2
    assert ledger.session(live) is not None and not ledger.retired(live)  # unsettled: never retired
    assert not ledger.retired("s999") and not ledger.retired("x1")  # never issued
    # Ids a caller makes up that only look like ours: digits to isdigit() but not to int(), or
    # past int()'s 4,300-digit limit (found by fuzzing Get: they were INTERNAL).
    for odd in ("s²", "s፩", "s" + "1" * 5000, "s", "s-1", "s+1", "s 1"):
        assert not ledger.retired(odd)
    # A late repeat for a retired session changes nothing; a key past its window is a new task.
    assert not ledger.apply(Settled(sids[0])).applied
    again = ledger.apply(Accepted("k0", WELLNESS))
    assert again.created and again.session_id == "s6"  # ids are never reused


def test_retirement_is_the_same_on_every_replica() -> None:
    replicas = [Ledger(settled_kept=3) for _ in range(2)]
    for ledger in replicas:
        for i in range(10):
            settle_one(ledger, f"k{i}")
    assert sorted(replicas[0].sessions) == sorted(replicas[1].sessions)
    assert sorted(replicas[0].sessions) == ["s10", "s8", "s9"]


def test_a_snapshot_from_before_retention_restores_and_goes_on() -> None:
    import pickle

    old = ledger_with_agents()
    old.apply(Accepted("k1", WELLNESS))
    old.apply(Planned("s1", PLAN))
    settle_one(old, "k2")
    state = dict(old.__dict__)
    for name in ("_issued", "_load", "_kept_settled", "_kept", "retired_total"):
        del state[name]  # what an older version pickled
    restored = Ledger.__new__(Ledger)
    restored.__setstate__(pickle.loads(pickle.dumps(state)))
    assert restored.load() == {"wpa": 1, "npa": 1} and restored.in_flight == 1
    assert restored.apply(Accepted("k3", WELLNESS)).session_id == "s3"  # ids go on, never reused
    assert not restored.retired("s2") and restored.retired("s9") is False
