"""Theory of operation: the host that runs one agent.

It wraps a user's ``mca.sdk.Agent`` around the pure ``Participant``: a gRPC ``AgentService``
server receives the coordinator's messages in batches, on the leader's long-lived ``Exchange``
stream (or in a ``Deliver`` call), the participant steps through them one by one, and this host
turns the effects into I/O. Messages for the MCA that a batch produces at once (votes,
acknowledgements) answer that batch, so a prepare and its vote are one exchange; those produced
later (results, lease queries) go on the newest open stream (the latest leader's; a deposed
leader ends its streams), and only without one to a ``PeerLink`` to the MCA's
``CoordinationService.Deliver``: one batched call at a time (any replica: a follower answers
UNAVAILABLE with the leader's address, which the agent then uses; on other failures the next
replica is tried, and the protocol's own retries cover anything lost). Registration has
a call of its own, whose refusal names the field to fix. ``StartExecution`` runs
``agent.execute`` as an asyncio task and reports ``ExecutionDone`` when it returns or raises;
``StopExecution`` cancels that task; ``StartCompensation`` runs ``agent.compensate``. Everything
runs on one event loop, so the participant needs no lock.

Each start is a new incarnation (nanoseconds since the epoch at start: it grows across restarts
of the same agent). The participant registers it and takes no work until the MCA answers with
what the agent still owns, so a restart never double-books capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import time
from collections.abc import AsyncIterator, Hashable, Iterable, Mapping
from typing import Any

import grpc

from mca.agent_checks import outcome_refusal
from mca.boundary import Boundary
from mca.io import Outbox, Outlet, PeerLink, TimerWheel
from mca.livestate import NOTE_LENGTH_MAX
from mca.sdk import Agent, Context, Job, Output, Refuse
from mca.tls import Identity, Principal
from protocol import messages as m
from protocol._pb import coordination_pb2 as pb
from protocol._pb import coordination_pb2_grpc as pb_grpc
from protocol.effects import CancelTimer, Effect, Send, SetTimer, StartCompensation, StartExecution, StopExecution
from protocol.events import Booted, ExecutionDone, ParticipantEvent, TimerFired
from protocol.model import (
    TEXT_LENGTH_MAX,
    Assignment,
    Outcome,
    Params,
    Timing,
    params,
    params_refusal,
)
from protocol.participant import Participant, Refusal
from protocol.timers import TimerKey
from protocol.wire import LEADER_HINT, pack, to_proto, unpack_to_agent

#: Only replicas call an agent (``mca.boundary``).
SERVES = {pb.DESCRIPTOR.services_by_name["AgentService"].full_name: frozenset({"replica"})}
HEARTBEAT_SECONDS = 1.0
#: How long one call to the MCA may take before its messages count as lost (the protocol
#: resends what still matters).
CALL_TIMEOUT_SECONDS = 2.0


class AgentHost:
    """``listen`` is host:port for the AgentService; port 0 picks a free one (the address is
    registered with each incarnation, so it may change across restarts). ``identity`` is the
    agent's TLS identity (``agent:<agent_id>``): the replicas know the agent by it, and only
    replicas may call its AgentService."""

    def __init__(
        self,
        agent: Agent,
        listen: str,
        mca: list[str],
        identity: Identity,
        timing: Timing | None = None,
        context: Context | None = None,
    ) -> None:
        if not mca:
            raise ValueError("an agent needs the address of at least one MCA replica")
        if identity.principal != Principal("agent", agent.agent_id):
            raise ValueError(f"agent {agent.agent_id} was given the identity of {identity.principal}")
        self._identity = identity
        self.agent = agent
        self.listen = listen
        self._mca = list(mca)
        self._target = 0
        self._timing = timing or Timing()
        self.participant: Participant | None = None
        self._server: grpc.aio.Server | None = None
        self._outbox = Outbox(identity)
        self._timers: TimerWheel[TimerKey] = TimerWheel(self._fire)
        self._link: PeerLink[Any] = PeerLink(self._deliver_to_mca, self._outbox)
        self._outlets: list[Outlet[object]] = []  # the leaders' open streams, oldest first
        self._progress_next: dict[str, Any] = {}  # per subtask: the latest report not yet sent
        self._progress_sending: set[str] = set()  # subtasks with a report call under way
        self._running: dict[str, asyncio.Task[None]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self.context = context
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        agent = self.agent
        if self.context is not None:  # before registering: no work arrives while it loads
            await asyncio.to_thread(agent.setup, self.context)

        def offer(a: Assignment) -> Params | Refusal:
            # Whatever the MCA would refuse is a no vote with the reason here, not a vote that is
            # refused and resent until the prepare times out.
            try:
                offers = params(agent.offers(a))
                why = params_refusal("offers", offers)
                return Refusal(why) if why else offers
            except Refuse as exc:
                return Refusal(str(exc)[:TEXT_LENGTH_MAX] or f"agent {agent.agent_id} refused")
            except Exception as exc:  # a bug in the agent's offers is its no vote, not our crash
                return Refusal(f"offers() failed: {type(exc).__name__}: {exc}"[:TEXT_LENGTH_MAX])

        self.participant = Participant(
            agent.agent_id, tuple(agent.capabilities), agent.capacity, time.time_ns(), self._timing, offer
        )
        server = grpc.aio.server(interceptors=[Boundary(SERVES)])
        pb_grpc.add_AgentServiceServicer_to_server(_AgentService(self), server)
        port = server.add_secure_port(self.listen, self._identity.server_credentials())
        if port == 0:
            raise OSError(f"cannot listen on {self.listen}")
        host = self.listen.rsplit(":", 1)[0]
        self.listen = f"{host}:{port}"  # port 0 asks the kernel for a free one
        await server.start()
        self._server = server
        self.step(Booted())
        self._heartbeat = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        for task in (self._heartbeat, *self._running.values()):
            if task is not None:
                task.cancel()
        self._timers.clear()
        if self._server is not None:
            await self._server.stop(grace=0.2)
        await self._outbox.close()

    def step(self, event: ParticipantEvent) -> None:
        self.step_many((event,))

    def step_many(self, events: Iterable[ParticipantEvent], answers: list[object] | None = None) -> None:
        """Step the participant with each event in turn. With ``answers``, the messages for the
        MCA this produces go there (the reply of the call that brought ``events``) instead of
        to the link."""
        participant = self.participant
        if participant is None:
            return
        now = time.monotonic()
        for event in events:
            self._perform(participant.step(event, now), answers)

    def _perform(self, effects: list[Effect], answers: list[object] | None = None) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                message = effect.message
                if isinstance(message, m.Register):
                    message = dataclasses.replace(message, address=self.listen)
                    if not self._outbox.busy(message):  # the same one is still on its way
                        self._call_mca("Register", to_proto(message), message)
                elif answers is not None:
                    answers.append(message)
                elif self._outlets:  # the newest stream is the latest leader's
                    self._outlets[-1].put(message)
                else:
                    self._link.send(message)
            elif isinstance(effect, SetTimer):
                self._timers.set(effect.key, effect.at)
            elif isinstance(effect, CancelTimer):
                self._timers.cancel(effect.key)
            elif isinstance(effect, StartExecution):
                self._start(effect)
            elif isinstance(effect, StopExecution):
                running = self._running.pop(effect.subtask_id, None)
                if running is not None:
                    running.cancel()
            elif isinstance(effect, StartCompensation):
                self._compensate(effect)

    def _fire(self, keys: list[TimerKey]) -> None:
        self.step_many([TimerFired(key) for key in keys])

    def _start(self, effect: StartExecution) -> None:
        a = effect.assignment
        job = Job(
            effect.session_id,
            a.subtask_id,
            a.capability,
            dict(a.inputs),
            dict(effect.parameters),
            effect.attempt,
            json.loads(a.document) if a.document else None,
            functools.partial(self._progress, effect.session_id, a.subtask_id),
        )

        async def run() -> None:
            try:
                outcome = _outcome(await self.agent.execute(job))
            except asyncio.CancelledError:
                return  # compensated while running: nothing to report
            except Exception as exc:  # the agent's failure is the subtask's failure, reported
                outcome = Outcome(False, error=f"{type(exc).__name__}: {exc}"[:TEXT_LENGTH_MAX])
            finally:
                self._running.pop(a.subtask_id, None)
            self.step(ExecutionDone(effect.session_id, a.subtask_id, effect.attempt, outcome))

        self._running[a.subtask_id] = asyncio.create_task(run())

    def _progress(self, session_id: str, subtask_id: str, fraction: float, note: str) -> None:
        p = self.participant
        if p is None:
            return
        report = pb.Progress(
            agent_id=p.agent_id,
            incarnation=p.incarnation,
            session_id=session_id,
            subtask_id=subtask_id,
            fraction=fraction,
            note=note[:NOTE_LENGTH_MAX],
        )
        # ``execute`` may call this from a worker thread (heavy work goes to asyncio.to_thread):
        # hand the call to the host's loop rather than touching the loop from another thread.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue_progress, subtask_id, report)

    def _queue_progress(self, subtask_id: str, report: Any) -> None:
        """Progress of a subtask goes one call at a time, the latest report replacing one not yet
        sent: two reports in flight at once could land in either order, and the leader keeps
        the last it handles as the subtask's progress (it went from 0.5 back to 0.25)."""
        self._progress_next[subtask_id] = report
        if subtask_id not in self._progress_sending:
            self._progress_sending.add(subtask_id)
            self._outbox.spawn(self._send_progress(subtask_id))

    async def _send_progress(self, subtask_id: str) -> None:
        try:
            while (report := self._progress_next.pop(subtask_id, None)) is not None:
                await self._to_leader("ReportProgress", report)
        finally:
            self._progress_sending.discard(subtask_id)
            self._progress_next.pop(subtask_id, None)  # (cancelled: the host is stopping)

    def _compensate(self, effect: StartCompensation) -> None:
        self._outbox.spawn(self.agent.compensate(effect.subtask_id))

    def _call_mca(self, method: str, request: Any, key: Hashable = None) -> None:
        self._outbox.spawn(self._to_leader(method, request), key)

    async def _deliver_to_mca(self, batch: list[Any]) -> None:
        await self._to_leader("Deliver", pack(batch, to_agent=False))

    async def _to_leader(self, method: str, request: Any) -> None:
        """Call ``method`` on the leader, following a follower's hint or trying the next replica."""
        for _ in range(len(self._mca)):
            address = self._mca[self._target % len(self._mca)]
            stub = pb_grpc.CoordinationServiceStub(self._outbox.channel(address))
            try:
                await getattr(stub, method)(request, timeout=CALL_TIMEOUT_SECONDS)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return  # the leader answered and refused (a stale progress report, say)
                hint = dict(exc.trailing_metadata() or ()).get(LEADER_HINT)
                if isinstance(hint, str) and hint in self._mca:
                    self._target = self._mca.index(hint)  # a follower said where the leader is
                else:
                    self._target += 1  # try the next replica; the protocol retries the rest

    async def _beat(self) -> None:
        while True:
            p = self.participant
            if p is not None and not p.recovering:
                beat = pb.Heartbeat(agent_id=p.agent_id, incarnation=p.incarnation, load=p.reserved())
                address = self._mca[self._target % len(self._mca)]
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await pb_grpc.CoordinationServiceStub(self._outbox.channel(address)).Heartbeat(beat, timeout=1.0)
            await asyncio.sleep(HEARTBEAT_SECONDS)


