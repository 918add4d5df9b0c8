"""Snapshots carry an agent's whole knowledge (graph, vectors, versions) into a fresh graph and index, and a
damaged, foreign or hostile snapshot is refused without a half-import."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from knowledge.embeddings import Embedder
from knowledge.errors import BadInput, SnapshotError, VersionConflict
from knowledge.facts import Fact, read_fact, write_fact
from knowledge.graph import FalkorGraph, count_edges, count_nodes
from knowledge.server import FalkorServer
from knowledge.snapshot import _digest, export_snapshot, import_snapshot
from knowledge.vectors import QdrantIndex
from tests.knowledge.conftest import agent_graph, exercise_sample, new_agent_id
from wpa.ontology import exercise_points, load_fitness


def graph_content(graph: FalkorGraph) -> list[str]:
    nodes = graph.run("MATCH (n) RETURN labels(n) AS l, properties(n) AS p")
    edges = graph.run(
        "MATCH (a)-[r]->(b) RETURN type(r) AS t, properties(a) AS a, properties(b) AS b, properties(r) AS p"
    )
    return sorted(json.dumps(row, sort_keys=True) for row in [*nodes, *edges])


@pytest.fixture
def source(falkor: FalkorServer, embedder: Embedder, tmp_path: Path) -> tuple[FalkorGraph, QdrantIndex]:
    graph = agent_graph(falkor, new_agent_id("wpa"))
    exercises = exercise_sample()[:60]
    load_fitness(graph, exercises)
    write_fact(graph, Fact("user:42", "weekly_training_expenditure", 2100.0, "kcal", 0.8, "wpa", "s17"), 0)
    write_fact(graph, Fact("user:42", "weekly_training_expenditure", 2200.0, "kcal", 0.9, "wpa", "s18"), 1)
    index = QdrantIndex.local(tmp_path / "source-q", "wpa")
    index.upsert(exercise_points(exercises, embedder))
    return graph, index


def test_round_trip_into_a_fresh_graph_and_index(
    source: tuple[FalkorGraph, QdrantIndex], falkor: FalkorServer, embedder: Embedder, tmp_path: Path
) -> None:
    graph, index = source
    info = export_snapshot(graph, index, "wpa", tmp_path / "wpa.snapshot.gz")
    assert (info.nodes, info.edges, info.points) == (count_nodes(graph), count_edges(graph), 60)
    assert set(info.ontologies) == {"fitness"}

    fresh_graph = agent_graph(falkor, new_agent_id("wpa"))  # the replacement agent
    fresh_index = QdrantIndex.local(tmp_path / "fresh-q", "wpa")
    imported = import_snapshot(tmp_path / "wpa.snapshot.gz", fresh_graph, fresh_index)
    assert imported.sha256 == info.sha256
    assert graph_content(fresh_graph) == graph_content(graph)
    stored = read_fact(fresh_graph, "user:42", "weekly_training_expenditure")
    assert stored is not None and (stored.version, stored.fact.value, stored.fact.session_id) == (2, 2200.0, "s18")
    # The replacement continues the version sequence: a write based on the old version 1 is stale.
    with pytest.raises(VersionConflict, match="expected version 1, found 2"):
        write_fact(fresh_graph, Fact("user:42", "weekly_training_expenditure", 1.0, "kcal", 1.0, "wpa"), 1)
    query = embedder.embed_one("barbell squat for the legs")
    assert [h.key for h in fresh_index.search(query, 5)] == [h.key for h in index.search(query, 5)]
    # The same ontology version is recognised: no reload after the import.
    assert not load_fitness(fresh_graph, exercise_sample()[:60]).loaded
    for g in (graph, fresh_graph):
        g.drop()
    fresh_index.close()
    index.close()


def test_a_non_empty_target_is_refused_unless_replacing(
    source: tuple[FalkorGraph, QdrantIndex], tmp_path: Path
) -> None:
    graph, index = source
    export_snapshot(graph, index, "wpa", tmp_path / "s.gz")
    with pytest.raises(SnapshotError, match="not empty"):
        import_snapshot(tmp_path / "s.gz", graph, index)
    before = graph_content(graph)
    import_snapshot(tmp_path / "s.gz", graph, index, replace=True)
    assert graph_content(graph) == before and index.count() == 60
    graph.drop()
    index.close()


def test_damaged_or_foreign_snapshots_are_refused(
    source: tuple[FalkorGraph, QdrantIndex], falkor: FalkorServer, tmp_path: Path
) -> None:
    graph, index = source
    path = tmp_path / "s.gz"
    export_snapshot(graph, index, "wpa", path)
    doc = json.loads(gzip.decompress(path.read_bytes()))
    empty = agent_graph(falkor, new_agent_id())
    empty_index = QdrantIndex.local(tmp_path / "empty-q", "x")

    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(path.read_bytes()[:1000])
    edited = tmp_path / "edited.gz"  # content changed, checksum not
    edited.write_bytes(gzip.compress(json.dumps({**doc, "agent_id": "someone-else"}).encode()))
    future = tmp_path / "future.gz"
    future.write_bytes(gzip.compress(json.dumps({**doc, "format_version": 99}).encode()))
    foreign = tmp_path / "foreign.gz"
    foreign.write_bytes(gzip.compress(b'{"hello": "world"}'))
    for bad in (truncated, edited, future, foreign, tmp_path / "missing.gz"):
        with pytest.raises(SnapshotError):
            import_snapshot(bad, empty, empty_index)
    assert count_nodes(empty) == 0 and empty_index.count() == 0
    graph.drop()
    index.close()
    empty_index.close()


def test_a_hostile_snapshot_with_a_valid_checksum_is_validated_before_any_write(
    source: tuple[FalkorGraph, QdrantIndex], falkor: FalkorServer, tmp_path: Path
) -> None:
    graph, index = source
    path = tmp_path / "s.gz"
    export_snapshot(graph, index, "wpa", path)
    doc = json.loads(gzip.decompress(path.read_bytes()))
    doc.pop("sha256")
    # Valid rows first, the hostile label last: a row-by-row import would already have written the rest.
    doc["nodes"].append({"label": "Admin) DETACH DELETE (n", "props": {"name": "x"}})
    hostile = tmp_path / "hostile.gz"
    hostile.write_bytes(gzip.compress(json.dumps({**doc, "sha256": _digest(doc)}).encode()))
    target = agent_graph(falkor, new_agent_id())
    target_index = QdrantIndex.local(tmp_path / "h-q", "h")
    with pytest.raises(BadInput):
        import_snapshot(hostile, target, target_index)
    assert count_nodes(target) == 0 and target_index.count() == 0
    before = graph_content(graph)
    with pytest.raises(BadInput):
        import_snapshot(hostile, graph, index, replace=True)  # not even the clearing happens
    assert graph_content(graph) == before and index.count() == 60
    graph.drop()
    index.close()
    target_index.close()
