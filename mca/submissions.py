"""Theory of operation: submitting a task, one at a time (``Submit``) or many on one stream
(``SubmitStream``).

``admit`` is what both do with one request on the leader: the same checks (``parsed``: the key,
then the task against the catalog, so bad input changes nothing), the same idempotency (a key
seen before answers with its session), the same admission bound (``RESOURCE_EXHAUSTED`` with a
retry hint), and with ``wait``, the same wait for the session to end. A refusal is a ``Refused``
carrying the gRPC status to answer with.

Why a stream: a unary call costs the leader about 520 us of CPU and its client 350 us on this
machine (docs/runtime.md), for a request of a few hundred bytes. A client with many tasks under
way (the SDK, whenever ``submit`` calls overlap) sends them on one ``SubmitStream`` instead: each
write carries every submit that became ready meanwhile, and outcomes come back the same way, as
they are ready, many per message (cut at ``MESSAGE_BYTES_MAX``). Each submit is admitted in a task
of its own, so a long ``wait`` never holds back the next submit's answer.

Only the leader serves the stream: a follower refuses it ``UNAVAILABLE`` with ``LEADER_HINT``
(relaying every message would cost what the stream saves). If this replica cannot confirm a
submit (it stopped leading, or its entry was not applied in time), the stream ends ``UNAVAILABLE``
naming the leader when it knows one; the client submits again whatever had no outcome, with the
same keys, so nothing runs twice. A stream holds at most ``STREAM_SUBMITS_MAX`` submits without
an outcome; beyond that a submit is answered ``RESOURCE_EXHAUSTED`` at once, so one client
cannot pile up waiters on the leader.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from mca.boundary import caller
from mca.catalog import task_from_request
from mca.io import Outlet, parts_by_size
from mca.views import STATUS
from mca.waiting import NotLeader
from protocol import messages as m
from protocol._pb import coordination_pb2 as pb
from protocol.errors import InvalidTask
from protocol.model import TaskSpec, name_problem
from protocol.wire import LEADER_HINT

if TYPE_CHECKING:
    from mca.replica import Replica

#: Submits on one stream still without an outcome (each holds a task and, with ``wait``, a
#: waiter on the leader); one more is answered RESOURCE_EXHAUSTED.
STREAM_SUBMITS_MAX = 4096


class Refused(Exception):
    """A submit answered with a gRPC status instead of a session; ``retry_after`` (seconds)
    comes with RESOURCE_EXHAUSTED."""

    def __init__(self, code: grpc.StatusCode, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


#: The ``calls_refused_total`` series of submits refused at the admission bound.
OVERLOADED = {"reason": "resource_exhausted"}


def parsed(request: Any, replica: Replica) -> TaskSpec:
    """The task a ``SubmitRequest`` asks for; ``Refused`` (INVALID_ARGUMENT) names what to fix."""
    if problem := name_problem(request.idempotency_key):
        raise Refused(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"idempotency_key: {problem}; choose one per task and reuse it only to retry that task",
        )
    try:
        return task_from_request(
            request.task_type, request.payload, tuple(request.success_criteria), replica.config.catalog
        )
    except InvalidTask as exc:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None


async def ask(replica: Replica, make: Callable[[str], object]) -> object:
    """Step the leader with a client request (``make(token)``) and wait for the core's answer;
    ``Refused`` (UNAVAILABLE) when this replica cannot confirm it (not leading, or not in time)."""
    try:
        return await replica.waiting.request(make)
    except (NotLeader, TimeoutError) as exc:
        raise Refused(
            grpc.StatusCode.UNAVAILABLE,
            f"the coordinator could not confirm the request ({str(exc) or 'timed out'}); "
            "retry with the same idempotency key: it is safe",
        ) from None


async def not_leader(replica: Replica, context: grpc.aio.ServicerContext, why: str) -> NoReturn:
    """End the call UNAVAILABLE, naming the leader (``LEADER_HINT``) if another replica is
    known to lead: for what only the leader serves and a follower does not relay."""
    address = replica.leader_grpc_address()
    if address and address != replica.config.me.grpc:
        context.set_trailing_metadata(((LEADER_HINT, address),))
    await context.abort(grpc.StatusCode.UNAVAILABLE, f"{why}; the leader is {address or 'being elected'}")
    raise AssertionError("context.abort returned")


async def admit(replica: Replica, request: Any, task: TaskSpec, owner: str) -> Any:
    """Submit ``task`` for ``owner`` on the leader; the session's view (terminal with ``wait``)."""
    reply = await ask(replica, lambda token: m.Submit(token, request.idempotency_key, task, owner))
    if not isinstance(reply, m.SubmitReply):
        raise Refused(grpc.StatusCode.INTERNAL, "unexpected answer from the coordinator")
    if reply.status != "OK":
        retry_after = 0.0
        if reply.status == "RESOURCE_EXHAUSTED":  # at the admission bound: the client backs off
            retry_after = replica.config.limits.retry_after
            replica.metrics.count("calls_refused_total", OVERLOADED)
        raise Refused(STATUS.get(reply.status, grpc.StatusCode.INTERNAL), reply.error, retry_after)
    record = replica.ledger.session(reply.session_id)
    if record is None:  # retired in the meantime (a retry of a key at the edge of its window)
        raise Refused(grpc.StatusCode.NOT_FOUND, replica.views.unknown(reply.session_id))
    if request.wait and not record.terminal:
        await replica.waiting.ended(record.session_id)
    return replica.views.session(record)


