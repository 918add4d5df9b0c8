"""The Python SDK: everything a user imports, on one screen.

Clients::

    async with Client(["127.0.0.1:7100"], identity="data/tls/operator-local") as client:
        session = await client.submit("echo", {"value": 3}, wait=True)
        async for event in client.watch(session.session_id): ...

Every call is TLS with a client certificate (``identity``: a folder from ``mca credentials
issue``, or ``$MCA_IDENTITY``); a client sees and cancels its own sessions only.

Agents::

    class Doubler(Agent):
        capabilities = ("echo",)
        async def execute(self, job: Job) -> dict[str, float]:
            return {"value": 2 * job.inputs["value"]}

The SDK speaks the two-phase protocol for the agent (prepare, leases, heartbeats, retries):
an agent only says what it can do (``capabilities``, ``capacity``), what it offers to the
negotiation (``offers``), how to do it (``execute``) and how to undo it (``compensate``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from mca.io import Outbox, StreamLink, parts_by_size
from mca.tls import Identity, identity_from_env
from protocol._pb import coordination_pb2 as pb
from protocol._pb import coordination_pb2_grpc as pb_grpc
from protocol.model import Assignment
from protocol.wire import LEADER_HINT, RETRY_AFTER

__all__ = [
    "Agent",
    "AgentInfo",
    "Assignment",
    "Client",
    "Context",
    "Event",
    "Identity",
    "Job",
    "Output",
    "Refuse",
    "RequestRejected",
    "Session",
]


# --- writing an agent -------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One committed subtask to execute. ``attempt`` changes when it runs again after a restart;
    key any side effect by ``subtask_id`` so that a second run is harmless."""

    session_id: str
    subtask_id: str
    capability: str
    inputs: dict[str, float]
    parameters: dict[str, float]
    attempt: int
    #: The subtask's structured input (parsed JSON), if its task type gives one.
    document: Any = None
    _report: Callable[[float, str], None] | None = field(default=None, repr=False, compare=False)

    def progress(self, fraction: float, note: str = "") -> None:
        """Tell the session's watchers how far the job is (``fraction`` from 0 to 1). Best effort
        and non-blocking: a report that gets lost is superseded by the next one."""
        if not math.isfinite(fraction) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress fraction must be between 0 and 1, got {fraction}")
        if self._report is not None:
            self._report(fraction, note)


@dataclass(frozen=True)
class Output:
    """What ``execute`` returns when it has more than named numbers: the numbers (``values``)
    and a JSON-serialisable ``document`` (a plan, say), kept with the result in the log."""

    values: Mapping[str, float]
    document: Any = None


@dataclass(frozen=True)
class Context:
    """What the runtime gives an agent before it registers (see ``Agent.setup``): a folder of
    its own and, where the deployment runs a graph store, the credentials of the agent's own
    graph (an ACL user that can reach that graph and nothing else)."""

    agent_id: str
    data_dir: str
    graph_url: str = field(default="", repr=False)  # redis://user:password@host:port, or ""
    graph_key: str = ""


class Refuse(Exception):
    """Raise from ``Agent.offers`` to vote no on a subtask (the message says why); the agent
    reserves nothing for it and the session aborts."""


class Agent:
    """Subclass, set ``agent_id``, ``capabilities`` and ``capacity``, implement ``execute``."""

    agent_id: str = "agent"
    capabilities: tuple[str, ...] = ()
    capacity: int = 1

    def setup(self, context: Context) -> None:
        """Load what the agent needs (its knowledge, say) before it registers and takes work.
        Runs once per start, in a worker thread; raising stops the agent from starting."""

    def offers(self, assignment: Assignment) -> Mapping[str, float]:
        """The agent's verdict when asked to prepare: the parameters it contributes to the
        session's negotiation with its yes vote, or ``raise Refuse(why)`` to vote no. Called once
        per subtask; must be quick (it runs inside the protocol step)."""
        return {}

    async def execute(self, job: Job) -> Mapping[str, float] | Output:
        """Do the work; return the result's named numbers (or an ``Output`` with a document too).
        Raising fails the subtask."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute()")

    async def compensate(self, subtask_id: str) -> None:
        """Undo the side effects of ``subtask_id`` (the session did not complete). Idempotent."""


# --- using the cluster ------------------------------------------------------------------------


class RequestRejected(Exception):
    """The MCA refused a request; ``code`` is the gRPC status name, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Session:
    session_id: str
    state: str
    reason: str = ""
    decision: str = ""
    parameters: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)
    last_seq: int = 0
    #: Per subtask, the result's document (parsed JSON) when it has one.
    documents: dict[str, Any] = field(default_factory=dict)
    #: Per subtask, its capability (which says how its document reads: ``ResultKind``).
    capabilities: dict[str, str] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Event:
    """One step of a session (``kind`` accepted, planned, ... settled), or with kind
    ``progress`` a live report from a running subtask (``subtask_id``, ``progress`` 0..1)."""

    session_id: str
    seq: int
    kind: str
    state: str
    detail: str
    subtask_id: str = ""
    progress: float | None = None


