"""Snapshots: an agent's whole knowledge (graph + vectors) in one versioned file, to survive its replacement.

Theory of operation: ``export_snapshot`` reads every node kind and relationship kind of the
schema (nothing else exists in a graph written through this layer) and every vector point, and
writes one gzip-compressed JSON document, atomically (temporary file, fsync, rename). Vectors are
stored as base64 of their float32 bytes (8,463 x 384 floats would be ~60 MB as JSON numbers).

The document carries ``format`` and ``format_version`` (refused when unknown), the agent id, the
ontology versions found in the graph, and a SHA-256 of its own content (refused when it does not
match: a truncated or edited file is never half-imported). ``import_snapshot`` writes through the
same validated helpers as every other write (schema allow-lists, value checks), into a graph and
index that must be empty unless ``replace=True`` clears them first. Relationships are re-created
between the nodes' keys, so the target may be another backend (FalkorDB -> Neo4j).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.embeddings import DIMENSIONS
from knowledge.errors import SnapshotError
from knowledge.graph import GraphStore, count_nodes, ensure_schema_indexes, upsert_edges, upsert_nodes
from knowledge.schema import EDGES, NODES
from knowledge.validate import check_edge, check_node, check_props, check_value
from knowledge.vectors import Point, VectorIndex

__all__ = ["FORMAT", "FORMAT_VERSION", "SnapshotInfo", "export_snapshot", "import_snapshot"]

FORMAT = "mca-knowledge-snapshot"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    agent_id: str
    format_version: int
    ontologies: dict[str, str]
    nodes: int
    edges: int
    points: int
    sha256: str


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def export_snapshot(graph: GraphStore, index: VectorIndex, agent_id: str, path: Path | str) -> SnapshotInfo:
    """Write the agent's graph and vectors to ``path`` (gzip JSON), atomically."""
    nodes: list[dict[str, Any]] = []
    for kind in NODES.values():
        for row in graph.run(f"MATCH (n:{kind.label}) RETURN properties(n) AS p"):
            nodes.append({"label": kind.label, "props": row["p"]})
    edges: list[dict[str, Any]] = []
    for ekind in EDGES.values():
        for src, dst in sorted(ekind.endpoints):
            a_key, b_key = NODES[src].key, NODES[dst].key
            cypher = (
                f"MATCH (a:{src})-[r:{ekind.type}]->(b:{dst}) RETURN a.{a_key} AS a, b.{b_key} AS b, properties(r) AS p"
            )
            for row in graph.run(cypher):
                edges.append(
                    {"type": ekind.type, "from": src, "to": dst, "a": row["a"], "b": row["b"], "props": row["p"]}
                )
    points = [
        {
            "key": p.key,
            "vector": base64.b64encode(np.asarray(p.vector, dtype="<f4").tobytes()).decode(),
            "payload": dict(p.payload),
        }
        for p in index.points()
    ]
    ontologies = {str(n["props"]["name"]): str(n["props"]["version"]) for n in nodes if n["label"] == "Ontology"}
    body = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "agent_id": agent_id,
        "ontologies": ontologies,
        "nodes": nodes,
        "edges": edges,
        "points": points,
    }
    digest = _digest(body)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as out:
            out.write(json.dumps({**body, "sha256": digest}, separators=(",", ":")).encode())
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, target)
    return SnapshotInfo(agent_id, FORMAT_VERSION, ontologies, len(nodes), len(edges), len(points), digest)


def _read(path: Path | str) -> dict[str, Any]:
    try:
        with gzip.open(path, "rb") as src:
            doc = json.loads(src.read())
    except (OSError, EOFError, ValueError) as exc:
        raise SnapshotError(f"{path}: unreadable snapshot ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotError(f"{path}: not a knowledge snapshot")
    if doc.get("format_version") != FORMAT_VERSION:
        raise SnapshotError(f"{path}: snapshot format version {doc.get('format_version')!r}, expected {FORMAT_VERSION}")
    claimed = doc.pop("sha256", None)
    if claimed != _digest(doc):
        raise SnapshotError(f"{path}: content does not match its checksum")
    return doc


def import_snapshot(path: Path | str, graph: GraphStore, index: VectorIndex, replace: bool = False) -> SnapshotInfo:
    """Load a snapshot into ``graph`` and ``index``; they must be empty unless ``replace`` clears them."""
    doc = _read(path)
    if not replace and (count_nodes(graph) or index.count()):
        raise SnapshotError("the target graph or index is not empty (pass replace=True to overwrite)")
    points: list[Point] = []
    for p in doc["points"]:
        vector = np.frombuffer(base64.b64decode(p["vector"]), dtype="<f4").astype(np.float32)
        if vector.shape != (DIMENSIONS,):
            raise SnapshotError(f"point {p['key']!r}: vector of {vector.shape} instead of ({DIMENSIONS},)")
        points.append(Point(str(p["key"]), vector, p["payload"]))
    by_label: dict[str, list[dict[str, Any]]] = {}
    for n in doc["nodes"]:
        by_label.setdefault(str(n["label"]), []).append(n["props"])
    by_edge: dict[tuple[str, str, str], list[tuple[object, object, Mapping[str, object]]]] = {}
    for e in doc["edges"]:
        by_edge.setdefault((str(e["type"]), str(e["from"]), str(e["to"])), []).append((e["a"], e["b"], e["props"]))
    # Validate every row before the first write, so a hostile or broken snapshot changes nothing.
    for label, rows in by_label.items():
        for row in rows:
            check_node(label, row)
    for (rel_type, src, dst), edge_rows in by_edge.items():
        check_edge(rel_type, src, dst, {})
        for i, (_, _, props) in enumerate(edge_rows):
            check_props(f"{rel_type}[{i}]", EDGES[rel_type].properties, props)
    for point in points:
        for name, value in point.payload.items():
            check_value(f"payload.{name}", value)
    if replace:
        graph.clear()
        index.clear()
    ensure_schema_indexes(graph)
    for label, rows in by_label.items():
        upsert_nodes(graph, label, rows)
    for (rel_type, src, dst), edge_rows in by_edge.items():
        upsert_edges(graph, rel_type, src, dst, edge_rows)
    index.upsert(points)
    return SnapshotInfo(
        str(doc["agent_id"]),
        FORMAT_VERSION,
        dict(doc["ontologies"]),
        len(doc["nodes"]),
        len(doc["edges"]),
        len(points),
        _digest(doc),
    )
