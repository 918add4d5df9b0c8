"""Named scenarios (STYLE.md item 6): the nastiest interleavings, scripted at exact protocol
points on the simulator, each checked by every checker plus its own expectations."""

from __future__ import annotations

from collections.abc import Callable

from protocol.effects import Append, Effect, Send, StartExecution
from protocol.entries import Decided, Registered
from protocol.messages import (
    Commit,
    Message,
    Prepare,
    QueryDecision,
    Register,
    RegisterReply,
    Release,
    Result,
    SubmitReply,
    Vote,
)
from protocol.model import Decision, Outcome, SubtaskSpec, TaskSpec, Timing
from protocol.session_table import SessionState
from sim.faults import FaultPlan
from sim.options import SimOptions
from sim.world import World

# Scenarios script exact interleavings, so they pin the default timing instead of drawing it.
FIXED = SimOptions(timing=Timing())
WELLNESS = TaskSpec("wellness", (SubtaskSpec("plan_workout"), SubtaskSpec("plan_meal")), ("all_subtasks_ok",))
Hook = Callable[[World, str, list[Effect]], bool]


def once(when: Callable[[str, list[Effect]], bool], act: Callable[[World, str, list[Effect]], bool]) -> Hook:
    """A ``before_perform`` hook that acts the first time ``when`` holds."""
    fired: list[bool] = []

    def hook(world: World, node: str, effects: list[Effect]) -> bool:
        if fired or not when(node, effects):
            return False
        fired.append(True)
        return act(world, node, effects)

    return hook


def sends(effects: list[Effect], kind: type) -> bool:
    return any(isinstance(e, Send) and isinstance(e.message, kind) for e in effects)


def is_leader(world: World, node: str) -> bool:
    return node == world.log.leader


def run(world: World) -> World:
    world.run()  # raises Violation if any checker fails
    return world


def only_session(world: World) -> SessionState:
    (record,) = world.ledger.sessions.values()
    return record.state


def test_leader_crashes_after_the_commit_is_applied_before_it_is_sent() -> None:
    world = World(FaultPlan(1), FIXED, workload=[(WELLNESS, 0.3)])

    def crash_instead(w: World, node: str, effects: list[Effect]) -> bool:
        w.crash("leader", restart_after=0.2)
        return True  # the Commit messages never leave

    world.before_perform = once(lambda n, fx: is_leader(world, n) and sends(fx, Commit), crash_instead)
    run(world)
    assert only_session(world) is SessionState.COMPLETED
    assert world.stats["elections"] == 2 and world.stats["executions"] == 2


def _crash_after_appending_commit(keep: int) -> World:
    world = World(FaultPlan(2), FIXED, workload=[(WELLNESS, 0.3)])

    def appends_commit(node: str, effects: list[Effect]) -> bool:
        return is_leader(world, node) and any(
            isinstance(e, Append) and isinstance(e.entry, Decided) and e.entry.decision is Decision.COMMIT
            for e in effects
        )

    def perform_then_crash(w: World, node: str, effects: list[Effect]) -> bool:
        w._perform(node, effects)
        w.crash("leader", restart_after=0.2, keep_pending=keep)
        return True

    world.before_perform = once(appends_commit, perform_then_crash)
    return run(world)


def test_leader_crashes_after_appending_commit_and_the_entry_survives() -> None:
    world = _crash_after_appending_commit(keep=2)
    assert only_session(world) is SessionState.COMPLETED
    decided = [e for e in world.log.entries if isinstance(e, Decided)]
    assert len(decided) == 1  # the old leader's entry, applied under the new one


def test_leader_crashes_after_appending_commit_and_the_entry_is_lost() -> None:
    # The new leader finds the session undecided, prepares again, and the agents, still bound
    # by their yes votes, vote yes again: the failover costs time, not the session.
    world = _crash_after_appending_commit(keep=0)
    assert only_session(world) is SessionState.COMPLETED
    assert world.stats["executions"] == 2


def test_lease_expires_while_the_commit_is_delayed() -> None:
    world = World(FaultPlan(3), FIXED, workload=[(WELLNESS, 0.3)])
    queries: list[str] = []

    def slow_commit(src: str, dest: str, message: Message) -> float | None:
        if isinstance(message, QueryDecision):
            queries.append(message.agent_id)
        return 1.5 if isinstance(message, Commit) and dest == "a2" and not queries else None

    world.message_delay = slow_commit
    run(world)
    assert queries, "the agent should have asked for the decision when its lease ran out"
    assert only_session(world) is SessionState.COMPLETED


def test_agent_restarts_after_voting_yes_and_its_old_vote_arrives_late() -> None:
    # The yes vote of a1's first life reaches the leader after a1 restarted but before its
    # registration is applied; the commit built on it must become an abort in the ledger.
    world = World(FaultPlan(4), FIXED, workload=[(WELLNESS, 0.3)])
    world.message_delay = lambda s, d, m: (
        0.3 if isinstance(m, Vote) and m.agent_id == "a1" and m.incarnation == 1 else None
    )
    world.apply_lag = lambda e: 0.5 if isinstance(e, Registered) and e.agent_id == "a1" and e.incarnation == 2 else None

    def vote_then_crash(w: World, node: str, effects: list[Effect]) -> bool:
        w._perform(node, effects)
        w.crash("a1", restart_after=0.05)
        return True

    world.before_perform = once(lambda n, fx: n == "a1" and sends(fx, Vote), vote_then_crash)
    run(world)
    (record,) = world.ledger.sessions.values()
    assert record.state is SessionState.FAILED
    assert "a1 restarted after voting yes" in record.reason


