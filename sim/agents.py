"""Theory of operation: the simulated agents and the executions they run.

Each agent is a real ``Participant`` hosted by a simulated process. A crash loses the process
and everything in it (the participant's reservations, its running executions) but not the
durable side-effect store, where a successful execution records its output keyed by subtask;
a restart boots a new incarnation of the participant. An execution takes a few milliseconds;
if the incarnation that started it has died, or the participant stopped it, it ends without a
result or a side effect. During the fault window an execution may fail. The checkers watch the
participant's reservations around every step, and every execution that starts.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protocol.defects import Defects
from protocol.effects import Effect, StartExecution
from protocol.events import Booted, ExecutionDone
from protocol.model import Assignment, Outcome, Params, Timing
from protocol.participant import Participant, Refusal
from sim.checkers import Checkers, Violation
from sim.faults import FaultPlan
from sim.schedule import ExecDone, Hooks, Shared

if TYPE_CHECKING:
    from protocol.events import ParticipantEvent


@dataclass
class SimulatedAgent:
    """An agent of the simulated world: what it can do and how much at once."""

    agent_id: str
    capabilities: tuple[str, ...]
    capacity: int


AGENTS = (
    SimulatedAgent("a1", ("echo", "plan_workout"), 2),
    SimulatedAgent("a2", ("echo", "plan_meal"), 1),
    SimulatedAgent("a3", ("echo", "plan_workout", "plan_meal"), 1),
)


def offer(a: Assignment) -> Params | Refusal:
    """What a workout-planning agent proposes in its yes vote: the week's training energy. A
    meal-planning agent refuses one subtask in eleven (a request it finds infeasible)."""
    digest = zlib.crc32(a.subtask_id.encode())
    if a.capability == "plan_meal" and digest % 11 == 0:
        return Refusal("no meal plan satisfies this profile")
    if a.capability != "plan_workout":
        return ()
    return (("weekly_kcal", float(1500 + digest % 1500)),)


@dataclass
class AgentNode:
    spec: SimulatedAgent
    participant: Participant | None = None
    incarnation: int = 0
    store: dict[str, Params] = field(default_factory=dict)  # durable side effects by subtask


class Hosts:
    """The agents' processes: their participants, running executions and side-effect stores."""

    def __init__(
        self,
        shared: Shared,
        plan: FaultPlan,
        hooks: Hooks,
        checkers: Checkers,
        timing: Timing,
        defects: Defects,
        step: Callable[[str, object], None],
    ) -> None:
        self._shared = shared
        self._plan = plan
        self._hooks = hooks
        self._checkers = checkers
        self._timing = timing
        self._defects = defects
        self._step = step
        self.agents = {spec.agent_id: AgentNode(spec) for spec in AGENTS}
        self.running: dict[str, dict[str, int]] = {a.agent_id: {} for a in AGENTS}  # agent -> subtask -> demand

    def boot(self, agent_id: str) -> None:
        agent = self.agents[agent_id]
        agent.incarnation += 1
        spec = agent.spec
        agent.participant = Participant(
            spec.agent_id,
            spec.capabilities,
            spec.capacity,
            agent.incarnation,
            self._timing,
            offer,
            self._defects,
        )
        self._step(agent_id, Booted())

    def crash(self, agent_id: str) -> None:
        self.agents[agent_id].participant = None
        self.running[agent_id].clear()  # its executions died with it

    def step(self, agent_id: str, event: ParticipantEvent, now: float) -> list[Effect] | None:
        """Step the agent's participant (None: the process is down), checking its reservations."""
        participant = self.agents[agent_id].participant
        if participant is None:
            return None
        before = {sub: (h.session_id, h.held) for sub, h in participant.holdings.items()}
        effects = participant.step(event, now)
        self._checkers.participant_stepped(participant, before)
        return effects

    def start(self, node: str, effect: StartExecution) -> None:
        agent = self.agents[node]
        sub = effect.assignment.subtask_id
        self._checkers.execution_started(node, effect.attempt, effect.session_id, sub, effect.parameters)
        running = self.running[node]
        running[sub] = effect.assignment.demand
        participant = agent.participant
        busy = sum(running.values())
        if participant is not None and busy > participant.limit:
            raise Violation("capacity", f"{node} runs {sorted(running)} ({busy}) beyond {participant.limit}")
        self._shared.count("executions")
        took = self._shared.rng.uniform(0.005, 0.05)
        self._shared.clock.after(took, ExecDone(node, agent.incarnation, effect))

    def done(self, event: ExecDone) -> None:
        node, effect = event.node, event.execution
        agent = self.agents[node]
        if agent.participant is None or agent.incarnation != event.incarnation:
            return  # the process that ran it is gone
        a = effect.assignment
        if self.running[node].pop(a.subtask_id, None) is None:
            return  # stopped: it ends without a result or a side effect
        failed = not self._shared.healed and self._shared.rng.random() < self._plan.execution_failure
        hook = self._hooks.execution_outcome
        forced = hook(effect) if hook else None
        if forced is not None:
            outcome = forced
        elif failed:
            outcome = Outcome(False, error="simulated execution failure")
        else:
            value = sum(v for _, v in effect.parameters) + len(a.subtask_id)
            outcome = Outcome(True, (("value", float(value)),))
        if outcome.ok:
            agent.store[a.subtask_id] = outcome.output  # the side effect, keyed by subtask
        self._step(node, ExecutionDone(effect.session_id, a.subtask_id, effect.attempt, outcome))

    def stop(self, node: str, subtask_id: str) -> None:
        if self.running[node].pop(subtask_id, None) is not None:
            self._shared.count("stopped")

    def compensate(self, node: str, subtask_id: str) -> None:
        self.agents[node].store.pop(subtask_id, None)
        self._shared.count("compensations")

    def participants(self) -> list[Participant]:
        return [n.participant for n in self.agents.values() if n.participant is not None]

    def stores(self) -> dict[str, dict[str, Params]]:
        return {agent_id: node.store for agent_id, node in self.agents.items()}
