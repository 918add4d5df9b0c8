"""The embedded store processes: each takes commands only with its password and keeps its data
folder private; a restarted redis gives every agent its graph user back with the same password,
a restarted document store has only our user, with the password it was given this time; and a
port another process holds is an error, not a silent success."""

from __future__ import annotations

import socket
import stat
from pathlib import Path
from typing import Any

import pytest
import redis
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from knowledge.graph import FalkorGraph
from mca.embedded import free_ports
from mca.stores import DOCUMENTS_USER, StoreError, agent_graph_user, documents_url, start_documents, start_redis

UNAUTHORIZED = 13  # MongoDB's "command ... requires authentication"
AUTHENTICATION_FAILED = 18


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def mongo(url: str) -> MongoClient[dict[str, Any]]:
    return MongoClient(url, serverSelectionTimeoutMS=5000)


def refused(url: str, code: int) -> None:
    """Reads and writes through ``url`` both fail with ``code`` (a new client for each: after a
    failed authentication PyMongo gives up on the server)."""
    with mongo(url) as client, pytest.raises(OperationFailure) as read:
        client.mca.plans.find_one()
    with mongo(url) as client, pytest.raises(OperationFailure) as write:
        client.mca.plans.insert_one({"by": "nobody"})
    assert (read.value.code, write.value.code) == (code, code)


def test_the_document_store_takes_commands_only_with_its_password(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    with start_documents(tmp_path, "127.0.0.1", port, "first-secret") as store:
        assert mode(tmp_path / "documents") == 0o700
        refused(documents_url(store.host, port), UNAUTHORIZED)
        refused(documents_url(store.host, port, password="not-it"), AUTHENTICATION_FAILED)
        with mongo(documents_url(store.host, port, password="first-secret")) as client:
            client.mca.plans.insert_one({"_id": "p1"})
            assert client.mca.plans.find_one() == {"_id": "p1"}
            # Users someone added (with our password, here) must not outlive a restart.
            client.admin.command("createUser", "intruder", pwd="x", roles=[{"role": "root", "db": "admin"}])
            client.mca.command("createUser", "lurker", pwd="x", roles=[{"role": "read", "db": "mca"}])
    with start_documents(tmp_path, "127.0.0.1", port, "second-secret") as store:
        refused(documents_url(store.host, port, password="first-secret"), AUTHENTICATION_FAILED)
        with mongo(documents_url(store.host, port, password="second-secret")) as client:
            assert client.mca.plans.find_one() == {"_id": "p1"}
            users = client.admin.command("usersInfo", 1)["users"] + client.mca.command("usersInfo", 1)["users"]
            assert [(u["user"], u["db"]) for u in users] == [(DOCUMENTS_USER, "admin")]


def test_an_empty_document_store_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="empty password"):
        start_documents(tmp_path, "127.0.0.1", free_ports(1)[0], "")
    assert not (tmp_path / "documents").exists()


def test_agent_graph_users_survive_a_redis_restart(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    with start_redis(tmp_path, "127.0.0.1", port, "admin-secret") as server:
        with pytest.raises(redis.AuthenticationError), redis.Redis("127.0.0.1", port) as nobody:
            nobody.get("anything")
        creds = agent_graph_user(server, "npa-1")
        assert mode(tmp_path / "redis") == 0o700 and mode(tmp_path / "redis" / "agents") == 0o700
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
            store = start_documents(tmp_path, "127.0.0.1", port, "secret")
        except StoreError as exc:
            assert "taken by another process" in str(exc)
        else:  # never leave a server behind, even when the test fails
            store.stop()
            pytest.fail("a port another process holds was taken for our store")
