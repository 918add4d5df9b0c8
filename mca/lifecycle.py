"""Theory of operation: the Ray side of ``mca`` (``up``, ``down``, ``status``) and who ``mca``
is when it calls the cluster.

``up`` runs in the foreground (Ctrl-C stops everything) or, with ``--detach``, starts a Ray head
in a process session of its own that outlives the command and records it in the data folder;
``down`` stops that head and nothing else on the machine (``mca.rayhead``), asking our actors to
stop first. Ray's token authentication is always on (``ray_token``). ``status`` shows the agents
through gRPC and, when this config's Ray cluster runs, the replicas' own figures through Ray.
Every command calls the replicas as the local operator (the credential in the cluster's
credential folder) or as whoever ``$MCA_IDENTITY`` names (``caller_identity``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from mca import rayhead
from mca.config import ClusterConfig
from mca.sdk import Client, RequestRejected
from mca.stores import stop_store_orphans, write_secret
from mca.tls import IDENTITY_ENV, Identity, identity_from_env

RAY_TOKEN = Path.home() / ".ray" / "auth_token"


def ray_token() -> None:
    """Ray's token authentication, always on: a head started without a token file runs with
    none (anyone local could submit a job as us and read the CA key), and Ray turns it on by
    itself only for ``ray.init(address="auto")``. So: a token in ``~/.ray`` readable by us only,
    and ``RAY_AUTH_MODE=token`` for the head and this driver, set before Ray is imported."""
    RAY_TOKEN.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(RAY_TOKEN.parent, 0o700)
    if not RAY_TOKEN.exists():
        write_secret(RAY_TOKEN, secrets.token_hex(32))
    os.chmod(RAY_TOKEN, 0o600)
    os.environ["RAY_AUTH_MODE"] = "token"


def caller_identity(config: ClusterConfig) -> Identity:
    """Who ``mca`` is: the credential ``$MCA_IDENTITY`` names, else the local operator's (the
    machine that holds the cluster's credential folder)."""
    return identity_from_env() if os.environ.get(IDENTITY_ENV) else config.operator_identity()


def ray_init(config: ClusterConfig, address: str | None = None) -> None:
    import ray

    from mca.deploy import confine_ray_to_loopback

    if ipaddress.ip_address(config.bind).is_loopback:
        confine_ray_to_loopback()  # one machine: every Ray listener on 127.0.0.1 too

    if address:
        ray.init(address=address, namespace="mca", log_to_driver=False)
        return
    ray.init(
        namespace="mca",
        include_dashboard=True,
        dashboard_host=config.bind,
        dashboard_port=config.dashboard_port,
        _node_ip_address=config.bind,
        log_to_driver=False,
    )


def up(config: ClusterConfig, args: argparse.Namespace) -> int:
    import ray

    from mca.deploy import deploy, teardown

    if args.detach:
        running = _running_head(config)
        if running is not None:
            print(
                f"mca: the cluster of {config.path} already runs (Ray head at {running.gcs_address}); "
                "stop it with: mca down",
                file=sys.stderr,
            )
            return 1
        head = _start_head(config)
        if head is None:
            return 1
        ray_init(config, address=head.gcs_address)
        deploy(config, detached=True, spread=True)
        wait_ready(config)
        print_status(config)
        print(f"running in the background (Ray head at {head.gcs_address}); stop it with: mca down")
        return 0
    ray_init(config)
    record = config.data_dir / FOREGROUND
    deployment = deploy(config, spread=True)
    record.write_text(json.dumps({"gcs_address": ray.get_runtime_context().gcs_address, "pid": os.getpid()}))
    try:
        wait_ready(config)
        print_status(config)
        print("Ctrl-C stops the cluster")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    finally:
        record.unlink(missing_ok=True)
        teardown(deployment)
        ray.shutdown()
    return 0


def _start_head(config: ClusterConfig) -> rayhead.Head | None:
    """``ray start --head`` as the leader of a new process session (how ``down`` finds every
    process of this head, and no other); the head recorded in the data folder."""
    from mca.deploy import RAY_LOOPBACK_ENV

    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    loopback = RAY_LOOPBACK_ENV if ipaddress.ip_address(config.bind).is_loopback else {}
    starter = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            f"--node-ip-address={config.bind}",
            f"--dashboard-host={config.bind}",
            f"--dashboard-port={config.dashboard_port}",
            "--include-dashboard=true",
            "--disable-usage-stats",
        ],
        stdout=subprocess.DEVNULL,
        env=os.environ | loopback,
        start_new_session=True,
    )
    status = starter.wait()
    if status != 0:
        print(f"mca: ray start --head failed (exit status {status})", file=sys.stderr)
        return None
    head = rayhead.head_of(rayhead.snapshot(), starter.pid)
    if head is None:
        print("mca: ray start --head succeeded, but no GCS server of it runs", file=sys.stderr)
        return None
    rayhead.save(config.data_dir, head)
    # Ray points every plain ray.init() on the machine at the head it started last; ours is
    # reached through the record only, so other drivers do not join it by accident.
    rayhead.forget_current_cluster(head.gcs_address)
    return head


def _running_head(config: ClusterConfig) -> rayhead.Head | None:
    """The head ``mca up --detach`` recorded for this config, if it still runs; a stale record
    is removed."""
    head = rayhead.load(config.data_dir)
    if head is None:
        return None
    if any(rayhead.cluster_processes(rayhead.snapshot(), head, os.getpid())):
        return head
    rayhead.forget(config.data_dir)
    return None


