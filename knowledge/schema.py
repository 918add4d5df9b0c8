"""The ontology as data: every label, property and relationship type the layer may write.

Theory of operation: Cypher cannot take labels, relationship types or property names as
parameters, so the few that must be spliced into query text come from the frozen tables below
and nowhere else. ``knowledge.validate`` checks every name against them before any query is
built; values always travel as query parameters. One table per concern: node kinds with their
key and allowed properties, relationship kinds with their allowed endpoints and properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["EDGES", "NODES", "EdgeKind", "NodeKind"]


@dataclass(frozen=True, slots=True)
class NodeKind:
    """A node label: ``key`` identifies a node (MERGE on it, index on it); ``properties`` is the allow-list."""

    label: str
    key: str
    properties: frozenset[str]


@dataclass(frozen=True, slots=True)
class EdgeKind:
    """A relationship type, the (from label, to label) pairs it may join, and its allowed properties."""

    type: str
    endpoints: frozenset[tuple[str, str]]
    properties: frozenset[str] = frozenset()


def _nodes(*kinds: NodeKind) -> MappingProxyType[str, NodeKind]:
    return MappingProxyType({k.label: k for k in kinds})


def _edges(*kinds: EdgeKind) -> MappingProxyType[str, EdgeKind]:
    return MappingProxyType({k.type: k for k in kinds})


_FACT_PROPS = frozenset(
    {
        "key",
        "subject",
        "predicate",
        "value",
        "unit",
        "confidence",
        "source_agent",
        "session_id",
        "provenance",
        "version",
    }
)

NODES: Final = _nodes(
    # Nutrition (NPA).
    NodeKind("Food", "ndb_no", frozenset({"ndb_no", "name", "short", "group_code"})),
    NodeKind("Nutrient", "key", frozenset({"key", "name", "unit"})),
    NodeKind("FoodGroup", "code", frozenset({"code", "name"})),
    NodeKind("Allergen", "name", frozenset({"name"})),
    NodeKind("DietaryPattern", "name", frozenset({"name"})),
    # Fitness (WPA).
    NodeKind("Exercise", "id", frozenset({"id", "name", "force", "mechanic", "level", "category"})),
    NodeKind("MuscleGroup", "name", frozenset({"name"})),
    NodeKind("Equipment", "name", frozenset({"name"})),
    NodeKind("Category", "name", frozenset({"name"})),
    NodeKind("Level", "name", frozenset({"name"})),
    # Versioned facts (learned or shared), and the marker of each loaded ontology.
    NodeKind("Fact", "key", _FACT_PROPS),
    NodeKind("Ontology", "name", frozenset({"name", "version", "nodes", "edges"})),
)

EDGES: Final = _edges(
    EdgeKind("CONTAINS", frozenset({("Food", "Nutrient")}), frozenset({"amount_per_100g"})),
    EdgeKind("IN_GROUP", frozenset({("Food", "FoodGroup")})),
    EdgeKind("HAS_ALLERGEN", frozenset({("Food", "Allergen")})),
    EdgeKind("CONFLICTS_WITH", frozenset({("Food", "DietaryPattern"), ("Allergen", "DietaryPattern")})),
    EdgeKind("TARGETS", frozenset({("Exercise", "MuscleGroup")}), frozenset({"role"})),
    EdgeKind("REQUIRES", frozenset({("Exercise", "Equipment")})),
    EdgeKind("IN_CATEGORY", frozenset({("Exercise", "Category")})),
    EdgeKind("AT_LEVEL", frozenset({("Exercise", "Level")})),
    EdgeKind("COMPLEMENTS", frozenset({("Exercise", "Exercise")})),
    EdgeKind("PROGRESSES_TO", frozenset({("Exercise", "Exercise")})),
)
