"""Chaos on the Ray deployment: a stream of 5,000 two-agent tasks while the MCA leader, then an
agent, then the new leader are SIGKILLed. Afterwards every acknowledged task is terminal, each
key made exactly one session, every completed session has exactly one result per subtask, and
every replica's log holds the same entries, and the durable read model agrees with the log."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from pymongo import MongoClient

from mca.config import ClusterConfig
from mca.deploy import Deployment
from mca.sdk import Client, RequestRejected, Session
from tests.ray_cluster import ray_deployment, write_cluster_yaml

TASKS = 5000
KILLS = {1000: "leader", 2500: "echo-1", 4000: "leader"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterConfig, Deployment]]:
    config = write_cluster_yaml(
        tmp_path_factory.mktemp("chaos"),
        """  - {id: echo-1, class: "mca.agents:EchoAgent", capacity: 64}
  - {id: echo-2, class: "mca.agents:EchoAgent", capacity: 64}""",
    )
    with ray_deployment(config) as deployment:
        yield config, deployment


def _kill(deployment: Deployment, who: str) -> None:
    replicas, agents = deployment.statuses(timeout=60)
    if who == "leader":
        pid = next(r["pid"] for r in replicas if r["leader"])
    else:
        pid = next(a["pid"] for a in agents if a["id"] == who)
    os.kill(pid, signal.SIGKILL)


def test_nothing_acknowledged_is_lost_under_sigkill(cluster: tuple[ClusterConfig, Deployment]) -> None:
    config, deployment = cluster

    async def stream() -> dict[str, str]:
        acknowledged: dict[str, str] = {}
        async with Client(config.task_addresses, config.operator_identity(), retry_seconds=60) as client:
            gate = asyncio.Semaphore(16)

            async def one(i: int) -> None:
                key = f"chaos-{i}"
                async with gate:
                    if i in KILLS:
                        await asyncio.get_running_loop().run_in_executor(None, _kill, deployment, KILLS[i])
                    for _ in range(3):  # a retry with the same key is always safe
                        try:
                            session = await client.submit("echo_pair", {"value": i}, key=key)
                            acknowledged[key] = session.session_id
                            return
                        except RequestRejected as exc:
                            if exc.code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                                raise

            await asyncio.gather(*(one(i) for i in range(TASKS)))
        return acknowledged

    acknowledged = asyncio.run(stream())
    assert len(acknowledged) == TASKS, f"only {len(acknowledged)} of {TASKS} submissions were acknowledged"
    assert len(set(acknowledged.values())) == TASKS  # one session per key

    async def settle() -> list[Session]:
        async with Client(config.task_addresses, config.operator_identity(), retry_seconds=60) as client:
            deadline = time.monotonic() + 240
            ended: dict[str, Session] = {}
            while True:
                for sid in acknowledged.values():
                    if sid not in ended:
                        session = await client.get(sid)
                        if session.terminal:
                            ended[sid] = session
                if len(ended) == TASKS or time.monotonic() > deadline:
                    return [ended.get(sid) or await client.get(sid) for sid in acknowledged.values()]
                await asyncio.sleep(1.0)

    sessions = asyncio.run(settle())
    stuck = [s.session_id for s in sessions if not s.terminal]
    assert not stuck, f"{len(stuck)} acknowledged sessions never ended: {stuck[:5]}"
    completed = [s for s in sessions if s.state == "completed"]
    assert all(len(s.outputs) == 2 for s in completed)  # one result per subtask, exactly
    assert len(completed) > TASKS // 2, {s.state for s in sessions}

    replicas, _ = deployment.statuses(timeout=60)
    assert sum(r["leader"] for r in replicas) == 1
    assert len({r["sessions"] for r in replicas}) == 1, replicas  # every replica holds the same log

    # The durable read model agrees with the log: the leader's projection is in the store.
    leader = next(deployment.replicas[r["id"]] for r in replicas if r["leader"])
    expected, stored = read_model_after_catch_up(config, leader)
    assert set(stored["sessions"]) == set(expected["sessions"])
    differ = [sid for sid, doc in expected["sessions"].items() if stored["sessions"][sid] != doc]
    assert not differ, f"{len(differ)} sessions differ from the log, e.g. {differ[:3]}"
    assert stored["events"] == expected["events"]  # every session's events, embedded in its document
    assert stored["applied"] >= expected["applied"]


def read_model_after_catch_up(config: ClusterConfig, leader: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The leader's projection of its log, and the store's content once it has caught up."""
    client: MongoClient[dict[str, Any]] = MongoClient(config.documents_url, serverSelectionTimeoutMS=5000)
    try:
        db = client.get_default_database()
        deadline = time.monotonic() + 60
        while True:
            expected = ray.get(leader.projection.remote(), timeout=60)
            checkpoint = db["meta"].find_one({"_id": "checkpoint"}) or {"applied": 0}
            if checkpoint["applied"] >= expected["applied"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        sessions = {d["_id"]: d for d in db["coordination_sessions"].find({})}
        stored = {
            "applied": checkpoint["applied"],
            "sessions": sessions,
            "events": {sid: len(d.get("events", [])) for sid, d in sessions.items()},
        }
        return expected, stored
    finally:
        client.close()
