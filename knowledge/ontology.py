"""Loading an ontology (rows of nodes and edges a domain built) into an agent's graph.

Theory of operation: a domain turns its data into rows (the nutrition ontology lives in
``npa.ontology``, the fitness one in ``wpa.ontology``); this generic module writes them. The
knowledge layer knows no domain (an import contract holds it).

Loading is idempotent twice over: every write is a ``MERGE`` on the node kind's key (indexed
first, so each MERGE is an index lookup), and an ``Ontology`` marker node stores a content hash
of all rows, written last. ``load_*`` does nothing when the marker's version equals the rows'
hash; when it differs (new data, or a load that died halfway and never wrote its marker) the
ontology's nodes are deleted and loaded again, so removed items do not linger. Rows go in
``UNWIND $rows`` batches: 8,463 foods with their main-nutrient edges load in seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from knowledge.graph import GraphStore, ensure_schema_indexes, upsert_edges, upsert_nodes

__all__ = ["Edges", "LoadReport", "Nodes", "load_rows"]


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a ``load_*`` call did: ``loaded`` is false when the graph already held this version."""

    ontology: str
    version: str
    loaded: bool
    nodes: int
    edges: int
    seconds: float


# One ontology's content: node rows per label, edge rows per (type, from, to).
Nodes = dict[str, list[dict[str, object]]]
Edges = dict[tuple[str, str, str], list[tuple[object, object, Mapping[str, object]]]]


def _version(nodes: Nodes, edges: Edges) -> str:
    canonical = json.dumps(
        {"nodes": nodes, "edges": {"|".join(k): [[a, b, dict(p)] for a, b, p in v] for k, v in edges.items()}},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_rows(
    store: GraphStore, name: str, labels: Sequence[str], nodes: Nodes, edges: Edges, force: bool
) -> LoadReport:
    """Write ontology ``name`` (its ``labels``, ``nodes`` and ``edges``) unless the graph holds this
    version already; ``labels`` must be the domain's own constants (they go into the query)."""
    started = time.perf_counter()
    version = _version(nodes, edges)
    node_total = sum(len(rows) for rows in nodes.values())
    edge_total = sum(len(rows) for rows in edges.values())
    marker = store.run("MATCH (o:Ontology {name: $name}) RETURN o.version AS v", {"name": name})
    if marker and marker[0]["v"] == version and not force:
        return LoadReport(name, version, False, node_total, edge_total, time.perf_counter() - started)
    ensure_schema_indexes(store)
    for label in labels:  # the domain's constants, never a caller's input
        store.run(f"MATCH (n:{label}) DETACH DELETE n")
    for label in labels:
        upsert_nodes(store, label, nodes.get(label, []))
    for (rel_type, src, dst), rows in edges.items():
        upsert_edges(store, rel_type, src, dst, rows)
    upsert_nodes(store, "Ontology", [{"name": name, "version": version, "nodes": node_total, "edges": edge_total}])
    return LoadReport(name, version, True, node_total, edge_total, time.perf_counter() - started)
