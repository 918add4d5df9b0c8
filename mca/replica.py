"""Theory of operation: one MCA replica, the host around the pure core.

A replica owns a ``RaftDecisionLog`` (pysyncobj) and a gRPC server (``mca.serving``: the
services of ``mca.services`` behind ``mca.boundary``, TLS identities and roles). While Raft
makes it leader (``mca.leadership``) it also runs a ``protocol.leader.Leader`` for that term;
the core decides, this host only turns effects into I/O:

* ``Send`` to an agent goes on the leader's stream to it (``mca.agent_streams``): one long-lived
  ``Exchange`` stream per agent, batches both ways, ending with this replica's leadership.
  ``Send`` to a client resolves the future of the request waiting for it (``mca.waiting``);
* ``Append`` joins the ``GroupCommit`` of this loop turn (``mca.appends``): one Raft entry carries
  every record the turn produced, cut when the loop goes idle (``call_soon``), never on a timer;
* ``SetTimer``/``CancelTimer`` go to a ``TimerWheel``; timers due together are stepped together.

Ordering: pysyncobj applies entries on its tick thread, holding the log's ``guard``, and the
leader is stepped with each applied record right there, under the guard; every other step (a
client request, a batch of agent messages, due timers) takes the same guard on the event-loop
thread. So the leader sees the ledger exactly as of the events it has processed, which is the
model the simulator checks. Effects always run on the event loop, never on the tick thread:
the effects of a whole applied batch are handed over in one ``call_soon_threadsafe``.

Followers relay client calls to the leader (``mca.services``). What waits on the leader is kept
by ``mca.waiting``, which agents were heard from by ``mca.heartbeats``, what the replica refuses
from agents by ``mca.agent_checks`` and what it shows by ``mca.views``; they read the ledger
under the guard this host holds for them. The replica holds one object per job; per message,
the hot path (apply, step, perform, send) costs at most a plain attribute access more for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

from mca.agent_checks import AgentChecks
from mca.agent_streams import AgentStreams
from mca.appends import Appends
from mca.catalog import CATALOG, TaskType
from mca.exporter import MetricsServer
from mca.heartbeats import Heartbeats
from mca.io import Outbox, TimerWheel
from mca.leadership import Leadership
from mca.livestate import LiveState
from mca.metrics import Metrics
from mca.raftlog import RaftDecisionLog, RaftTiming
from mca.readmodel import History, ReadModel
from mca.serving import serve
from mca.tls import Identity
from mca.topology import Grant, ReplicaAddress
from mca.views import ReplicaViews
from mca.waiting import Waiting
from protocol import messages as m
from protocol.effects import Append, CancelTimer, Effect, Send, SetTimer
from protocol.entries import Registered
from protocol.events import Applied, LeaderEvent, TimerFired
from protocol.leader import Leader
from protocol.ledger import Ledger
from protocol.model import Limits, Timing
from protocol.timers import TimerKey
from protocol.wire import TO_AGENT_FIELD

if TYPE_CHECKING:
    from mca.a2a import A2AServer


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


#: Events stepped per hold of the log's guard (``Replica.step_many``).
STEP_CHUNK = 64


class Replica:
    def __init__(self, config: ReplicaConfig, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.log: RaftDecisionLog | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None
        self._timers: TimerWheel[TimerKey] = TimerWheel(self._timers_fired)
        # Effects of applied records, gathered on the tick thread until their batch is done.
        self._applied_effects: list[tuple[list[Effect], str, Leader | None]] = []
        #: How well batching works, for ``mca status`` and the bench: Raft entries appended and
        #: the records they carried; Deliver calls to agents, the messages they carried and
        #: the answers their replies brought; Deliver calls from agents and their messages.
        self.batching: dict[str, int] = dict.fromkeys(
            ("entries", "records", "calls_out", "messages_out", "answers", "calls_in", "messages_in", "apply_wait_us"),
            0,
        )
        self._outbox = Outbox(config.identity)
        self._watcher: asyncio.Task[None] | None = None
        self._grpc_of_raft = {p.raft: p.grpc for p in (config.me, *config.peers)}
        self.read_model: ReadModel | None = None
        self.live = LiveState(config.redis_url)
        self._background: list[asyncio.Task[None]] = []
        self.metrics_server: MetricsServer | None = None
        self.a2a_server: A2AServer | None = None
        # The jobs beside the host (see the module notes); the hot path reads their attributes.
        self.leadership = Leadership(
            self._log, config.timing, config.limits, self.metrics, self._perform, self._leadership_dropped
        )
        self.waiting = Waiting(self.step, self.leadership, self._log)
        self.heartbeats = Heartbeats(self._log, self.leadership, self.live, self._outbox, self.metrics)
        self.checks = AgentChecks(self._log, config.grants)
        self.views = ReplicaViews(self, self._log)
        self.appends = Appends(self._log, self.leadership, self.batching)
        self.streams = AgentStreams(
            self._outbox, self.batching, self.metrics, self.checks, self.heartbeats, self.step_many
        )

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = self.appends.loop = asyncio.get_running_loop()
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
        self._server = await serve(self)
        if c.me.metrics:
            self.metrics_server = MetricsServer(c.me.metrics, c.identity, self.views.figures)
        if c.me.a2a:
            from mca.a2a import A2AServer  # the a2a-sdk and its web server load only when used

            self.a2a_server = A2AServer(self)
            await self.a2a_server.start()
        self._watcher = asyncio.create_task(self.leadership.watch())

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
        return self.leadership.leader is not None

    def _log(self) -> RaftDecisionLog:
        if self.log is None:
            raise RuntimeError("replica not started")
        return self.log

    # --- leadership (``mca.leadership`` decides when) ------------------------------------------

    def _leadership_dropped(self) -> None:
        """This replica stopped leading: let go of its term's timers, batches, streams, requests."""
        self._timers.clear()
        self.appends.group.drop()
        self.streams.close()
        self.waiting.fail()

    def leader_grpc_address(self) -> str | None:
        """The gRPC address of the replica Raft says leads, or None while there is none."""
        raft_leader = self._log().leader
        return self._grpc_of_raft.get(raft_leader) if raft_leader else None

    # --- stepping the core --------------------------------------------------------------------

    def _applied_on_tick_thread(self, applied: Applied) -> None:
        """Called by pysyncobj's tick thread with the guard held, once per applied entry."""
        leader = self.leadership.leader
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
            if leader is not None and leader is not self.leadership.leader:
                # Produced by a leader that has since been replaced: its messages are harmless
                # (fenced by term), its timers and appends are not ours to keep.
                effects = [e for e in effects if isinstance(e, Send)]
            self._perform(effects)
            woken.add(session_id)
        self.waiting.woke(woken)

    def step(self, event: LeaderEvent) -> bool:
        """Step the leader with ``event`` (on the loop thread). False when not leading."""
        return self.step_many((event,))

    def step_many(self, events: Iterable[LeaderEvent]) -> bool:
        """Step the leader with each event in turn, ``STEP_CHUNK`` events per hold of the guard,
        performing each chunk's effects after it. False when not leading (events of a chunk that
        found no leader are dropped: the protocol's resends cover them).

        The guard is also what pysyncobj's tick thread takes to apply entries, and that thread
        sends the heartbeats: one hold for a reply of a thousand answers kept it waiting past
        the election timeout (leader changes at 1,024 in flight). Between chunks it gets in."""
        log = self._log()
        batch = events if isinstance(events, (list, tuple)) else list(events)
        for start in range(0, len(batch), STEP_CHUNK):
            effects: list[Effect] = []
            with log.guard:
                leader = self.leadership.leader
                if leader is None:
                    return False
                now = time.monotonic()
                for event in batch[start : start + STEP_CHUNK]:
                    effects += leader.step(event, now)
            self._perform(effects)
        return True

    def _perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect.to, effect.message, effect.lazy)
            elif isinstance(effect, Append):
                leader = self.leadership.leader
                if leader is not None:
                    self.appends.add(effect, leader.term)
            elif isinstance(effect, SetTimer):
                self._timers.set(effect.key, effect.at)
            elif isinstance(effect, CancelTimer):
                self._timers.cancel(effect.key)

    def _timers_fired(self, keys: list[TimerKey]) -> None:
        self.step_many([TimerFired(key) for key in keys])

    def _send(self, to: str, message: object, lazy: bool = False) -> None:
        waiting = self.waiting.answers.pop(to, None) if isinstance(message, (m.SubmitReply, m.CancelReply)) else None
        if waiting is not None:  # the answer to a client request
            if not waiting.done():
                waiting.set_result(message)
            return
        agent = self._log().ledger.agents.get(to)
        if type(message) not in TO_AGENT_FIELD or agent is None or not agent.address:
            return  # a client that is gone, or an agent we cannot reach: senders retry
        link = self.streams.links.get((to, agent.address))
        if link is None:
            link = self.streams.open(to, agent.address)
        link.send(message, lazy)
