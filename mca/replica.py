"""Theory of operation: one MCA replica, the host around the pure core.

A replica owns a ``RaftDecisionLog`` (pysyncobj) and a gRPC server with ``TaskService`` (for
clients) and ``CoordinationService`` (for agents) from ``mca.services``, health checking and
server reflection, all behind ``mca.boundary`` (TLS identities, roles). While
Raft makes it leader it also runs a ``protocol.leader.Leader`` for that term; the core decides,
this host only turns effects into I/O:

* ``Send`` to an agent joins the ``StreamLink`` of the address the agent registered: one
  long-lived ``Exchange`` stream per agent, batches both ways; the agent answers each batch on
  it (votes, acknowledgements) and sends its results there too. The streams end with this
  replica's leadership, so an agent then sends to the next leader. ``Send`` to a client
  resolves the future of the request waiting for it;
* ``Append`` joins the ``GroupCommit`` of this loop turn: one Raft entry carries every record the
  turn produced, cut when the loop goes idle (``call_soon``), never on a timer;
* ``SetTimer``/``CancelTimer`` go to a ``TimerWheel``; timers due together are stepped together.

Ordering: pysyncobj applies entries on its tick thread, holding the log's ``guard``, and the
leader is stepped with each applied record right there, under the guard; every other step (a
client request, a batch of agent messages, due timers) takes the same guard on the event-loop
thread. So the leader sees the ledger exactly as of the events it has processed, which is the
model the simulator checks. Effects always run on the event loop, never on the tick thread:
the effects of a whole applied batch are handed over in one ``call_soon_threadsafe``.

Followers relay client calls to the leader (``mca.services``). What the replica shows is built
by ``mca.views``; what it refuses from agents is decided by ``mca.agent_checks``; both read the
ledger under the guard this host holds for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mca.agent_checks import Refused, progress_refusal, registration_refusal, sift
from mca.boundary import Boundary
from mca.catalog import CATALOG, TaskType
from mca.exporter import Figures, MetricsServer
from mca.io import Outbox, StreamLink, TimerWheel
from mca.livestate import LiveState, Progress
from mca.metrics import Metrics
from mca.raftlog import RaftDecisionLog, RaftTiming
from mca.readmodel import History, ReadModel
from mca.services import APPLY_WAIT_SECONDS, SERVES, NotLeader, add_services
from mca.tls import Identity, Principal, server_name
from mca.topology import Grant, ReplicaAddress
from mca.views import HEARTBEAT_STALE_SECONDS, agent_views, session_view
from protocol import messages as m
from protocol._pb import coordination_pb2 as pb
from protocol._pb import coordination_pb2_grpc as pb_grpc
from protocol.batching import GroupCommit
from protocol.effects import Append, CancelTimer, Effect, Send, SetTimer
from protocol.entries import Registered
from protocol.errors import UnknownSession
from protocol.events import Applied, BecameLeader, TimerFired
from protocol.leader import Leader
from protocol.ledger import Ledger, SessionRecord
from protocol.model import Limits, Timing
from protocol.timers import TimerKey
from protocol.wire import TO_AGENT_FIELD, pack, unpack

if TYPE_CHECKING:
    from mca.a2a import A2AServer

#: ``Replica.batching`` as counters of ``GET /metrics`` (``mca_<name>``): how well batching works.
BATCHING_COUNTERS = {
    "entries": "raft_entries_total",
    "records": "raft_records_total",
    "apply_wait_us": "raft_append_to_apply_microseconds_total",
    "calls_out": "agent_stream_writes_total",
    "messages_out": "agent_messages_sent_total",
    "answers": "agent_messages_received_total",
    "calls_in": "agent_deliver_calls_total",
    "messages_in": "agent_deliver_messages_total",
}


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


class Replica:
    def __init__(self, config: ReplicaConfig, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.log: RaftDecisionLog | None = None
        self._leader: Leader | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None
        self._timers: TimerWheel[TimerKey] = TimerWheel(self._timers_fired)
        self._group = GroupCommit()
        self._links: dict[tuple[str, str], StreamLink[Any]] = {}  # by (agent id, address)
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
        self.metrics_server: MetricsServer | None = None
        self.a2a_server: A2AServer | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        c = self.config
        self.log = RaftDecisionLog(c.me.raft, [p.raft for p in c.peers], c.data_dir, c.password, c.raft)
        log = self.log
        if c.documents_url:
            self.read_model = ReadModel(c.documents_url, log.guard, c.catalog)
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
        add_services(server, self)
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
        if c.me.metrics:
            self.metrics_server = MetricsServer(c.me.metrics, c.identity, self.figures)
        if c.me.a2a:
            from mca.a2a import A2AServer  # the a2a-sdk and its web server load only when used

            self.a2a_server = A2AServer(self)
            await self.a2a_server.start()
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
        if self.metrics_server is not None:
            self.metrics_server.close()
        if self.a2a_server is not None:
            await self.a2a_server.close()
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
        for link in self._links.values():  # agents send to the next leader, not on our streams
            link.close()
        self._links.clear()
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

    def _timers_fired(self, keys: list[TimerKey]) -> None:
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
                self._links.pop(moved).close()
                self._outbox.forget(moved[1], server_name(Principal("agent", to)))
            server = server_name(Principal("agent", to))
            stub = pb_grpc.AgentServiceStub(self._outbox.channel(agent.address, server))
            link = self._links[to, agent.address] = StreamLink(
                stub.Exchange, self._to_agent, functools.partial(self._from_agent, to, agent.address), self._outbox
            )
        link.send(message)

    def _to_agent(self, batch: list[Any]) -> Any:
        self.batching["calls_out"] += 1
        self.batching["messages_out"] += len(batch)
        return pack(batch, to_agent=True)

    def _from_agent(self, agent_id: str, address: str, reply: Any) -> None:
        """What an agent sent on our stream to it: the answers to a batch (votes,
        acknowledgements) and messages of its own (results, lease queries), stepped at once as
        if they had come in a call of their own. TLS makes sure the server is ``agent_id`` (its
        certificate's name), so they are taken as that agent's and no other's."""
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

    def figures(self) -> Figures:
        """What ``GET /metrics`` shows (``mca.exporter``; any thread)."""
        log = self._log()
        buckets, total = self.metrics.latency_histogram()
        counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
            name: dict(series) for name, series in self.metrics.series().items()
        }
        for key, name in BATCHING_COUNTERS.items():
            counters[name] = {(): self.batching[key]}
        with log.guard:
            ledger = log.ledger
            load = ledger.load()
            agents = {a.agent_id: (load.get(a.agent_id, 0), a.capacity) for a in ledger.agents.values()}
            return Figures(
                replica=self.config.me.replica_id,
                leader=self.is_leader,
                term=log.term,
                applied=log.applied_index,
                in_flight=ledger.in_flight,
                sessions=len(ledger.sessions),
                counters=counters,
                latency_buckets=buckets,
                latency_sum=total,
                read_model_lag=self.read_model.lag(log.applied_index) if self.read_model is not None else None,
                agents=agents,
            )

    def session_view(self, record: SessionRecord) -> Any:
        with self._log().guard:  # the tick thread may be applying an entry to this record
            return session_view(record)

    async def agent_views(self) -> list[Any]:
        # Agents this replica has not heard lately (it may have just become leader): what the
        # live state says, if their status key has not expired.
        now = time.monotonic()
        unheard = [a for a in list(self.ledger.agents) if now - self._heartbeats.get(a, -1e9) > HEARTBEAT_STALE_SECONDS]
        stored = await self.live.agent_statuses(unheard)
        with self._log().guard:  # load() walks dicts the tick thread changes
            return agent_views(self.ledger, self._heartbeats, stored, time.monotonic())

    def unknown(self, session_id: str) -> str:
        """Why ``session_id`` is not in the ledger: never issued, or settled and retired."""
        return str(UnknownSession(session_id, self.ledger.retired(session_id)))

    def sift(self, messages: list[object], agent_id: str) -> tuple[list[object], list[Refused]]:
        """``mca.agent_checks.sift`` under the log's guard."""
        with self._log().guard:
            return sift(messages, agent_id, self.ledger)

    def registration_refused(self, message: m.Register, principal: Principal) -> tuple[grpc.StatusCode, str] | None:
        with self._log().guard:
            return registration_refusal(message, principal, self.config.grants, self.ledger)

    def check_progress(self, report: Progress, agent_id: str) -> str:
        with self._log().guard:
            return progress_refusal(report, agent_id, self.ledger)

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
