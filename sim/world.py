"""Theory of operation: the simulated world.

The real core classes (``Leader``, ``Coordinator``, ``Participant``, ``Ledger``) run unchanged;
only their surroundings are simulated, all driven by one ``random.Random(seed)``:

* a clock: a priority queue of events ordered by (time, sequence), so a seed replays exactly;
  every node may run ahead of it by a clock offset that jumps forward (leases expire early);
* a network that drops, duplicates, delays (and so reorders) and partitions messages;
* a decision log (``SimDecisionLog``): a linearizable model of Raft. Only the current leader's
  appends are applied, in order, a few milliseconds later. The leader's records go through the
  same ``GroupCommit`` as in the runtime: those its steps produce within a simulated loop turn
  (up to a millisecond) are appended as one batch, applied whole or lost whole. When the leader crashes or is cut
  off, a random prefix of its unapplied entries survives (they had reached a majority) and the
  rest is lost, as in Raft; a new leader is elected with a higher term after a short delay;
* three MCA replicas; a cut-off leader keeps acting until it notices, with its old term;
* agents whose crash loses everything but a durable side-effect store; a restart is a new
  incarnation of the ``Participant``;
* clients that submit with idempotency keys, retry until answered, sometimes repeat a key on
  purpose and sometimes cancel.

Faults happen only during the fault window; then every fault heals, every node restarts, and
the run continues until nothing is left to do, so the end checks can demand that every session
reached a terminal state and every reservation was released.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import zlib
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import cast

from protocol.batching import GroupCommit, records
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
from protocol.entries import Batch, Entry
from protocol.errors import InvariantViolation
from protocol.events import Applied, BecameLeader, Booted, ExecutionDone, TimerFired
from protocol.leader import Leader
from protocol.ledger import Ledger
from protocol.messages import Cancel, CancelReply, Message, Submit, SubmitReply
from protocol.model import Assignment, Outcome, Params, SubtaskSpec, TaskSpec, Timing
from protocol.participant import Participant, Refusal
from protocol.timers import TimerKey
from sim.checkers import Checkers, Violation
from sim.faults import FaultPlan

REPLICAS = ("mca-1", "mca-2", "mca-3")
MCA = "mca"


@dataclass(frozen=True)
class SimOptions:
    """The shape of a run; the fault plan says what goes wrong in it."""

    sessions: int = 12
    clients: int = 2
    fault_window: float = 4.0
    settle_limit: float = 60.0
    events_max: int = 400_000
    #: ``None`` draws the timing from the seed, so that runs also explore leases shorter than
    #: the prepare timeout, slow retries, tight execution deadlines (two bugs hid there).
    timing: Timing | None = None
    #: Settled sessions the ledger keeps before retiring them; ``None`` draws it from the seed
    #: (often a handful, so that retirement, and key reuse after it, happen under faults).
    settled_sessions_kept: int | None = None


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


@dataclass
class ClientTask:
    key: str
    task: TaskSpec
    at: float
    repeat: bool
    cancel_after: float | None
    session_id: str = ""
    cancel_answered: bool = False


class SimDecisionLog:
    """A linearizable model of the Raft decision log (see the module's opening)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.term = 0
        self.leader: str | None = None
        self.entries: list[Entry] = []  # the applied records, in order
        self.pending: deque[Batch] = deque()
        self._subscribers: list[Callable[[Applied], None]] = []

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    def append(self, batch: Batch, term: int) -> bool:
        if term != self.term or self.leader is None:
            return False  # a deposed leader's append never reaches a majority
        self.pending.append(batch)
        return True

    def subscribe(self, callback: Callable[[Applied], None]) -> None:
        self._subscribers.append(callback)

    def apply_next(self) -> bool:
        """Apply the next batch; False when none is pending."""
        if not self.pending:
            return False
        for entry in records(self.pending.popleft()):  # a batch applies its records in order
            result = self._ledger.apply(entry)
            self.entries.append(entry)
            applied = Applied(len(self.entries), entry, result)
            for callback in self._subscribers:
                callback(applied)
        return True

    def lose_leader(self, rng: random.Random, keep: int | None = None) -> None:
        """The leader is gone: a random prefix of its unapplied batches survives."""
        if keep is None:
            keep = rng.randint(0, len(self.pending))
        self.pending = deque(list(self.pending)[:keep])
        self.leader = None

    def applied_entries(self, start: int = 0) -> Iterator[tuple[int, Entry]]:
        for i in range(start, len(self.entries)):
            yield i + 1, self.entries[i]


class World:
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
        self.timing = options.timing if options.timing is not None else self._draw_timing()
        self.now = 0.0
        self.healed = False
        self._queue: list[tuple[float, int, tuple[object, ...]]] = []
        self._seq = 0
        self.events = 0
        self._trace = hashlib.blake2b(digest_size=8)
        self.trace_sink: Callable[[str], None] | None = None
        kept = options.settled_sessions_kept
        if kept is None:
            kept = self.rng.choice((1, 3, 8, 10_000))
        self.ledger = Ledger(defects, settled_kept=kept)
        self.log = SimDecisionLog(self.ledger)
        self.checkers = Checkers(self.ledger)
        self.log.subscribe(lambda a: self.checkers.applied(a.entry, a.result))
        self.log.subscribe(self._on_applied)
        self.up: dict[str, bool] = {name: True for name in (*REPLICAS, *(a.agent_id for a in AGENTS))}
        self.offset: dict[str, float] = dict.fromkeys(self.up, 0.0)
        self.leaders: dict[str, Leader] = {}  # current leader and any deposed one still acting
        self.agents = {spec.agent_id: AgentNode(spec) for spec in AGENTS}
        self.running: dict[str, dict[str, int]] = {a.agent_id: {} for a in AGENTS}  # agent -> subtask -> demand
        self.partitions: set[frozenset[str]] = set()
        self._timers: dict[tuple[str, Hashable], tuple[int, float]] = {}
        self._apply_at = 0.0
        self._groups: dict[str, GroupCommit] = {}  # per leader node: records of this loop turn
        self.tasks: list[ClientTask] = []
        self.stats: dict[str, int] = {}
        # Hooks for named scenarios: change a message's delay (inf drops it), or act at an
        # exact protocol point and return True to swallow the effects of that step.
        self.message_delay: Callable[[str, str, Message], float | None] | None = None
        self.before_perform: Callable[[World, str, list[Effect]], bool] | None = None
        self.apply_lag: Callable[[Entry], float | None] | None = None
        self.execution_outcome: Callable[[StartExecution], Outcome | None] | None = None
        self._setup(workload)

    # --- scheduling ---------------------------------------------------------------------------

    def _at(self, when: float, *event: object) -> int:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, event))
        return self._seq

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def _draw_timing(self) -> Timing:
        u = self.rng.uniform
        retry = u(0.01, 0.2)
        return Timing(
            retry=retry,
            retry_max=u(retry, 1.0),
            prepare_timeout=u(0.1, 2.0),
            lease=u(0.05, 1.5),
            execution_timeout=u(0.2, 3.0),
            register_retry=u(0.05, 0.3),
        )

    def _setup(self, workload: list[tuple[TaskSpec, float]] | None) -> None:
        for agent_id in self.agents:
            self._boot_agent(agent_id)
        self._at(0.0, "elect")
        if workload is None:
            self._plan_workload()
        else:
            for i, (task, at) in enumerate(workload):
                self.tasks.append(ClientTask(f"c1-k{i}", task, at, repeat=False, cancel_after=None))
                self._at(at, "submit", "c1", i, "retry")
        self._plan_faults()
        self._at(self.options.fault_window, "heal")

    def _plan_workload(self) -> None:
        rng = self.rng
        for i in range(self.options.sessions):
            kind = rng.choice(("echo", "wellness", "wellness"))
            if kind == "echo":
                subtasks: tuple[SubtaskSpec, ...] = (SubtaskSpec("echo", 1, (("n", float(i)),)),)
            else:
                subtasks = (SubtaskSpec("plan_workout"), SubtaskSpec("plan_meal"))
            task = TaskSpec(kind, subtasks, ("all_subtasks_ok", "outputs_present"))
            client = f"c{i % self.options.clients + 1}"
            cancel_after = rng.uniform(0.0, 0.3) if rng.random() < 0.15 else None
            ct = ClientTask(
                f"{client}-k{i}",
                task,
                rng.uniform(0.3, self.options.fault_window * 0.6),
                repeat=rng.random() < 0.3,
                cancel_after=cancel_after,
            )
            self.tasks.append(ct)
            self._at(ct.at, "submit", client, i, "retry")

    def _plan_faults(self) -> None:
        plan, rng = self.plan, self.rng
        t = 0.1
        while t < self.options.fault_window:
            if rng.random() < plan.crash:
                victim = rng.choice(("leader", *self.agents))
                self._at(t, "crash", victim)
            if rng.random() < plan.partition:
                if rng.random() < 0.4:
                    self._at(t, "depose")
                else:
                    a = rng.choice((*REPLICAS, *self.agents, "c1", "c2"))
                    b = rng.choice((*REPLICAS, *self.agents))
                    if a != b:
                        self._at(t, "partition", a, b, rng.uniform(0.1, 1.0))
            if rng.random() < plan.clock_jump:
                node = rng.choice((*REPLICAS, *self.agents))
                self._at(t, "clock_jump", node, rng.uniform(0.2, 2.0))
            t += 0.1

    # --- running ------------------------------------------------------------------------------

    def run(self) -> None:
        """Run to the end, raising ``Violation`` at the first broken check."""
        limit = self.options.fault_window + self.options.settle_limit
        try:
            while self._queue:
                when, _, event = heapq.heappop(self._queue)
                if when > limit or self.events >= self.options.events_max:
                    break
                self.now = max(self.now, when)
                self.events += 1
                line = f"{self.now:.6f} {event!r}"
                self._trace.update(line.encode())
                if self.trace_sink is not None:
                    self.trace_sink(line)
                self._dispatch(event)
            self.checkers.at_end(
                [n.participant for n in self.agents.values() if n.participant is not None],
                {agent_id: node.store for agent_id, node in self.agents.items()},
            )
            for ct in self.tasks:
                if not ct.session_id:
                    raise Violation("no-lost-session", f"the client never got an answer for {ct.key}")
                if ct.cancel_after is not None and not ct.cancel_answered:
                    raise Violation("no-lost-session", f"the cancel of {ct.session_id} was never answered")
        except InvariantViolation as exc:
            raise Violation("invariant", str(exc)) from exc

    @property
    def trace_digest(self) -> str:
        return self._trace.hexdigest()

    def _dispatch(self, event: tuple[object, ...]) -> None:
        kind = event[0]
        if kind == "deliver":
            _, src, dest, message = event
            self._deliver(str(src), str(dest), message)
        elif kind == "timer":
            _, node, key, token = event
            current = self._timers.get((str(node), key))
            if current is not None and current[0] == token:
                del self._timers[(str(node), key)]
                self._step(str(node), TimerFired(cast(TimerKey, key)))
        elif kind == "apply":
            leader = self.log.leader
            if self.log.apply_next() and leader is not None:
                group = self._groups.get(leader)
                if group is not None and group.settled():  # the pipeline has room again
                    self._at(self.now + self.rng.uniform(0.0, 0.001), "cut", leader)
        elif kind == "cut":
            self._cut(str(event[1]))
        elif kind == "exec_done":
            self._exec_done(*event[1:])
        elif kind == "elect":
            self._elect()
        elif kind == "stepdown":
            node = str(event[1])
            if self.log.leader != node and self.leaders.pop(node, None) is not None:
                self._clear_timers(node)
        elif kind == "submit":
            self._client_submit(str(event[1]), int(str(event[2])), event[3] == "repeat")
        elif kind == "cancel":
            self._client_cancel(str(event[1]), int(str(event[2])))
        elif kind == "crash":
            self._crash(str(event[1]))
        elif kind == "restart":
            self._restart(str(event[1]))
        elif kind == "depose":
            self._depose()
        elif kind == "partition":
            _, a, b, length = event
            pair = tuple(sorted((str(a), str(b))))  # a tuple: a frozenset's repr would depend on the hash seed
            self.partitions.add(frozenset(pair))
            self._at(self.now + float(str(length)), "unpartition", *pair)
        elif kind == "unpartition":
            self.partitions.discard(frozenset((str(event[1]), str(event[2]))))
        elif kind == "clock_jump":
            self._clock_jump(str(event[1]), float(str(event[2])))
        elif kind == "heal":
            self._heal()
        elif kind == "call":
            fn = event[1]
            if callable(fn):
                fn()
        else:
            raise InvariantViolation(f"unknown simulator event {event!r}")

    # --- nodes --------------------------------------------------------------------------------

    def _local(self, node: str) -> float:
        return self.now + self.offset.get(node, 0.0)

    def _step(self, node: str, event: object) -> None:
        if node in self.leaders:
            effects = self.leaders[node].step(event, self._local(node))
        elif node in self.agents:
            participant = self.agents[node].participant
            if participant is None:
                return
            before = {sub: (h.session_id, h.held) for sub, h in participant.holdings.items()}
            effects = participant.step(event, self._local(node))
            self.checkers.participant_stepped(participant, before)
        elif node.startswith("c"):
            self._client_receive(node, event)
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
                self._send(node, effect.to, effect.message)
            elif isinstance(effect, Append):
                leader = self.leaders.get(node)
                if leader is None:
                    continue
                group = self._groups.setdefault(node, GroupCommit(self.defects))
                if group.add(effect.entry, leader.term):
                    # The loop goes idle within a simulated turn: whatever else it appends
                    # meanwhile (other deliveries, timers) joins this batch.
                    self._at(self.now + self.rng.uniform(0.0, 0.001), "cut", node)
            elif isinstance(effect, SetTimer):
                self._seq += 1
                token = self._seq
                self._timers[(node, effect.key)] = (token, effect.at)
                fire = max(self.now, effect.at - self.offset.get(node, 0.0))
                self._at(fire, "timer", node, effect.key, token)
            elif isinstance(effect, CancelTimer):
                self._timers.pop((node, effect.key), None)
            elif isinstance(effect, StartExecution):
                self._start_execution(node, effect)
            elif isinstance(effect, StopExecution):
                if self.running[node].pop(effect.subtask_id, None) is not None:
                    self._count("stopped")
            elif isinstance(effect, StartCompensation):
                self.agents[node].store.pop(effect.subtask_id, None)
                self._count("compensations")

    def _cut(self, node: str) -> None:
        group = self._groups.get(node)
        if group is None:
            return
        batch, term = group.cut()
        leader = self.leaders.get(node)
        if batch is None or leader is None or leader.term != term or not self.up.get(node, False):
            return
        if not self.log.append(batch, term):
            return
        group.appended()
        lag = self.rng.uniform(0.001, 0.004)
        if not self.healed and self.rng.random() < self.plan.delay:
            lag += self.rng.uniform(0.0, 0.2)  # a slow follower, a long fsync
        if self.apply_lag is not None:
            lag += max((self.apply_lag(entry) or 0.0 for entry in batch.records), default=0.0)
        # Batches apply in log order, so a slow one holds back those behind it.
        self._apply_at = max(self.now + lag, self._apply_at)
        self._at(self._apply_at, "apply")

    def _send(self, src: str, dest: str, message: Message) -> None:
        faulty = not self.healed
        rng = self.rng
        if faulty and rng.random() < self.plan.drop:
            self._count("dropped")
            return
        copies = 2 if faulty and rng.random() < self.plan.duplicate else 1
        for _ in range(copies):
            delay = rng.uniform(0.0005, 0.003)
            if faulty and rng.random() < self.plan.delay:
                delay += rng.uniform(0.0, 0.3)
            extra = self.message_delay(src, dest, message) if self.message_delay else None
            if extra is not None:
                if extra == float("inf"):
                    continue
                delay += extra
            self._at(self.now + delay, "deliver", src, dest, message)

    def _deliver(self, src: str, dest: str, message: object) -> None:
        targets = sorted(self.leaders) if dest == MCA else [dest]
        for target in targets:
            if not self.up.get(target, True):
                continue
            if frozenset((src, target)) in self.partitions:
                self._count("partitioned")
                continue
            self._step(target, message)

    # --- the decision log and leadership ------------------------------------------------------

    def _elect(self) -> None:
        if self.log.leader is not None:
            return
        candidates = [r for r in REPLICAS if self.up[r] and r not in self.leaders]
        if not candidates:
            candidates = [r for r in REPLICAS if self.up[r]]
        if not candidates:
            self._at(self.now + 0.1, "elect")
            return
        node = self.rng.choice(candidates)
        if node in self.leaders:  # a deposed leader that had not stepped down yet
            self._clear_timers(node)
        self.log.term += 1
        self.log.leader = node
        leader = Leader(self.log.term, self.ledger, self.timing, self.defects)
        self.leaders[node] = leader
        self._count("elections")
        self._step(node, BecameLeader())

    def _on_applied(self, applied: Applied) -> None:
        leader = self.log.leader
        if leader is not None and self.up[leader] and leader in self.leaders:
            self._step(leader, applied)

    def _depose(self) -> None:
        node = self.log.leader
        if node is None:
            return
        self.log.lose_leader(self.rng)
        self._count("deposed")
        # The cut-off leader keeps acting with its old term until it notices.
        self._at(self.now + self.rng.uniform(0.05, 0.5), "stepdown", node)
        self._at(self.now + self.rng.uniform(0.05, 0.3), "elect")

    # --- crashes, restarts, clocks ------------------------------------------------------------

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at simulated time ``when`` (for scripted scenarios)."""
        self._at(when, "call", fn)

    def crash(self, victim: str, restart_after: float = 0.3, keep_pending: int | None = None) -> None:
        """Crash ``victim`` (an agent id, or "leader") now; it restarts ``restart_after`` later.

        For the leader, ``keep_pending`` says how many of its unapplied batches survive
        (default: a random number of them, as Raft allows).
        """
        self._crash(victim, restart_after, keep_pending)

    def depose(self) -> None:
        """Cut the leader off from the other replicas now; it keeps acting until it notices."""
        self._depose()

    def _crash(self, victim: str, restart_after: float | None = None, keep_pending: int | None = None) -> None:
        if victim == "leader":
            node = self.log.leader
            if node is None:
                return
            self.log.lose_leader(self.rng, keep_pending)
            self.leaders.pop(node, None)
            self._down(node)
            self._at(self.now + self.rng.uniform(0.05, 0.3), "elect")
        else:
            if not self.up[victim]:
                return
            self.agents[victim].participant = None
            self.running[victim].clear()  # its executions died with it
            self._down(victim)
        self._count("crashes")
        after = restart_after if restart_after is not None else self.rng.uniform(0.1, 1.5)
        self._at(self.now + after, "restart", victim if victim != "leader" else node)

    def _down(self, node: str) -> None:
        self.up[node] = False
        self._clear_timers(node)

    def _clear_timers(self, node: str) -> None:
        self._groups.pop(node, None)  # a leader's unappended records end with its leadership
        for key in [k for k in self._timers if k[0] == node]:
            del self._timers[key]

    def _restart(self, node: str) -> None:
        if self.up[node]:
            return
        self.up[node] = True
        if node in self.agents:
            self._boot_agent(node)

    def _boot_agent(self, agent_id: str) -> None:
        agent = self.agents[agent_id]
        agent.incarnation += 1
        spec = agent.spec
        agent.participant = Participant(
            spec.agent_id,
            spec.capabilities,
            spec.capacity,
            agent.incarnation,
            self.timing,
            offer,
            self.defects,
        )
        self._step(agent_id, Booted())

    def _clock_jump(self, node: str, jump: float) -> None:
        self.offset[node] += jump
        self._count("clock_jumps")
        for (owner, key), (token, at) in list(self._timers.items()):
            if owner == node:
                self._at(max(self.now, at - self.offset[node]), "timer", node, key, token)

    def _heal(self) -> None:
        self.healed = True
        self.partitions.clear()
        for node in sorted(self.up):
            if not self.up[node]:
                self._restart(node)
        if self.log.leader is None:
            self._at(self.now, "elect")

    # --- executions ---------------------------------------------------------------------------

    def _start_execution(self, node: str, effect: StartExecution) -> None:
        agent = self.agents[node]
        sub = effect.assignment.subtask_id
        self.checkers.execution_started(node, effect.attempt, effect.session_id, sub, effect.parameters)
        self.running[node][sub] = effect.assignment.demand
        participant = agent.participant
        busy = sum(self.running[node].values())
        if participant is not None and busy > participant.limit:
            raise Violation("capacity", f"{node} runs {sorted(self.running[node])} ({busy}) beyond {participant.limit}")
        self._count("executions")
        took = self.rng.uniform(0.005, 0.05)
        self._at(self.now + took, "exec_done", node, agent.incarnation, effect)

    def _exec_done(self, node: object, incarnation: object, effect: object) -> None:
        agent = self.agents[str(node)]
        if agent.participant is None or agent.incarnation != incarnation or not isinstance(effect, StartExecution):
            return  # the process that ran it is gone
        a = effect.assignment
        if self.running[str(node)].pop(a.subtask_id, None) is None:
            return  # stopped: it ends without a result or a side effect
        failed = not self.healed and self.rng.random() < self.plan.execution_failure
        forced = self.execution_outcome(effect) if self.execution_outcome else None
        if forced is not None:
            outcome = forced
        elif failed:
            outcome = Outcome(False, error="simulated execution failure")
        else:
            value = sum(v for _, v in effect.parameters) + len(a.subtask_id)
            outcome = Outcome(True, (("value", float(value)),))
        if outcome.ok:
            agent.store[a.subtask_id] = outcome.output  # the side effect, keyed by subtask
        self._step(str(node), ExecutionDone(effect.session_id, a.subtask_id, effect.attempt, outcome))

    # --- clients ------------------------------------------------------------------------------

    def _client_submit(self, client: str, i: int, repeat: bool) -> None:
        ct = self.tasks[i]
        if ct.session_id and not repeat:
            return  # answered: stop retrying
        self._send(client, MCA, Submit(client, ct.key, ct.task))
        if not repeat:
            self._at(self.now + 0.3, "submit", client, i, "retry")

    def _client_cancel(self, client: str, i: int) -> None:
        ct = self.tasks[i]
        if ct.cancel_answered:
            return
        self._send(client, MCA, Cancel(client, ct.session_id))
        self._at(self.now + 0.3, "cancel", client, i)

    def _client_receive(self, client: str, event: object) -> None:
        if isinstance(event, SubmitReply):
            i = next(i for i, ct in enumerate(self.tasks) if ct.key == event.idempotency_key)
            ct = self.tasks[i]
            if event.status != "OK":
                return  # retried by the pending submit timer
            self.checkers.acknowledged(ct.key, event.session_id)
            if not ct.session_id:
                ct.session_id = event.session_id
                if ct.repeat:  # a user who submits the same request again
                    self._at(self.now + self.rng.uniform(0.0, 0.5), "submit", client, i, "repeat")
                if ct.cancel_after is not None:
                    self._at(self.now + ct.cancel_after, "cancel", client, i)
        elif isinstance(event, CancelReply):
            for ct in self.tasks:
                if ct.session_id == event.session_id:
                    ct.cancel_answered = True