class _Unconfirmed(Exception):
    """A submit this replica could not confirm: the stream ends UNAVAILABLE."""


async def submit_stream(
    replica: Replica, batches: AsyncIterator[Any], context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    """The leader's side of ``SubmitStream`` (see the module's docstring)."""
    if not replica.is_leader:
        await not_leader(replica, context, "only the leader takes a SubmitStream")
    owner = str(caller())
    outlet: Outlet[int] = Outlet()
    outcomes: dict[int, Any] = {}
    undecided: set[asyncio.Task[None]] = set()
    reading = True

    def answer(ref: int, outcome: Any) -> None:
        outcomes[ref] = outcome
        outlet.put(ref)

    async def one(ref: int, request: Any) -> None:
        try:
            task = parsed(request, replica)
            answer(ref, pb.SubmitOutcome(ref=ref, session=await admit(replica, request, task, owner)))
        except Refused as exc:
            if exc.code is grpc.StatusCode.UNAVAILABLE:
                outlet.end(_Unconfirmed(exc.message))
                return
            retry_ms = round(exc.retry_after * 1000)
            answer(ref, pb.SubmitOutcome(ref=ref, code=exc.code.name, error=exc.message, retry_after_ms=retry_ms))

    def done(task: asyncio.Task[None]) -> None:
        undecided.discard(task)
        if not reading and not undecided:
            outlet.end()

    async def read() -> None:
        nonlocal reading
        try:
            async for batch in batches:
                for submit in batch.submits:
                    if len(undecided) >= STREAM_SUBMITS_MAX:
                        answer(submit.ref, _too_many(replica, submit.ref))
                        continue
                    task = asyncio.create_task(one(submit.ref, submit.request))
                    undecided.add(task)
                    task.add_done_callback(done)
        except Exception as exc:  # a corrupt batch: the writer raises it (mca.boundary answers)
            outlet.end(exc)
            return
        reading = False
        if not undecided:
            outlet.end()

    reader = asyncio.create_task(read())
    try:
        while (refs := await outlet.take()) is not None:
            ready = [outcomes.pop(ref) for ref in refs]
            for part in parts_by_size(ready, _size):
                yield pb.SubmitOutcomes(outcomes=part)
    except _Unconfirmed as exc:
        await not_leader(replica, context, str(exc))
    finally:
        reader.cancel()
        for task in list(undecided):
            task.cancel()


def _size(outcome: Any) -> int:
    return int(outcome.ByteSize())


def _too_many(replica: Replica, ref: int) -> Any:
    return pb.SubmitOutcome(
        ref=ref,
        code=grpc.StatusCode.RESOURCE_EXHAUSTED.name,
        error=f"this stream already has {STREAM_SUBMITS_MAX} submits without an outcome; wait for some",
        retry_after_ms=round(replica.config.limits.retry_after * 1000),
    )
