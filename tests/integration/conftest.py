"""Integration fixtures: real components on 127.0.0.1, started and stopped by the test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from knowledge.server import FalkorServer
from mca.embedded import free_ports
from mca.stores import StoreProcess, documents_url, start_documents, start_redis

__all__ = ["free_ports"]

#: The test session's document store takes commands only with this password.
DOCUMENTS_PASSWORD = "test-documents-secret"


@pytest.fixture(scope="session")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreProcess]:
    """One real SecantusDB server for the test session (each cluster uses its own database)."""
    (port,) = free_ports(1)
    with start_documents(tmp_path_factory.mktemp("documents"), "127.0.0.1", port, DOCUMENTS_PASSWORD) as store:
        yield store


def database_url(store: StoreProcess, database: str) -> str:
    return documents_url(store.host, store.port, database, DOCUMENTS_PASSWORD)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalkorServer]:
    """One real redis-server (with the FalkorDB module) for the test session."""
    (port,) = free_ports(1)
    with start_redis(tmp_path_factory.mktemp("redis"), "127.0.0.1", port, "test-admin-secret") as server:
        yield server