#: Where a foreground ``mca up`` records its Ray cluster while it runs (``mca down`` stops only a
#: detached head; this is for ``status`` and ``ask``).
FOREGROUND = "ray-foreground.json"


def ray_address(config: ClusterConfig) -> str | None:
    """Where this config's Ray cluster is: the recorded detached head, else the one a foreground
    ``mca up`` recorded while it runs; None when neither runs. Never Ray's "auto", which takes
    whatever cluster it finds on the machine, another user's included (whose actors we would
    then call and whose replies we would unpickle)."""
    head = _running_head(config)
    if head is not None:
        return head.gcs_address
    record = config.data_dir / FOREGROUND
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        running = json.loads(record.read_text())
        if psutil.pid_exists(int(running["pid"])) and psutil.Process(int(running["pid"])).uids().real == os.getuid():
            return str(running["gcs_address"])
    return None


def down(config: ClusterConfig, args: argparse.Namespace) -> int:
    import ray

    from mca.deploy import attach, teardown

    head = rayhead.load(config.data_dir)
    if head is None:
        print(f"nothing to stop: no Ray head is recorded for {config.path} (mca up --detach records it)")
        return 0
    rounds = rayhead.cluster_processes(rayhead.snapshot(), head, os.getpid())
    if not any(rounds):
        rayhead.forget(config.data_dir)
        rayhead.forget_current_cluster(head.gcs_address)
        print(f"nothing to stop: the Ray head of {config.path} ({head.gcs_address}) is gone; removed its record")
        return 0
    if rounds[-1]:  # its GCS server runs: stop our actors first (the store actors stop their servers)
        try:
            ray_init(config, address=head.gcs_address)
            teardown(attach(config))
        except (ConnectionError, ValueError, ray.exceptions.RayError) as exc:
            why = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            print(f"mca: the actors did not stop one by one ({why}); stopping their processes", file=sys.stderr)
        finally:
            ray.shutdown()
    stopped = rayhead.stop(rayhead.cluster_processes(rayhead.snapshot(), head, os.getpid()))
    if config.stores.embedded:
        stop_store_orphans(config.data_dir)  # a server whose actor was killed outright
    rayhead.forget(config.data_dir)
    rayhead.forget_current_cluster(head.gcs_address)
    print(f"stopped the Ray head at {head.gcs_address} ({stopped} processes)")
    return 0


def wait_ready(config: ClusterConfig, seconds: float = 60.0) -> None:
    """Until a leader answers and every configured agent is registered."""

    async def ready() -> None:
        wanted = {a.agent_id for a in config.agents}
        deadline = time.monotonic() + seconds
        async with Client(config.task_addresses, caller_identity(config), retry_seconds=seconds) as client:
            while time.monotonic() < deadline:
                try:
                    if wanted <= {a.agent_id for a in await client.agents()}:
                        return
                except RequestRejected:
                    pass
                await asyncio.sleep(0.2)
        raise SystemExit(f"mca: the cluster did not become ready within {seconds:.0f}s")

    asyncio.run(ready())


# --- looking at it ----------------------------------------------------------------------------


def print_status(config: ClusterConfig) -> None:
    async def gather() -> Any:
        async with Client(config.task_addresses, caller_identity(config)) as client:
            return await client.agents()

    agents = asyncio.run(gather())
    print(f"MCA replicas (gRPC TaskService): {', '.join(config.task_addresses)}")
    try:
        import ray

        from mca.deploy import attach

        if ray.is_initialized():
            replicas, _ = attach(config).statuses()
            for r in replicas:
                role = "leader" if r["leader"] else "follower"
                line = f"  {r['id']:<8} {role:<9} term {r['term']:<3} sessions {r['sessions']:<5}"
                print(f"{line} in flight {r['in_flight']}")
                if r["leader"] and r["metrics"]:
                    print("    " + ", ".join(f"{k}={v}" for k, v in sorted(r["metrics"].items())))
                if r["leader"] and r.get("read_model") is not None:
                    lag = r["applied"] - r["read_model"]
                    error = f"; store error: {r['read_model_error']}" if r.get("read_model_error") else ""
                    print(f"    read model at entry {r['read_model']} of {r['applied']} (behind by {lag}){error}")
    except Exception as exc:  # status without Ray still shows the agents
        print(f"  (replica details need the Ray cluster: {exc})")
    print("agents:")
    for a in agents:
        print(f"  {a.agent_id:<12} {a.status:<10} load {a.load}/{a.capacity}  {', '.join(a.capabilities)}")
    stores = config.stores
    if stores.embedded:
        print(f"stores: documents (SecantusDB) {config.bind}:{stores.documents_port}, ", end="")
        print(f"redis + FalkorDB {config.bind}:{stores.redis_port} (password in {config.data_dir / 'redis.secret'})")
    print(f"Ray dashboard: http://{config.bind}:{config.dashboard_port}  (token: {RAY_TOKEN})")


def status(config: ClusterConfig, args: argparse.Namespace) -> int:
    address = ray_address(config)
    if address is not None:
        with contextlib.suppress(ConnectionError, ValueError):
            ray_init(config, address=address)  # replica details come from Ray when it runs
    print_status(config)
    return 0
