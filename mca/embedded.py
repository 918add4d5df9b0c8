"""An in-process cluster: three MCA replicas and some agents on one event loop in a background
thread, every listener on 127.0.0.1 with TLS. Real pysyncobj, real gRPC; only the process layout
is simplified (the Ray deployment runs the same ``Replica`` and ``AgentHost`` in actors).

Used by the integration tests and by anyone embedding the runtime in a Python program::

    with EmbeddedCluster(data_dir, agents=[Echo()]) as cluster:
        async with cluster.client() as client: ...

Its CA and every identity live in ``data_dir/tls``, as with ``mca up``; the agents given are
the deployment (each is granted what its ``capabilities`` and ``capacity`` say). It accepts the
built-in task types, or those of ``catalog``: a plugin's join them as
``{**CATALOG, WELLNESS_PLAN.name: WELLNESS_PLAN}`` (cluster.yaml's ``task_type_plugins`` does
this for ``mca up``).
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mca.agent_host import AgentHost
from mca.catalog import CATALOG, TaskType
from mca.loop import LoopThread
from mca.replica import Replica, ReplicaConfig
from mca.sdk import Agent, Client, Context
from mca.tls import TLS_FOLDER, Identity, Principal, identity_in, private_folder
from mca.topology import Grant, ReplicaAddress
from protocol.model import Limits, Timing

if TYPE_CHECKING:
    from knowledge.server import FalkorServer

T = TypeVar("T")


def free_ports(n: int) -> list[int]:
    """``n`` different ports free on 127.0.0.1 now. All are bound before any is released, so
    the kernel cannot hand out the same port twice."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


class EmbeddedCluster:
    def __init__(
        self,
        data_dir: str,
        agents: list[Agent],
        replicas: int = 3,
        timing: Timing | None = None,
        limits: Limits | None = None,
        catalog: dict[str, TaskType] | None = None,
        documents_url: str = "",
        redis_url: str = "",
        graphs: FalkorServer | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.documents_url = documents_url
        self.redis_url = redis_url
        self._graphs = graphs
        self.timing = timing or Timing()
        self.limits = limits or Limits()
        self.password = secrets.token_hex(16)
        ports = [f"127.0.0.1:{port}" for port in free_ports(4 * replicas)]
        self.addresses = [
            ReplicaAddress(f"mca-{i + 1}", *ports[4 * i : 4 * i + 4])  # raft, gRPC, metrics, A2A
            for i in range(replicas)
        ]
        self._catalog = dict(catalog or CATALOG)
        self._agents = agents
        self.replicas: list[Replica | None] = []
        self.hosts: list[AgentHost] = []
        self._runner: LoopThread | None = None

    @property
    def task_addresses(self) -> list[str]:
        return [a.grpc for a in self.addresses]

    def identity(self, principal: Principal) -> Identity:
        """``principal``'s credential, issued by this cluster's CA (in ``data_dir/tls``)."""
        return identity_in(Path(self.data_dir) / TLS_FOLDER, principal)

    def client(self, name: str = "local", operator: bool = False, retry_seconds: float = 15.0) -> Client:
        """An SDK client as ``client:<name>`` (or ``operator:<name>``, who sees every session).
        Create it on the loop that will use it."""
        principal = Principal("operator" if operator else "client", name)
        return Client(self.task_addresses, self.identity(principal), retry_seconds=retry_seconds)

    def wait_ready(self, agents: int, seconds: float = 20.0) -> None:
        """Block until a leader has applied the registration of ``agents`` agents (bounded)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and len(leader.ledger.agents) >= agents:
                return
            time.sleep(0.05)
        raise TimeoutError(f"no leader with {agents} registered agents within {seconds:g} s")

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coroutine`` on the cluster's loop and wait for it."""
        if self._runner is None:
            raise RuntimeError("the cluster is not running")
        return self._runner.run(coroutine, timeout)

    def __enter__(self) -> EmbeddedCluster:
        private_folder(Path(self.data_dir))  # journals, credentials, the agents' files
        self._runner = LoopThread("embedded-cluster")
        for address in self.addresses:
            self.run(self._start_replica(address))
        for agent in self._agents:
            host = AgentHost(
                agent,
                "127.0.0.1:0",
                self.task_addresses,
                self.identity(Principal("agent", agent.agent_id)),
                self.timing,
                self._context(agent.agent_id),
            )
            self.run(host.start(), timeout=300)  # setup may load an ontology and embed it
            self.hosts.append(host)
        return self

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts:
            self.run(host.stop())
        for replica in self.replicas:
            if replica is not None:
                self.run(replica.stop())
        if self._runner is not None:
            self._runner.stop()

    def _context(self, agent_id: str) -> Context:
        folder = Path(self.data_dir) / "agents" / agent_id
        folder.mkdir(parents=True, exist_ok=True)
        if self._graphs is None:
            return Context(agent_id, str(folder))
        creds = self._graphs.create_agent_user(agent_id)
        return Context(agent_id, str(folder), creds.url, creds.graph_key)

    async def _start_replica(self, me: ReplicaAddress) -> None:
        config = ReplicaConfig(
            me=me,
            peers=tuple(a for a in self.addresses if a != me),
            data_dir=self.data_dir,
            password=self.password,
            identity=self.identity(Principal("replica", me.replica_id)),
            grants={a.agent_id: Grant(frozenset(a.capabilities), a.capacity) for a in self._agents},
            timing=self.timing,
            limits=self.limits,
            catalog=self._catalog,
            documents_url=self.documents_url,
            redis_url=self.redis_url,
        )
        replica = Replica(config)
        await replica.start()
        self.replicas.append(replica)

    def leader(self) -> Replica | None:
        return next((r for r in self.replicas if r is not None and r.is_leader), None)

    def stop_replica(self, replica: Replica) -> None:
        """Stop one replica (its journal stays), as a crash would from the others' view."""
        self.run(replica.stop())
        self.replicas[self.replicas.index(replica)] = None
