"""The admission queue plans what the rule says: the waiting sessions, oldest first, each one
that fits now planned, one that never can aborted, and one that does not fit blocking its task
shape for the rest of the drain (a later, smaller session may still pass it). The queue keeps
one FIFO per shape and visits their heads instead of scanning every waiting session
(``protocol.planner``); hypothesis compares it with the rule written out as that scan, on
random agents, tasks, load and cancellations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.effects import Append, Effect
from protocol.entries import Accepted, Decided, Planned, Registered
from protocol.errors import NoCapableAgent
from protocol.ledger import Ledger
from protocol.model import Decision, SubtaskSpec, TaskSpec
from protocol.planner import AdmissionQueue, Shape, check_capable, plan, shape_of
from protocol.session_table import SessionState

CAPABILITIES = ("a", "b", "c")
subtasks = st.tuples(st.sampled_from((*CAPABILITIES, "nobody")), st.integers(1, 4))
tasks = st.lists(subtasks, min_size=1, max_size=3).map(
    lambda subs: TaskSpec("t", tuple(SubtaskSpec(cap, demand) for cap, demand in subs), ("all_subtasks_ok",))
)
agents = st.lists(
    st.tuples(st.sets(st.sampled_from(CAPABILITIES), min_size=1), st.integers(1, 6)), min_size=1, max_size=4
)


def sessions_of(effects: list[Effect]) -> list[str]:
    """The sessions a drain planned or aborted, in order."""
    return [e.entry.session_id for e in effects if isinstance(e, Append) and isinstance(e.entry, (Planned, Decided))]


def plain_rule(waiting: list[str], ledger: Ledger, load: dict[str, int]) -> list[Effect]:
    """Every waiting session, oldest first: plan it if it fits, abort it if it never can, and
    once one does not fit, skip the later ones of its shape."""
    effects: list[Effect] = []
    blocked: set[Shape] = set()
    for session_id in waiting:
        record = ledger.sessions[session_id]
        if record.state is not SessionState.INITIALIZED or shape_of(record.task) in blocked:
            continue
        try:
            check_capable(record.task, ledger)
            planned = plan(record, ledger, load)
        except NoCapableAgent as exc:
            effects.append(Append(Decided(session_id, Decision.ABORT, reason=str(exc))))
            continue
        if planned is None:
            blocked.add(shape_of(record.task))
        else:
            effects.append(Append(Planned(session_id, planned)))
    return effects


@settings(max_examples=300, deadline=None)
@given(agents=agents, queued=st.lists(st.tuples(tasks, st.booleans()), max_size=30), busy=st.integers(0, 8))
def test_a_drain_plans_what_the_plain_rule_plans(
    agents: list[tuple[set[str], int]], queued: list[tuple[TaskSpec, bool]], busy: int
) -> None:
    ledger = Ledger()
    for i, (capabilities, capacity) in enumerate(agents):
        ledger.apply(Registered(f"agent-{i}", tuple(sorted(capabilities)), capacity, 1))
    queue = AdmissionQueue()
    waiting: list[str] = []
    for i, (task, cancelled) in enumerate(queued):
        session_id = ledger.apply(Accepted(f"k{i}", task)).session_id
        queue.add(ledger.sessions[session_id])
        queue.add(ledger.sessions[session_id])  # queued again: keeps its place
        waiting.append(session_id)
        if cancelled:  # decided while it waited (a cancel): the queue skips it
            ledger.apply(Decided(session_id, Decision.ABORT, "cancelled"))
    # Some room already taken by plans on their way (a task planned at submit).
    queue.at_submit("early", TaskSpec("t", (SubtaskSpec("a", busy),), ("all_subtasks_ok",)), ledger)
    expected = plain_rule(waiting, ledger, queue._load(ledger))
    assert queue.drain(ledger) == expected
    decided = set(sessions_of(expected))
    unplanned = {sid for sid in waiting if ledger.sessions[sid].state is SessionState.INITIALIZED} - decided
    assert {sid for sid in queue._shape if ledger.sessions[sid].state is SessionState.INITIALIZED} == unplanned
    # A second drain goes on from there, by the same rule.
    waiting = [sid for sid in waiting if sid in unplanned]
    expected = plain_rule(waiting, ledger, queue._load(ledger))
    assert queue.drain(ledger) == expected


def test_a_blocked_shape_lets_a_later_smaller_session_through_and_keeps_its_place() -> None:
    ledger = Ledger()
    ledger.apply(Registered("w", ("a",), 3, 1))
    big = TaskSpec("t", (SubtaskSpec("a", 2),), ("all_subtasks_ok",))
    small = TaskSpec("t", (SubtaskSpec("a", 1),), ("all_subtasks_ok",))
    queue = AdmissionQueue()
    ids = [ledger.apply(Accepted(f"k{i}", task)).session_id for i, task in enumerate((big, big, small, small))]
    for session_id in ids:
        queue.add(ledger.sessions[session_id])
    effects = queue.drain(ledger)
    assert sessions_of(effects) == [ids[0], ids[2]]
    assert len(queue) == 2  # the second big one and the second small one wait, in order
    assert queue.at_submit("k9", small, ledger) == ()  # others wait: a new task queues behind them
