"""The A2A endpoint, used by a stock A2A client (the a2a-sdk's own, over httpx with a client
certificate) against three replicas and two echo agents: sending, streaming, resubscribing,
cancelling, bad input, retried sends, who may call and who sees what."""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import InvalidParamsError, TaskNotCancelableError, TaskNotFoundError
from google.protobuf import json_format, struct_pb2

from mca.catalog import CATALOG, TaskType
from mca.embedded import EmbeddedCluster
from mca.sdk import Agent, Job
from mca.tls import REPLICA, Identity, Principal
from protocol.ledger import owned_key
from protocol.model import SubtaskSpec
from tests.integration.test_runtime import Echo

T = TypeVar("T")
ALICE, BOB = Principal("client", "alice"), Principal("client", "bob")


class Spare(Agent):
    """The only agent with capability ``spare``: stopped by a test, so that its task type
    leaves the card."""

    agent_id = "spare-1"
    capabilities = ("spare",)

    async def execute(self, job: Job) -> Mapping[str, float]:
        return {}


#: A task type no registered agent serves: the card must not list it.
UNSERVED = TaskType("unserved", "needs a capability nobody has", lambda p: (SubtaskSpec("nobody"),))
#: A task type only ``Spare`` serves.
SPARE = TaskType("spare_task", "needs the spare agent", lambda p: (SubtaskSpec("spare"),))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    catalog = {**CATALOG, UNSERVED.name: UNSERVED, SPARE.name: SPARE}
    agents: list[Agent] = [Echo("echo-a"), Echo("echo-b"), Spare()]
    with EmbeddedCluster(str(tmp_path_factory.mktemp("a2a")), agents, catalog=catalog) as c:
        c.wait_ready(agents=3)
        yield c


def run(coroutine: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, 60)

    return asyncio.run(bounded())


def url(cluster: EmbeddedCluster, follower: bool = False) -> str:
    """The endpoint of a replica (a follower's: its calls are forwarded to the leader)."""
    leader = cluster.leader()
    for replica in cluster.replicas:
        if replica is not None and replica.a2a_server is not None and (replica is not leader or not follower):
            return replica.a2a_server.url
    raise AssertionError("no replica serves A2A")


def http_client(ca: bytes, identity: Identity | None) -> httpx.AsyncClient:
    """httpx trusting only the cluster's CA, asking for the replicas' name (``replica.mca``),
    presenting ``identity``'s certificate (none: no client certificate)."""
    context = ssl.create_default_context(cadata=ca.decode())
    if identity is not None:
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert.write_bytes(identity.cert)
            key.write_bytes(identity.key)
            context.load_cert_chain(cert, key)

    async def server_name(request: httpx.Request) -> None:
        request.extensions["sni_hostname"] = REPLICA  # the certificate names no address

    return httpx.AsyncClient(verify=context, event_hooks={"request": [server_name]}, timeout=30)


@asynccontextmanager
async def a2a(
    cluster: EmbeddedCluster, who: Principal = ALICE, streaming: bool = True, follower: bool = False
) -> AsyncIterator[Client]:
    """A stock A2A client as ``who``, built from the agent card the endpoint serves."""
    identity = cluster.identity(who)
    http = http_client(identity.ca, identity)
    try:
        factory = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming))
        client = await factory.create_from_url(url(cluster, follower))
        yield client
    finally:
        await http.aclose()


def message(task_type: str, payload: dict[str, Any], message_id: str | None = None) -> SendMessageRequest:
    data = json_format.ParseDict(payload, struct_pb2.Value())
    metadata = json_format.ParseDict({"task_type": task_type}, struct_pb2.Struct())
    return SendMessageRequest(
        message=Message(
            message_id=message_id or uuid.uuid4().hex, role=Role.ROLE_USER, parts=[Part(data=data)], metadata=metadata
        )
    )


async def collect(stream: AsyncIterator[StreamResponse]) -> list[StreamResponse]:
    return [event async for event in stream]


async def send(client: Client, request: SendMessageRequest) -> Task:
    events = await collect(client.send_message(request))
    assert len(events) == 1 and events[0].HasField("task"), events
    return events[0].task


def state_of(event: StreamResponse) -> TaskState:
    if event.HasField("task"):
        return event.task.status.state
    if event.HasField("status_update"):
        return event.status_update.status.state
    return TaskState.TASK_STATE_UNSPECIFIED


def sessions(cluster: EmbeddedCluster) -> int:
    leader = cluster.leader()
    assert leader is not None
    return len(leader.ledger.sessions)


