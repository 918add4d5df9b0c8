"""The runtime deployed on a real local Ray cluster, as `mca up` does it: replicas and agents
are named actors; a custom SDK agent from examples/ runs beside the built-in ones; a stock
reflection client submits without our stubs; SIGKILLed agents and leaders are restarted by Ray
and the cluster carries on."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
import ray
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from mca.config import ClusterConfig
from mca.deploy import Deployment
from mca.sdk import Client, Session
from mca.stores import listening_sockets
from mca.tls import REPLICA
from tests.ray_cluster import ray_deployment, write_cluster_yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterConfig, Deployment]]:
    written = write_cluster_yaml(
        tmp_path_factory.mktemp("ray"),
        """  - {id: echo-1, class: "mca.agents:EchoAgent", capacity: 8}
  - {id: echo-2, class: "mca.agents:EchoAgent", capacity: 8}
  - {id: thermostat-1, class: "examples.custom_agent:Thermostat", capacity: 4}""",
        "task_types:\n  climate: [thermostat, echo]",
    )
    # The agents import examples.custom_agent from the repository root, as a user's agents
    # import from the folder of their cluster.yaml.
    config = dataclasses.replace(written, path=ROOT / "cluster.yaml")
    with ray_deployment(config) as deployment:
        yield config, deployment


def submit(config: ClusterConfig, task_type: str, payload: dict[str, float]) -> Session:
    async def main() -> Session:
        async with Client(config.task_addresses, config.operator_identity(), retry_seconds=60) as client:
            return await client.submit(task_type, payload, wait=True)

    return asyncio.run(main())


def test_actors_are_named_for_the_dashboard(cluster: tuple[ClusterConfig, Deployment]) -> None:
    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    assert {
        "mca-replica-mca-1",
        "mca-replica-mca-2",
        "mca-replica-mca-3",
        "agent-echo-1",
        "agent-thermostat-1",
    } <= names


def test_a_custom_sdk_agent_negotiates_with_a_builtin_one(cluster: tuple[ClusterConfig, Deployment]) -> None:
    config, _ = cluster
    session = submit(config, "climate", {"value": 2})
    assert session.state == "completed", session
    assert session.parameters == {"setpoint_c": 21.5}  # offered in the vote, recorded in the log
    outputs = sorted(session.outputs.values(), key=len)
    assert {"setpoint_c": 21.5} in outputs and {"value": 4.0} in outputs


def test_a_stock_reflection_client_submits_without_our_stubs(cluster: tuple[ClusterConfig, Deployment]) -> None:
    config, _ = cluster

    identity = config.operator_identity()  # what grpcurl would be given: -cacert, -cert, -key

    async def main() -> dict[str, Any]:
        async with identity.channel(config.task_addresses[0]) as channel:
            # Discovery over server reflection only (sync client, as reflection tools use).
            sync = grpc.secure_channel(
                config.task_addresses[0],
                grpc.ssl_channel_credentials(identity.ca, identity.key, identity.cert),
                options=(("grpc.ssl_target_name_override", REPLICA),),
            )
            database = ProtoReflectionDescriptorDatabase(sync)
            pool = descriptor_pool.DescriptorPool(database)
            assert "mca.v1.TaskService" in database.get_services()
            method = pool.FindServiceByName("mca.v1.TaskService").FindMethodByName("Submit")
            request_class = message_factory.GetMessageClass(method.input_type)
            reply_class = message_factory.GetMessageClass(method.output_type)
            request = json_format.ParseDict(
                {
                    "idempotencyKey": f"reflect-{time.time_ns()}",
                    "taskType": "echo",
                    "payload": json.dumps({"value": 5}),
                    "wait": True,
                },
                request_class(),
            )
            call = channel.unary_unary(
                "/mca.v1.TaskService/Submit",
                request_serializer=request_class.SerializeToString,
                response_deserializer=reply_class.FromString,
            )
            reply = await call(request, timeout=60)
            sync.close()
            result: dict[str, Any] = json_format.MessageToDict(reply)
            return result

    reply = asyncio.run(main())
    assert reply["state"] == "completed"
    assert reply["subtasks"][0]["output"] == [{"name": "value", "value": 10.0}]


def test_the_leader_exports_its_metrics(cluster: tuple[ClusterConfig, Deployment]) -> None:
    _, deployment = cluster
    replicas, _ = deployment.statuses()
    leader = next(r for r in replicas if r["leader"])
    assert leader["metrics"]["tasks_submitted_total"] >= 2
    assert leader["metrics"]["decisions_total{decision=commit}"] >= 2


def test_a_killed_agent_is_restarted_and_work_goes_on(cluster: tuple[ClusterConfig, Deployment]) -> None:
    config, deployment = cluster
    _, agents = deployment.statuses()
    victim = next(a for a in agents if a["id"] == "echo-1")
    os.kill(victim["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            now = next(a for a in deployment.statuses()[1] if a["id"] == "echo-1")
            if now["pid"] != victim["pid"] and not now["recovering"]:
                break
        except ray.exceptions.RayActorError:
            pass
        time.sleep(0.2)
    else:
        raise AssertionError("Ray did not restart the agent")
    assert now["incarnation"] > victim["incarnation"]
    for i in range(4):
        assert submit(config, "echo_pair", {"value": i}).state == "completed"


def test_a_killed_leader_is_replaced_and_restarted(cluster: tuple[ClusterConfig, Deployment]) -> None:
    config, deployment = cluster
    replicas, _ = deployment.statuses()
    leader = next(r for r in replicas if r["leader"])
    before = submit(config, "echo", {"value": 1})
    os.kill(leader["pid"], signal.SIGKILL)
    after = submit(config, "echo", {"value": 2})  # the SDK retries until a new leader answers
    assert after.state == "completed"

    async def check() -> Session:
        async with Client(config.task_addresses, config.operator_identity(), retry_seconds=60) as client:
            return await client.get(before.session_id)

    assert asyncio.run(check()).state == "completed"  # nothing applied was lost
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            restarted = next(r for r in deployment.statuses()[0] if r["id"] == leader["id"])
            if restarted["pid"] != leader["pid"]:
                break
        except ray.exceptions.RayActorError:
            pass
        time.sleep(0.2)
    else:
        raise AssertionError("Ray did not restart the replica")


def test_every_listener_of_the_deployment_binds_loopback(cluster: tuple[ClusterConfig, Deployment]) -> None:
    """Ours (Raft, gRPC, agents, the stores) and Ray's own (GCS, raylet, workers, dashboard
    agent): every process this test session started listens on 127.0.0.1 only. Read from
    /proc (psutil's address decoding is broken in this process by a library's socket shim)."""
    ours = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    listening = [(pid, host, port) for pid in ours for host, port in listening_sockets(pid)]
    assert len(listening) >= 10, listening  # replicas, agents, stores and Ray's servers
    ports = {port for _, _, port in listening}
    config, _ = cluster
    for replica in config.replicas:  # GET /metrics and the A2A endpoint are among them
        for address in (replica.metrics, replica.a2a):
            assert int(address.rsplit(":", 1)[1]) in ports, address
    # 127.0.0.1 as IPv4, ::1, or 127.0.0.1 mapped into IPv6
    loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
    exposed = [(psutil.Process(pid).name(), host, port) for pid, host, port in listening if host not in loopback]
    assert not exposed, exposed
