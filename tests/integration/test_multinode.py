"""Multi-node placement: on a Ray cluster of three raylets (ray.cluster_utils.Cluster on
127.0.0.1), ``deploy(spread=True)`` puts the three MCA replicas on three different nodes with a
STRICT_SPREAD placement group, and the runtime works across them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import ray
import ray._private.ray_constants as ray_constants
from ray.cluster_utils import Cluster

from mca.config import ClusterConfig
from mca.deploy import Deployment, deploy, teardown
from mca.sdk import Client, Session
from tests.ray_cluster import wait_agents, write_cluster_yaml


@pytest.fixture(scope="module")
def spread_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterConfig, Deployment]]:
    # Ray resolves "127.0.0.1" in an address to the machine's outward IP when it thinks it may be
    # part of a real cluster; the nodes here listen on loopback, so keep it loopback (without
    # this, ray.init waits forever for a GCS at the outward address).
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1"},
    )
    try:
        for _ in range(2):
            nodes.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        ray.init(address=nodes.address, log_to_driver=False)
        nodes.wait_for_nodes(timeout=60)
        config = write_cluster_yaml(
            tmp_path_factory.mktemp("spread"),
            """  - {id: echo-1, class: "mca.agents:EchoAgent", capacity: 4}
  - {id: echo-2, class: "mca.agents:EchoAgent", capacity: 4}""",
        )
        deployment = deploy(config, spread=True)
        try:
            asyncio.run(wait_agents(config))
            yield config, deployment
        finally:
            teardown(deployment)
    finally:
        ray.shutdown()
        nodes.shutdown()  # type: ignore[no-untyped-call]
        ray_constants.ENABLE_RAY_CLUSTER = saved


def test_replicas_run_on_three_different_nodes(spread_cluster: tuple[ClusterConfig, Deployment]) -> None:
    _, deployment = spread_cluster
    replicas, _ = deployment.statuses(timeout=60)
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}  # type: ignore[no-untyped-call]
    placed = [r["node"] for r in replicas]
    assert len(alive) == 3 and len(set(placed)) == 3 and set(placed) == alive, placed
    # Not by luck of the scheduler: all three are bundles of one STRICT_SPREAD group.
    groups = {r["placement_group"] for r in replicas}
    assert len(groups) == 1 and None not in groups, groups
    table = ray.util.placement_group_table()[groups.pop()]
    assert table["strategy"] == "STRICT_SPREAD" and table["state"] == "CREATED"
    assert set(table["bundles_to_node_id"].values()) == set(placed)


def test_a_task_completes_across_nodes(spread_cluster: tuple[ClusterConfig, Deployment]) -> None:
    config, _ = spread_cluster

    async def main() -> Session:
        async with Client(config.task_addresses, config.operator_identity(), retry_seconds=60) as client:
            return await client.submit("echo_pair", {"value": 5}, wait=True)

    session = asyncio.run(main())
    assert session.state == "completed", session
    assert sorted(o["value"] for o in session.outputs.values()) == [10.0, 10.0]
