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

import heapq
from collections import OrderedDict

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

#: What planning a task depends on besides the load: the capability and demand of each subtask.
#: Two sessions of one shape fit or not alike, whatever else their tasks say.
Shape = tuple[tuple[str, int], ...]


def shape_of(task: TaskSpec) -> Shape:
    return tuple((sub.capability, sub.demand) for sub in task.subtasks)


class AdmissionQueue:
    """Sessions accepted but not yet planned (in arrival order) and plans on their way to the
    log (``Planned`` records, and ``Accepted`` records planned at submit). Lives on the leader;
    a new leader rebuilds it from the ledger's initialized sessions.

    Cost: a drain runs after every settled session, so it must not scan the queue. Waiting
    sessions are kept in one FIFO per ``Shape``, and a drain visits the heads of those FIFOs in
    arrival order (a heap of heads): the session it visits is the oldest one not yet visited
    whose shape is not blocked. A session that does not fit blocks its shape for the rest of the
    drain: every later session of that shape asks for the same room, and the drain only adds
    load. (The greedy choice is not monotone in the load: once in a while a session that did
    not fit would fit beside a plan made after it, by taking a different agent; such a session
    waits for the next drain, which comes with the next settled session.) It costs
    O(planned + shapes) per drain (log of the shapes per step) instead of O(waiting): with a
    thousand waiting sessions, the scan on every settle was half the leader's CPU. The load of
    the plans on their way is kept as a running total, so ``at_submit`` is O(agents) too."""

    def __init__(self) -> None:
        self._fifo: dict[Shape, OrderedDict[str, int]] = {}  # session id -> arrival number
        self._shape: dict[str, Shape] = {}
        self._arrivals = 0
        #: Demand of the plans on their way, by session id or, planned at submit, by owned key.
        self._in_flight: dict[str, tuple[tuple[str, int], ...]] = {}
        self._in_flight_load: dict[str, int] = {}

    def __len__(self) -> int:
        """Sessions waiting to be planned."""
        return len(self._shape)

    def add(self, record: SessionRecord) -> None:
        """Queue an initialized session (again); one already waiting keeps its place."""
        if record.session_id in self._shape:
            return
        shape = shape_of(record.task)
        self._shape[record.session_id] = shape
        self._fifo.setdefault(shape, OrderedDict())[record.session_id] = self._arrivals
        self._arrivals += 1

    def discard(self, session_id: str) -> None:
        """A session that left ``initialized`` without a plan (decided, cancelled) waits no more."""
        shape = self._shape.pop(session_id, None)
        if shape is None:
            return
        fifo = self._fifo[shape]
        del fifo[session_id]
        if not fifo:
            del self._fifo[shape]

    def planned_applied(self, session_id: str) -> None:
        self._release(session_id)

    def at_submit(self, owned_key: str, task: TaskSpec, ledger: Ledger) -> tuple[str, ...]:
        """Plan a task as it is submitted, if the agents have room for it now and no earlier
        session waits (they go first): the agent for each subtask, reserved until
        ``accepted_applied``; empty when it must wait in the queue once accepted."""
        if self._shape:
            return ()
        try:
            agents = choose(task, ledger, self._load(ledger))
        except NoCapableAgent:
            return ()  # accepted, then failed by the queue with the reason, as before
        if agents is None:
            return ()
        demands = tuple((agent, sub.demand) for agent, sub in zip(agents, task.subtasks, strict=True))
        self._reserve(_SUBMITTED + owned_key, demands)
        return agents

    def accepted_applied(self, owned_key: str) -> None:
        self._release(_SUBMITTED + owned_key)

    def _reserve(self, key: str, demands: tuple[tuple[str, int], ...]) -> None:
        self._in_flight[key] = demands
        for agent, demand in demands:
            self._in_flight_load[agent] = self._in_flight_load.get(agent, 0) + demand

    def _release(self, key: str) -> None:
        for agent, demand in self._in_flight.pop(key, ()):
            left = self._in_flight_load[agent] - demand
            if left:
                self._in_flight_load[agent] = left
            else:
                del self._in_flight_load[agent]

    def _load(self, ledger: Ledger) -> dict[str, int]:
        """The ledger's load plus the plans on their way."""
        load = ledger.load()
        for agent, demand in self._in_flight_load.items():
            load[agent] = load.get(agent, 0) + demand
        return load

    def drain(self, ledger: Ledger) -> list[Effect]:
        """Plan every waiting session that fits now, oldest first (see the class notes)."""
        if not self._shape:
            return []
        load = self._load(ledger)
        effects: list[Effect] = []
        heads = [(next(iter(fifo.values())), shape) for shape, fifo in self._fifo.items()]
        heapq.heapify(heads)
        while heads:
            _, shape = heapq.heappop(heads)
            session_id = next(iter(self._fifo[shape]))
            record = ledger.session(session_id)
            if record is None or record.state is not SessionState.INITIALIZED:
                self.discard(session_id)  # cancelled, or planned by a previous leader
            else:
                try:
                    check_capable(record.task, ledger)
                    planned = plan(record, ledger, load)
                except NoCapableAgent as exc:
                    self.discard(session_id)
                    effects.append(Append(Decided(session_id, Decision.ABORT, reason=str(exc))))
                else:
                    if planned is None:
                        continue  # no room yet for this shape; a later, smaller session may still fit
                    self.discard(session_id)
                    self._reserve(session_id, tuple((a.agent_id, a.demand) for a in planned))
                    effects.append(Append(Planned(session_id, planned)))
            fifo = self._fifo.get(shape)
            if fifo:
                heapq.heappush(heads, (next(iter(fifo.values())), shape))
        return effects
