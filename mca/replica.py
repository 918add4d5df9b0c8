"""Theory of operation: one MCA replica, the host around the pure core.

A replica owns a ``RaftDecisionLog`` (pysyncobj) and a gRPC server with ``TaskService`` (for
clients), ``CoordinationService`` (for agents), health checking and server reflection. While
Raft makes it leader it also runs a ``protocol.leader.Leader`` for that term; the core decides,
this host only turns effects into I/O:

* ``Send`` to an agent joins the ``PeerLink`` of the address the agent registered: one batched
  ``Deliver`` call at a time per agent, whose reply brings the agent's votes and
  acknowledgements back; ``Send`` to a client resolves the future of the request waiting for it;
* ``Append`` joins the ``GroupCommit`` of this loop turn: one Raft entry carries every record the
  turn produced, cut when the loop goes idle (``call_soon``), never on a timer;
* ``SetTimer``/``CancelTimer`` go to a ``TimerWheel``; timers due together are stepped together.

Ordering: pysyncobj applies entries on its tick thread, holding the log's ``guard``, and the
leader is stepped with each applied record right there, under the guard; every other step (a
client request, a batch of agent messages, due timers) takes the same guard on the event-loop
thread. So the leader sees the ledger exactly as of the events it has processed, which is the
model the simulator checks. Effects always run on the event loop, never on the tick thread:
the effects of a whole applied batch are handed over in one ``call_soon_threadsafe``.

Followers forward client calls to the leader (they know it from Raft), so any replica accepts
any call; agents are told the leader's address instead and talk to it directly. Reads (``Get``,
``Watch``) are forwarded too, so a client never reads a follower's older state after a write it
made through the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mca.boundary import ON_BEHALF_OF, Boundary, caller
from mca.catalog import CATALOG, TaskType, check_document, task_from_request
from mca.io import Outbox, PeerLink, TimerWheel
from mca.livestate import NOTE_LENGTH_MAX, LiveState, Progress
from mca.metrics import Metrics
from mca.raftlog import RaftDecisionLog, RaftTiming
from mca.readmodel import History, ReadModel
from mca.tls import Identity, Principal, server_name
from mca.topology import Grant, ReplicaAddress
from protocol import messages as m
from protocol._pb import coordination_pb2 as pb
from protocol._pb import coordination_pb2_grpc as pb_grpc
from protocol.batching import GroupCommit
from protocol.effects import Append, CancelTimer, Effect, Send, SetTimer
from protocol.entries import Registered
from protocol.errors import CoordinationError, InvalidTask, UnknownSession, shown
from protocol.events import Applied, BecameLeader, TimerFired
from protocol.leader import Leader, check_register
from protocol.ledger import Ledger, SessionRecord
from protocol.model import NAME_LENGTH_MAX, RESULT_DOCUMENT_LENGTH_MAX, Limits, Timing, params_refusal, text_refusal
from protocol.wire import LEADER_HINT, RETRY_AFTER, TO_AGENT_FIELD, from_proto, pack, unpack

#: How long a client request waits for its entry to be applied before it is told to retry.
APPLY_WAIT_SECONDS = 10.0
#: Metadata on a call a follower forwards to the leader (a call is forwarded at most once).
FORWARDED = ("mca-forwarded", "1")
#: An agent with no heartbeat for this long is shown as offline.
HEARTBEAT_STALE_SECONDS = 3.0

STATUS = {
    "OK": grpc.StatusCode.OK,
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
}

#: Who may call each service of a replica (``mca.boundary``): clients and operators the tasks,
#: agents the coordination. Replicas call neither, except to relay a caller's call, which then
#: counts as the caller's.
SERVES = {
    pb.DESCRIPTOR.services_by_name["TaskService"].full_name: frozenset({"client", "operator"}),
    pb.DESCRIPTOR.services_by_name["CoordinationService"].full_name: frozenset({"agent"}),
}

#: How long one batched call to an agent may take before its messages count as lost (the
#: protocol resends what still matters).
DELIVER_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class ReplicaConfig:
    me: ReplicaAddress
    peers: tuple[ReplicaAddress, ...]
    data_dir: str
    password: str = field(repr=False)
    #: This replica's TLS identity (``replica:<id>``), for its listener and its calls.
    identity: Identity = field(repr=False)
    #: The agents of the deployment, by id: an agent registers only within its grant.
    grants: Mapping[str, Grant] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)
    limits: Limits = field(default_factory=Limits)
    raft: RaftTiming = field(default_factory=RaftTiming)
    catalog: dict[str, TaskType] = field(default_factory=lambda: dict(CATALOG))
    #: The durable read model's document store (a MongoDB URL); empty: none.
    documents_url: str = field(default="", repr=False)  # may carry a password
    #: Live state (agent status, progress fan-out) in Redis; empty: in this process only.
    redis_url: str = field(default="", repr=False)


class NotLeader(Exception):
    """This replica does not lead and knows no leader to forward to."""


class Replica:
    def __init__(self, config: ReplicaConfig, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.log: RaftDecisionLog | None = None
        self._leader: Leader | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None
        self._timers = TimerWheel(self._timers_fired)
        self._group = GroupCommit()
        self._links: dict[tuple[str, str], PeerLink[Any]] = {}  # by (agent id, address)
        # Effects of applied records, gathered on the tick thread until their batch is done.
        self._applied_effects: list[tuple[list[Effect], str, Leader | None]] = []
        #: How well batching works, for ``mca status`` and the bench: Raft entries appended and
        #: the records they carried; Deliver calls to agents, the messages they carried and
        #: the answers their replies brought; Deliver calls from agents and their messages.
        self.batching: dict[str, int] = dict.fromkeys(
            ("entries", "records", "calls_out", "messages_out", "answers", "calls_in", "messages_in", "apply_wait_us"),
            0,
        )
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._tokens = itertools.count(1)
        self._outbox = Outbox(config.identity)
        self._watchers: dict[str, list[asyncio.Future[None]]] = {}
        self._ending: dict[str, list[asyncio.Future[None]]] = {}  # Submit(wait) until terminal
        self._heartbeats: dict[str, float] = {}
        self._ready_term = 0
        self._watcher: asyncio.Task[None] | None = None
        self._grpc_of_raft = {p.raft: p.grpc for p in (config.me, *config.peers)}
        self.read_model: ReadModel | None = None
        self.live = LiveState(config.redis_url)
        self._background: list[asyncio.Task[None]] = []

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        c = self.config
        self.log = RaftDecisionLog(c.me.raft, [p.raft for p in c.peers], c.data_dir, c.password, c.raft)
        log = self.log
        if c.documents_url:
            self.read_model = ReadModel(c.documents_url, log.guard)
            self._background.append(
                asyncio.create_task(
                    self.read_model.run(
                        lambda: log.ledger,
                        lambda: log.applied_index,
                        lambda: self.is_leader,
                        log.applied_entries,
                        lambda: History(log.history_from, log.first_record),
                    )
                )
            )
        log.subscribe(self._applied_on_tick_thread)
        log.on_batch(self._batch_done_on_tick_thread)
        await self.live.start()
        boundary = Boundary(SERVES, lambda reason: self.metrics.count("calls_refused_total", {"reason": reason}))
        server = grpc.aio.server(interceptors=[boundary])
        pb_grpc.add_TaskServiceServicer_to_server(_TaskService(self), server)
        pb_grpc.add_CoordinationServiceServicer_to_server(_CoordinationService(self), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = [pb.DESCRIPTOR.services_by_name[s].full_name for s in ("TaskService", "CoordinationService")]
        for name in ("", *names):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        if server.add_secure_port(c.me.grpc, c.identity.server_credentials()) == 0:
            raise OSError(f"cannot listen on {c.me.grpc}")
        await server.start()
        self._server = server
        self._watcher = asyncio.create_task(self._watch_leadership())

    async def stop(self) -> None:
        for task in (*self._background, *([self._watcher] if self._watcher else [])):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping goes on regardless
                await task
        if self.read_model is not None:
            await self.read_model.close()
        await self.live.close()
        self._timers.clear()
        if self._server is not None:
            await self._server.stop(grace=0.2)
        await self._outbox.close()
        self.metrics.close()  # the last figures go out
        if self.log is not None:
            self.log.close()

    @property
    def ledger(self) -> Ledger:
        return self._log().ledger

    @property
    def is_leader(self) -> bool:
        return self._leader is not None

    def _log(self) -> RaftDecisionLog:
        if self.log is None:
            raise RuntimeError("replica not started")
        return self.log

    # --- leadership ---------------------------------------------------------------------------

    async def _watch_leadership(self) -> None:
        barrier_term = 0  # the term whose barrier we appended
        while True:
            log = self._log()
            effects: list[Effect] = []
            with log.guard:
                leading, term = log.is_leader, log.term
                if self._leader is not None and (not leading or self._leader.term != term):
                    self._drop_leadership()
                if leading and self._leader is None:
                    if self._ready_term == -term:  # the barrier failed (leader churn): append it again
                        barrier_term = 0
                    if barrier_term != term:
                        barrier_term = term
                        self._ready_term = 0
                        log.barrier(term, functools.partial(self._barrier_applied, term))
                    elif self._ready_term == term:
                        # Every entry the previous leaders got to a majority is applied: take over.
                        self._leader = Leader(term, log.ledger, self.config.timing, limits=self.config.limits)
                        self.metrics.count("leader_changes_total")
                        effects = self._leader.step(BecameLeader(), time.monotonic())
                if not leading:
                    barrier_term = 0
            self._perform(effects)
            await asyncio.sleep(0.01)

    def _barrier_applied(self, term: int, ok: bool) -> None:
        self._ready_term = term if ok else -term

    def _drop_leadership(self) -> None:
        self._leader = None
        self._timers.clear()
        self._group.drop()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(NotLeader("leadership changed before the request was decided"))
        self._waiting.clear()

    def leader_grpc_address(self) -> str | None:
        """The gRPC address of the replica Raft says leads, or None while there is none."""
        raft_leader = self._log().leader
        return self._grpc_of_raft.get(raft_leader) if raft_leader else None

    # --- stepping the core --------------------------------------------------------------------

    def _applied_on_tick_thread(self, applied: Applied) -> None:
        """Called by pysyncobj's tick thread with the guard held, once per applied entry."""
        leader = self._leader
        if self.read_model is not None:
            entry = applied.entry
            if applied.result.retired:
                self.read_model.retire(applied.result.retired)
            self.read_model.touch(
                applied.result.session_id or getattr(entry, "session_id", ""),
                entry.agent_id if isinstance(entry, Registered) else "",
            )
        effects = leader.step(applied, time.monotonic()) if leader is not None else []
        if leader is not None:
            try:
                self.metrics.applied(applied, leader.ledger, time.monotonic())
            except Exception:  # figures must never break the state machine's apply
                logging.getLogger(__name__).exception("metrics failed on entry %d", applied.index)
        session_id = applied.result.session_id or getattr(applied.entry, "session_id", "")
        self._applied_effects.append((effects, session_id, leader))

    def _batch_done_on_tick_thread(self) -> None:
        """The last record of a batch is applied: hand its effects to the loop, once."""
        done, self._applied_effects = self._applied_effects, []
        if done and self._loop is not None:
            self._loop.call_soon_threadsafe(self._after_batch, done)

    def _after_batch(self, done: list[tuple[list[Effect], str, Leader | None]]) -> None:
        woken: set[str] = set()
        for effects, session_id, leader in done:
            if leader is not None and leader is not self._leader:
                # Produced by a leader that has since been replaced: its messages are harmless
                # (fenced by term), its timers and appends are not ours to keep.
                effects = [e for e in effects if isinstance(e, Send)]
            self._perform(effects)
            woken.add(session_id)
        # Wake only those waiting on these sessions: a wake-everyone event would cost
        # O(requests in flight) per applied batch.
        for session_id in woken:
            for waiter in self._watchers.pop(session_id, []):
                if not waiter.done():
                    waiter.set_result(None)
            if session_id in self._ending:
                record = self.ledger.session(session_id)
                if record is None or record.terminal:
                    for waiter in self._ending.pop(session_id):
                        if not waiter.done():
                            waiter.set_result(None)

    def step(self, event: object) -> bool:
        """Step the leader with ``event`` (on the loop thread). False when not leading."""
        return self.step_many((event,))

    def step_many(self, events: Iterable[object]) -> bool:
        """Step the leader with each event in turn, under one hold of the guard, and perform
        the effects after. False when not leading."""
        log = self._log()
        effects: list[Effect] = []
        with log.guard:
            leader = self._leader
            if leader is None:
                return False
            now = time.monotonic()
            for event in events:
                effects += leader.step(event, now)
        self._perform(effects)
        return True

    def _perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect.to, effect.message)
            elif isinstance(effect, Append):
                leader = self._leader
                if leader is not None and self._group.add(effect.entry, leader.term):
                    asyncio.get_running_loop().call_soon(self._cut)
            elif isinstance(effect, SetTimer):
                self._timers.set(effect.key, effect.at)
            elif isinstance(effect, CancelTimer):
                self._timers.cancel(effect.key)

    def _cut(self) -> None:
        """The loop went idle after the first record of a batch: append what the turn made."""
        batch, term = self._group.cut()
        leader = self._leader
        if batch is None or leader is None or leader.term != term:
            return
        appended_at = time.perf_counter()
        if self._log().append(batch, term, functools.partial(self._settled_on_tick_thread, leader, appended_at)):
            self._group.appended()
            self.batching["entries"] += 1
            self.batching["records"] += len(batch.records)

    def _settled_on_tick_thread(self, leader: Leader, appended_at: float, applied: bool) -> None:
        """One of our batches applied (or was dropped): the pipeline has room again."""
        if applied:
            self.batching["apply_wait_us"] += int((time.perf_counter() - appended_at) * 1e6)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._settled, leader)

    def _settled(self, leader: Leader) -> None:
        if leader is self._leader and self._group.settled():
            self._cut()

    def _timers_fired(self, keys: list[Hashable]) -> None:
        self.step_many([TimerFired(key) for key in keys])

    def _send(self, to: str, message: object) -> None:
        waiting = self._waiting.pop(to, None) if isinstance(message, (m.SubmitReply, m.CancelReply)) else None
        if waiting is not None:  # the answer to a client request
            if not waiting.done():
                waiting.set_result(message)
            return
        agent = self._log().ledger.agents.get(to)
        if type(message) not in TO_AGENT_FIELD or agent is None or not agent.address:
            return  # a client that is gone, or an agent we cannot reach: senders retry
        link = self._links.get((to, agent.address))
        if link is None:
            for moved in [k for k in self._links if k[0] == to]:  # its earlier lives' addresses
                del self._links[moved]
                self._outbox.forget(moved[1], server_name(Principal("agent", to)))
            link = self._links[to, agent.address] = PeerLink(
                functools.partial(self._deliver_to_agent, to, agent.address), self._outbox
            )
        link.send(message)

    async def _deliver_to_agent(self, agent_id: str, address: str, batch: list[Any]) -> None:
        """One batched call to an agent; its reply carries the agent's answers (votes,
        acknowledgements), stepped at once as if they had come in a call of their own. TLS
        makes sure the server is ``agent_id`` (its certificate's name), so its answers are
        taken as that agent's and no other's."""
        server = server_name(Principal("agent", agent_id))
        stub = pb_grpc.AgentServiceStub(self._outbox.channel(address, server))
        self.batching["calls_out"] += 1
        self.batching["messages_out"] += len(batch)
        reply = await stub.Deliver(pack(batch, to_agent=True), timeout=DELIVER_TIMEOUT_SECONDS)
        answers = unpack(reply)
        self.batching["answers"] += len(answers)
        # The same boundary as a Deliver call of the agent's own: a refused answer is dropped
        # (logged), never stepped; its sender resends or fails the subtask.
        answers, refused = self.sift(answers, agent_id)
        if refused:
            self.metrics.count("calls_refused_total", {"reason": "message"})
            logging.getLogger(__name__).warning("answers from %s at %s refused: %s", agent_id, address, refused[:3])
        if answers and self.step_many(answers):
            self.took(answers)

    async def request(self, make: Callable[[str], object]) -> object:
        """Step the leader with a client request and wait for the answer the core sends back."""
        if self._leader is None:
            raise NotLeader("not the leader")
        token = f"request-{next(self._tokens)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        if not self.step(make(token)):
            self._waiting.pop(token, None)
            raise NotLeader("not the leader")
        try:
            return await asyncio.wait_for(future, APPLY_WAIT_SECONDS)
        finally:
            self._waiting.pop(token, None)

    async def ended(self, session_id: str) -> None:
        """Wait until ``session_id`` is terminal (one wakeup, not one per applied record)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ending.setdefault(session_id, []).append(waiter)
        try:
            record = self.ledger.session(session_id)
            if record is None or record.terminal:  # it ended before we registered
                return
            await waiter
        finally:  # a client that went away leaves nothing behind
            waiting = self._ending.get(session_id, [])
            if waiter in waiting:
                waiting.remove(waiter)
            if not waiting:
                self._ending.pop(session_id, None)

    def waiter(self, session_id: str) -> asyncio.Future[None]:
        """A future done when the next entry about ``session_id`` is applied. Registered at
        once: take it *before* reading the session, or a wakeup can fall in between."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.setdefault(session_id, []).append(waiter)
        return waiter

    def unwait(self, session_id: str, waiter: asyncio.Future[None]) -> None:
        waiting = self._watchers.get(session_id)
        if waiting is None:
            return
        if waiter in waiting:
            waiting.remove(waiter)
        if not waiting:
            del self._watchers[session_id]

    # --- views --------------------------------------------------------------------------------

    def session_view(self, record: SessionRecord) -> Any:
        with self._log().guard:  # the tick thread may be applying an entry to this record
            return self._session_view(record)

    def _session_view(self, record: SessionRecord) -> Any:
        subtasks = []
        for a in record.assignments:
            outcome = record.results.get(a.subtask_id)
            subtasks.append(
                pb.SubtaskView(
                    subtask_id=a.subtask_id,
                    agent_id=a.agent_id,
                    capability=a.capability,
                    finished=outcome is not None,
                    ok=bool(outcome and outcome.ok),
                    output=[pb.Param(name=n, value=v) for n, v in (outcome.output if outcome else ())],
                    error=outcome.error if outcome else "",
                    document=outcome.document if outcome else "",
                )
            )
        return pb.SessionView(
            session_id=record.session_id,
            idempotency_key=record.idempotency_key,
            task_type=record.task.task_type,
            state=record.state.value,
            reason=record.reason,
            decision=record.decision.value if record.decision else "",
            parameters=[pb.Param(name=n, value=v) for n, v in record.parameters],
            subtasks=subtasks,
            last_seq=len(record.events),
        )

    async def agent_views(self) -> list[Any]:
        # Agents this replica has not heard lately (it may have just become leader): what the
        # live state says, if their status key has not expired.
        now = time.monotonic()
        unheard = [a for a in list(self.ledger.agents) if now - self._heartbeats.get(a, -1e9) > HEARTBEAT_STALE_SECONDS]
        stored = await self.live.agent_statuses(unheard)
        with self._log().guard:  # load() walks dicts the tick thread changes
            return self._agent_views(stored)

    def _agent_views(self, stored: dict[str, dict[str, Any]]) -> list[Any]:
        ledger = self.ledger
        load = ledger.load()
        now = time.monotonic()
        views = []
        for agent in ledger.agents.values():
            seen = self._heartbeats.get(agent.agent_id)
            used = load.get(agent.agent_id, 0)
            fresh = seen is not None and now - seen <= HEARTBEAT_STALE_SECONDS
            if not fresh and agent.agent_id not in stored:
                status = "offline"
            elif used >= agent.capacity:
                status = "busy"
            else:
                status = "available"
            views.append(
                pb.AgentView(
                    agent_id=agent.agent_id,
                    capabilities=list(agent.capabilities),
                    capacity=agent.capacity,
                    load=used,
                    status=status,
                    incarnation=agent.incarnation,
                )
            )
        return views

    def unknown(self, session_id: str) -> str:
        """Why ``session_id`` is not in the ledger: never issued, or settled and retired."""
        return str(UnknownSession(session_id, self.ledger.retired(session_id)))

    def sift(self, messages: list[object], agent_id: str) -> tuple[list[object], list[Refused]]:
        """The messages of ``agent_id`` that pass the boundary checks (``_refusal``), and the
        refused ones. A message about a retired session is a late repeat: neither."""
        taken: list[object] = []
        refused: list[Refused] = []
        with self._log().guard:
            ledger = self.ledger
            for i, message in enumerate(messages):
                code, why = _refusal(message, agent_id, ledger)
                if code is not grpc.StatusCode.OK:
                    refused.append((i, code, why))
                elif not why:
                    taken.append(message)
        return taken, refused

    def registration_refused(self, message: m.Register, principal: Principal) -> tuple[grpc.StatusCode, str] | None:
        """Why ``principal`` may not register ``message`` (None: it may): only as itself,
        within its grant, and not as an earlier life than the registered one."""
        if message.agent_id != principal.name:
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"agent_id: {shown(message.agent_id)} is not the caller ({principal})",
            )
        grant = self.config.grants.get(message.agent_id)
        if grant is None:
            return grpc.StatusCode.PERMISSION_DENIED, f"agent {principal.name} is not an agent of this deployment"
        extra = sorted(set(message.capabilities) - grant.capabilities)
        if extra:
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"capabilities: {shown(extra[0])} is not granted to {principal.name} "
                f"(granted: {', '.join(sorted(grant.capabilities))})",
            )
        if message.capacity > grant.capacity:
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"capacity: {message.capacity} is more than the {grant.capacity} granted to {principal.name}",
            )
        try:
            with self._log().guard:
                check_register(message, self.ledger)
        except CoordinationError as exc:
            return STATUS.get(exc.status, grpc.StatusCode.FAILED_PRECONDITION), str(exc)
        return None

    def took(self, messages: Iterable[object]) -> None:
        """Bookkeeping for agent messages the leader stepped: who was heard, votes counted."""
        now = time.monotonic()
        for message in messages:
            agent_id = getattr(message, "agent_id", "")
            if agent_id in self.ledger.agents:  # never a key from a stranger's message
                self._heartbeats[agent_id] = now
            if isinstance(message, m.Vote):
                self.metrics.count("votes_total", {"vote": "yes" if message.yes else "no"})

    def heard_from(self, agent_id: str) -> None:
        self._heartbeats[agent_id] = time.monotonic()

    def heartbeat(self, agent_id: str) -> None:
        """A heartbeat: the agent is alive; as leader, refresh its status key in the live state
        (one write at a time per agent: a slow Redis delays a refresh, it does not pile them up)."""
        self.heard_from(agent_id)
        key = ("status", agent_id)
        if self._leader is None or not self.live.url or self._outbox.busy(key):
            return
        with self._log().guard:
            agent = self.ledger.agents.get(agent_id)
            used = self.ledger.load().get(agent_id, 0) if agent is not None else 0
        if agent is None:
            return
        status = {
            "status": "busy" if used >= agent.capacity else "available",
            "load": used,
            "capacity": agent.capacity,
            "incarnation": agent.incarnation,
        }
        self._outbox.spawn(self.live.agent_seen(agent_id, status, HEARTBEAT_STALE_SECONDS), key)

    def check_progress(self, report: Progress, agent_id: str) -> str:
        """Why a progress report cannot be taken (empty: it can): it must come from the agent a
        subtask of an executing session is assigned to."""
        if not math.isfinite(report.fraction) or not 0.0 <= report.fraction <= 1.0:
            return f"fraction: {report.fraction} is not between 0 and 1"
        with self._log().guard:
            record = self.ledger.session(report.session_id)
            if record is None:
                return f"session_id: {self.unknown(report.session_id)}"
            if record.state.value != "executing":
                return f"session_id: session {record.session_id} is {record.state.value}, not executing"
            owner = next((a.agent_id for a in record.assignments if a.subtask_id == report.subtask_id), None)
        if owner is None:
            return f"subtask_id: {shown(report.subtask_id)} is not a subtask of {report.session_id}"
        if owner != agent_id:
            return f"agent_id: subtask {report.subtask_id} is assigned to {owner}, not {shown(agent_id)}"
        return ""


