"""The runtime over real gRPC and real pysyncobj, used the way a client and an agent author
would: three replicas and two agents on 127.0.0.1, tasks submitted through the SDK."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import grpc
import pytest

from mca.catalog import CATALOG, TaskType
from mca.embedded import EmbeddedCluster
from mca.sdk import Agent, Client, Job, RequestRejected
from mca.stores import listening_sockets
from mca.tls import Principal
from protocol.ledger import owned_key
from protocol.model import SubtaskSpec

T = TypeVar("T")
#: Who ``cluster.client()`` is.
CLIENT = Principal("client", "local")
COMPENSATED: list[str] = []


class Echo(Agent):
    capabilities = ("echo",)
    capacity = 8

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id

    async def execute(self, job: Job) -> Mapping[str, float]:
        await asyncio.sleep(job.inputs.get("sleep", 0.0))
        if job.inputs.get("fail"):
            raise RuntimeError("asked to fail")
        return {"value": 2 * job.inputs.get("value", 0.0)}

    async def compensate(self, subtask_id: str) -> None:
        COMPENSATED.append(subtask_id)


CATALOG_WITH_SLEEP = dict(CATALOG) | {
    "sleep_plan": TaskType("sleep_plan", "needs an agent nobody runs", lambda _: (SubtaskSpec("plan_sleep"),))
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    data = tmp_path_factory.mktemp("cluster")
    with EmbeddedCluster(str(data), [Echo("echo-1"), Echo("echo-2")], catalog=CATALOG_WITH_SLEEP) as c:
        c.wait_ready(agents=2)
        yield c


def client_run(cluster: EmbeddedCluster, body: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        async with cluster.client() as client:
            return await body(client)

    return asyncio.run(main())


def test_a_task_completes_end_to_end(cluster: EmbeddedCluster) -> None:
    async def body(client: Client) -> Any:
        return await client.submit("echo", {"value": 21}, key="e2e-1", wait=True)

    session = client_run(cluster, body)
    assert session.state == "completed", session
    assert list(session.outputs.values()) == [{"value": 42.0}]


def test_a_two_agent_task_commits_both(cluster: EmbeddedCluster) -> None:
    async def body(client: Client) -> Any:
        return await client.submit("echo_pair", {"value": 1}, wait=True)

    session = client_run(cluster, body)
    assert session.state == "completed" and len(session.outputs) == 2


def test_a_repeated_key_returns_the_same_session(cluster: EmbeddedCluster) -> None:
    async def body(client: Client) -> Any:
        first = await client.submit("echo", {"value": 1}, key="same-key", wait=True)
        second = await client.submit("echo", {"value": 1}, key="same-key")
        with pytest.raises(RequestRejected) as other:
            await client.submit("echo", {"value": 2}, key="same-key")
        return first, second, other.value

    first, second, other = client_run(cluster, body)
    assert first.session_id == second.session_id
    assert other.code == "FAILED_PRECONDITION" and "different task" in other.message


@pytest.mark.parametrize(
    ("task_type", "payload", "key", "field"),
    [
        ("teleport", "{}", "k-bad-1", "task_type"),
        ("echo", "{not json", "k-bad-2", "payload"),
        ("echo", "[1, 2]", "k-bad-3", "payload"),
        ("echo", json.dumps({"value": "high"}), "k-bad-4", "payload.value"),
        ("echo", json.dumps({"pad": "x" * 70_000}), "k-bad-5", "payload"),
        ("echo", "{}", "", "idempotency_key"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(
    cluster: EmbeddedCluster, task_type: str, payload: str, key: str, field: str
) -> None:
    from protocol._pb import coordination_pb2 as pb
    from protocol._pb import coordination_pb2_grpc as pb_grpc

    leader = cluster.leader()
    assert leader is not None
    sessions_before = len(leader.ledger.sessions)

    async def body() -> grpc.aio.AioRpcError:
        async with cluster.identity(CLIENT).channel(cluster.task_addresses[0]) as channel:
            request = pb.SubmitRequest(idempotency_key=key, task_type=task_type, payload=payload)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await pb_grpc.TaskServiceStub(channel).Submit(request)
            return caught.value

    error = asyncio.run(body())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(field)
    assert len(leader.ledger.sessions) == sessions_before  # nothing was accepted for it
    assert owned_key(str(CLIENT), key) not in leader.ledger.by_key


BAD_SUBMITS = [
    ("teleport", {}, "task_type"),
    ("echo", {"value": "high"}, "payload.value"),
    ("echo", {"pad": "x" * 70_000}, "payload"),
]


def test_overlapping_submits_share_one_stream_and_a_bad_one_fails_alone(cluster: EmbeddedCluster) -> None:
    """The SDK sends overlapping submits on one SubmitStream, many per write; each bad submit
    among them is refused on its own (INVALID_ARGUMENT naming its field), accepting nothing."""
    leader = cluster.leader()
    assert leader is not None
    sessions_before = len(leader.ledger.sessions)

    async def body() -> tuple[list[Any], list[Any], Any]:
        # Given the leader's address only: a stream first opened to a follower is refused and
        # opened again (tested on its own below), which would make this count two.
        async with Client([leader.config.me.grpc], cluster.identity(CLIENT)) as client:
            good = [client.submit("echo", {"value": i}, key=f"stream-{i}", wait=True) for i in range(40)]
            bad = [client.submit(t, p, key=f"stream-bad-{i}", wait=True) for i, (t, p, _) in enumerate(BAD_SUBMITS)]
            results = await asyncio.gather(*good, *bad, return_exceptions=True)
            return results[:40], results[40:], client._submissions._link

    good, bad, link = asyncio.run(body())
    assert [s.state for s in good] == ["completed"] * 40
    assert [s.outputs for s in good] == [{next(iter(s.outputs)): {"value": 2.0 * i}} for i, s in enumerate(good)]
    for error, (_, _, field) in zip(bad, BAD_SUBMITS, strict=True):
        assert isinstance(error, RequestRejected) and error.code == "INVALID_ARGUMENT", error
        assert error.message.startswith(field)
    assert link.opened == 1 and link.carried == 43 and link.written < 43  # batched writes
    assert len(leader.ledger.sessions) == sessions_before + 40
    assert not any(owned_key(str(CLIENT), f"stream-bad-{i}") in leader.ledger.by_key for i in range(3))


def test_a_follower_refuses_a_submit_stream_and_names_the_leader(cluster: EmbeddedCluster) -> None:
    from protocol._pb import coordination_pb2_grpc as pb_grpc
    from protocol.wire import LEADER_HINT

    leader = cluster.leader()
    assert leader is not None
    follower = next(r for r in cluster.replicas if r is not None and r is not leader)

    async def body() -> grpc.aio.AioRpcError:
        async with cluster.identity(CLIENT).channel(follower.config.me.grpc) as channel:
            call = pb_grpc.TaskServiceStub(channel).SubmitStream()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call.read()  # refused as it opens (write nothing: grpc/grpc#36066)
            return caught.value

    error = asyncio.run(body())
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "leader" in (error.details() or "")
    assert dict(error.trailing_metadata() or ()).get(LEADER_HINT) == leader.config.me.grpc


def test_a_stream_holds_a_bounded_number_of_undecided_submits(
    cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past STREAM_SUBMITS_MAX submits without an outcome, the next is RESOURCE_EXHAUSTED with
    a retry hint at once (the SDK would retry it after the hint; a raw stream sees it)."""
    from mca import submissions
    from protocol._pb import coordination_pb2 as pb
    from protocol._pb import coordination_pb2_grpc as pb_grpc

    monkeypatch.setattr(submissions, "STREAM_SUBMITS_MAX", 2)
    leader = cluster.leader()
    assert leader is not None

    def submit(ref: int) -> Any:
        payload = json.dumps({"value": ref, "sleep": 0.5})
        request = pb.SubmitRequest(idempotency_key=f"bound-{ref}", task_type="echo", payload=payload, wait=True)
        return pb.StreamedSubmit(ref=ref, request=request)

    async def body() -> list[Any]:
        async with cluster.identity(CLIENT).channel(leader.config.me.grpc) as channel:
            call = pb_grpc.TaskServiceStub(channel).SubmitStream()
            await call.write(pb.SubmitBatch(submits=[submit(1), submit(2), submit(3)]))
            await call.done_writing()
            return [o async for reply in call for o in reply.outcomes]

    outcomes = {o.ref: o for o in asyncio.run(body())}
    assert sorted(outcomes) == [1, 2, 3]
    assert outcomes[3].code == "RESOURCE_EXHAUSTED" and outcomes[3].retry_after_ms > 0
    assert outcomes[1].session.state == outcomes[2].session.state == "completed"
    assert owned_key(str(CLIENT), "bound-3") not in leader.ledger.by_key


