"""The session machine: every state and every event either takes the table's transition or is
rejected with a typed error, and the machine's invariants hold."""

from __future__ import annotations

import itertools

import pytest

from protocol.errors import IllegalTransition
from protocol.ledger import SessionRecord
from protocol.model import SubtaskSpec, TaskSpec
from protocol.session_table import SESSION_TRANSITIONS, TERMINAL_STATES, SessionEvent, SessionState

TASK = TaskSpec("echo", (SubtaskSpec("echo"),), ("all_subtasks_ok",))

EXPECTED = {
    (SessionState.INITIALIZED, SessionEvent.PLANNED): SessionState.NEGOTIATING,
    (SessionState.INITIALIZED, SessionEvent.DECIDED_ABORT): SessionState.FAILED,
    (SessionState.INITIALIZED, SessionEvent.CANCELLED): SessionState.CANCELLED,
    (SessionState.NEGOTIATING, SessionEvent.DECIDED_COMMIT): SessionState.EXECUTING,
    (SessionState.NEGOTIATING, SessionEvent.DECIDED_ABORT): SessionState.FAILED,
    (SessionState.NEGOTIATING, SessionEvent.CANCELLED): SessionState.CANCELLED,
    (SessionState.EXECUTING, SessionEvent.FINISHED_OK): SessionState.COMPLETED,
    (SessionState.EXECUTING, SessionEvent.FINISHED_FAILED): SessionState.FAILED,
    (SessionState.EXECUTING, SessionEvent.CANCELLED): SessionState.CANCELLED,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(SessionState, SessionEvent)))
def test_every_state_and_event(state: SessionState, event: SessionEvent) -> None:
    record = SessionRecord("s1", "k", TASK, state=state)
    if (state, event) in EXPECTED:
        record.fire(event)
        assert record.state is EXPECTED[(state, event)]
    else:
        with pytest.raises(IllegalTransition):
            record.fire(event)
        assert record.state is state  # a rejected event changes nothing


def test_table_is_exactly_the_documented_one() -> None:
    table = {(s, e): n for s, moves in SESSION_TRANSITIONS.items() for e, n in moves.items()}
    assert table == EXPECTED


def test_terminal_states_have_no_way_out() -> None:
    assert {SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED} == TERMINAL_STATES


def test_every_non_terminal_state_can_fail_and_be_cancelled() -> None:
    for state in set(SessionState) - TERMINAL_STATES:
        reachable = set(SESSION_TRANSITIONS[state].values())
        assert SessionState.FAILED in reachable
        assert SessionState.CANCELLED in reachable


def test_execution_is_reachable_only_through_a_commit_decision() -> None:
    into_executing = [(s, e) for (s, e), n in EXPECTED.items() if n is SessionState.EXECUTING]
    assert into_executing == [(SessionState.NEGOTIATING, SessionEvent.DECIDED_COMMIT)]
