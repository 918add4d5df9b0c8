"""The FalkorDB launcher and the isolation it gives: each agent's ACL user reaches its own graph and nothing else."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from knowledge.errors import AccessDenied, BackendUnavailable, BadInput
from knowledge.graph import FalkorGraph, count_nodes, upsert_nodes
from knowledge.server import FalkorServer, free_port, graph_key, start_server
from tests.knowledge.conftest import agent_graph, new_agent_id


def test_an_agent_cannot_read_or_write_another_agents_graph(falkor: FalkorServer) -> None:
    alice, bob = new_agent_id("alice"), new_agent_id("bob")
    a, b = agent_graph(falkor, alice), agent_graph(falkor, bob)
    try:
        upsert_nodes(a, "Allergen", [{"name": "milk"}])
        upsert_nodes(b, "Allergen", [{"name": "egg"}])
        # Bob's credentials pointed at Alice's graph key: the server's ACL refuses reads and writes.
        creds = falkor.create_agent_user(bob, password="bob-secret")
        intruder = FalkorGraph.connect(creds.host, creds.port, graph_key(alice), creds.username, "bob-secret")
        with pytest.raises(AccessDenied):
            intruder.run("MATCH (n) RETURN count(n) AS c")
        with pytest.raises(AccessDenied):
            intruder.run("CREATE (:Allergen {name: 'stolen'})")
        with pytest.raises(AccessDenied):
            intruder.drop()
        intruder.close()
        assert a.run("MATCH (n:Allergen) RETURN n.name AS name") == [{"name": "milk"}]
    finally:
        for graph in (a, b):
            graph.drop()
            graph.close()


def test_an_agent_user_cannot_administer_the_server_or_see_other_keys(falkor: FalkorServer) -> None:
    agent = new_agent_id()
    creds = falkor.create_agent_user(agent)
    client = redis.Redis(
        host=creds.host, port=creds.port, username=creds.username, password=creds.password, decode_responses=True
    )
    try:
        client.set(f"{creds.key_prefix}note", "mine")  # its own prefix is allowed
        assert client.get(f"{creds.key_prefix}note") == "mine"
        with falkor.admin() as admin:
            admin.set("agent:other:status", "up")
        denied: list[Callable[[], object]] = [
            lambda: client.get("agent:other:status"),
            lambda: client.keys("*"),
            lambda: client.flushall(),
            lambda: client.config_get("*"),
            lambda: cast(Any, client).execute_command("GRAPH.LIST"),
            lambda: cast(Any, client).execute_command("ACL", "LIST"),
        ]
        for call in denied:
            with pytest.raises(redis.exceptions.NoPermissionError):
                call()
    finally:
        client.close()


def test_wrong_password_is_access_denied(falkor: FalkorServer) -> None:
    creds = falkor.create_agent_user(new_agent_id())
    graph = FalkorGraph.connect(creds.host, creds.port, creds.graph_key, creds.username, "not-the-password")
    with pytest.raises(AccessDenied):
        graph.run("RETURN 1 AS one")
    graph.close()


def test_create_agent_user_is_idempotent_and_resets_the_password(falkor: FalkorServer) -> None:
    agent = new_agent_id()
    first = falkor.create_agent_user(agent, password="one")
    second = falkor.create_agent_user(agent, password="two")
    assert (first.username, first.graph_key) == (second.username, second.graph_key) == (f"agent-{agent}", f"kg:{agent}")
    with falkor.admin() as admin:
        users = [u for u in admin.execute_command("ACL", "LIST") if u.startswith(f"user agent-{agent} ")]
    assert len(users) == 1
    old = FalkorGraph.connect(first.host, first.port, first.graph_key, first.username, "one")
    with pytest.raises(AccessDenied):
        old.run("RETURN 1 AS one")
    old.close()
    new = FalkorGraph.connect(second.host, second.port, second.graph_key, second.username, "two")
    assert new.run("RETURN 1 AS one") == [{"one": 1}]
    new.close()


@pytest.mark.parametrize("agent_id", ["", "A", "a*", "a:b", "x" * 64, "../etc", "a b"])
def test_agent_ids_that_could_widen_an_acl_pattern_are_refused(falkor: FalkorServer, agent_id: str) -> None:
    with pytest.raises(BadInput):
        falkor.create_agent_user(agent_id)


def test_graphs_survive_a_restart_on_the_same_data_dir(tmp_path: Path) -> None:
    port = free_port()
    with start_server(port, tmp_path, admin_password="pw") as server:
        assert server.url.startswith("redis://:pw@127.0.0.1:")
        graph = agent_graph(server, "keeper")
        upsert_nodes(graph, "Level", [{"name": "beginner"}, {"name": "expert"}])
        graph.close()
        pid = server.process.pid
    assert not server.running()
    with start_server(free_port(), tmp_path, admin_password="pw") as again:
        assert again.process.pid != pid
        graph = agent_graph(again, "keeper")  # ACL users are in memory: re-created after a restart
        assert count_nodes(graph, "Level") == 2
        graph.close()
    assert not again.running()


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path: Path, falkor: FalkorServer) -> None:
    # The session server holds this port already: the second one exits and the error says why.
    with pytest.raises(BackendUnavailable, match="exited"):
        server = start_server(falkor.port, tmp_path, timeout_s=10)
        with contextlib.suppress(Exception):
            server.stop(save=False)


def test_load_csv_can_only_read_the_servers_own_empty_import_folder(falkor: FalkorServer) -> None:
    with falkor.admin() as admin:
        folder = cast(Any, admin).execute_command("GRAPH.CONFIG", "GET", "IMPORT_FOLDER")[1]
    assert Path(folder) == falkor.data_dir / "import"
    assert list(Path(folder).iterdir()) == []


@pytest.mark.parametrize("password", ['a"b', "a\\b", "a\nrequirepass x", ""])
def test_an_admin_password_that_could_break_the_config_file_is_refused(tmp_path: Path, password: str) -> None:
    with pytest.raises(BadInput):
        start_server(free_port(), tmp_path, admin_password=password)
    assert not (tmp_path / "falkordb.conf").exists()


def test_only_loopback_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable):
        start_server(free_port(), tmp_path, host="0.0.0.0")
