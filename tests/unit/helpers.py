"""Builders shared by the unit tests: a ledger with agents and a session in a chosen state."""

from __future__ import annotations

from protocol.entries import Accepted, Decided, Finished, Planned, Registered, Settled
from protocol.ledger import Ledger
from protocol.model import Assignment, Decision, Outcome, SubtaskSpec, TaskSpec, Timing

TIMING = Timing()
WELLNESS = TaskSpec("wellness", (SubtaskSpec("plan_workout"), SubtaskSpec("plan_meal")), ("all_subtasks_ok",))
PLAN = (
    Assignment("s1.0", "wpa", "plan_workout", 1),
    Assignment("s1.1", "npa", "plan_meal", 1),
)
OK = Outcome(True, (("value", 1.0),))


def ledger_with_agents() -> Ledger:
    ledger = Ledger()
    ledger.apply(Registered("wpa", ("plan_workout",), 2, 1))
    ledger.apply(Registered("npa", ("plan_meal",), 1, 1))
    return ledger


def session_in(stage: str) -> Ledger:
    """A ledger holding session s1 at ``stage``: accepted, planned, committed, aborted,
    completed, failed (after commit) or settled."""
    ledger = ledger_with_agents()
    ledger.apply(Accepted("k1", WELLNESS))
    if stage == "accepted":
        return ledger
    ledger.apply(Planned("s1", PLAN))
    if stage == "planned":
        return ledger
    if stage == "aborted":
        ledger.apply(Decided("s1", Decision.ABORT, "no"))
        return ledger
    ledger.apply(Decided("s1", Decision.COMMIT, incarnations=(("wpa", 1), ("npa", 1))))
    if stage == "committed":
        return ledger
    if stage == "failed":
        ledger.apply(Finished("s1", "s1.0", Outcome(False, error="boom")))
        return ledger
    ledger.apply(Finished("s1", "s1.0", OK))
    ledger.apply(Finished("s1", "s1.1", OK))
    if stage == "completed":
        return ledger
    ledger.apply(Settled("s1"))
    return ledger