@dataclass(frozen=True)
class AgentInfo:
    agent_id: str
    capabilities: tuple[str, ...]
    capacity: int
    load: int
    status: str


class Client:
    """A connection to an MCA cluster: any replica answers; a call that finds no leader is
    retried on the next address for up to ``retry_seconds``. ``identity`` is the client's
    credential (an ``Identity``, or the folder holding one; by default ``$MCA_IDENTITY``)."""

    def __init__(
        self, addresses: list[str], identity: Identity | str | None = None, retry_seconds: float = 15.0
    ) -> None:
        if not addresses:
            raise ValueError("give at least one MCA address, e.g. 127.0.0.1:7100")
        if identity is None:
            identity = identity_from_env()
        elif not isinstance(identity, Identity):
            identity = Identity.load(identity)
        self.identity = identity
        self._addresses = list(addresses)
        self._channels = [identity.channel(a) for a in addresses]
        self._next = 0
        self._retry_seconds = retry_seconds
        self._submissions = _Submissions(self)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._submissions.close()
        for channel in self._channels:
            await channel.close()

    async def submit(
        self,
        task_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        wait: bool = False,
        success_criteria: tuple[str, ...] = (),
    ) -> Session:
        """Submit a task. Reusing ``key`` returns the same session: retrying is always safe."""
        request = pb.SubmitRequest(
            idempotency_key=key or uuid.uuid4().hex,
            task_type=task_type,
            payload=json.dumps(dict(payload or {})),
            success_criteria=list(success_criteria),
            wait=wait,
        )
        return _session(await self._submissions.submit(request))

    async def get(self, session_id: str) -> Session:
        return _session(await self._call("Get", pb.GetRequest(session_id=session_id)))

    async def cancel(self, session_id: str) -> Session:
        return _session(await self._call("Cancel", pb.CancelRequest(session_id=session_id)))

    async def agents(self) -> list[AgentInfo]:
        reply = await self._call("ListAgents", pb.ListAgentsRequest())
        return [AgentInfo(a.agent_id, tuple(a.capabilities), a.capacity, a.load, a.status) for a in reply.agents]

    async def watch(self, session_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
        """Every event of the session after ``after_seq``, until it is settled. A broken stream
        is resumed from the last event received, so nothing is lost or repeated."""
        last = after_seq
        loop = asyncio.get_running_loop()
        failing_since: float | None = None  # the retry window starts at the first failure
        while True:
            stub = pb_grpc.TaskServiceStub(self._channels[self._next % len(self._channels)])
            try:
                async for e in stub.Watch(pb.WatchRequest(session_id=session_id, after_seq=last)):
                    last, failing_since = e.seq, None
                    progress = e.progress if e.kind == "progress" else None
                    yield Event(e.session_id, e.seq, e.kind, e.state, e.detail, e.subtask_id, progress)
                return
            except grpc.aio.AioRpcError as exc:
                _refused_handshake(exc)
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise _rejected(exc) from exc
                failing_since = loop.time() if failing_since is None else failing_since
                if loop.time() - failing_since > self._retry_seconds:
                    raise _rejected(exc) from exc
                self._next += 1
                await asyncio.sleep(0.1)

    async def _call(self, method: str, request: Any, timeout: float | None = 30.0) -> Any:
        loop = asyncio.get_running_loop()
        failing_since: float | None = None  # the retry window starts at the first failure
        overloaded = 0
        while True:
            stub = pb_grpc.TaskServiceStub(self._channels[self._next % len(self._channels)])
            call = getattr(stub, method)(request, timeout=timeout)
            try:
                reply = await call
            except grpc.aio.AioRpcError as exc:
                _refused_handshake(exc)
                code = exc.code()
                retryable = code in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                )
                failing_since = loop.time() if failing_since is None else failing_since
                if not retryable or loop.time() - failing_since > self._retry_seconds:
                    raise _rejected(exc) from exc
                if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    overloaded += 1
                    await asyncio.sleep(_backoff(_retry_after(exc.trailing_metadata()), overloaded))
                    continue
                if not self._follow(exc.trailing_metadata()):
                    self._next += 1
                await asyncio.sleep(0.1)
                continue
            self._follow(await call.trailing_metadata())
            return reply

    def _follow(self, metadata: Any) -> bool:
        """Talk to the leader a follower named (it forwarded our call, or could not serve it)."""
        hint = dict(metadata or ()).get(LEADER_HINT)
        if isinstance(hint, str) and hint in self._addresses:
            self._next = self._addresses.index(hint)
            return True
        return False


