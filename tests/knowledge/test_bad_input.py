"""Malformed or hostile input is refused with a typed error and leaves the graph and index unchanged."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from knowledge.embeddings import DIMENSIONS, Embedder
from knowledge.errors import BadInput
from knowledge.facts import Fact, write_fact
from knowledge.graph import FalkorGraph, count_edges, count_nodes, upsert_edges, upsert_nodes
from knowledge.validate import MAX_LIST_ITEMS, MAX_TEXT_CHARS
from knowledge.vectors import Point, QdrantIndex, VectorFilter

BAD_WRITES: dict[str, Callable[[FalkorGraph], object]] = {
    "unknown label": lambda g: upsert_nodes(g, "User) DETACH DELETE (n", [{"name": "x"}]),
    "label not in the ontology": lambda g: upsert_nodes(g, "Password", [{"name": "x"}]),
    "unknown property": lambda g: upsert_nodes(g, "Food", [{"ndb_no": "1", "name}) DELETE n //": "x"}]),
    "property not allowed on label": lambda g: upsert_nodes(g, "Allergen", [{"name": "x", "ndb_no": "1"}]),
    "missing key": lambda g: upsert_nodes(g, "Food", [{"name": "no key"}]),
    "key only in a later row": lambda g: upsert_nodes(g, "Food", [{"ndb_no": "1"}, {"name": "no key"}]),
    "text over the limit": lambda g: upsert_nodes(g, "Food", [{"ndb_no": "1", "name": "x" * (MAX_TEXT_CHARS + 1)}]),
    "NaN": lambda g: upsert_edges(
        g, "CONTAINS", "Food", "Nutrient", [("1", "protein_g", {"amount_per_100g": math.nan})]
    ),
    "infinity": lambda g: upsert_edges(
        g, "CONTAINS", "Food", "Nutrient", [("1", "protein_g", {"amount_per_100g": math.inf})]
    ),
    "NUL in text": lambda g: upsert_nodes(g, "Food", [{"ndb_no": "1", "name": "a\x00b"}]),
    "nested map": lambda g: upsert_nodes(g, "Food", [{"ndb_no": "1", "name": {"a": 1}}]),
    "huge integer": lambda g: upsert_nodes(g, "Food", [{"ndb_no": 2**70}]),
    "long list": lambda g: upsert_nodes(g, "Food", [{"ndb_no": "1", "name": ["x"] * (MAX_LIST_ITEMS + 1)}]),
    "unknown relationship": lambda g: upsert_edges(g, "OWNS", "Food", "Allergen", [("1", "milk", {})]),
    "wrong endpoints": lambda g: upsert_edges(g, "HAS_ALLERGEN", "Exercise", "Allergen", [("1", "milk", {})]),
    "edge property not allowed": lambda g: upsert_edges(
        g, "HAS_ALLERGEN", "Food", "Allergen", [("1", "milk", {"x": 1})]
    ),
    "fact with NaN value": lambda g: write_fact(g, Fact("u", "p", math.nan, None, 0.5, "npa"), 0),
    "fact with confidence > 1": lambda g: write_fact(g, Fact("u", "p", 1.0, None, 1.5, "npa"), 0),
    "fact with NaN confidence": lambda g: write_fact(g, Fact("u", "p", 1.0, None, math.nan, "npa"), 0),
    "fact with hostile source": lambda g: write_fact(g, Fact("u", "p", 1.0, None, 0.5, "npa*"), 0),
    "fact subject with separator": lambda g: write_fact(g, Fact("u|x", "p", 1.0, None, 0.5, "npa"), 0),
    "fact with huge value": lambda g: write_fact(g, Fact("u", "p", "x" * (MAX_TEXT_CHARS + 1), None, 0.5, "npa"), 0),
    "negative expected version": lambda g: write_fact(g, Fact("u", "p", 1.0, None, 0.5, "npa"), -1),
}


@pytest.mark.parametrize("case", sorted(BAD_WRITES))
def test_bad_writes_raise_bad_input_and_change_nothing(falkor_graph: FalkorGraph, case: str) -> None:
    upsert_nodes(falkor_graph, "Food", [{"ndb_no": "1", "name": "before"}])
    upsert_nodes(falkor_graph, "Nutrient", [{"key": "protein_g", "name": "Protein", "unit": "g"}])
    before = falkor_graph.run("MATCH (n) RETURN labels(n) AS l, properties(n) AS p ORDER BY p.name")
    with pytest.raises(BadInput):
        BAD_WRITES[case](falkor_graph)
    assert falkor_graph.run("MATCH (n) RETURN labels(n) AS l, properties(n) AS p ORDER BY p.name") == before
    assert (count_nodes(falkor_graph), count_edges(falkor_graph)) == (2, 0)


def test_counting_an_unknown_label_is_refused(falkor_graph: FalkorGraph) -> None:
    with pytest.raises(BadInput):
        count_nodes(falkor_graph, "Food) DETACH DELETE (n")


def test_bad_vectors_and_filters_raise_bad_input_and_change_nothing(tmp_path: Path) -> None:
    index = QdrantIndex.local(tmp_path / "q", "bad")
    try:
        good = np.full(DIMENSIONS, 1 / math.sqrt(DIMENSIONS), dtype=np.float32)
        index.upsert([Point("food:1", good, {"group": "Dairy"})])
        nan = good.copy()
        nan[3] = np.nan
        bad_calls: list[Callable[[], object]] = [
            lambda: index.upsert([Point("food:2", nan, {})]),
            lambda: index.upsert([Point("food:2", good[:10], {})]),
            lambda: index.upsert([Point("food:2", good, {"group": "x" * (MAX_TEXT_CHARS + 1)})]),
            lambda: index.upsert([Point("food:2", good, {"nested": {"a": 1}})]),
            lambda: index.upsert([Point("", good, {})]),
            lambda: index.upsert([Point("food:2", good, {"key": "food:1"})]),  # reserved: would alias a point
            lambda: index.upsert([Point("food:2", good, {"digest": "x"})]),
            lambda: index.search(nan, 5),
            lambda: index.search(good, 0),
            lambda: index.search(good, 5, VectorFilter(must={"password": ["x"]})),
            lambda: index.search(good, 5, VectorFilter(must={"group": "Dairy"})),  # a string, not a list
            lambda: index.search(good, 5, VectorFilter(must_not={"group": []})),
        ]
        for call in bad_calls:
            with pytest.raises(BadInput):
                call()
        assert index.count() == 1
    finally:
        index.close()


def test_texts_to_embed_are_checked_before_the_model_runs(tmp_path: Path) -> None:
    embedder = Embedder(tmp_path / "cache.sqlite")
    for texts in (["ok", ""], ["x" * (MAX_TEXT_CHARS + 1)], ["   "]):
        with pytest.raises(BadInput):
            embedder.embed(texts)
    assert embedder.computed_total == 0
    embedder.close()