def test_send_and_get_to_completion(cluster: EmbeddedCluster) -> None:
    async def scenario() -> tuple[Task, Task]:
        async with a2a(cluster, streaming=False, follower=True) as client:
            task = await send(client, message("echo_pair", {"value": 21}))
            again = await client.get_task(GetTaskRequest(id=task.id))
            return task, again

    task, again = run(scenario())
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert again.id == task.id and again.status.state == TaskState.TASK_STATE_COMPLETED
    assert len(task.artifacts) == 2
    for artifact in task.artifacts:
        data, text = artifact.parts
        assert json_format.MessageToDict(data.data) == {"value": 42.0}
        assert text.text == "value = 42"
    assert task.metadata["session_state"] == "completed" and task.metadata["task_type"] == "echo_pair"


def test_stream_to_completion(cluster: EmbeddedCluster) -> None:
    async def scenario() -> list[StreamResponse]:
        async with a2a(cluster) as client:
            return await collect(client.send_message(message("echo", {"value": 2, "sleep": 0.3})))

    events = run(scenario())
    assert events[0].HasField("task")
    assert state_of(events[0]) in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
    assert TaskState.TASK_STATE_WORKING in [state_of(e) for e in events]
    artifacts = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    assert len(artifacts) == 1 and json_format.MessageToDict(artifacts[0].parts[0].data) == {"value": 4.0}
    assert events[-1].HasField("status_update") and state_of(events[-1]) == TaskState.TASK_STATE_COMPLETED
    terminal = [e for e in events if state_of(e) == TaskState.TASK_STATE_COMPLETED]
    assert len(terminal) == 1  # one final status, the last event


def test_resubscribe_after_disconnect(cluster: EmbeddedCluster) -> None:
    async def scenario() -> tuple[Task, list[StreamResponse]]:
        async with a2a(cluster) as client:
            stream = client.send_message(message("echo", {"value": 5, "sleep": 1.5}))
            first = await anext(stream)
            assert isinstance(stream, AsyncGenerator)
            await stream.aclose()  # the client goes away while the task runs
        assert first.HasField("task")
        async with a2a(cluster, follower=True) as client:
            return first.task, await collect(client.subscribe(SubscribeToTaskRequest(id=first.task.id)))

    task, events = run(scenario())
    assert events[0].HasField("task") and events[0].task.id == task.id  # the task as it is now
    resumed_from = events[0].task.metadata["last_seq"]
    updates = [e.status_update.metadata for e in events[1:-1] if e.HasField("status_update")]
    seqs = [u["seq"] for u in updates if u["kind"] != "progress"]  # progress repeats the latest seq
    assert all(seq > resumed_from for seq in seqs)  # nothing repeated
    assert seqs == sorted(seqs)
    assert state_of(events[-1]) == TaskState.TASK_STATE_COMPLETED
    assert events[-1].status_update.metadata["last_seq"] > resumed_from  # it went on after the snapshot
    artifacts = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    assert json_format.MessageToDict(artifacts[0].parts[0].data) == {"value": 10.0}


def test_cancel(cluster: EmbeddedCluster) -> None:
    async def scenario() -> tuple[Task, Task]:
        async with a2a(cluster, streaming=False) as client:
            request = message("echo", {"value": 1, "sleep": 20})
            request.configuration.return_immediately = True
            task = await send(client, request)
            assert task.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
            await client.cancel_task(CancelTaskRequest(id=task.id))
            for _ in range(100):
                now = await client.get_task(GetTaskRequest(id=task.id))
                if now.metadata["session_state"] in ("completed", "failed", "cancelled"):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"{task.id} did not end")
            again = await client.cancel_task(CancelTaskRequest(id=task.id))  # a retried cancel
            assert again.status.state == TaskState.TASK_STATE_CANCELED
            done = await send(client, message("echo", {"value": 1}))
            assert done.status.state == TaskState.TASK_STATE_COMPLETED
            with pytest.raises(TaskNotCancelableError):
                await client.cancel_task(CancelTaskRequest(id=done.id))
            return task, now

    task, final = run(scenario())
    assert final.id == task.id
    assert final.status.state == TaskState.TASK_STATE_CANCELED


def test_bad_input_names_the_field_and_appends_nothing(cluster: EmbeddedCluster) -> None:
    before = sessions(cluster)

    async def scenario() -> None:
        async with a2a(cluster, streaming=False) as client:
            with pytest.raises(InvalidParamsError, match=r"payload\.value"):
                await send(client, message("echo", {"value": "three"}))
            with pytest.raises(InvalidParamsError, match=r"task_type"):
                await send(client, message("no_such_type", {"value": 3}))
            request = message("echo", {"value": 3})
            del request.message.parts[:]
            request.message.parts.append(Part(text="three"))
            with pytest.raises(InvalidParamsError, match=r"message\.parts"):
                await send(client, request)

    run(scenario())
    assert sessions(cluster) == before


