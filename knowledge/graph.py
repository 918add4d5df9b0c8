"""``GraphStore``: one agent's own property graph, spoken to in openCypher, on FalkorDB or Neo4j.

Theory of operation: the protocol is deliberately small (run a query with parameters, make an
index, drop everything, close) so that the two adapters cannot drift apart; everything above it
(ontology loading, versioned facts, snapshots) is written once in openCypher that both engines
run, and the conformance tests run the same queries on every reachable backend.

- ``FalkorGraph`` talks to a FalkorDB server through the ``falkordb`` client's ``Graph`` over the
  Redis protocol (FalkorDB's Bolt side is unreliable, see DESIGN.md). It is built on a plain
  ``redis.Redis`` connection rather than ``falkordb.FalkorDB`` because the latter's constructor
  runs ``INFO`` (sentinel/cluster detection), which an agent's narrow ACL user may not run. One
  ``GRAPH.QUERY`` is atomic on the server, which the versioned write path relies on.
- ``Neo4jGraph`` talks to Neo4j through the ``neo4j`` driver, one database per agent; each
  ``run`` is one managed write transaction (retried by the driver on transient errors).

Rows come back as ``dict``s keyed by the ``RETURN`` names, holding only scalars, lists and maps:
queries return ``properties(n)`` rather than nodes, so no backend object leaks out. Labels and
property names in the query text come from ``knowledge.schema`` (the helpers below check them),
never from callers; values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import redis
from falkordb.graph import Graph  # type: ignore[import-untyped]
from redis.backoff import NoBackoff
from redis.retry import Retry

from knowledge.errors import AccessDenied, BackendUnavailable, BadInput, QueryFailed
from knowledge.schema import EDGES, NODES
from knowledge.validate import check_edge, check_node, check_props, check_rows

__all__ = [
    "FalkorGraph",
    "GraphStore",
    "Neo4jGraph",
    "Row",
    "count_edges",
    "count_nodes",
    "ensure_schema_indexes",
    "upsert_edges",
    "upsert_nodes",
]

Row = dict[str, Any]

# UNWIND batches: big enough that 8,463 foods take a handful of round trips, small enough that a
# FalkorDB parameter header (the parameters are sent as Cypher literals) stays well under a few MB.
BATCH_ROWS = 2000


@runtime_checkable
class GraphStore(Protocol):
    """One agent's graph. Implementations: ``FalkorGraph`` (embedded default) and ``Neo4jGraph`` (production)."""

    @property
    def backend(self) -> str:
        """``"falkordb"`` or ``"neo4j"``."""
        ...

    def run(self, cypher: str, params: Mapping[str, object] | None = None) -> list[Row]:
        """Run one query (read or write) atomically; rows keyed by the RETURN names."""
        ...

    def ensure_index(self, label: str, prop: str) -> None:
        """Create a range index on ``label.prop`` unless it exists (names from the schema only)."""
        ...

    def clear(self) -> None:
        """Delete every node and relationship of this graph."""
        ...

    def close(self) -> None: ...