# --- gRPC services ----------------------------------------------------------------------------


class _Forwarding:
    """Shared by both services: run here if leading, else relay the call to the leader."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    async def leader_channel(self, context: grpc.aio.ServicerContext) -> grpc.aio.Channel | None:
        """None if this replica leads (serve here), else a channel to the leader. While no
        leader is ready, the call fails with UNAVAILABLE, which clients retry: a follower never
        answers from its own copy, which may lag behind what the client already saw."""
        if self.replica.is_leader:
            return None
        if any(key == FORWARDED[0] for key, _ in context.invocation_metadata() or ()):
            # Forwarded once already: two replicas disagree on who leads; never bounce a call.
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "leadership is changing; retry")
        address = self.replica.leader_grpc_address()
        if address is None or address == self.replica.config.me.grpc:
            await _abort(
                context, grpc.StatusCode.UNAVAILABLE, "no leader is ready yet (an election is under way); retry"
            )
        context.set_trailing_metadata(((LEADER_HINT, address),))  # next time, ask the leader
        return self.replica._outbox.channel(address)


class _TaskService(pb_grpc.TaskServiceServicer, _Forwarding):  # type: ignore[misc]
    async def Submit(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        key = request.idempotency_key
        if not key or len(key) > NAME_LENGTH_MAX or not key.isprintable():
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"idempotency_key: must be 1 to {NAME_LENGTH_MAX} printable characters; "
                "choose one per task and reuse it only to retry that task",
            )
        try:
            task = task_from_request(
                request.task_type, request.payload, tuple(request.success_criteria), self.replica.config.catalog
            )
        except InvalidTask as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        channel = await self.leader_channel(context)
        if channel is not None:
            return await _relay(
                context,
                pb_grpc.TaskServiceStub(channel).Submit(
                    request, timeout=_remaining(context, unbounded=request.wait), metadata=_forwarded()
                ),
            )
        owner = str(caller())
        reply = await self._ask(context, lambda token: m.Submit(token, key, task, owner))
        if not isinstance(reply, m.SubmitReply):
            await _abort(context, grpc.StatusCode.INTERNAL, "unexpected answer from the coordinator")
        if reply.status == "RESOURCE_EXHAUSTED":
            retry_after = self.replica.config.limits.retry_after
            context.set_trailing_metadata(((RETRY_AFTER, f"{retry_after * 1000:.0f}"),))
        if reply.status != "OK":
            await _abort(context, STATUS.get(reply.status, grpc.StatusCode.INTERNAL), reply.error)
        record = self.replica.ledger.session(reply.session_id)
        if record is None:  # retired in the meantime (a retry of a key at the edge of its window)
            await _abort(context, grpc.StatusCode.NOT_FOUND, self.replica.unknown(reply.session_id))
        if request.wait and not record.terminal:
            await self.replica.ended(record.session_id)
        return self.replica.session_view(record)

    async def Get(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        channel = await self.leader_channel(context)
        if channel is not None:
            return await _relay(
                context,
                pb_grpc.TaskServiceStub(channel).Get(request, timeout=_remaining(context), metadata=_forwarded()),
            )
        record = await self._owned(context, request.session_id)
        return self.replica.session_view(record)

    async def Cancel(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        channel = await self.leader_channel(context)
        if channel is not None:
            return await _relay(
                context,
                pb_grpc.TaskServiceStub(channel).Cancel(request, timeout=_remaining(context), metadata=_forwarded()),
            )
        await self._owned(context, request.session_id)
        reply = await self._ask(context, lambda token: m.Cancel(token, request.session_id))
        if not isinstance(reply, m.CancelReply):
            await _abort(context, grpc.StatusCode.INTERNAL, "unexpected answer from the coordinator")
        if reply.status != "OK":
            await _abort(context, STATUS.get(reply.status, grpc.StatusCode.INTERNAL), reply.error)
        record = self.replica.ledger.session(request.session_id)
        if record is None:
            await _abort(context, grpc.StatusCode.NOT_FOUND, self.replica.unknown(request.session_id))
        return self.replica.session_view(record)

    async def Watch(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        channel = await self.leader_channel(context)
        if channel is not None:
            try:
                async for event in pb_grpc.TaskServiceStub(channel).Watch(request, metadata=_forwarded()):
                    yield event
            except grpc.aio.AioRpcError as exc:
                await _abort(context, exc.code(), exc.details() or "")
            return
        record = await self._owned(context, request.session_id)
        sent = max(0, int(request.after_seq))
        live = self.replica.live
        async with live.listen(record.session_id) as reports:
            caught_up = False
            while True:
                # Registered before the session is read: an entry applied from here on wakes us.
                changed = self.replica.waiter(record.session_id)
                try:
                    with self.replica._log().guard:
                        events, settled, state = list(record.events), record.settled, record.state.value
                    for seq in range(sent + 1, len(events) + 1):
                        e = events[seq - 1]
                        yield pb.SessionEvent(
                            session_id=record.session_id, seq=seq, kind=e.kind, state=e.state, detail=e.detail
                        )
                        sent = seq
                    if settled and sent >= len(events):
                        return
                    if not caught_up:  # a (re)connecting watcher first gets the latest progress
                        caught_up = True
                        for p in await live.current(record.session_id):
                            yield _progress_event(p, sent, state)
                    report = asyncio.ensure_future(reports.get())
                    try:
                        await asyncio.wait((changed, report), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        report.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await report
                    if report.done() and not report.cancelled():
                        yield _progress_event(report.result(), sent, state)
                    while not reports.empty():
                        yield _progress_event(reports.get_nowait(), sent, state)
                finally:
                    self.replica.unwait(record.session_id, changed)

    async def ListAgents(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        channel = await self.leader_channel(context)
        if channel is not None:
            return await _relay(
                context,
                pb_grpc.TaskServiceStub(channel).ListAgents(
                    request, timeout=_remaining(context), metadata=_forwarded()
                ),
            )
        return pb.ListAgentsReply(agents=await self.replica.agent_views())

    async def _owned(self, context: grpc.aio.ServicerContext, session_id: str) -> SessionRecord:
        """The session, if the caller owns it or is an operator. Someone else's session is
        NOT_FOUND with the words of one that does not exist: its existence is not told."""
        record = self.replica.ledger.session(session_id)
        principal = caller()
        if principal.operator:
            if record is None:
                await _abort(context, grpc.StatusCode.NOT_FOUND, self.replica.unknown(session_id))
            return record
        if record is None or record.owner != str(principal):
            # One wording for "never issued", "another's" and "retired": ids are sequential, so
            # telling them apart would tell which of the others' sessions are still running.
            await _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"session {shown(session_id)} is none of yours the coordinator holds (never issued, or retired)",
            )
        return record

    async def _ask(self, context: grpc.aio.ServicerContext, make: Callable[[str], object]) -> object:
        try:
            return await self.replica.request(make)
        except (NotLeader, TimeoutError) as exc:
            await _abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                f"the coordinator could not confirm the request ({str(exc) or 'timed out'}); "
                "retry with the same idempotency key: it is safe",
            )
        except CoordinationError as exc:  # pragma: no cover - the core answers, it does not raise
            await _abort(context, STATUS.get(exc.status, grpc.StatusCode.INTERNAL), str(exc))


#: A refused message of a batch: its index, the status, and why.
Refused = tuple[int, grpc.StatusCode, str]
#: Not refused, not stepped: a late repeat about a session that settled and retired.
_LATE = (grpc.StatusCode.OK, "late")


def _refusal(message: object, agent_id: str, ledger: Ledger) -> tuple[grpc.StatusCode, str]:
    """Why an agent's protocol message is refused at the boundary ((OK, '') when it is taken):
    it must be the caller's own, about a session that exists and a subtask assigned to the
    caller; a result's document must be one the read model can store."""
    claimed = getattr(message, "agent_id", None)
    if claimed != agent_id:
        return grpc.StatusCode.PERMISSION_DENIED, f"agent_id: {shown(str(claimed))} is not the caller ({agent_id})"
    session_id = getattr(message, "session_id", "")
    record = ledger.session(session_id)
    if record is None:
        if ledger.retired(session_id):
            return _LATE
        return grpc.StatusCode.NOT_FOUND, f"session_id: {UnknownSession(session_id)}"
    subtask_id = getattr(message, "subtask_id", "")
    if not any(a.subtask_id == subtask_id and a.agent_id == agent_id for a in record.assignments):
        return (
            grpc.StatusCode.FAILED_PRECONDITION,
            f"subtask_id: {shown(subtask_id)} of session {session_id} is not assigned to {agent_id}",
        )
    if isinstance(message, m.Vote):
        why = params_refusal("offers", message.offers) or text_refusal("reason", message.reason)
        if why:
            return grpc.StatusCode.INVALID_ARGUMENT, why
    if isinstance(message, m.Result):
        outcome = message.outcome
        why = params_refusal("outcome.output", outcome.output) or text_refusal("outcome.error", outcome.error)
        if why:
            return grpc.StatusCode.INVALID_ARGUMENT, why
    if isinstance(message, m.Result) and message.outcome.document:
        document = message.outcome.document
        if len(document) > RESULT_DOCUMENT_LENGTH_MAX:
            return (
                grpc.StatusCode.INVALID_ARGUMENT,
                f"outcome.document: longer than {RESULT_DOCUMENT_LENGTH_MAX} characters",
            )
        why = check_document(document)
        if why:
            return grpc.StatusCode.INVALID_ARGUMENT, f"outcome.document: {why}"
    return grpc.StatusCode.OK, ""


