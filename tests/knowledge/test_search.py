"""Semantic search with the real model over real foods and exercises: sensible hits, filters applied inside the
index query (k hits that all pass), and an embedding cache that makes a restart recompute nothing."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np

from knowledge.agent import AgentKnowledge, open_embedded
from knowledge.embeddings import DIMENSIONS, Embedder
from knowledge.server import FalkorServer
from knowledge.vectors import Point, VectorFilter
from npa.foods import load_foods
from npa.ontology import food_points, food_text, load_nutrition
from tests.knowledge.conftest import exercise_sample, food_sample
from wpa.ontology import exercise_points


def test_plain_search_finds_the_obvious_food(search_agent: AgentKnowledge) -> None:
    hits = search_agent.search_foods("cheddar cheese", k=3)
    assert hits[0].key == "food:01009"
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_high_protein_breakfast_without_dairy(search_agent: AgentKnowledge) -> None:
    hits = search_agent.search_foods("high-protein breakfast without dairy", k=10, exclude_allergens=["milk"])
    assert len(hits) == 10
    assert all("milk" not in h.payload["allergens"] for h in hits)
    unfiltered = search_agent.search_foods("high-protein breakfast without dairy", k=10)
    assert any("milk" in h.payload["allergens"] for h in unfiltered)  # the filter did something


def test_diet_patterns_and_groups_filter_in_the_query(search_agent: AgentKnowledge) -> None:
    hits = search_agent.search_foods("grilled meat for dinner", k=8, diets=["vegan", "nut_free"])
    assert len(hits) == 8
    assert all(not {"vegan", "nut_free"} & set(h.payload["conflicts_with"]) for h in hits)
    fruit = search_agent.search_foods("something sweet", k=5, groups=["Fruits and Fruit Juices"])
    assert len(fruit) == 5 and {h.payload["group"] for h in fruit} == {"Fruits and Fruit Juices"}


def test_knee_friendly_leg_exercise_with_dumbbells(search_agent: AgentKnowledge) -> None:
    hits = search_agent.search_exercises("knee-friendly leg exercise with dumbbells", k=5, equipment=["dumbbell"])
    assert len(hits) == 5
    assert all(h.payload["equipment"] == ["dumbbell"] for h in hits)
    legs = {"quadriceps", "hamstrings", "glutes", "calves", "adductors", "abductors"}
    assert sum(bool(legs & set(h.payload["muscles"])) for h in hits) >= 4


def test_a_narrow_filter_still_returns_k_hits_that_are_the_true_filtered_top_k(search_agent: AgentKnowledge) -> None:
    """Filtering inside the query: the hits equal a brute-force scan over only the matching exercises."""
    where = VectorFilter(must={"kind": ["exercise"], "level": ["expert"], "equipment": ["barbell", "dumbbell"]})
    query = search_agent.embedder.embed_one("explosive full body lift")
    hits = search_agent.vectors.search(query, k=5, where=where)
    pool = [
        p
        for p in search_agent.vectors.points()
        if p.payload["kind"] == "exercise"
        and p.payload["level"] == "expert"
        and {"barbell", "dumbbell"} & set(cast(list[str], p.payload["equipment"]))
    ]
    assert len(pool) >= 5
    scores = np.array([np.asarray(p.vector) @ query for p in pool])
    expected = [pool[i].key for i in np.argsort(-scores)[:5]]
    assert [h.key for h in hits] == expected


def test_the_exercise_filter_for_levels_and_muscles(search_agent: AgentKnowledge) -> None:
    hits = search_agent.search_exercises("pulling movement", k=4, muscles=["lats", "middle back"], levels=["beginner"])
    assert len(hits) == 4
    assert all(h.payload["level"] == "beginner" and {"lats", "middle back"} & set(h.payload["muscles"]) for h in hits)


def test_reindexing_writes_only_what_changed_and_never_duplicates(search_agent: AgentKnowledge) -> None:
    before = search_agent.vectors.count()
    assert before == len(food_sample()) + len(exercise_sample())
    again = exercise_points(exercise_sample()[:20], search_agent.embedder)
    assert search_agent.index_points(again) == 0  # unchanged: nothing rewritten
    hit = search_agent.search_exercises("barbell squat", k=1)[0]
    point = next(p for p in search_agent.vectors.points() if p.key == hit.key)
    changed = Point(point.key, point.vector, {**point.payload, "level": "expert"})
    assert search_agent.vectors.upsert([changed]) == 1
    assert search_agent.vectors.count() == before
    assert search_agent.search_exercises("barbell squat", k=1, levels=["expert"])[0].key == hit.key
    assert search_agent.vectors.upsert([point]) == 1  # put it back as it was
    assert "digest" not in hit.payload


def test_the_cache_makes_a_restart_compute_nothing(tmp_path: Path, embedder: Embedder) -> None:
    texts = [food_text(f) for f in load_foods()[1000:1040]]
    first = Embedder(tmp_path / "cache.sqlite")
    # Share the already-loaded model: the test is about the cache, not about loading twice.
    first._model = embedder._load()
    vectors = first.embed(texts)
    assert first.computed_total == 40
    assert vectors.shape == (40, DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    first.close()
    restarted = Embedder(tmp_path / "cache.sqlite")  # no model loaded, and none needed
    again = restarted.embed([*texts, texts[0]])
    assert restarted.computed_total == 0 and restarted._model is None
    assert np.array_equal(again[:40], vectors) and np.array_equal(again[40], vectors[0])
    restarted.close()


def test_open_embedded_gives_an_agent_its_own_graph_index_and_cache(
    falkor: FalkorServer, embedder: Embedder, tmp_path: Path
) -> None:
    agent = open_embedded(falkor, "npa-embedded", tmp_path, embedder=embedder)
    try:
        load_nutrition(agent.graph, load_foods()[:300])
        assert agent.index_points(food_points(load_foods()[:300], agent.embedder)) == 300
        hits = agent.search_foods("cheese", k=3, groups=["Dairy and Egg Products"])
        assert len(hits) == 3 and all("Cheese" in str(h.payload["name"]) for h in hits)
        graph_hits = agent.graph.run(
            "MATCH (f:Food {ndb_no: $id})-[:IN_GROUP]->(g:FoodGroup) RETURN g.name AS g",
            {"id": hits[0].key.removeprefix("food:")},
        )
        assert graph_hits == [{"g": "Dairy and Egg Products"}]
        assert (tmp_path / "npa-embedded" / "qdrant").is_dir()
    finally:
        agent.close()
    assert embedder.embed(["still open"]).shape == (1, DIMENSIONS)  # a shared embedder is not closed