def test_same_message_id_twice_is_one_session(cluster: EmbeddedCluster) -> None:
    message_id = uuid.uuid4().hex

    async def scenario() -> tuple[Task, Task]:
        async with a2a(cluster, streaming=False) as client:
            first = await send(client, message("echo", {"value": 7}, message_id))
        async with a2a(cluster, streaming=False, follower=True) as client:
            return first, await send(client, message("echo", {"value": 7}, message_id))

    first, second = run(scenario())
    assert first.id == second.id
    leader = cluster.leader()
    assert leader is not None
    assert leader.ledger.by_key[owned_key(str(ALICE), message_id)] == first.id


def test_a_plain_json_rpc_call_as_docs_a2a_shows(cluster: EmbeddedCluster) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": uuid.uuid4().hex,
                "role": "ROLE_USER",
                "metadata": {"task_type": "echo"},
                "parts": [{"data": {"value": 3}}],
            }
        },
    }

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        identity = cluster.identity(ALICE)
        async with http_client(identity.ca, identity) as http:
            versioned = await http.post(url(cluster), json=body, headers={"A2A-Version": "1.0"})
            unversioned = await http.post(url(cluster), json={**body, "id": 2})
            return versioned.json(), unversioned.json()

    versioned, unversioned = run(scenario())
    assert versioned["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert versioned["result"]["task"]["artifacts"][0]["parts"][0]["data"] == {"value": 6}
    assert "error" in unversioned and "result" not in unversioned


def test_no_client_certificate_is_refused(cluster: EmbeddedCluster) -> None:
    async def scenario() -> tuple[type[BaseException] | None, int, int]:
        ca = cluster.identity(ALICE).ca
        async with http_client(ca, None) as http:
            try:
                await http.get(url(cluster) + ".well-known/agent-card.json")
                refused: type[BaseException] | None = None
            except httpx.HTTPError as exc:
                refused = type(exc)
        async with http_client(ca, cluster.identity(Principal("agent", "echo-a"))) as http:
            agent = await http.post(url(cluster), json={"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}})
        async with http_client(ca, cluster.identity(Principal("monitor", "prometheus"))) as http:
            monitor = await http.get(url(cluster) + ".well-known/agent-card.json")
        return refused, agent.status_code, monitor.status_code

    refused, agent, monitor = run(scenario())
    assert refused is not None and issubclass(refused, httpx.HTTPError)  # the handshake fails: no response at all
    assert agent == 403 and monitor == 403


def test_another_clients_task_is_not_visible(cluster: EmbeddedCluster) -> None:
    async def scenario() -> tuple[Task, list[str], list[str]]:
        async with a2a(cluster, streaming=False) as alice:
            task = await send(alice, message("echo", {"value": 1}))
            mine = [t.id for t in (await alice.list_tasks(ListTasksRequest())).tasks]
        async with a2a(cluster, BOB) as bob:
            with pytest.raises(TaskNotFoundError):
                await bob.get_task(GetTaskRequest(id=task.id))
            with pytest.raises(TaskNotFoundError):
                await bob.cancel_task(CancelTaskRequest(id=task.id))
            with pytest.raises(TaskNotFoundError):
                await collect(bob.subscribe(SubscribeToTaskRequest(id=task.id)))
            theirs = [t.id for t in (await bob.list_tasks(ListTasksRequest())).tasks]
        return task, mine, theirs

    task, mine, theirs = run(scenario())
    assert task.id in mine
    assert task.id not in theirs


def card(cluster: EmbeddedCluster) -> dict[str, Any]:
    async def fetch() -> dict[str, Any]:
        identity = cluster.identity(ALICE)
        async with http_client(identity.ca, identity) as http:
            reply = await http.get(url(cluster) + ".well-known/agent-card.json")
            reply.raise_for_status()
            served: dict[str, Any] = reply.json()
            return served

    return run(fetch())


def test_agent_card_lists_what_the_agents_serve(cluster: EmbeddedCluster) -> None:
    served = card(cluster)
    assert {s["id"] for s in served["skills"]} == {"echo", "echo_pair", "spare_task"}  # not "unserved"
    (extension,) = served["capabilities"]["extensions"]
    assert extension["params"]["echo"]["input_schema"]["additionalProperties"] == {"type": "number"}
    assert served["capabilities"]["streaming"] is True
    assert "mtls" in served["securitySchemes"]


def test_agent_card_changes_when_an_agent_goes(cluster: EmbeddedCluster) -> None:
    """Runs last: it stops the spare agent."""
    (host,) = [h for h in cluster.hosts if h.agent.agent_id == "spare-1"]
    cluster.run(host.stop())
    deadline = time.monotonic() + 15
    skills = {s["id"] for s in card(cluster)["skills"]}
    while "spare_task" in skills and time.monotonic() < deadline:
        time.sleep(0.5)
        skills = {s["id"] for s in card(cluster)["skills"]}
    assert skills == {"echo", "echo_pair"}
