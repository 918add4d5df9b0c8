"""Benchmark: end-to-end coordinated two-agent tasks on the Ray deployment, against a raw gRPC
baseline measured in the same run.

For each concurrency level it submits ``echo_pair`` tasks (two agents, full two-phase protocol,
seven decision-log entries each) through the SDK with ``wait=True`` and reports throughput and
latency percentiles; the baseline is a plain gRPC unary call (the health check of a bare
server in its own process) at the same concurrency, and the ratio says what coordination costs.
Then it SIGKILLs the leader's process and measures the time until a submit succeeds again, and
sums the resident memory of every process of the cluster.

    python bench/e2e.py [--tasks-per-level N] [--levels 1,8,32,64]

Everything listens on 127.0.0.1; every loop is bounded. The machine is shared and noisy:
compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import signal
import tempfile
import time
from pathlib import Path

import grpc
import psutil
import ray
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mca.config import AgentSpec, load
from mca.deploy import deploy, teardown
from mca.embedded import free_ports
from mca.replica import ReplicaAddress
from mca.sdk import Client


def _baseline_server(port: int, ready: multiprocessing.synchronize.Event) -> None:
    async def serve() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()

    asyncio.run(serve())


async def _measure(call: object, total: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            t = time.perf_counter()
            await call(i)  # type: ignore[operator]
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    return time.perf_counter() - started, latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _run_levels(addresses: list[str], baseline: str, levels: list[int], per_level: int) -> None:
    head = f"{'tasks/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{'concurrency':>11} {head} | {head.replace('tasks/s', ' grpc/s')} | {'ratio':>6}")
    async with Client(addresses) as client, grpc.aio.insecure_channel(baseline) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stamp = time.time_ns()
        failed: dict[str, int] = {}

        async def task(i: int) -> None:
            s = await client.submit(
                "echo_pair", {"value": i}, key=f"bench-{stamp}-{i}-{time.perf_counter_ns()}", wait=True
            )
            if s.state != "completed":
                failed[s.reason[:60]] = failed.get(s.reason[:60], 0) + 1

        async def ping(i: int) -> None:
            await stub.Check(health_pb2.HealthCheckRequest())

        await _measure(task, 20, 4)  # warm up
        for c in levels:
            total = max(per_level, c * 4)
            took, lat = await _measure(task, total, c)
            btook, blat = await _measure(ping, total, c)
            rate, brate = total / took, total / btook
            print(
                f"{c:>11} {rate:>9.0f} {_pct(lat, 0.5):>8.1f} {_pct(lat, 0.99):>8.1f} | "
                f"{brate:>9.0f} {_pct(blat, 0.5):>8.1f} {_pct(blat, 0.99):>8.1f} | {rate / brate:>6.3f}"
            )
        if failed:
            print("sessions not completed:", failed)


async def _failover(addresses: list[str], leader_pid: int) -> float:
    async with Client(addresses, retry_seconds=30) as client:
        os.kill(leader_pid, signal.SIGKILL)
        killed = time.perf_counter()
        await client.submit("echo_pair", {"value": 1}, wait=False)
        return time.perf_counter() - killed


def _cluster_memory() -> float:
    total = 0
    for p in psutil.process_iter(["cmdline", "memory_info"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "ray" in cmd and p.info["memory_info"] is not None:
            total += p.info["memory_info"].rss
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks-per-level", type=int, default=200)
    parser.add_argument("--levels", default="1,8,32,64")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    base = load(Path(__file__).resolve().parent.parent / "cluster.yaml")
    ports = free_ports(9)
    replicas = tuple(
        ReplicaAddress(f"mca-{i + 1}", f"127.0.0.1:{ports[2 * i]}", f"127.0.0.1:{ports[2 * i + 1]}") for i in range(3)
    )
    agents = (AgentSpec("echo-1", "mca.agents:EchoAgent", 512), AgentSpec("echo-2", "mca.agents:EchoAgent", 512))
    stores = dataclasses.replace(base.stores, documents_port=ports[7], redis_port=ports[8])
    config = dataclasses.replace(
        base, data_dir=Path(tempfile.mkdtemp()), replicas=replicas, agents=agents, stores=stores
    )

    port = ports[6]
    spawn = multiprocessing.get_context("spawn")  # gRPC does not survive fork()
    ready = spawn.Event()
    baseline = spawn.Process(target=_baseline_server, args=(port, ready), daemon=True)
    baseline.start()
    ready.wait(30)

    ray.init(include_dashboard=True, dashboard_host="127.0.0.1", _node_ip_address="127.0.0.1", log_to_driver=False)
    deployment = deploy(config)
    try:
        time.sleep(2.0)  # election, registration
        print(f"coordinated two-agent tasks (echo_pair) vs raw gRPC unary, {os.cpu_count()} cores")
        asyncio.run(_run_levels(config.task_addresses, f"127.0.0.1:{port}", levels, args.tasks_per_level))
        print(f"cluster memory (Ray head, dashboard, 3 replicas, 2 agents): {_cluster_memory():.0f} MiB")
        replicas_status, _ = deployment.statuses()
        leader = next(r for r in replicas_status if r["leader"])
        took = asyncio.run(_failover(config.task_addresses, leader["pid"]))
        print(f"failover: SIGKILL of the leader to the next accepted submit: {took * 1000:.0f} ms")
    finally:
        teardown(deployment)
        ray.shutdown()
        baseline.terminate()


if __name__ == "__main__":
    main()
