"""The deployment's shape as values: where each replica listens and what each agent may claim.

Kept apart from the replica server so that what only reads a deployment (``cluster.yaml``, the
``mca`` command, the simulator) does not import the server and its database drivers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReplicaAddress:
    replica_id: str
    raft: str  # host:port of pysyncobj
    grpc: str  # host:port of the gRPC services
    metrics: str = ""  # host:port of GET /metrics over HTTPS (mca.exporter); empty: none
    a2a: str = ""  # host:port of the A2A endpoint over HTTPS (mca.a2a); empty: none


@dataclass(frozen=True)
class Grant:
    """What an agent of the deployment may claim when it registers."""

    capabilities: frozenset[str]
    capacity: int