def test_no_capable_agent_is_a_failed_precondition(cluster: EmbeddedCluster) -> None:
    async def body(client: Client) -> Any:
        with pytest.raises(RequestRejected) as caught:
            await client.submit("sleep_plan", {})
        return caught.value

    error = client_run(cluster, body)
    assert error.code == "FAILED_PRECONDITION" and "plan_sleep" in error.message


def test_watch_streams_every_event_and_resumes(cluster: EmbeddedCluster) -> None:
    async def body(client: Client) -> Any:
        session = await client.submit("echo", {"value": 5}, wait=True)
        everything = [e async for e in client.watch(session.session_id)]
        resumed = [e async for e in client.watch(session.session_id, after_seq=2)]
        return everything, resumed

    everything, resumed = client_run(cluster, body)
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))
    assert [e.kind for e in everything][:3] == ["accepted", "planned", "decided"]
    assert everything[-1].kind == "settled"
    assert resumed == everything[2:]


def test_a_failing_agent_fails_the_session_and_compensates_the_other(cluster: EmbeddedCluster) -> None:
    async def body(client: Client) -> Any:
        return await client.submit("echo_pair", {"fail": 1}, wait=True)

    session = client_run(cluster, body)
    assert session.state == "failed" and "asked to fail" in session.reason