def _outcome(output: Mapping[str, float] | Output) -> Outcome:
    """What ``execute`` returned, as the result to report. A document the MCA would refuse (too
    large, too deep, an integer over 64 bits) fails the subtask here, with the reason, instead of
    being resent and refused until the execution times out."""
    values = params(output.values if isinstance(output, Output) else output)
    document = (
        ""
        if not isinstance(output, Output) or output.document is None
        else json.dumps(output.document, allow_nan=False)
    )
    outcome = Outcome(True, values, document=document)
    why = outcome_refusal(outcome)
    return Outcome(False, error=f"result {why}"[:TEXT_LENGTH_MAX]) if why else outcome


class _AgentService(pb_grpc.AgentServiceServicer):  # type: ignore[misc]
    def __init__(self, host: AgentHost) -> None:
        self.host = host

    async def Deliver(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        answers: list[object] = []
        self.host.step_many(unpack_to_agent(request), answers)
        return pack(answers, to_agent=False)

    async def Exchange(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        """The leader's stream: each batch is stepped and answered with what was ready at once;
        until the stream ends, the agent's later messages (results, lease queries) go on it
        too. Reading runs in a task of its own, so a batch waiting to be written never holds
        back the next one read (their answers join the same write)."""
        outlet: Outlet[object] = Outlet()
        self.host._outlets.append(outlet)

        async def read() -> None:
            try:
                async for request in requests:
                    answers: list[object] = []
                    self.host.step_many(unpack_to_agent(request), answers)
                    for answer in answers:
                        outlet.put(answer)
            except Exception as exc:  # a corrupt message: the writer raises it (mca.boundary)
                outlet.end(exc)
            else:
                outlet.end()

        reader = asyncio.create_task(read())
        try:
            while (batch := await outlet.take()) is not None:
                yield pack(batch, to_agent=False)
        finally:
            reader.cancel()
            self.host._outlets.remove(outlet)
