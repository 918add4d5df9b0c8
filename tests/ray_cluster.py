"""Shared by the Ray tests: a cluster.yaml on free loopback ports, and a deployment on a fresh
local Ray cluster that is ready (every agent registered) before the test starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray

from mca.config import ClusterConfig, load
from mca.deploy import Deployment, confine_ray_to_loopback, deploy, teardown
from mca.embedded import free_ports
from mca.sdk import Client


def write_cluster_yaml(folder: Path, agents: str, extra: str = "") -> ClusterConfig:
    """Three replicas and the embedded stores on free ports, the given ``agents:`` lines, and
    ``extra`` settings."""
    p = free_ports(14)
    (folder / "cluster.yaml").write_text(
        f"""
data_dir: {folder / "data"}
bind: 127.0.0.1
mca:
  replicas:
    - {{id: mca-1, raft_port: {p[0]}, task_port: {p[1]}, metrics_port: {p[8]}, a2a_port: {p[9]}}}
    - {{id: mca-2, raft_port: {p[2]}, task_port: {p[3]}, metrics_port: {p[10]}, a2a_port: {p[11]}}}
    - {{id: mca-3, raft_port: {p[4]}, task_port: {p[5]}, metrics_port: {p[12]}, a2a_port: {p[13]}}}
  timing: {{prepare_timeout: 5.0, lease: 10.0, execution_timeout: 30.0}}
stores: {{embedded: true, documents_port: {p[6]}, redis_port: {p[7]}}}
agents:
{agents}
{extra}
"""
    )
    return load(folder / "cluster.yaml")


@contextmanager
def ray_deployment(config: ClusterConfig) -> Iterator[Deployment]:
    confine_ray_to_loopback()  # as mca up does for the embedded default
    ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=2, log_to_driver=False)
    deployment = deploy(config)
    try:
        asyncio.run(wait_agents(config))
        yield deployment
    finally:
        teardown(deployment)
        ray.shutdown()


async def wait_agents(config: ClusterConfig) -> None:
    async with Client(config.task_addresses, config.operator_identity(), retry_seconds=60) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len([a for a in await client.agents() if a.status != "offline"]) >= len(config.agents):
                return
            await asyncio.sleep(0.2)
    raise AssertionError("agents did not register")