def test_cancel_a_running_task(cluster: EmbeddedCluster) -> None:
    async def body(client: Client) -> Any:
        session = await client.submit("echo", {"sleep": 3})
        while (await client.get(session.session_id)).state != "executing":
            await asyncio.sleep(0.02)
        cancelled = await client.cancel(session.session_id)
        again = await client.cancel(session.session_id)  # a retry, e.g. after a leader change
        done = await client.submit("echo", {"value": 1}, wait=True)
        with pytest.raises(RequestRejected) as late:
            await client.cancel(done.session_id)
        return cancelled, again, late.value

    cancelled, again, late = client_run(cluster, body)
    assert cancelled.state == "cancelled" and again.state == "cancelled"
    assert late.code == "FAILED_PRECONDITION" and "already completed" in late.message
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not COMPENSATED:
        time.sleep(0.05)
    assert COMPENSATED, "the running execution should have been compensated"


def test_agents_are_listed_with_their_status(cluster: EmbeddedCluster) -> None:
    time.sleep(1.2)  # one heartbeat period

    async def body(client: Client) -> Any:
        return await client.agents()

    agents = client_run(cluster, body)
    assert sorted(a.agent_id for a in agents) == ["echo-1", "echo-2"]
    assert {a.status for a in agents} <= {"available", "busy"}


def test_every_listener_binds_loopback(cluster: EmbeddedCluster) -> None:
    """Raft, gRPC, GET /metrics, A2A and the agents: every listener on 127.0.0.1 (this process
    hosts them all; ``listening_sockets`` reads /proc)."""
    addresses = [a for r in cluster.addresses for a in (r.raft, r.grpc, r.metrics, r.a2a)]
    ports = {int(a.rsplit(":", 1)[1]) for a in [*addresses, *(h.listen for h in cluster.hosts)]}
    listening = {port: host for host, port in listening_sockets(os.getpid())}
    assert ports <= set(listening), f"not listening: {ports - set(listening)}"
    # 127.0.0.1 as IPv4, ::1, or 127.0.0.1 mapped into IPv6 (gRPC's dual-stack socket)
    loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
    for port in ports:
        assert listening[port] in loopback, (port, listening[port])


