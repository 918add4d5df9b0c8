"""Chaos on the Ray deployment: a stream of 500 two-agent tasks while the MCA leader, then an
agent, then the new leader are SIGKILLed. Afterwards every acknowledged task is terminal, each
key made exactly one session, every completed session has exactly one result per subtask, and
every replica's log holds the same entries."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import ray

from mca.config import ClusterConfig, load
from mca.deploy import Deployment, deploy, teardown
from mca.embedded import free_ports
from mca.sdk import Client, RequestRejected, Session

TASKS = 500
KILLS = {100: "leader", 250: "echo-1", 400: "leader"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterConfig, Deployment]]:
    folder = tmp_path_factory.mktemp("chaos")
    p = free_ports(6)
    (folder / "cluster.yaml").write_text(
        f"""
data_dir: {folder / "data"}
mca:
  replicas:
    - {{id: mca-1, raft_port: {p[0]}, task_port: {p[1]}}}
    - {{id: mca-2, raft_port: {p[2]}, task_port: {p[3]}}}
    - {{id: mca-3, raft_port: {p[4]}, task_port: {p[5]}}}
  timing: {{prepare_timeout: 5.0, lease: 10.0, execution_timeout: 30.0}}
agents:
  - {{id: echo-1, class: "mca.agents:EchoAgent", capacity: 16}}
  - {{id: echo-2, class: "mca.agents:EchoAgent", capacity: 16}}
"""
    )
    config = load(folder / "cluster.yaml")
    ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=2, log_to_driver=False)
    deployment = deploy(config)
    try:
        asyncio.run(_wait_agents(config))
        yield config, deployment
    finally:
        teardown(deployment)
        ray.shutdown()


async def _wait_agents(config: ClusterConfig) -> None:
    async with Client(config.task_addresses, retry_seconds=60) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len([a for a in await client.agents() if a.status != "offline"]) == len(config.agents):
                return
            await asyncio.sleep(0.2)
    raise AssertionError("agents did not register")


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
        async with Client(config.task_addresses, retry_seconds=60) as client:
            gate = asyncio.Semaphore(4)

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
        async with Client(config.task_addresses, retry_seconds=60) as client:
            deadline = time.monotonic() + 180
            while True:
                sessions = [await client.get(sid) for sid in acknowledged.values()]
                if all(s.terminal for s in sessions) or time.monotonic() > deadline:
                    return sessions
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
