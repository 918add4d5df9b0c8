"""Theory of operation: the simulated world.

The real core classes (``Leader``, ``Coordinator``, ``Participant``, ``Ledger``) run unchanged;
only their surroundings are simulated, all driven by one ``random.Random(seed)``. Each part of
the surroundings has its own module; this one wires them together and runs the event loop:

* ``sim.schedule``: the clock, a queue of typed events ordered by (time, sequence), so a seed
  replays exactly; every node may run ahead of it by a clock offset that jumps forward;
* ``sim.network``: drops, duplicates, delays (and so reorders) and partitions messages;
* ``sim.raftmodel``: three MCA replicas over a linearizable model of the Raft decision log; a
  leader that crashes or is cut off loses its unreplicated entries, a cut-off one keeps acting
  with its old term until it notices;
* ``sim.agents``: agents whose crash loses everything but a durable side-effect store;
* ``sim.workload``: clients that submit with idempotency keys, retry until answered, sometimes
  repeat a key on purpose and sometimes cancel;
* ``sim.faults``: the fault plan, and the crashes, partitions and clock jumps drawn from it.

Faults happen only during the fault window; then every fault heals, every node restarts, and
the run continues until nothing is left to do, so the end checks can demand that every session
reached a terminal state and every reservation was released. The parts draw from the one random
source in the order the events call on them, so that order, and the order of scheduling, is
what a seed's run is; ``trace_digest`` names it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, assert_never, cast

from protocol.defects import NO_DEFECTS, Defects
from protocol.effects import (
    Append,
    CancelTimer,
    Effect,
    Send,
    SetTimer,
    StartCompensation,
    StartExecution,
    StopExecution,
)
from protocol.entries import Entry
from protocol.errors import InvariantViolation
from protocol.events import TimerFired
from protocol.leader import Leader
from protocol.ledger import Ledger
from protocol.messages import Message
from protocol.model import Outcome, TaskSpec
from sim import schedule as ev
from sim.agents import AgentNode, Hosts
from sim.checkers import Checkers, Violation
from sim.faults import FaultPlan, schedule_faults
from sim.network import Network
from sim.options import SimOptions
from sim.raftmodel import REPLICAS, Replicas
from sim.schedule import Clock, Scheduled, Shared
from sim.workload import MCA, Clients, ClientTask, draw_workload

if TYPE_CHECKING:
    from protocol.events import LeaderEvent, ParticipantEvent

__all__ = ["SimOptions", "World"]


class World:
    """One seed's world: build it, set a scenario's hooks if any, then ``run``."""

    def __init__(
        self,
        plan: FaultPlan,
        options: SimOptions | None = None,
        defects: Defects = NO_DEFECTS,
        workload: list[tuple[TaskSpec, float]] | None = None,
    ) -> None:
        self.plan = plan
        self.options = options = options or SimOptions()
        self.defects = defects
        self.rng = random.Random(plan.seed)
        self.shared = shared = Shared(Clock(), self.rng)
        self.clock = shared.clock
        self.timing, kept, batch_size = options.resolve(self.rng)
        self._trace = hashlib.blake2b(digest_size=8)
        self.trace_sink: Callable[[str], None] | None = None
        # Where a named scenario bends the world (sim.schedule.Hooks): read by the parts at use.
        self.message_delay: Callable[[str, str, Message], float | None] | None = None
        self.apply_lag: Callable[[Entry], float | None] | None = None
        self.execution_outcome: Callable[[StartExecution], Outcome | None] | None = None
        # ... and act at an exact protocol point, returning True to swallow the step's effects.
        self.before_perform: Callable[[World, str, list[Effect]], bool] | None = None
        self.ledger = Ledger(defects, settled_kept=kept)
        self.checkers = Checkers(self.ledger)
        self.hosts = Hosts(shared, plan, self, self.checkers, self.timing, defects, self._step)
        self.agents: dict[str, AgentNode] = self.hosts.agents
        self.up: dict[str, bool] = dict.fromkeys((*REPLICAS, *self.agents), True)
        self.replicas = Replicas(shared, plan, self, self.ledger, self.timing, defects, self.up, self._step, batch_size)
        self.log = self.replicas.log
        self.leaders: dict[str, Leader] = self.replicas.leaders
        self.log.subscribe(lambda a: self.checkers.applied(a.entry, a.result))
        self.log.subscribe(self.replicas.applied)
        self.network = Network(shared, plan, self, self.up, self._step)
        self.clients = Clients(shared, self.checkers, self.network.send)
        self.tasks: list[ClientTask] = self.clients.tasks
        self.stats = shared.stats
        self._setup(workload)

    @property
    def now(self) -> float:
        return self.clock.now

    @property
    def events(self) -> int:
        return self.clock.events

    @property
    def healed(self) -> bool:
        return self.shared.healed

    @property
    def trace_digest(self) -> str:
        return self._trace.hexdigest()

    def _setup(self, workload: list[tuple[TaskSpec, float]] | None) -> None:
        for agent_id in self.agents:
            self.hosts.boot(agent_id)
        self.clock.at(0.0, ev.Elect())
        if workload is None:
            o = self.options
            for client, ct in draw_workload(self.rng, o.sessions, o.clients, o.fault_window):
                self.clients.add(client, ct)
        else:
            for i, (task, at) in enumerate(workload):
                self.clients.add("c1", ClientTask(f"c1-k{i}", task, at, repeat=False, cancel_after=None))
        schedule_faults(self.plan, self.rng, self.clock, self.options.fault_window, REPLICAS, tuple(self.agents))
        self.clock.at(self.options.fault_window, ev.Heal())

    # --- running ------------------------------------------------------------------------------

    def run(self) -> None:
        """Run to the end, raising ``Violation`` at the first broken check."""
        clock = self.clock
        limit = self.options.fault_window + self.options.settle_limit
        try:
            while (next_event := clock.pop()) is not None:
                when, _, event = next_event
                if when > limit or clock.events >= self.options.events_max:
                    break
                clock.now = max(clock.now, when)
                clock.events += 1
                line = f"{clock.now:.6f} {event.trace()!r}"
                self._trace.update(line.encode())
                if self.trace_sink is not None:
                    self.trace_sink(line)
                self._dispatch(event)
            self.checkers.at_end(self.hosts.participants(), self.hosts.stores())
            self.clients.check_answered()
        except InvariantViolation as exc:
            raise Violation("invariant", str(exc)) from exc

    def _dispatch(self, event: Scheduled) -> None:
        # The most frequent kinds first; class patterns without sub-patterns are the fast ones.
        match event:
            case ev.Deliver():
                dest = event.dest
                self.network.deliver(event.src, sorted(self.leaders) if dest == MCA else [dest], event.message)
            case ev.Fire():
                if self.clock.fire(event):
                    self._step(event.node, TimerFired(event.key))
            case ev.Cut():
                self.replicas.cut(event.node, event.due)
            case ev.Apply():
                self.replicas.apply()
            case ev.ClientSubmit():
                self.clients.submit(event.client, event.task, event.repeat)
            case ev.ExecDone():
                self.hosts.done(event)
            case ev.ClientCancel():
                self.clients.cancel(event.client, event.task)
            case ev.Elect():
                self.replicas.elect()
            case ev.Crash():
                self._crash(event.victim)
            case ev.Restart():
                self._restart(event.node)
            case ev.Heal():
                self._heal()
            case ev.ClockJump():
                self.clock.jump(event.node, event.jump)
                self.shared.count("clock_jumps")
            case ev.Partition():
                self.network.partition(event.a, event.b, event.length)
            case ev.Unpartition():
                self.network.unpartition(event.a, event.b)
            case ev.Depose():
                self.replicas.depose()
            case ev.StepDown():
                self.replicas.step_down(event.node)
            case ev.Call():
                event.fn()
            case _:
                assert_never(event)

    # --- nodes --------------------------------------------------------------------------------

    def _step(self, node: str, event: object) -> None:
        # What reaches a node is what was addressed to it (messages to ``mca`` come only from
        # clients and agents), so each machine gets only the events it takes.
        if node in self.leaders:
            effects = self.leaders[node].step(cast("LeaderEvent", event), self.clock.local(node))
        elif node in self.agents:
            stepped = self.hosts.step(node, cast("ParticipantEvent", event), self.clock.local(node))
            if stepped is None:
                return
            effects = stepped
        elif node.startswith("c"):
            self.clients.receive(node, event)
            return
        else:
            return  # a follower replica: it only applies entries
        if self.before_perform is not None and self.before_perform(self, node, effects):
            return
        self._perform(node, effects)

    def _perform(self, node: str, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self.checkers.sent(effect.message)
                self.network.send(node, effect.to, effect.message, effect.lazy)
            elif isinstance(effect, Append):
                self.replicas.append(node, effect.entry, effect.lazy)
            elif isinstance(effect, SetTimer):
                self.clock.set_timer(node, effect.key, effect.at)
            elif isinstance(effect, CancelTimer):
                self.clock.cancel_timer(node, effect.key)
            elif isinstance(effect, StartExecution):
                self.hosts.start(node, effect)
            elif isinstance(effect, StopExecution):
                self.hosts.stop(node, effect.subtask_id)
            elif isinstance(effect, StartCompensation):
                self.hosts.compensate(node, effect.subtask_id)

    # --- crashes, restarts, healing -----------------------------------------------------------

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at simulated time ``when`` (for scripted scenarios)."""
        self.clock.at(when, ev.Call(fn))

    def crash(self, victim: str, restart_after: float = 0.3, keep_pending: int | None = None) -> None:
        """Crash ``victim`` (an agent id, or "leader") now; it restarts ``restart_after`` later.

        For the leader, ``keep_pending`` says how many of its unapplied batches survive
        (default: a random number of them, as Raft allows).
        """
        self._crash(victim, restart_after, keep_pending)

    def depose(self) -> None:
        """Cut the leader off from the other replicas now; it keeps acting until it notices."""
        self.replicas.depose()

    def _crash(self, victim: str, restart_after: float | None = None, keep_pending: int | None = None) -> None:
        if victim == "leader":
            node = self.replicas.crash_leader(keep_pending)
            if node is None:
                return
            self._down(node)
            self.replicas.elect_soon()
        else:
            if not self.up[victim]:
                return
            node = victim
            self.hosts.crash(node)
            self._down(node)
        self.shared.count("crashes")
        after = restart_after if restart_after is not None else self.rng.uniform(0.1, 1.5)
        self.clock.after(after, ev.Restart(node))

    def _down(self, node: str) -> None:
        self.up[node] = False
        self.clock.clear_timers(node)

    def _restart(self, node: str) -> None:
        if self.up[node]:
            return
        self.up[node] = True
        if node in self.agents:
            self.hosts.boot(node)

    def _heal(self) -> None:
        self.shared.healed = True
        self.network.heal()
        for node in sorted(self.up):
            if not self.up[node]:
                self._restart(node)
        if self.log.leader is None:
            self.clock.at(self.clock.now, ev.Elect())
