"""Theory of operation: the runtime on Ray.

Every MCA replica and every agent is a named Ray actor (namespace ``mca``), so the dashboard
shows ``mca-replica-mca-1``, ``agent-echo-1`` and so on. Each actor runs its host (``Replica``
or ``AgentHost``) on an event loop in a background thread started by the constructor; when the
actor's process dies, Ray restarts it (``max_restarts=-1``), which reruns the constructor:

* a replica comes back with its Raft journal from the data folder and rejoins the group;
* an agent comes back as a new incarnation, registers, and learns from the MCA what it still
  owns (reservations are rebuilt from the coordinator's view, never silently lost).

Actors ask for no CPU (``num_cpus=0``): they are I/O-bound and must all fit on a 2-core
machine. ``spread`` places the replicas on different nodes when the cluster has several (a
STRICT_SPREAD placement group when enough nodes exist, else best effort).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from mca.agent_host import AgentHost
from mca.catalog import result_routes
from mca.config import AgentSpec, ClusterConfig
from mca.loop import LoopThread
from mca.metrics import RayMetrics
from mca.process import tune as tune_process
from mca.projection import session_document, session_events
from mca.replica import Replica, ReplicaConfig
from mca.sdk import Context
from mca.stores import agent_graph_user, start_documents, start_redis
from mca.tls import Identity, Principal, private_folder
from protocol.model import Timing

NAMESPACE = "mca"

#: Ray treats "127.0.0.1" as "this machine, reachable from others": it advertises the machine's
#: outward address and its GCS, raylet, workers and agents listen on every interface. With this
#: variable off (its name speaks of Windows and macOS, but it is read everywhere), a single-machine
#: Ray keeps every listener on loopback, checked in the socket table by a test.
RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def confine_ray_to_loopback() -> None:
    """Keep the Ray processes this process starts (and its own address resolution) on
    127.0.0.1: for the embedded default, where everything runs on one machine."""
    os.environ.update(RAY_LOOPBACK_ENV)
    import ray._private.ray_constants as ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def replica_actor_name(replica_id: str) -> str:
    return f"mca-replica-{replica_id}"


def agent_actor_name(agent_id: str) -> str:
    return f"agent-{agent_id}"


STORES = ("documents", "redis")


def store_actor_name(kind: str) -> str:
    return f"store-{kind}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class StoreActor:
    """Owns one store process of the embedded default (``mca.stores``); restarted by Ray, it
    stops the orphan its previous life left and starts the server again on the same data."""

    def __init__(self, kind: str, config: ClusterConfig) -> None:
        self._kind = kind
        data, bind, stores = config.data_dir, config.bind, config.stores
        if kind == "documents":
            self._store: Any = start_documents(data, bind, stores.documents_port, config.secret("documents.secret"))
        else:
            self._store = start_redis(data, bind, stores.redis_port, config.secret("redis.secret"))
        self._stopping = False
        threading.Thread(target=self._watch, name=f"watch-{kind}", daemon=True).start()

    def status(self) -> dict[str, Any]:
        return {"kind": self._kind, "address": f"{self._store.host}:{self._store.port}", "pid": os.getpid()}

    def agent_context(self, agent_id: str) -> tuple[str, str]:
        """(graph_url, graph_key) of ``agent_id``'s own ACL user and graph (the redis store)."""
        creds = agent_graph_user(self._store, agent_id)
        return creds.url, creds.graph_key

    def _watch(self) -> None:
        """If the server process dies, end this actor's process: Ray restarts the actor, which
        starts the server again on the same data (and gives the agents their users back)."""
        while True:
            time.sleep(1.0)
            process = self._store.process
            if not self._stopping and process is not None and process.poll() is not None:
                os._exit(1)

    def stop(self) -> None:
        self._stopping = True  # a stop asked for is not a death to recover from
        self._store.stop()


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class ReplicaActor:
    def __init__(self, config: ReplicaConfig) -> None:
        tune_process()  # the GIL interval and the collector policy (mca.process)
        self._loop = LoopThread(f"replica-{config.me.replica_id}")
        self._replica = Replica(config, RayMetrics(config.me.replica_id))
        self._loop.run(self._replica.start())
        self._started = time.time()

    def status(self) -> dict[str, Any]:
        replica = self._replica
        log = replica.log
        ledger = replica.ledger
        return {
            "id": replica.config.me.replica_id,
            "task_address": replica.config.me.grpc,
            "leader": replica.is_leader,
            "term": log.term if log else 0,
            "sessions": len(ledger.sessions),
            "in_flight": sum(1 for r in ledger.active_sessions() if not r.terminal),
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "placement_group": ray.get_runtime_context().get_placement_group_id(),
            "metrics": dict(replica.metrics.counts),
            "batching": dict(replica.batching),
            "applied": log.applied_index if log else 0,
            "read_model": replica.read_model.checkpoint if replica.read_model else None,
            "read_model_error": replica.read_model.error if replica.read_model else "",
        }

    def projection(self) -> dict[str, Any]:
        """This replica's log as the read model should hold it: the applied entry count and
        every session's document (for checks that the read model agrees with the log)."""
        log = self._replica._log()
        routes = result_routes(self._replica.config.catalog)  # where its read model puts results
        with log.guard:
            return {
                "applied": log.applied_index,
                "sessions": {sid: session_document(r, routes) for sid, r in log.ledger.sessions.items()},
                "events": {sid: len(session_events(r, routes)) for sid, r in log.ledger.sessions.items()},
            }


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class AgentActor:
    def __init__(
        self, spec: AgentSpec, bind: str, mca: list[str], identity: Identity, timing: Timing, context: Context
    ) -> None:
        tune_process()  # the GIL interval and the collector policy (mca.process)
        self._loop = LoopThread(f"agent-{spec.agent_id}")
        self._host = AgentHost(spec.build(), f"{bind}:0", mca, identity, timing, context)
        self._loop.run(self._host.start(), timeout=600)  # setup may load and embed an ontology

    def ask(self, question: str, k: int = 5, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """Semantic search in the agent's own knowledge (agents that have it: ``search``)."""
        search = getattr(self._host.agent, "search", None)
        if search is None:
            raise ValueError(f"agent {self._host.agent.agent_id} has no knowledge to search")
        return list(search(question, k, **(filters or {})))

    def status(self) -> dict[str, Any]:
        p = self._host.participant
        return {
            "id": self._host.agent.agent_id,
            "address": self._host.listen,
            "incarnation": p.incarnation if p else 0,
            "recovering": p.recovering if p else True,
            "reserved": p.reserved() if p else 0,
            "pid": os.getpid(),
        }


@dataclass
class Deployment:
    replicas: dict[str, Any]
    agents: dict[str, Any]
    stores: dict[str, Any] = field(default_factory=dict)

    def statuses(self, timeout: float = 10.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        replicas = ray.get([a.status.remote() for a in self.replicas.values()], timeout=timeout)
        agents = ray.get([a.status.remote() for a in self.agents.values()], timeout=timeout)
        return replicas, agents


def deploy(config: ClusterConfig, detached: bool = False, spread: bool = False) -> Deployment:
    """Start the replicas and agents of ``config`` as actors on the connected Ray cluster."""
    lifetime = "detached" if detached else None
    private_folder(config.data_dir)  # journals, credentials, secrets, stores, the agents' files
    password = config.password()
    # Agents named in cluster.yaml may live next to it (e.g. examples.custom_agent).
    env = {"env_vars": {"PYTHONPATH": str(config.path.resolve().parent)}}
    strategy: dict[str, Any] = {}
    if spread and len(ray.nodes()) >= len(config.replicas):  # type: ignore[no-untyped-call]
        group = placement_group([{"CPU": 0.001}] * len(config.replicas), strategy="STRICT_SPREAD")
        ray.get(group.ready(), timeout=60)
    else:
        group = None
    stores: dict[str, Any] = {}
    if config.stores.embedded:  # the replicas write to them from their first entry on
        # The stores need no task types: without them, their processes need not import the
        # plugins (which may live next to cluster.yaml, on the replicas' and agents' path only).
        bare = replace(config, catalog={})
        for kind in STORES:
            stores[kind] = StoreActor.options(  # type: ignore[attr-defined]
                name=store_actor_name(kind), namespace=NAMESPACE, lifetime=lifetime
            ).remote(kind, bare)
        ray.get([a.status.remote() for a in stores.values()], timeout=120)
    replicas: dict[str, Any] = {}
    grants = config.grants()
    for i, me in enumerate(config.replicas):
        replica_config = ReplicaConfig(
            me=me,
            peers=tuple(r for r in config.replicas if r != me),
            data_dir=str(config.data_dir),
            password=password,
            identity=config.identity(Principal("replica", me.replica_id)),
            grants=grants,
            timing=config.timing,
            limits=config.limits,
            catalog=config.catalog,
            documents_url=config.documents_url,
            redis_url=config.redis_url(),
        )
        if group is not None:
            strategy = {
                "scheduling_strategy": PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i),
                "num_cpus": 0.001,
            }
        replicas[me.replica_id] = ReplicaActor.options(  # type: ignore[attr-defined]
            name=replica_actor_name(me.replica_id), namespace=NAMESPACE, lifetime=lifetime, runtime_env=env, **strategy
        ).remote(replica_config)
    agents = {
        spec.agent_id: AgentActor.options(  # type: ignore[attr-defined]
            name=agent_actor_name(spec.agent_id), namespace=NAMESPACE, lifetime=lifetime, runtime_env=env
        ).remote(
            spec,
            config.bind,
            config.task_addresses,
            config.identity(Principal("agent", spec.agent_id)),
            config.timing,
            _context(config, spec, stores),
        )
        for spec in config.agents
    }
    deployment = Deployment(replicas, agents, stores)
    deployment.statuses(timeout=120)  # every constructor has run
    return deployment


def _context(config: ClusterConfig, spec: AgentSpec, stores: dict[str, Any]) -> Context:
    """The agent's folder under data_dir and, with the embedded stores, its own graph user."""
    folder = str(config.data_dir / "agents" / spec.agent_id)
    if "redis" not in stores:
        return Context(spec.agent_id, folder)
    url, key = ray.get(stores["redis"].agent_context.remote(spec.agent_id), timeout=60)
    return Context(spec.agent_id, folder, url, key)


def attach(config: ClusterConfig) -> Deployment:
    """Handles of an already deployed cluster (``mca up --detach``)."""
    replicas = {
        r.replica_id: ray.get_actor(replica_actor_name(r.replica_id), namespace=NAMESPACE) for r in config.replicas
    }
    agents = {a.agent_id: ray.get_actor(agent_actor_name(a.agent_id), namespace=NAMESPACE) for a in config.agents}
    stores = (
        {kind: ray.get_actor(store_actor_name(kind), namespace=NAMESPACE) for kind in STORES}
        if config.stores.embedded
        else {}
    )
    return Deployment(replicas, agents, stores)


def teardown(deployment: Deployment) -> None:
    for actor in (*deployment.agents.values(), *deployment.replicas.values()):
        ray.kill(actor, no_restart=True)
    # Stores last, and asked to stop (a killed actor would leave its server process running).
    with contextlib.suppress(Exception):
        ray.get([a.stop.remote() for a in deployment.stores.values()], timeout=30)
    for actor in deployment.stores.values():
        ray.kill(actor, no_restart=True)
