"""The same openCypher gives the same results on every reachable GraphStore (FalkorDB always, Neo4j if configured)."""

from __future__ import annotations

import pytest

from knowledge.errors import QueryFailed, VersionConflict
from knowledge.facts import Fact, read_fact, write_fact
from knowledge.graph import GraphStore, count_edges, count_nodes, ensure_schema_indexes, upsert_edges, upsert_nodes

HOSTILE = [
    "x'}) DETACH DELETE n //",
    'quote " and backslash \\ and \\" both',
    "MATCH (n) DETACH DELETE n",
    "$rows ${injected} `backtick` {curly}",
    "line one\nline two\ttab",
    "unicode: crème brûlée, 豆腐, 🥦",
    "",
]


def test_rows_come_back_as_plain_values(store: GraphStore) -> None:
    rows = store.run(
        "RETURN $n AS n, $f AS f, $s AS s, $b AS b, $l AS l, $m AS m, null AS z",
        {"n": 42, "f": 2.5, "s": "text", "b": True, "l": [1, 2, 3], "m": {"k": "v"}},
    )
    assert rows == [{"n": 42, "f": 2.5, "s": "text", "b": True, "l": [1, 2, 3], "m": {"k": "v"}, "z": None}]


@pytest.mark.parametrize("value", HOSTILE)
def test_cypher_metacharacters_in_values_are_data(store: GraphStore, value: str) -> None:
    upsert_nodes(store, "Allergen", [{"name": "keep"}])
    upsert_nodes(store, "Food", [{"ndb_no": "99999", "name": value}])
    assert store.run("MATCH (f:Food {name: $v}) RETURN f.ndb_no AS id", {"v": value}) == [{"id": "99999"}]
    assert count_nodes(store) == 2  # nothing was deleted or added by the "injected" text


def test_upserts_are_idempotent_and_update_in_place(store: GraphStore) -> None:
    ensure_schema_indexes(store)
    ensure_schema_indexes(store)  # a second creation of every index is not an error
    foods = [{"ndb_no": f"{i:05d}", "name": f"food {i}"} for i in range(50)]
    upsert_nodes(store, "Food", foods)
    upsert_nodes(store, "Nutrient", [{"key": "protein_g", "name": "Protein", "unit": "g"}])
    edges = [(f["ndb_no"], "protein_g", {"amount_per_100g": float(i)}) for i, f in enumerate(foods)]
    upsert_edges(store, "CONTAINS", "Food", "Nutrient", edges)
    upsert_nodes(store, "Food", foods)
    upsert_edges(store, "CONTAINS", "Food", "Nutrient", edges)
    assert (count_nodes(store, "Food"), count_edges(store, "CONTAINS")) == (50, 50)
    upsert_nodes(store, "Food", [{"ndb_no": "00007", "name": "renamed"}])
    upsert_edges(store, "CONTAINS", "Food", "Nutrient", [("00007", "protein_g", {"amount_per_100g": 70.5})])
    rows = store.run(
        "MATCH (f:Food {ndb_no: $id})-[r:CONTAINS]->(:Nutrient) RETURN f.name AS name, r.amount_per_100g AS amount",
        {"id": "00007"},
    )
    assert rows == [{"name": "renamed", "amount": 70.5}]


def test_edges_to_missing_endpoints_are_not_invented(store: GraphStore) -> None:
    upsert_nodes(store, "Food", [{"ndb_no": "00001", "name": "a"}])
    upsert_edges(store, "HAS_ALLERGEN", "Food", "Allergen", [("00001", "milk", {})])
    assert (count_nodes(store), count_edges(store)) == (1, 0)


def test_a_broken_query_is_a_typed_error(store: GraphStore) -> None:
    with pytest.raises(QueryFailed):
        store.run("MATCH (n RETURN n")


def test_versioned_writes_reject_stale_versions(store: GraphStore) -> None:
    fact = Fact("user:1", "weight", 70.0, "kg", 0.9, "npa")
    assert write_fact(store, fact, 0) == 1
    with pytest.raises(VersionConflict) as created_twice:
        write_fact(store, fact, 0)
    assert (created_twice.value.expected, created_twice.value.actual) == (0, 1)
    assert write_fact(store, Fact("user:1", "weight", 71.0, "kg", 0.9, "npa"), 1) == 2
    with pytest.raises(VersionConflict) as stale:
        write_fact(store, Fact("user:1", "weight", 99.0, "kg", 0.9, "npa"), 1)
    assert (stale.value.expected, stale.value.actual) == (1, 2)
    stored = read_fact(store, "user:1", "weight")
    assert stored is not None and (stored.fact.value, stored.version) == (71.0, 2)
    with pytest.raises(VersionConflict) as missing:
        write_fact(store, Fact("user:2", "weight", 60.0, "kg", 0.9, "npa"), 3)
    assert missing.value.actual == 0
    assert read_fact(store, "user:2", "weight") is None
    assert count_nodes(store, "Fact") == 1
