"""Planning: turn an accepted task into assignments, one capable agent per subtask.

Pure and deterministic: the same ledger gives the same plan on any replica, so a new leader that
re-plans a session the old one had planned but not yet appended reaches a compatible answer (and
the ledger keeps whichever ``Planned`` entry is applied first anyway). The choice is greedy:
the registered agent with the most free capacity, ties broken by agent id. Capacity here is the
ledger's view; the agent's own check at prepare time is the one that counts.
"""

from __future__ import annotations

from protocol.effects import Append, Effect
from protocol.entries import Decided, Planned
from protocol.errors import NoCapableAgent
from protocol.ledger import Ledger, SessionRecord
from protocol.model import Assignment, Decision, TaskSpec


def check_capable(task: TaskSpec, ledger: Ledger) -> None:
    """Raise ``NoCapableAgent`` if some subtask's capability has no registered agent."""
    offered = {c for agent in ledger.agents.values() for c in agent.capabilities}
    for sub in task.subtasks:
        if sub.capability not in offered:
            raise NoCapableAgent(sub.capability)


def plan(record: SessionRecord, ledger: Ledger) -> tuple[Assignment, ...]:
    load = ledger.load()
    assignments: list[Assignment] = []
    for i, sub in enumerate(record.task.subtasks):
        candidates = sorted(
            (a for a in ledger.agents.values() if sub.capability in a.capabilities),
            key=lambda a: (-(a.capacity - load.get(a.agent_id, 0)), a.agent_id),
        )
        if not candidates:
            raise NoCapableAgent(sub.capability)
        chosen = candidates[0].agent_id
        load[chosen] = load.get(chosen, 0) + sub.demand
        assignments.append(Assignment(f"{record.session_id}.{i}", chosen, sub.capability, sub.demand, sub.inputs))
    return tuple(assignments)


def plan_effects(record: SessionRecord, ledger: Ledger) -> list[Effect]:
    """Append the plan, or fail the session with the reason no plan exists."""
    try:
        return [Append(Planned(record.session_id, plan(record, ledger)))]
    except NoCapableAgent as exc:
        return [Append(Decided(record.session_id, Decision.ABORT, reason=str(exc)))]