def test_a_bogus_result_cannot_wedge_the_log(cluster: EmbeddedCluster) -> None:
    from protocol._pb import coordination_pb2 as pb
    from protocol._pb import coordination_pb2_grpc as pb_grpc

    async def body(client: Client) -> Any:
        session = await client.submit("echo", {"sleep": 0.5})
        echo = cluster.identity(Principal("agent", "echo-1"))  # a real agent's key, misused
        leader = cluster.leader()
        assert leader is not None
        async with echo.channel(leader.config.me.grpc) as channel:
            stub = pb_grpc.CoordinationServiceStub(channel)
            bogus = pb.Result(
                agent_id="echo-1",
                incarnation=1,
                session_id=session.session_id,
                subtask_id="not-a-subtask",
                outcome=pb.Outcome(ok=True),
            )
            with pytest.raises(grpc.aio.AioRpcError) as stray:
                await stub.Deliver(pb.ToMcaBatch(messages=[pb.ToMca(result=bogus)]))
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.Register(pb.Register(agent_id="echo-1", capabilities=[], capacity=-5, incarnation=1))
        after = await client.submit("echo", {"value": 3}, wait=True)
        return await client.get(session.session_id), after, bad.value, stray.value

    first, after, bad, stray = client_run(cluster, body)
    assert first.state in ("executing", "completed") and after.state == "completed"
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "capabilities" in (bad.details() or "")
    assert stray.code() == grpc.StatusCode.FAILED_PRECONDITION and "subtask_id" in (stray.details() or "")


def test_odd_reads_answer_and_end(cluster: EmbeddedCluster) -> None:
    async def body(client: Client) -> Any:
        session = await client.submit("echo", {"value": 1}, wait=True)
        await asyncio.sleep(0.3)  # settled
        past_end = [e async for e in client.watch(session.session_id, after_seq=100)]
        with pytest.raises(RequestRejected) as missing:
            await client.get("s" * 100_000)
        return past_end, missing.value

    past_end, missing = client_run(cluster, body)
    assert past_end == []
    assert missing.code == "NOT_FOUND" and len(missing.message) < 200


def test_the_leader_counts_what_it_coordinates(cluster: EmbeddedCluster) -> None:
    leader = cluster.leader()
    assert leader is not None
    counts = leader.metrics.counts
    assert counts["leader_changes_total"] == 1
    assert counts["tasks_submitted_total"] >= 6
    assert counts["tasks_completed_total"] >= 4 and counts["tasks_failed_total"] >= 1
    assert counts["tasks_cancelled_total"] >= 1
    assert counts["votes_total{vote=yes}"] >= 8 and counts["decisions_total{decision=commit}"] >= 4
    assert leader.metrics.commit_latency and all(0 < s < 10 for s in leader.metrics.commit_latency)
    # Counted once, by whoever led when the entry applied: a replica that never led counts
    # nothing (one that led before a leader change keeps what it counted then).
    never_led = [r for r in cluster.replicas if r is not None and "leader_changes_total" not in r.metrics.counts]
    assert len(never_led) >= 1
    assert all("tasks_submitted_total" not in r.metrics.counts for r in never_led)


def test_the_leader_dies_and_the_cluster_goes_on(cluster: EmbeddedCluster) -> None:
    async def before(client: Client) -> Any:
        return await client.submit("echo", {"value": 7}, key="before-failover", wait=True)

    first = client_run(cluster, before)
    assert first.state == "completed", first
    leader = cluster.leader()
    assert leader is not None
    cluster.stop_replica(leader)

    async def after(client: Client) -> Any:
        again = await client.get(first.session_id)
        new = await client.submit("echo", {"value": 8}, key="after-failover", wait=True)
        return again, new

    again, new = client_run(cluster, after)
    assert (again.state, new.state) == ("completed", "completed"), (again, new)