#: How long a client submits by unary call after learning that the leader is at an address it
#: was not given (the replicas it knows relay each call), before it tries a stream again.
CALLS_SECONDS = 10.0


@dataclass
class _Submit:
    """A submit waiting for its outcome; ``failing_since`` starts its retry window."""

    request: Any
    future: asyncio.Future[Any]
    failing_since: float | None = None
    overloaded: int = 0


#: How a broken ``SubmitStream`` ended when trying again may mend it (INTERNAL included: grpcio's
#: asyncio client reports a write that races the server's status as INTERNAL, grpc/grpc#36066).
_STREAM_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class _Submissions:
    """A client's submits, on one ``SubmitStream`` to the leader at a time (``mca.submissions``).

    Overlapping ``submit`` calls share the stream's writes (``mca.io.StreamLink``: whatever
    became ready while a write was under way rides the next one) and their outcomes come back in
    batches, so a busy client pays a fraction of a call per task. When a stream ends with
    submits unanswered (the leader changed, a follower was asked, the connection broke), they are
    submitted again on a new stream, to the replica the error names (``LEADER_HINT``) or the next
    address, with the same keys: the cluster answers a key it knows with its session, so a retry
    never runs a task twice. A leader at an address the client was not given (it may not reach
    it) is not followed: submits go by unary ``Submit`` for ``CALLS_SECONDS``, which the replica
    the client knows relays. RESOURCE_EXHAUSTED is retried after the server's hint, backing off
    with jitter so that refused submits do not come back all at once. Retries of a submit stop
    ``retry_seconds`` after its first failure; a refusal no retry mends (UNAUTHENTICATED,
    PERMISSION_DENIED, INVALID_ARGUMENT...) fails it at once.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._pending: dict[int, _Submit] = {}
        self._refs = itertools.count(1)
        self._closed = False
        self._calls_until = 0.0  # until when submits go by unary call (the leader is out of reach)
        self._tasks = Outbox()
        self._link: StreamLink[int] = StreamLink(
            self._open, self._encode, self._received, self._tasks, ended=self._ended, parts=self._parts
        )

    async def submit(self, request: Any) -> Any:
        """The outcome's session view, once the cluster answers ``request``."""
        if self._closed:
            raise RequestRejected("CANCELLED", "the client is closed")
        ref = next(self._refs)
        loop = asyncio.get_running_loop()
        pending = self._pending[ref] = _Submit(request, loop.create_future())
        if loop.time() < self._calls_until:
            self._tasks.spawn(self._by_call(pending))
        else:
            self._link.send(ref)
        try:
            return await pending.future
        finally:
            del self._pending[ref]

    async def close(self) -> None:
        self._closed = True
        self._link.close()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(RequestRejected("CANCELLED", "the client was closed"))
        await self._tasks.close()  # the stream's reader and writer, and calls under way

    async def _by_call(self, pending: _Submit) -> None:
        wait = pending.request.wait
        try:  # waiting for a terminal state takes as long as the task does: no deadline then
            view = await self._client._call("Submit", pending.request, timeout=None if wait else 30.0)
        except Exception as exc:  # (RequestRejected, or a bug: either way the submit must end)
            if not pending.future.done():
                pending.future.set_exception(exc)
        else:
            if not pending.future.done():
                pending.future.set_result(view)

    def _open(self) -> Any:
        client = self._client
        return pb_grpc.TaskServiceStub(client._channels[client._next % len(client._channels)]).SubmitStream()

    def _encode(self, refs: list[int]) -> Any:
        pending = self._pending
        return pb.SubmitBatch(
            submits=[pb.StreamedSubmit(ref=ref, request=pending[ref].request) for ref in refs if ref in pending]
        )

    def _parts(self, refs: list[int]) -> Iterator[list[int]]:
        pending = self._pending
        return parts_by_size(refs, lambda ref: pending[ref].request.ByteSize() + 16 if ref in pending else 0)

    def _received(self, reply: Any) -> None:
        for outcome in reply.outcomes:
            pending = self._pending.get(outcome.ref)
            if pending is None or pending.future.done():
                continue  # answered already (a submit sent again after its stream broke)
            if not outcome.code:
                pending.future.set_result(outcome.session)
            elif outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED.name:
                pending.overloaded += 1
                delay = _backoff(outcome.retry_after_ms / 1000 or 0.05, pending.overloaded)
                self._again(outcome.ref, pending, delay, RequestRejected(outcome.code, outcome.error))
            else:
                pending.future.set_exception(RequestRejected(outcome.code, outcome.error))

    def _ended(self, error: BaseException | None) -> None:
        """A stream ended: submit again, elsewhere, whatever it left unanswered."""
        unanswered = [(ref, p) for ref, p in self._pending.items() if not p.future.done()]
        if self._closed or not unanswered:
            return
        why = RequestRejected("UNAVAILABLE", "the stream to the cluster ended")
        followed = False
        if isinstance(error, grpc.aio.AioRpcError):
            try:
                _refused_handshake(error)
                why = _rejected(error)
            except RequestRejected as refused:
                why = refused
            if why.code == "UNAUTHENTICATED" or error.code() not in _STREAM_RETRYABLE:
                for _, pending in unanswered:
                    pending.future.set_exception(why)
                return
            hint = dict(error.trailing_metadata() or ()).get(LEADER_HINT)
            if isinstance(hint, str) and hint not in self._client._addresses:
                # The leader is at an address this client was not given and may not reach: a
                # unary Submit, which the replica it knows relays to the leader, for a while.
                self._calls_until = asyncio.get_running_loop().time() + CALLS_SECONDS
                for _, pending in unanswered:
                    self._tasks.spawn(self._by_call(pending))
                return
            followed = self._client._follow(error.trailing_metadata())
        if not followed:
            self._client._next += 1
        for ref, pending in unanswered:
            self._again(ref, pending, 0.1, why)

    def _again(self, ref: int, pending: _Submit, delay: float, why: RequestRejected) -> None:
        """Submit ``ref`` again after ``delay``, unless its retry window has passed."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        pending.failing_since = now if pending.failing_since is None else pending.failing_since
        if now - pending.failing_since > self._client._retry_seconds:
            pending.future.set_exception(why)
            return
        loop.call_later(delay, self._resend, ref)

    def _resend(self, ref: int) -> None:
        pending = self._pending.get(ref)
        if pending is not None and not pending.future.done() and not self._closed:
            self._link.send(ref)


def _backoff(hint: float, overloaded: int) -> float:
    """How long to wait before submitting again at the cluster's bound of sessions in flight
    (nothing was accepted): the server's hint, doubled per refusal up to 2 s, with jitter so that
    refused clients do not come back all at once."""
    return min(hint * 2.0 ** min(overloaded - 1, 5), 2.0) * (0.5 + random.random())


#: What gRPC's details say when the TLS handshake failed: no retry mends that.
_HANDSHAKE = ("handshake failed", "CERTIFICATE_VERIFY_FAILED", "Hostname Verification", "certificate")


def _refused_handshake(exc: grpc.aio.AioRpcError) -> None:
    """A TLS handshake the server refused (a certificate from another CA, an expired one) or
    whose server is not a replica of this cluster: say so at once, as UNAUTHENTICATED."""
    details = exc.details() or ""
    if exc.code() is grpc.StatusCode.UNAVAILABLE and any(s in details for s in _HANDSHAKE):
        raise RequestRejected(
            "UNAUTHENTICATED",
            "the TLS handshake with the cluster failed: is the client's identity issued by this "
            f"cluster's CA, unexpired, and the address a replica's? ({details[-160:]})",
        ) from exc


def _rejected(exc: grpc.aio.AioRpcError) -> RequestRejected:
    """The error a call ends with. A server that refuses our certificate closes the connection
    during the handshake, which gRPC reports as UNAVAILABLE "Socket closed", like a server that
    is down: after retrying for the whole window, say that it may be either."""
    details = exc.details() or ""
    if exc.code() is grpc.StatusCode.UNAVAILABLE and "Socket closed" in details:
        details += (
            "; if the cluster is up, the replicas refused this client's certificate: "
            "is the identity issued by this cluster's CA and unexpired?"
        )
    return RequestRejected(exc.code().name, details)


def _retry_after(metadata: Any) -> float:
    """The server's retry hint in seconds (``RETRY_AFTER`` metadata), or 0.05 without one."""
    value = dict(metadata or ()).get(RETRY_AFTER)
    try:
        return min(max(float(value) / 1000, 0.001), 5.0) if isinstance(value, str) else 0.05
    except ValueError:
        return 0.05


def _session(view: Any) -> Session:
    return Session(
        session_id=view.session_id,
        state=view.state,
        reason=view.reason,
        decision=view.decision,
        parameters={p.name: p.value for p in view.parameters},
        outputs={s.subtask_id: {p.name: p.value for p in s.output} for s in view.subtasks if s.finished},
        last_seq=view.last_seq,
        documents={s.subtask_id: json.loads(s.document) for s in view.subtasks if s.document},
        capabilities={s.subtask_id: s.capability for s in view.subtasks},
    )