def _plain(value: object) -> object:
    # FalkorDB returns maps as OrderedDict; make rows plain so both backends compare equal.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class FalkorGraph:
    """A ``GraphStore`` on one FalkorDB graph key, as one (ACL-limited) Redis user."""

    def __init__(self, client: redis.Redis, key: str, timeout_ms: int = 60_000) -> None:
        self._client = client
        self._graph = Graph(client, key)
        self._timeout_ms = timeout_ms
        self.key = key

    @classmethod
    def connect(
        cls, host: str, port: int, key: str, username: str | None = None, password: str | None = None
    ) -> FalkorGraph:
        # No client-side retry: a write resent after a lost reply could apply twice (or turn into a
        # spurious VersionConflict); callers see BackendUnavailable and decide.
        client = redis.Redis(
            host=host,
            port=port,
            username=username,
            password=password,
            decode_responses=True,
            socket_timeout=120,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, key)

    @property
    def backend(self) -> str:
        return "falkordb"

    def run(self, cypher: str, params: Mapping[str, object] | None = None) -> list[Row]:
        try:
            result = self._graph.query(cypher, dict(params) if params else None, timeout=self._timeout_ms)
        except redis.exceptions.NoPermissionError as exc:
            raise AccessDenied(f"graph {self.key}: {exc}") from exc
        except redis.exceptions.AuthenticationError as exc:
            raise AccessDenied(f"graph {self.key}: {exc}") from exc
        except redis.exceptions.ConnectionError as exc:
            raise BackendUnavailable(f"graph {self.key}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:
            raise QueryFailed(f"graph {self.key}: {exc}") from exc
        names = [str(column[1]) for column in result.header]
        return [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in result.result_set]

    def ensure_index(self, label: str, prop: str) -> None:
        kind = NODES.get(label)
        if kind is None or prop not in kind.properties:
            raise BadInput(f"no index on unknown {label!r}.{prop!r}")
        try:
            self.run(f"CREATE INDEX FOR (n:{label}) ON (n.{prop})")
        except QueryFailed as exc:
            # FalkorDB has no IF NOT EXISTS for indexes; a second creation reports this.
            if "already indexed" not in str(exc):
                raise

    def clear(self) -> None:
        # A query on a missing key creates an empty graph, so this never fails for "nothing there".
        self.run("MATCH (n) DETACH DELETE n")

    def drop(self) -> None:
        """Delete the graph key itself (indexes included)."""
        try:
            self._graph.delete()
        except redis.exceptions.NoPermissionError as exc:
            raise AccessDenied(f"graph {self.key}: {exc}") from exc
        except redis.exceptions.ResponseError:
            pass  # the key does not exist: nothing to drop

    def close(self) -> None:
        self._client.close()


class Neo4jGraph:
    """A ``GraphStore`` on one Neo4j database (one per agent in production)."""

    def __init__(self, uri: str, user: str, password: str, database: str = "neo4j") -> None:
        import neo4j  # the driver is only needed when Neo4j is used

        self._neo4j = neo4j
        self._driver = neo4j.GraphDatabase.driver(uri, auth=(user, password))
        self.database = database
        try:
            self._driver.verify_connectivity()
        except (neo4j.exceptions.AuthError, neo4j.exceptions.Forbidden) as exc:
            self._driver.close()
            raise AccessDenied(f"neo4j {uri}: {exc}") from exc
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError) as exc:
            self._driver.close()
            raise BackendUnavailable(f"neo4j {uri}: {exc}") from exc

    @property
    def backend(self) -> str:
        return "neo4j"

    def run(self, cypher: str, params: Mapping[str, object] | None = None) -> list[Row]:
        neo4j = self._neo4j
        # The driver wants LiteralString to discourage string-built queries; ours are built only from
        # the schema's allow-listed names (see module docstring), values are parameters.
        query = neo4j.Query(cypher)

        def work(tx: Any) -> list[Row]:
            result = tx.run(query, dict(params or {}))
            return [{k: _plain(v) for k, v in record.items()} for record in result]

        try:
            with self._driver.session(database=self.database) as session:
                rows: list[Row] = session.execute_write(work)
                return rows
        except (neo4j.exceptions.AuthError, neo4j.exceptions.Forbidden) as exc:
            raise AccessDenied(f"neo4j {self.database}: {exc}") from exc
        except neo4j.exceptions.Neo4jError as exc:
            raise QueryFailed(f"neo4j {self.database}: {exc}") from exc
        except neo4j.exceptions.DriverError as exc:
            raise BackendUnavailable(f"neo4j {self.database}: {exc}") from exc

    def ensure_index(self, label: str, prop: str) -> None:
        kind = NODES.get(label)
        if kind is None or prop not in kind.properties:
            raise BadInput(f"no index on unknown {label!r}.{prop!r}")
        if prop == kind.key:
            # A uniqueness constraint (which brings its own index) makes a concurrent MERGE on the key
            # safe in Neo4j; FalkorDB needs none because each query runs alone on the graph.
            self.run(f"CREATE CONSTRAINT IF NOT EXISTS FOR (n:{label}) REQUIRE n.{prop} IS UNIQUE")
        else:
            self.run(f"CREATE INDEX IF NOT EXISTS FOR (n:{label}) ON (n.{prop})")

    def clear(self) -> None:
        self.run("MATCH (n) DETACH DELETE n")

    def close(self) -> None:
        self._driver.close()


def ensure_schema_indexes(store: GraphStore) -> None:
    """An index on the key of every node kind (MERGE and lookups go through it)."""
    for kind in NODES.values():
        store.ensure_index(kind.label, kind.key)


def upsert_nodes(store: GraphStore, label: str, rows: Sequence[Mapping[str, object]]) -> int:
    """MERGE each row on the label's key and set its properties; returns the number of rows sent."""
    if not rows:
        return 0
    kind = check_node(label, rows[0])
    check_rows(label, rows, kind.properties)
    for row in rows:
        if row.get(kind.key) is None:
            raise BadInput(f"{label}: key property {kind.key!r} is missing")
    cypher = f"UNWIND $rows AS row MERGE (n:{label} {{{kind.key}: row.{kind.key}}}) SET n += row"
    for start in range(0, len(rows), BATCH_ROWS):
        store.run(cypher, {"rows": [dict(r) for r in rows[start : start + BATCH_ROWS]]})
    return len(rows)


def upsert_edges(
    store: GraphStore,
    rel_type: str,
    from_label: str,
    to_label: str,
    rows: Sequence[tuple[object, object, Mapping[str, object]]],
) -> int:
    """MERGE ``(from)-[rel_type]->(to)`` for each ``(from key, to key, props)``; endpoints must exist."""
    if not rows:
        return 0
    kind = check_edge(rel_type, from_label, to_label, {})
    src, dst = NODES[from_label], NODES[to_label]
    payload: list[dict[str, object]] = []
    for i, (a, b, props) in enumerate(rows):
        check_props(f"{rel_type}[{i}]", kind.properties, props)
        if a is None or b is None:
            raise BadInput(f"{rel_type}[{i}]: endpoint key is missing")
        payload.append({"a": a, "b": b, "p": dict(props)})
    set_clause = " SET r += row.p" if kind.properties else ""
    cypher = (
        f"UNWIND $rows AS row MATCH (a:{from_label} {{{src.key}: row.a}}) MATCH (b:{to_label} {{{dst.key}: row.b}}) "
        f"MERGE (a)-[r:{rel_type}]->(b){set_clause}"
    )
    for start in range(0, len(payload), BATCH_ROWS):
        store.run(cypher, {"rows": payload[start : start + BATCH_ROWS]})
    return len(rows)


def count_nodes(store: GraphStore, label: str | None = None) -> int:
    if label is not None and label not in NODES:
        raise BadInput(f"unknown node label {label!r}")
    pattern = f"(n:{label})" if label else "(n)"
    return int(store.run(f"MATCH {pattern} RETURN count(n) AS c")[0]["c"])


def count_edges(store: GraphStore, rel_type: str | None = None) -> int:
    if rel_type is not None and rel_type not in EDGES:
        raise BadInput(f"unknown relationship type {rel_type!r}")
    pattern = f"()-[r:{rel_type}]->()" if rel_type else "()-[r]->()"
    return int(store.run(f"MATCH {pattern} RETURN count(r) AS c")[0]["c"])
