"""Theory of operation: a replica's A2A endpoint (the ``a2a-sdk`` server, JSON-RPC over HTTPS
with SSE streaming), for clients that speak the Agent2Agent protocol instead of our gRPC.

It adds no coordination of its own. Every A2A call becomes a call of this replica's own
``TaskService`` over gRPC, made with the replica's identity and naming the A2A caller in
``ON_BEHALF_OF``, exactly as a follower relays a client's call (``mca.services``,
``mca.boundary``). So validation, ownership (another's task is "not found"), idempotency,
forwarding to the leader and errors are the gRPC path's, and this module only translates:

* ``SendMessage``: ``Submit(wait=True)`` (``wait=False`` with ``return_immediately``); the
  task type is the message's (or the request's) ``metadata.task_type``, the payload the one data
  part, the idempotency key ``metadata.idempotency_key`` or else the message id, so a retried
  send returns the same task;
* ``SendStreamingMessage``: ``Submit(wait=False)``, then ``Watch`` until the session settles;
* ``SubscribeToTask``: ``Get`` (the task as it is now, ``metadata.last_seq`` its last event),
  then ``Watch(after_seq=last_seq)``: nothing lost, nothing repeated, however often a client
  reconnects;
* ``GetTask``, ``CancelTask``: ``Get``, ``Cancel``; ``ListTasks``: the ids of the caller's
  sessions in this replica's applied log (TaskService has no list call), each read with ``Get``.

A session's state maps to an A2A task state in ``TASK_STATES`` (one table, in docs/a2a.md too);
results come back as artifacts, one per finished subtask: its document as a JSON data part and
the task type's rendering as a text part.

Who calls: the listener is TLS with the replica's certificate and requires a client certificate
from the cluster's CA at the handshake, like every gRPC listener. The caller is the certificate's
common name, never anything in the request. No ASGI server we could use passes the peer's
certificate to the application (the ASGI "tls" extension is specified but neither uvicorn nor
hypercorn fills it), so ``_TlsH11`` (uvicorn's h11 protocol) fills that extension itself from
the connection's SSL object, and ``_Door`` answers 401 to a certificate that names no principal
and 403 to a role other than client and operator before any A2A code runs.

The agent card (``/.well-known/agent-card.json``) lists as skills the task types the registered
agents can serve now (``ListAgents`` each time it is served, cached for ``CARD_SECONDS``), and
their input schemas in the extension ``TASK_TYPES_EXTENSION``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import grpc
import uvicorn
from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentSkill,
    Artifact,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    MutualTlsSecurityScheme,
    Part,
    Role,
    SecurityRequirement,
    SecurityScheme,
    SendMessageRequest,
    StringList,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, PROTOCOL_VERSION_CURRENT
from a2a.utils.errors import (
    A2AError,
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from cryptography import x509
from google.protobuf import json_format, struct_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from mca.boundary import ON_BEHALF_OF
from mca.catalog import CATALOG, TaskType, render_result
from mca.tls import CredentialError, Identity, Principal, principal_of
from protocol._pb import coordination_pb2 as pb
from protocol._pb import coordination_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from mca.replica import Replica

log = logging.getLogger(__name__)

#: Who may use the endpoint (as ``TaskService``: ``mca.services.SERVES``).
CALLERS = frozenset({"client", "operator"})

#: Session state -> A2A task state. A session that failed without a commit decision (an agent
#: voted no or did not answer in time, so nothing ran) is ``rejected`` instead (``task_state``).
#: Nothing here asks for input or authorization mid-task: a session never waits on its client.
TASK_STATES: Mapping[str, TaskState] = {
    "initialized": TaskState.TASK_STATE_SUBMITTED,
    "negotiating": TaskState.TASK_STATE_WORKING,
    "executing": TaskState.TASK_STATE_WORKING,
    "completed": TaskState.TASK_STATE_COMPLETED,
    "failed": TaskState.TASK_STATE_FAILED,
    "cancelled": TaskState.TASK_STATE_CANCELED,
}
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})

#: The card's extension that carries each task type's input schema (``AgentSkill`` has no field
#: for one in A2A 1.0).
TASK_TYPES_EXTENSION = "urn:mca:a2a:task-types:v1"
#: How long a served card is reused before ``ListAgents`` is asked again.
CARD_SECONDS = 1.0
#: How long a call that finds no leader (an election) or a full cluster is retried before the
#: A2A caller is told; a retried send with the same message id is safe.
RETRY_SECONDS = 15.0
#: The built-in task types take named numbers.
_NUMBERS_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": "number"},
    "description": 'named numbers, e.g. {"value": 3}',
}


def task_state(state: str, decision: str) -> TaskState:
    """The A2A task state of a session in ``state`` with two-phase ``decision`` (see
    ``TASK_STATES``)."""
    if state == "failed" and decision != "commit":
        return TaskState.TASK_STATE_REJECTED
    return TASK_STATES.get(state, TaskState.TASK_STATE_UNSPECIFIED)


# --- the session as an A2A task ------------------------------------------------------------------


def _value(data: Any) -> struct_pb2.Value:
    return json_format.ParseDict(data, struct_pb2.Value())


def _struct(data: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(dict(data), struct_pb2.Struct())


def _plain(value: Any) -> Any:
    """A protobuf ``Value`` as JSON gives it back: every number there is a double, so whole
    numbers (``3.0``) become integers again, as the client wrote them (a profile's age)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text(text: str, session_id: str, seq: int) -> Message:
    return Message(
        message_id=f"{session_id}-{seq}",
        role=Role.ROLE_AGENT,
        task_id=session_id,
        context_id=session_id,
        parts=[Part(text=text)],
    )


def artifacts(view: Any, catalog: Mapping[str, TaskType]) -> list[Artifact]:
    """One artifact per finished subtask: its result document (or named numbers) as a JSON data
    part, and the same for people as a text part (the task type's rendering, if it has one)."""
    found = []
    for s in view.subtasks:
        if not s.finished:
            continue
        outputs = {p.name: p.value for p in s.output}
        if s.document:
            document = json.loads(s.document)
            readable = render_result(catalog, s.capability, document)
        else:
            document = outputs
            readable = "\n".join(f"{name} = {value:g}" for name, value in sorted(outputs.items()))
        if not s.ok:
            readable = f"failed: {s.error}" + (f"\n{readable}" if readable else "")
        found.append(
            Artifact(
                artifact_id=s.subtask_id,
                name=s.capability,
                description=f"the result of subtask {s.subtask_id} ({s.capability}) by agent {s.agent_id}",
                parts=[Part(data=_value(document), media_type="application/json"), Part(text=readable)],
                metadata=_struct({"agent_id": s.agent_id, "ok": s.ok, "outputs": outputs, "error": s.error}),
            )
        )
    return found


def task_of(view: Any, catalog: Mapping[str, TaskType]) -> Task:
    """A ``SessionView`` as an A2A task: id and context id are the session id."""
    state = task_state(view.state, view.decision)
    return Task(
        id=view.session_id,
        context_id=view.session_id,
        status=TaskStatus(state=state, message=_text(view.reason or view.state, view.session_id, view.last_seq)),
        artifacts=artifacts(view, catalog),
        metadata=_struct(
            {
                "session_state": view.state,
                "task_type": view.task_type,
                "idempotency_key": view.idempotency_key,
                "decision": view.decision,
                "reason": view.reason,
                "last_seq": view.last_seq,
                "parameters": {p.name: p.value for p in view.parameters},
            }
        ),
    )


def submission(request: SendMessageRequest, catalog: Mapping[str, TaskType]) -> pb.SubmitRequest:
    """The ``Submit`` a message asks for, or ``InvalidParamsError`` naming the field. The rest of
    the checks (task type known, payload what it takes, key) are the gRPC boundary's."""
    message = request.message
    metadata = {**json_format.MessageToDict(request.metadata), **json_format.MessageToDict(message.metadata)}
    if message.task_id:
        raise InvalidParamsError(
            "message.task_id: a task takes no further messages here; send a new message (no task_id) for a new task"
        )
    task_type = metadata.get("task_type")
    if not isinstance(task_type, str) or not task_type:
        known = ", ".join(sorted(catalog))
        raise InvalidParamsError(f"message.metadata.task_type: required, a task type name (this cluster: {known})")
    key = metadata.get("idempotency_key", message.message_id)
    if not isinstance(key, str):
        raise InvalidParamsError("message.metadata.idempotency_key: must be text")
    data = [(i, p) for i, p in enumerate(message.parts) if p.WhichOneof("content") == "data"]
    if len(data) != 1:
        raise InvalidParamsError(
            f"message.parts: send exactly one data part (the payload, a JSON object), not {len(data)}"
        )
    index, part = data[0]
    payload = _plain(json_format.MessageToDict(part.data))
    if not isinstance(payload, dict):
        raise InvalidParamsError(f"message.parts[{index}].data: the payload must be a JSON object")
    wait = not request.configuration.return_immediately
    return pb.SubmitRequest(idempotency_key=key, task_type=task_type, payload=json.dumps(payload), wait=wait)


def a2a_error(exc: grpc.aio.AioRpcError, cancelling: bool = False) -> A2AError:
    """A TaskService status as the A2A error a client can act on (its message kept: it names
    the field, or says what to do)."""
    code, details = exc.code(), exc.details() or ""
    data = {"status": code.name}
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidParamsError(details, data)
    if code is grpc.StatusCode.NOT_FOUND:
        return TaskNotFoundError(details, data)
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return TaskNotCancelableError(details, data) if cancelling else UnsupportedOperationError(details, data)
    return InternalError(f"{code.name}: {details}", data)


# --- calling TaskService for the A2A caller ----------------------------------------------------


class _Relay:
    """This replica's TaskService, called as the replica for an A2A caller (``ON_BEHALF_OF``)."""

    def __init__(self, identity: Identity, address: str) -> None:
        self._channel = identity.channel(address)
        self._stub = pb_grpc.TaskServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def call(
        self, method: str, request: Any, principal: Principal, timeout: float | None = 30.0, cancelling: bool = False
    ) -> Any:
        """One unary call; retried while the cluster elects a leader or is full."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + RETRY_SECONDS
        while True:
            try:
                return await getattr(self._stub, method)(request, timeout=timeout, metadata=_for(principal))
            except grpc.aio.AioRpcError as exc:
                retry = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
                if not retry or loop.time() > give_up:
                    raise a2a_error(exc, cancelling) from exc
                await asyncio.sleep(0.2)

    async def watch(self, session_id: str, after_seq: int, principal: Principal) -> AsyncIterator[Any]:
        """The session's events after ``after_seq`` until it settles, resumed where a broken
        stream left off (as ``mca.sdk.Client.watch`` does)."""
        loop = asyncio.get_running_loop()
        last, failing_since = after_seq, None
        while True:
            request = pb.WatchRequest(session_id=session_id, after_seq=last)
            try:
                async for event in self._stub.Watch(request, metadata=_for(principal)):
                    if event.kind != "progress":
                        last = event.seq
                    failing_since = None
                    yield event
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() is not grpc.StatusCode.UNAVAILABLE:
                    raise a2a_error(exc) from exc
                failing_since = loop.time() if failing_since is None else failing_since
                if loop.time() - failing_since > RETRY_SECONDS:
                    raise a2a_error(exc) from exc
                await asyncio.sleep(0.2)


def _for(principal: Principal) -> tuple[tuple[str, bytes], ...]:
    return ((ON_BEHALF_OF, str(principal).encode()),)


# --- the A2A request handler -------------------------------------------------------------------


class _Caller(User):
    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return str(self.principal)


class _Context(DefaultServerCallContextBuilder):
    """The call's user is the principal ``_Door`` found in the client certificate."""

    def build_user(self, request: Request) -> User:
        return _Caller(request.scope["state"]["principal"])


def _principal(context: ServerCallContext) -> Principal:
    user = context.user
    if not isinstance(user, _Caller):  # _Door lets no request through without one
        raise InternalError("no authenticated caller")
    return user.principal


class Sessions(RequestHandler):
    """The A2A methods on sessions (see the module notes)."""

    def __init__(
        self,
        relay: _Relay,
        catalog: Mapping[str, TaskType],
        owned: Callable[[Principal], list[str]],
    ) -> None:
        self._relay = relay
        self._catalog = catalog
        self._owned = owned

    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task | Message:
        request = submission(params, self._catalog)
        view = await self._relay.call("Submit", request, _principal(context), timeout=None if request.wait else 30.0)
        return task_of(view, self._catalog)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        request = submission(params, self._catalog)
        request.wait = False
        principal = _principal(context)
        view = await self._relay.call("Submit", request, principal)
        yield task_of(view, self._catalog)
        async for event in self._follow(view, principal):
            yield event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        principal = _principal(context)
        view = await self._relay.call("Get", pb.GetRequest(session_id=params.id), principal)
        if view.state in TERMINAL_STATES:  # as the a2a-sdk's own handler: nothing to stream
            raise UnsupportedOperationError(
                f"task {params.id} is in terminal state {TaskState.Name(task_state(view.state, view.decision))}; "
                "read it with GetTask"
            )
        yield task_of(view, self._catalog)
        async for event in self._follow(view, principal):
            yield event

    async def _follow(self, view: Any, principal: Principal) -> AsyncIterator[Any]:
        """Status updates from ``view.last_seq`` on until the session settles, then its
        artifacts and its final status (the one terminal update: a failed session's final
        state depends on its decision, which ``Get`` tells)."""
        session_id = view.session_id
        if view.state in TERMINAL_STATES:
            return
        async for e in self._relay.watch(session_id, view.last_seq, principal):
            if e.state in TERMINAL_STATES:
                continue
            metadata: dict[str, Any] = {"seq": e.seq, "kind": e.kind, "session_state": e.state}
            if e.kind == "progress":
                metadata |= {"subtask_id": e.subtask_id, "progress": e.progress}
            yield TaskStatusUpdateEvent(
                task_id=session_id,
                context_id=session_id,
                status=TaskStatus(state=task_state(e.state, ""), message=_text(e.detail or e.kind, session_id, e.seq)),
                metadata=_struct(metadata),
            )
        final = await self._relay.call("Get", pb.GetRequest(session_id=session_id), principal)
        task = task_of(final, self._catalog)
        for artifact in task.artifacts:
            yield TaskArtifactUpdateEvent(task_id=session_id, context_id=session_id, artifact=artifact, last_chunk=True)
        yield TaskStatusUpdateEvent(
            task_id=session_id, context_id=session_id, status=task.status, metadata=task.metadata
        )

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        view = await self._relay.call("Get", pb.GetRequest(session_id=params.id), _principal(context))
        return task_of(view, self._catalog)

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task | None:
        request = pb.CancelRequest(session_id=params.id)
        view = await self._relay.call("Cancel", request, _principal(context), cancelling=True)
        return task_of(view, self._catalog)

    async def on_list_tasks(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        """The caller's tasks, newest first. The ids come from this replica's applied log (a
        follower's may lack the newest for a moment); each task is read with ``Get``, so what is
        listed is what the caller may see."""
        principal = _principal(context)
        ids = self._owned(principal)
        if params.context_id:
            ids = [i for i in ids if i == params.context_id]
        size = params.page_size or 50
        if not 1 <= size <= 100:
            raise InvalidParamsError("page_size: must be 1 to 100")
        try:
            start = int(params.page_token or "0")
        except ValueError:
            raise InvalidParamsError("page_token: not a token this server gave") from None
        tasks: list[Task] = []
        index = start
        while index < len(ids) and len(tasks) < size:
            try:
                view = await self._relay.call("Get", pb.GetRequest(session_id=ids[index]), principal)
            except TaskNotFoundError:  # retired since the ids were read
                view = None
            index += 1
            if view is None:
                continue
            task = task_of(view, self._catalog)
            if params.status and task.status.state != params.status:
                continue
            tasks.append(task)
        return ListTasksResponse(
            tasks=tasks,
            next_page_token=str(index) if index < len(ids) else "",
            page_size=size,
            total_size=len(ids),
        )

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError


# --- the agent card ------------------------------------------------------------------------------


def input_schema(task_type: TaskType) -> Mapping[str, Any]:
    """A task type's input schema: the one it declares (``input_schema``), else the built-ins'
    named numbers, else one read off its first example payload (the fields and their types)."""
    if task_type.input_schema is not None:
        return task_type.input_schema
    if task_type.name in CATALOG:
        return _NUMBERS_SCHEMA
    examples = task_type.examples() if task_type.examples is not None else {}
    for example in examples.values():
        return {**_schema_of(example), "examples": [example]}
    return {"type": "object"}


def _schema_of(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {"type": "object", "properties": {k: _schema_of(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"type": "array", "items": _schema_of(value[0])} if value else {"type": "array"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, (int, float)):  # an example's 92 says a number, not that 92.5 is refused
        return {"type": "number"}
    return {"type": "string"}


def needs(task_type: TaskType) -> frozenset[str]:
    """The capabilities a task type's subtasks ask for (read off an example payload, or an empty
    one), and those its results name; empty when neither tells."""
    wanted = set(task_type.results)
    examples = list(task_type.examples().values()) if task_type.examples is not None else []
    for payload in (*examples[:1], {}):
        try:
            wanted |= {s.capability for s in task_type.subtasks(payload)}
            break
        except Exception:  # a plugin's parser may refuse an empty payload any way it likes
            continue
    return frozenset(wanted)


def agent_card(url: str, catalog: Mapping[str, TaskType], served: frozenset[str]) -> AgentCard:
    """The card: every task type whose capabilities the registered agents (``served``) cover."""
    skills, schemas = [], {}
    for name, task_type in sorted(catalog.items()):
        if not needs(task_type) <= served:
            continue
        schema = input_schema(task_type)
        examples = list(schema.get("examples", []))
        schemas[name] = {"description": task_type.description, "input_schema": dict(schema)}
        skills.append(
            AgentSkill(
                id=name,
                name=name,
                description=(
                    f"{task_type.description}. Send a message with metadata task_type={name!r} and one data part, "
                    f"a JSON object matching params[{name!r}].input_schema of the extension {TASK_TYPES_EXTENSION}"
                ),
                tags=["mca", "task-type"],
                examples=[json.dumps({"metadata": {"task_type": name}, "data": e}) for e in examples[:1]],
                input_modes=["application/json"],
                output_modes=["application/json", "text/plain"],
            )
        )
    return AgentCard(
        name="mca",
        description=(
            "A multi-agent coordination runtime: each message submits a task, which the MCA plans into subtasks, "
            "agrees with capable agents through Raft and two-phase commit, and runs exactly once."
        ),
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION_CURRENT)
        ],
        version="1.0",
        capabilities=AgentCapabilities(
            streaming=True,
            push_notifications=False,
            extensions=[
                AgentExtension(
                    uri=TASK_TYPES_EXTENSION,
                    description="the task types this cluster serves now, each with its input schema (JSON Schema)",
                    required=False,
                    params=_struct(schemas),
                )
            ],
        ),
        security_schemes={
            "mtls": SecurityScheme(
                mtls_security_scheme=MutualTlsSecurityScheme(
                    description="a client certificate from the cluster's CA (mca credentials issue NAME); "
                    "the server's certificate carries the DNS name replica.mca"
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={"mtls": StringList()})],
        default_input_modes=["application/json"],
        default_output_modes=["application/json", "text/plain"],
        skills=skills,
    )


# --- HTTP: who calls, and the server -----------------------------------------------------------


def tls_principal(scope: Mapping[str, Any]) -> Principal | None:
    """The principal the client certificate of the ASGI "tls" extension names, or None."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or ()
    if not chain:
        return None
    try:
        return principal_of(x509.load_pem_x509_certificate(chain[0].encode()))
    except (CredentialError, ValueError):
        return None


class _Door:
    """ASGI middleware: 401 without a principal, 403 for a role other than ``CALLERS``."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        principal = tls_principal(scope)
        if principal is None or principal.role not in CALLERS:
            status, why = (
                (401, "the client certificate names no principal (role:name); ask for credentials with mca credentials")
                if principal is None
                else (403, f"{principal} may not use the A2A endpoint (it is for: {', '.join(sorted(CALLERS))})")
            )
            log.warning("refused A2A %s from %s: %s", scope.get("path"), scope.get("client"), why)
            body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": why}}
            await JSONResponse(body, status_code=status)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self._app(scope, receive, send)


class _TlsH11(H11Protocol):
    """uvicorn's h11 protocol, filling the ASGI "tls" extension (the peer's certificate) that
    uvicorn itself leaves out, for every request of the connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        tls = {
            "server_cert": None,
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }
        app = self.app

        async def with_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = tls
            await app(scope, receive, send)

        self.app = with_tls


class A2AServer:
    """A replica's A2A endpoint on ``replica.config.me.a2a`` (see the module notes)."""

    def __init__(self, replica: Replica) -> None:
        c = replica.config
        self._replica = replica
        self._catalog = c.catalog
        self._relay = _Relay(c.identity, c.me.grpc)
        host, _, port = c.me.a2a.rpartition(":")
        self._socket = socket.create_server((host, int(port)))  # an OSError here names the address
        self.address = f"{host}:{self._socket.getsockname()[1]}"
        self.url = f"https://{self.address}/"
        self._card: tuple[float, AgentCard] | None = None
        handler = Sessions(self._relay, self._catalog, self._owned)
        routes = [
            Route(AGENT_CARD_WELL_KNOWN_PATH, self._serve_card, methods=["GET"]),
            *create_jsonrpc_routes(handler, "/", context_builder=_Context()),
        ]
        app = _Door(Starlette(routes=routes))
        context = c.identity.ssl_server_context()
        config = uvicorn.Config(
            app,
            http=_TlsH11,
            lifespan="off",
            log_config=None,
            access_log=False,
            ssl_context_factory=lambda _config, _default: context,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # What ``uvicorn.Server.serve`` does, less taking over the process's signal handlers
        # (this runs inside a replica, on its loop, and stops with it).
        config = self._server.config
        config.load()
        self._server.lifespan = config.lifespan_class(config)
        await self._server.startup(sockets=[self._socket])
        self._loop = asyncio.create_task(self._server.main_loop())

    async def close(self) -> None:
        self._server.should_exit = True
        if self._loop is not None:
            await self._loop
            await self._server.shutdown(sockets=[self._socket])
        self._socket.close()
        await self._relay.close()

    def _owned(self, principal: Principal) -> list[str]:
        """The ids of ``principal``'s sessions (an operator's: all) in this replica's applied
        log, newest first."""
        with self._replica._log().guard:
            records = list(self._replica.ledger.sessions.values())
        mine = [r.session_id for r in records if principal.operator or r.owner == str(principal)]
        return sorted(mine, key=lambda s: int(s[1:]) if s[1:].isdigit() else 0, reverse=True)

    async def _serve_card(self, request: Request) -> Response:
        loop = asyncio.get_running_loop()
        if self._card is None or loop.time() - self._card[0] > CARD_SECONDS:
            principal = request.scope["state"]["principal"]
            try:
                reply = await self._relay.call("ListAgents", pb.ListAgentsRequest(), principal, timeout=10.0)
            except A2AError as exc:
                return JSONResponse({"error": exc.message}, status_code=503)
            served = frozenset(c for a in reply.agents if a.status != "offline" for c in a.capabilities)
            self._card = (loop.time(), agent_card(self.url, self._catalog, served))
        return JSONResponse(agent_card_to_dict(self._card[1]))


__all__ = ["TASK_STATES", "A2AServer", "agent_card", "task_of", "task_state"]
