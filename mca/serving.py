"""Theory of operation: the gRPC server of a replica.

One server per replica on its task address, TLS with client certificates only
(``Identity.server_credentials``). Every call passes ``mca.boundary`` first (who the caller is,
and whether its role may call the service: ``SERVES``), then reaches TaskService or
CoordinationService (``mca.services``). Health checking and server reflection share the port, so
a stock client can find and call the services: every service reports SERVING as long as the
server runs, on a follower too, which relays what it cannot serve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mca.boundary import Boundary
from mca.services import SERVES, add_services
from protocol._pb import coordination_pb2 as pb

if TYPE_CHECKING:
    from mca.replica import Replica


async def serve(replica: Replica) -> grpc.aio.Server:
    """Start the server of ``replica`` on its task address (OSError if it cannot listen)."""
    c = replica.config
    boundary = Boundary(SERVES, lambda reason: replica.metrics.count("calls_refused_total", {"reason": reason}))
    server = grpc.aio.server(interceptors=[boundary])
    add_services(server, replica)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [pb.DESCRIPTOR.services_by_name[s].full_name for s in ("TaskService", "CoordinationService")]
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if server.add_secure_port(c.me.grpc, c.identity.server_credentials()) == 0:
        raise OSError(f"cannot listen on {c.me.grpc}")
    await server.start()
    return server
