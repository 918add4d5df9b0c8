"""Planning and admission: turn accepted tasks into assignments, one capable agent per
subtask, when the agents have room for them.

Pure and deterministic: the same ledger gives the same plan on any replica. The choice is
greedy: the registered agent with the most free capacity, ties broken by agent id. A session
for which no capable agent has room waits in the ``AdmissionQueue`` (state ``initialized``)
instead of failing on a no vote, and is planned when a settled session frees capacity or an
agent registers. Capacity here is the ledger's view (every unsettled session's assignments,
plus plans appended but not yet applied); the agent's own check at prepare time still decides.
A subtask whose demand no capable agent could ever meet fails at once.

A task that fits when it is submitted, with nobody waiting before it, is planned right then:
its ``Accepted`` record names the agents, and the ledger applies the plan with it, so the
session needs one record and one Raft round trip less. Such a plan can still go stale before it
applies (an agent re-registers without the capability); the session then waits in the queue
like any other.
"""

from __future__ import annotations

from protocol.effects import Append, Effect
from protocol.entries import Decided, Planned
from protocol.errors import NoCapableAgent
from protocol.ledger import Ledger, SessionRecord
from protocol.model import Assignment, Decision, TaskSpec, assignments_of
from protocol.session_table import SessionState


def check_capable(task: TaskSpec, ledger: Ledger) -> None:
    """Raise ``NoCapableAgent`` if no registered agent offers a subtask's capability with at
    least its demand of capacity (such a task could wait forever)."""
    for sub in task.subtasks:
        capable = [a for a in ledger.agents.values() if sub.capability in a.capabilities]
        if not capable:
            raise NoCapableAgent(sub.capability)
        largest = max(a.capacity for a in capable)
        if sub.demand > largest:
            raise NoCapableAgent(sub.capability, f"needs a capacity of {sub.demand}, the largest is {largest}")


def choose(task: TaskSpec, ledger: Ledger, load: dict[str, int]) -> tuple[str, ...] | None:
    """The agent for each subtask of ``task``, adding their demand to ``load``; None (``load``
    unchanged) while some subtask finds no capable agent with room."""
    trial = dict(load)
    agents: list[str] = []
    for sub in task.subtasks:
        candidates = sorted(
            (a for a in ledger.agents.values() if sub.capability in a.capabilities),
            key=lambda a: (-(a.capacity - trial.get(a.agent_id, 0)), a.agent_id),
        )
        if not candidates:
            raise NoCapableAgent(sub.capability)
        best = candidates[0]
        if best.capacity - trial.get(best.agent_id, 0) < sub.demand:
            return None
        trial[best.agent_id] = trial.get(best.agent_id, 0) + sub.demand
        agents.append(best.agent_id)
    load.update(trial)
    return tuple(agents)


def plan(record: SessionRecord, ledger: Ledger, load: dict[str, int]) -> tuple[Assignment, ...] | None:
    """Assignments for every subtask, adding them to ``load``; None (``load`` unchanged) while
    some subtask finds no capable agent with room."""
    agents = choose(record.task, ledger, load)
    return None if agents is None else assignments_of(record.session_id, record.task, agents)


#: Keys of reservations made at submit (session ids never start with it).
_SUBMITTED = "submitted:"


class AdmissionQueue:
    """Sessions accepted but not yet planned (in arrival order) and plans on their way to the
    log (``Planned`` records, and ``Accepted`` records planned at submit). Lives on the leader;
    a new leader rebuilds it from the ledger's initialized sessions."""

    def __init__(self) -> None:
        self.waiting: dict[str, None] = {}
        #: Demand of the plans on their way, by session id or, planned at submit, by owned key.
        self._in_flight: dict[str, tuple[tuple[str, int], ...]] = {}

    def add(self, session_id: str) -> None:
        self.waiting[session_id] = None

    def planned_applied(self, session_id: str) -> None:
        self._in_flight.pop(session_id, None)

    def at_submit(self, owned_key: str, task: TaskSpec, ledger: Ledger) -> tuple[str, ...]:
        """Plan a task as it is submitted, if the agents have room for it now and no earlier
        session waits (they go first): the agent for each subtask, reserved until
        ``accepted_applied``; empty when it must wait in the queue once accepted."""
        if self.waiting:
            return ()
        try:
            agents = choose(task, ledger, self._load(ledger))
        except NoCapableAgent:
            return ()  # accepted, then failed by the queue with the reason, as before
        if agents is None:
            return ()
        self._in_flight[_SUBMITTED + owned_key] = tuple(
            (agent, sub.demand) for agent, sub in zip(agents, task.subtasks, strict=True)
        )
        return agents

    def accepted_applied(self, owned_key: str) -> None:
        self._in_flight.pop(_SUBMITTED + owned_key, None)

    def _load(self, ledger: Ledger) -> dict[str, int]:
        """The ledger's load plus the plans on their way."""
        load = ledger.load()
        for demands in self._in_flight.values():
            for agent, demand in demands:
                load[agent] = load.get(agent, 0) + demand
        return load

    def drain(self, ledger: Ledger) -> list[Effect]:
        """Plan every waiting session that fits now, oldest first."""
        if not self.waiting:
            return []
        load = self._load(ledger)
        effects: list[Effect] = []
        for session_id in list(self.waiting):
            record = ledger.session(session_id)
            if record is None or record.state is not SessionState.INITIALIZED:
                del self.waiting[session_id]  # cancelled, or planned by a previous leader
                continue
            try:
                check_capable(record.task, ledger)
                planned = plan(record, ledger, load)
            except NoCapableAgent as exc:
                del self.waiting[session_id]
                effects.append(Append(Decided(session_id, Decision.ABORT, reason=str(exc))))
                continue
            if planned is None:
                continue  # no room yet; a later, smaller session may still fit
            assignments = planned
            del self.waiting[session_id]
            self._in_flight[session_id] = tuple((a.agent_id, a.demand) for a in assignments)
            effects.append(Append(Planned(session_id, assignments)))
        return effects
