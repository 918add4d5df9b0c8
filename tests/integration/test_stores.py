"""The embedded store processes: a restarted redis gives every agent its graph user back with
the same password, and a port another process holds is an error, not a silent success."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from knowledge.graph import FalkorGraph
from mca.embedded import free_ports
from mca.stores import StoreError, agent_graph_user, start_documents, start_redis


def test_agent_graph_users_survive_a_redis_restart(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    with start_redis(tmp_path, "127.0.0.1", port, "admin-secret") as server:
        creds = agent_graph_user(server, "npa-1")
        graph = FalkorGraph.connect(creds.host, creds.port, creds.graph_key, creds.username, creds.password)
        graph.run("CREATE (:Allergen {name: $name})", {"name": "peanut"})
        graph.close()
    # A new server process on the same data: the user is back, with the password the agent holds.
    with start_redis(tmp_path, "127.0.0.1", port, "admin-secret") as server:
        graph = FalkorGraph.connect(creds.host, creds.port, creds.graph_key, creds.username, creds.password)
        try:
            assert graph.run("MATCH (a:Allergen) RETURN a.name AS name") == [{"name": "peanut"}]
        finally:
            graph.close()
        assert agent_graph_user(server, "npa-1").password == creds.password


def test_a_port_held_by_another_process_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        try:
            store = start_documents(tmp_path, "127.0.0.1", port)
        except StoreError as exc:
            assert "taken by another process" in str(exc)
        else:  # never leave a server behind, even when the test fails
            store.stop()
            pytest.fail("a port another process holds was taken for our store")
