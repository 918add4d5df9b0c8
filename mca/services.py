"""Theory of operation: the gRPC services of a replica.

``TaskService`` (clients) and ``CoordinationService`` (agents) on every replica. The caller is
who ``mca.boundary`` authenticated (``caller()``); what it may do with a session or a message is
checked here (ownership) and in ``mca.agent_checks``. Any replica accepts any call: a follower
relays a client's call to the leader once (``FORWARDED``, with the caller named in the relay
header, which the leader's boundary believes from a replica only), keeping the caller's deadline;
agents are told the leader's address instead (``LEADER_HINT``) and talk to it directly. Reads
are relayed too, so a client never reads a follower's older state after a write it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from mca.boundary import ON_BEHALF_OF, caller
from mca.livestate import NOTE_LENGTH_MAX, Progress
from mca.submissions import Refused, admit, ask, not_leader, parsed, submit_stream
from mca.views import STATUS, progress_event
from mca.waiting import APPLY_WAIT_SECONDS
from protocol import messages as m
from protocol._pb import coordination_pb2 as pb
from protocol._pb import coordination_pb2_grpc as pb_grpc
from protocol.errors import CoordinationError, shown
from protocol.ledger import SessionRecord
from protocol.wire import LEADER_HINT, RETRY_AFTER, from_proto, unpack_to_mca

if TYPE_CHECKING:
    from mca.replica import Replica


#: Metadata on a call a follower forwards to the leader (a call is forwarded at most once).
FORWARDED = ("mca-forwarded", "1")

#: Who may call each service of a replica (``mca.boundary``): clients and operators the tasks,
#: agents the coordination. Replicas call neither, except to relay a caller's call, which then
#: counts as the caller's.
SERVES = {
    pb.DESCRIPTOR.services_by_name["TaskService"].full_name: frozenset({"client", "operator"}),
    pb.DESCRIPTOR.services_by_name["CoordinationService"].full_name: frozenset({"agent"}),
}


def add_services(server: grpc.aio.Server, replica: Replica) -> None:
    pb_grpc.add_TaskServiceServicer_to_server(_TaskService(replica), server)
    pb_grpc.add_CoordinationServiceServicer_to_server(_CoordinationService(replica), server)


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
        try:
            task = parsed(request, self.replica)  # bad input is refused here, never relayed
        except Refused as exc:
            await _abort(context, exc.code, exc.message)
        channel = await self.leader_channel(context)
        if channel is not None:
            return await _relay(
                context,
                pb_grpc.TaskServiceStub(channel).Submit(
                    request, timeout=_remaining(context, unbounded=request.wait), metadata=_forwarded()
                ),
            )
        try:
            return await admit(self.replica, request, task, str(caller()))
        except Refused as exc:
            if exc.retry_after:
                context.set_trailing_metadata(((RETRY_AFTER, f"{exc.retry_after * 1000:.0f}"),))
            await _abort(context, exc.code, exc.message)

    def SubmitStream(self, batches: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        return submit_stream(self.replica, batches, context)

    async def Get(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        channel = await self.leader_channel(context)
        if channel is not None:
            return await _relay(
                context,
                pb_grpc.TaskServiceStub(channel).Get(request, timeout=_remaining(context), metadata=_forwarded()),
            )
        record = await self._owned(context, request.session_id)
        return self.replica.views.session(record)

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
            await _abort(context, grpc.StatusCode.NOT_FOUND, self.replica.views.unknown(request.session_id))
        return self.replica.views.session(record)

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
                changed = self.replica.waiting.waiter(record.session_id)
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
                            yield progress_event(p, sent, state)
                    report = asyncio.ensure_future(reports.get())
                    try:
                        await asyncio.wait((changed, report), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        report.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await report
                    if report.done() and not report.cancelled():
                        yield progress_event(report.result(), sent, state)
                    while not reports.empty():
                        yield progress_event(reports.get_nowait(), sent, state)
                finally:
                    self.replica.waiting.unwait(record.session_id, changed)

    async def ListAgents(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        channel = await self.leader_channel(context)
        if channel is not None:
            return await _relay(
                context,
                pb_grpc.TaskServiceStub(channel).ListAgents(
                    request, timeout=_remaining(context), metadata=_forwarded()
                ),
            )
        return pb.ListAgentsReply(agents=await self.replica.heartbeats.agent_views())

    async def _owned(self, context: grpc.aio.ServicerContext, session_id: str) -> SessionRecord:
        """The session, if the caller owns it or is an operator. Someone else's session is
        NOT_FOUND with the words of one that does not exist: its existence is not told."""
        record = self.replica.ledger.session(session_id)
        principal = caller()
        if principal.operator:
            if record is None:
                await _abort(context, grpc.StatusCode.NOT_FOUND, self.replica.views.unknown(session_id))
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
            return await ask(self.replica, make)
        except Refused as exc:
            await _abort(context, exc.code, exc.message)
        except CoordinationError as exc:  # pragma: no cover - the core answers, it does not raise
            await _abort(context, STATUS.get(exc.status, grpc.StatusCode.INTERNAL), str(exc))


class _CoordinationService(pb_grpc.CoordinationServiceServicer, _Forwarding):  # type: ignore[misc]
    async def Deliver(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """An agent's batch: what passes the checks is stepped; the first refusal (if any) is
        the call's status, naming the message's index (the others were taken)."""
        replica = self.replica
        if not replica.is_leader:  # a follower's ledger may lag: it judges nothing
            await self._not_leader(context)
        messages = unpack_to_mca(request)
        replica.batching["calls_in"] += 1
        replica.batching["messages_in"] += len(messages)
        taken, refused = replica.checks.sift(messages, caller().name)
        if taken:
            if not replica.step_many(taken):
                await self._not_leader(context)
            replica.heartbeats.took(taken)
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
        await not_leader(self.replica, context, "not the leader")

    async def Register(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        replica = self.replica
        if not replica.is_leader:  # only the leader's ledger says which incarnation is current
            await self._not_leader(context)
        message = from_proto(request, m.Register)
        refused = replica.checks.registration_refused(message, caller())
        if refused is not None:
            await self._refuse(context, *refused)
        if not replica.step(message):
            await self._not_leader(context)
        replica.heartbeats.heard_from(message.agent_id)
        return pb.Empty()

    async def ReportProgress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        replica = self.replica
        if not replica.is_leader:
            await self._not_leader(context)
        await self._as_caller(context, request.agent_id)
        report = Progress(request.session_id, request.subtask_id, request.fraction, request.note[:NOTE_LENGTH_MAX])
        why = replica.checks.check_progress(report, request.agent_id)
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
        replica.heartbeats.heartbeat(request.agent_id)
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
