"""Each agent's sovereign knowledge: its own graph (openCypher on FalkorDB or Neo4j), its own vector
index (Qdrant), embeddings from a local model, versioned facts, sharing and snapshots.

See ``docs/knowledge.md``. The public surface is the names below; modules are importable for the
rest (``knowledge.schema`` for the ontology tables, ``knowledge.validate`` for the limits).
"""

from knowledge.agent import AgentKnowledge, IndexItem, open_embedded, open_with
from knowledge.embeddings import Embedder
from knowledge.errors import (
    AccessDenied,
    BackendUnavailable,
    BadInput,
    KnowledgeError,
    QueryFailed,
    SnapshotError,
    VersionConflict,
)
from knowledge.facts import (
    Fact,
    PlanItem,
    SharedFact,
    merge_fact,
    merge_plans,
    read_fact,
    record_shared_fact,
    write_fact,
)
from knowledge.graph import FalkorGraph, GraphStore, Neo4jGraph
from knowledge.server import AgentCredentials, FalkorServer, free_port, start_server
from knowledge.snapshot import export_snapshot, import_snapshot
from knowledge.vectors import Hit, QdrantIndex, VectorFilter, VectorIndex

__all__ = [
    "AccessDenied",
    "AgentCredentials",
    "AgentKnowledge",
    "BackendUnavailable",
    "BadInput",
    "Embedder",
    "Fact",
    "FalkorGraph",
    "FalkorServer",
    "GraphStore",
    "Hit",
    "IndexItem",
    "KnowledgeError",
    "Neo4jGraph",
    "PlanItem",
    "QdrantIndex",
    "QueryFailed",
    "SharedFact",
    "SnapshotError",
    "VectorFilter",
    "VectorIndex",
    "VersionConflict",
    "export_snapshot",
    "free_port",
    "import_snapshot",
    "merge_fact",
    "merge_plans",
    "open_embedded",
    "open_with",
    "read_fact",
    "record_shared_fact",
    "start_server",
    "write_fact",
]
