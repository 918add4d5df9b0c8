"""Live state in a real redis-server: agents' status keys expire when heartbeats stop, a new
leader reads them, and progress an agent reports from ``execute`` reaches ``Watch`` through
Redis pub/sub (and again, as the latest report, when a watcher reconnects)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import redis

from knowledge.server import FalkorServer
from mca.embedded import EmbeddedCluster
from mca.sdk import Agent, Event, Job, RequestRejected
from mca.stores import redis_url
from mca.tls import Principal
from mca.views import HEARTBEAT_STALE_SECONDS

GATES: dict[str, asyncio.Event] = {}


class Stepper(Agent):
    """Reports progress in quarters; waits at 50 % until the test opens its gate."""

    capabilities = ("step",)
    capacity = 4

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id

    async def execute(self, job: Job) -> Mapping[str, float]:
        job.progress(0.25, "warming up")
        job.progress(0.5, "half way")
        gate = GATES.setdefault(job.session_id, asyncio.Event())
        await asyncio.wait_for(gate.wait(), 20)
        # Heavy work runs in worker threads; reporting from there must not fail the job.
        await asyncio.to_thread(job.progress, 0.75, "from a worker thread")
        job.progress(1.0, "done")
        return {"steps": 4.0}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: FalkorServer) -> Iterator[EmbeddedCluster]:
    from mca.catalog import CATALOG, TaskType
    from protocol.model import SubtaskSpec

    catalog = dict(CATALOG) | {"steps": TaskType("steps", "one stepping subtask", lambda _: (SubtaskSpec("step"),))}
    url = redis_url(redis_server.host, redis_server.port, redis_server.admin_password)
    data = tmp_path_factory.mktemp("cluster")
    with EmbeddedCluster(str(data), [Stepper("stepper-1")], catalog=catalog, redis_url=url) as c:
        deadline = time.monotonic() + 20
        while not ((leader := c.leader()) is not None and leader.ledger.agents) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield c


def admin(server: FalkorServer) -> redis.Redis:
    return server.admin()


def test_heartbeats_keep_an_expiring_status_key(cluster: EmbeddedCluster, redis_server: FalkorServer) -> None:
    r = admin(redis_server)
    deadline = time.monotonic() + 10
    while r.get("agent:stepper-1:status") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    status = json.loads(r.get("agent:stepper-1:status") or "{}")
    assert status["status"] == "available" and status["capacity"] == 4
    ttl_ms = r.pttl("agent:stepper-1:status")
    assert 0 < ttl_ms <= HEARTBEAT_STALE_SECONDS * 1000


def watch_until(cluster: EmbeddedCluster, session_id: str, stop: Any, after: int = 0) -> list[Event]:
    async def main() -> list[Event]:
        seen: list[Event] = []
        async with cluster.client() as client:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(20):
                    async for e in client.watch(session_id, after_seq=after):
                        seen.append(e)
                        if stop(e):
                            break
        return seen

    return asyncio.run(main())


def test_progress_reaches_watch_through_redis(cluster: EmbeddedCluster, redis_server: FalkorServer) -> None:
    async def submit() -> str:
        async with cluster.client() as client:
            return (await client.submit("steps", {}, key="live-1")).session_id

    session_id = asyncio.run(submit())
    half = watch_until(cluster, session_id, lambda e: e.kind == "progress" and e.progress == 0.5)
    reports = [(e.subtask_id, e.progress, e.detail) for e in half if e.kind == "progress"]
    assert reports[-1][1:] == (0.5, "half way"), half
    assert all(e.seq == half[-1].seq for e in half if e.kind == "progress")  # progress adds no seq
    stored = admin(redis_server).hgetall(f"coord:{session_id}")
    assert [json.loads(v)["f"] for v in stored.values()] == [0.5]

    # A watcher that reconnects after the last logged event gets the latest progress first.
    resumed = watch_until(cluster, session_id, lambda e: e.kind == "progress", after=half[-1].seq)
    assert [(e.kind, e.progress) for e in resumed] == [("progress", 0.5)]

    cluster.run(_open_gate(session_id))
    rest = watch_until(cluster, session_id, lambda e: e.kind == "settled", after=half[-1].seq)
    assert rest[-1].kind == "settled" and rest[-1].state == "completed"


async def _open_gate(session_id: str) -> None:
    GATES.setdefault(session_id, asyncio.Event()).set()


def test_a_report_for_a_subtask_the_agent_does_not_hold_is_refused(cluster: EmbeddedCluster) -> None:
    from protocol._pb import coordination_pb2 as pb
    from protocol._pb import coordination_pb2_grpc as pb_grpc

    leader = cluster.leader()
    assert leader is not None

    async def report(**fields: Any) -> str:
        import grpc

        async with cluster.identity(Principal("agent", "stepper-1")).channel(leader.config.me.grpc) as channel:
            stub = pb_grpc.CoordinationServiceStub(channel)
            try:
                await stub.ReportProgress(pb.Progress(**fields), timeout=5)
            except grpc.aio.AioRpcError as exc:
                return f"{exc.code().name}: {exc.details()}"
        return "OK"

    assert asyncio.run(report(agent_id="stepper-1", session_id="nope", subtask_id="t", fraction=0.5)).startswith(
        "FAILED_PRECONDITION: session_id"
    )
    assert "fraction" in asyncio.run(report(agent_id="stepper-1", session_id="s1", subtask_id="t", fraction=1.5))
    # Another agent's name is not the caller's to use.
    assert asyncio.run(report(agent_id="x", session_id="s1", subtask_id="t", fraction=0.5)).startswith(
        "PERMISSION_DENIED: agent_id"
    )


def test_a_new_leader_reads_agent_status_from_redis(cluster: EmbeddedCluster) -> None:
    old = cluster.leader()
    assert old is not None
    cluster.stop_replica(old)
    deadline = time.monotonic() + 20
    while cluster.leader() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    new = cluster.leader()
    assert new is not None and new is not old

    async def listed() -> list[str]:
        async with cluster.client() as client:
            return [a.status for a in await client.agents()]

    # Asked at once: the new leader has heard no heartbeat yet, the key in Redis has not expired.
    try:
        statuses = asyncio.run(listed())
    except RequestRejected as exc:  # pragma: no cover - only if the election is still settling
        raise AssertionError(f"ListAgents failed after failover: {exc}") from exc
    assert statuses == ["available"]