class _CoordinationService(pb_grpc.CoordinationServiceServicer, _Forwarding):  # type: ignore[misc]
    async def Deliver(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """An agent's batch: what passes the checks is stepped; the first refusal (if any) is
        the call's status, naming the message's index (the others were taken)."""
        replica = self.replica
        if not replica.is_leader:  # a follower's ledger may lag: it judges nothing
            await self._not_leader(context)
        messages = unpack(request)
        replica.batching["calls_in"] += 1
        replica.batching["messages_in"] += len(messages)
        taken, refused = replica.sift(messages, caller().name)
        if taken:
            if not replica.step_many(taken):
                await self._not_leader(context)
            replica.took(taken)
        if refused:
            first, code, why = refused[0]
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            replica.metrics.count("calls_refused_total", {"reason": "message"})
            logging.getLogger(__name__).warning(
                "refused from %s (%s): messages[%d].%s%s", caller(), context.peer(), first, why, more
            )
            await _abort(context, code, f"messages[{first}].{why}{more}")
        return pb.Empty()

    async def _not_leader(self, context: grpc.aio.ServicerContext) -> NoReturn:
        # Agents are told where the leader is rather than forwarded: they talk to it directly
        # from then on, which saves every protocol message a hop through a follower.
        address = self.replica.leader_grpc_address()
        if address and address != self.replica.config.me.grpc:
            context.set_trailing_metadata(((LEADER_HINT, address),))
        await _abort(
            context, grpc.StatusCode.UNAVAILABLE, f"not the leader; the leader is {address or 'being elected'}"
        )

    async def Register(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        replica = self.replica
        if not replica.is_leader:  # only the leader's ledger says which incarnation is current
            await self._not_leader(context)
        message = from_proto(request, m.Register)
        refused = replica.registration_refused(message, caller())
        if refused is not None:
            await self._refuse(context, *refused)
        if not replica.step(message):
            await self._not_leader(context)
        replica.heard_from(message.agent_id)
        return pb.Empty()

    async def ReportProgress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        replica = self.replica
        if not replica.is_leader:
            await self._not_leader(context)
        await self._as_caller(context, request.agent_id)
        report = Progress(request.session_id, request.subtask_id, request.fraction, request.note[:NOTE_LENGTH_MAX])
        why = replica.check_progress(report, request.agent_id)
        if why:
            await self._refuse(context, grpc.StatusCode.FAILED_PRECONDITION, why)
        await replica.live.report(report)
        return pb.Empty()

    async def Heartbeat(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        replica = self.replica
        await self._as_caller(context, request.agent_id)
        if not replica.is_leader:
            channel = await self.leader_channel(context)
            if channel is not None:
                return await _relay(
                    context,
                    pb_grpc.CoordinationServiceStub(channel).Heartbeat(
                        request, timeout=_remaining(context), metadata=_forwarded()
                    ),
                )
        if request.agent_id not in replica.ledger.agents:  # the table of who was heard stays bounded
            await self._refuse(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"agent {shown(request.agent_id)} has not registered (or its registration is not applied yet)",
            )
        replica.heartbeat(request.agent_id)
        return pb.Empty()

    async def _as_caller(self, context: grpc.aio.ServicerContext, agent_id: str) -> None:
        """An agent speaks for itself only."""
        if agent_id != caller().name:
            await self._refuse(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"agent_id: {shown(agent_id)} is not the caller ({caller()})",
            )

    async def _refuse(self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, why: str) -> NoReturn:
        self.replica.metrics.count("calls_refused_total", {"reason": code.name.lower()})
        logging.getLogger(__name__).warning("refused from %s (%s): %s", caller(), context.peer(), why)
        await _abort(context, code, why)


def _progress_event(report: Progress, seq: int, state: str) -> Any:
    return pb.SessionEvent(
        session_id=report.session_id,
        seq=seq,
        kind="progress",
        state=state,
        detail=report.note,
        subtask_id=report.subtask_id,
        progress=report.fraction,
    )


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    """End the call with ``code``; ``context.abort`` raises, this says so to the type checker."""
    await context.abort(code, details)
    raise AssertionError("context.abort returned")


async def _relay(context: grpc.aio.ServicerContext, call: Awaitable[Any]) -> Any:
    """Await a call forwarded to the leader and pass its status on unchanged."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        await _abort(context, exc.code(), exc.details() or "")


def _remaining(context: grpc.aio.ServicerContext, unbounded: bool = False) -> float | None:
    """The deadline for relaying a call: the caller's own; without one, APPLY_WAIT_SECONDS,
    or none at all for a call that may rightly take as long as a task (``Submit(wait)``)."""
    left: float | None = context.time_remaining()
    if left is None:
        return None if unbounded else APPLY_WAIT_SECONDS
    return max(0.1, left)


def _forwarded() -> tuple[tuple[str, str | bytes], ...]:
    """Metadata of a call relayed to the leader: relayed once, for the caller (``mca.boundary``
    believes this from a replica's certificate only)."""
    return (FORWARDED, (ON_BEHALF_OF, str(caller()).encode()))