def test_agent_crashes_mid_execution_and_runs_again() -> None:
    world = World(FaultPlan(5), FIXED, workload=[(WELLNESS, 0.3)])

    def start_then_crash(w: World, node: str, effects: list[Effect]) -> bool:
        w._perform(node, effects)
        w.crash(node, restart_after=0.1)
        return True

    world.before_perform = once(
        lambda n, fx: n == "a2" and any(isinstance(e, StartExecution) for e in fx), start_then_crash
    )
    run(world)
    assert only_session(world) is SessionState.COMPLETED
    assert world.stats["executions"] == 3  # a2 ran its subtask twice, one result was accepted


def test_deposed_leader_keeps_sending_with_its_old_term() -> None:
    world = World(FaultPlan(6), FIXED, workload=[(WELLNESS, 0.3)])
    stale_sends: list[int] = []

    def depose_after_prepare(w: World, node: str, effects: list[Effect]) -> bool:
        w._perform(node, effects)
        w.depose()
        return True

    def watch(src: str, dest: str, message: Message) -> float | None:
        if src in world.leaders and src != world.log.leader and isinstance(message, Prepare):
            stale_sends.append(message.term)
        return 0.12 if isinstance(message, Vote) else None  # slow votes: the stale leader retries

    world.before_perform = once(lambda n, fx: is_leader(world, n) and sends(fx, Prepare), depose_after_prepare)
    world.message_delay = watch
    run(world)
    assert stale_sends and set(stale_sends) == {1}, "the deposed leader should have kept preparing in term 1"
    assert only_session(world) is SessionState.COMPLETED


def test_a_reply_lost_with_the_leader_is_answered_again_with_the_same_session() -> None:
    world = World(FaultPlan(7), FIXED, workload=[(WELLNESS, 0.3)])

    def crash_instead(w: World, node: str, effects: list[Effect]) -> bool:
        w.crash("leader", restart_after=0.2)
        return True

    world.before_perform = once(lambda n, fx: is_leader(world, n) and sends(fx, SubmitReply), crash_instead)
    run(world)
    assert len(world.ledger.sessions) == 1
    assert world.tasks[0].session_id == "s1"


def test_restarted_agent_loses_its_first_register_reply_and_gets_a_stale_commit() -> None:
    # a2 crashes before executing. The reply to its first registration (which listed the
    # subtask) is lost; its second registration applies after the session failed, so the reply
    # lists nothing; then the Commit sent on the first registration arrives. It is stale and
    # must be dropped, and the failed session's release must still reach a2.
    world = World(FaultPlan(9), FIXED, workload=[(WELLNESS, 0.3)])
    seen: dict[str, int] = {}

    def network(src: str, dest: str, m: Message) -> float | None:
        if isinstance(m, RegisterReply) and m.agent_id == "a2" and m.incarnation == 2:
            seen["reply"] = seen.get("reply", 0) + 1
            return float("inf") if seen["reply"] == 1 else None
        if isinstance(m, Register) and m.agent_id == "a2" and m.incarnation == 2:
            seen["register"] = seen.get("register", 0) + 1
            return 0.5 if seen["register"] == 2 else None
        if isinstance(m, Commit) and dest == "a2" and m.incarnation == 2:
            seen["stale commit"] = seen.get("stale commit", 0) + 1
            return 1.2
        if isinstance(m, Result) and m.agent_id == "a1":
            return 0.35
        if isinstance(m, Release) and dest == "a2":
            return 1.5  # the release comes last
        return None

    def crash_instead(w: World, node: str, effects: list[Effect]) -> bool:
        w.crash("a2", restart_after=0.1)
        return True

    world.message_delay = network
    world.execution_outcome = lambda e: Outcome(False, error="no plan") if e.assignment.agent_id == "a1" else None
    world.before_perform = once(
        lambda n, fx: n == "a2" and any(isinstance(e, StartExecution) for e in fx), crash_instead
    )
    run(world)
    assert seen.get("stale commit", 0) >= 1 and seen["reply"] >= 2
    assert only_session(world) is SessionState.FAILED


def test_a_subtask_failure_after_commit_is_compensated() -> None:
    world = World(FaultPlan(8), FIXED, workload=[(WELLNESS, 0.3)])
    world.execution_outcome = lambda e: (
        Outcome(False, error="no plan") if e.assignment.capability == "plan_meal" else None
    )
    run(world)
    (record,) = world.ledger.sessions.values()
    assert record.state is SessionState.FAILED and "no plan" in record.reason
    assert world.stats.get("compensations", 0) >= 1
    assert all(not node.store for node in world.agents.values())
