"""The issue's questions on the real indexes (the NPA's pool, all exercises) with the real model: search finds
what a person asks for, by the labelled rules of ``bench/knowledge.py`` (precision@10 floors), and does better
than the vector search alone.

Embeddings reuse a persistent cache (``$MCA_EMBEDDINGS_CACHE`` or ``~/.cache/mca-runtime/embeddings.sqlite``,
the bench's), so only the first run on a machine pays for the model; the indexes are in-memory Qdrant.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from qdrant_client import QdrantClient

from bench.knowledge import EXERCISE_CASES, FOOD_CASES, Case, default_cache, precision_at
from knowledge.embeddings import Embedder
from knowledge.errors import BackendUnavailable
from knowledge.server import FalkorServer
from knowledge.vectors import Hit, Point, QdrantIndex, VectorFilter
from mca.sdk import Context
from npa.agent import NutritionPlanningAgent
from npa.pool import Candidate, candidate_pool
from npa.search import food_items, search_foods
from wpa.agent import WorkoutPlanningAgent
from wpa.exercises import Exercise, load_exercises
from wpa.search import exercise_items, search_exercises


@pytest.fixture(scope="module")
def indexes() -> Iterator[tuple[Embedder, QdrantIndex, QdrantIndex]]:
    embedder = Embedder(default_cache())
    foods = QdrantIndex(QdrantClient(":memory:"), "kg-npa")
    exercises = QdrantIndex(QdrantClient(":memory:"), "kg-wpa")
    try:
        for index, items in ((foods, food_items(candidate_pool())), (exercises, exercise_items(load_exercises()))):
            vectors = embedder.embed([item.text for item in items])
            index.upsert([Point(item.key, vectors[i], item.payload) for i, item in enumerate(items)])
    except BackendUnavailable as exc:
        pytest.skip(f"no embedding model here: {exc}")
    try:
        yield embedder, foods, exercises
    finally:
        foods.close()
        exercises.close()
        embedder.close()


def _case(cases: tuple[Case[Candidate], ...] | tuple[Case[Exercise], ...], question: str) -> Case[object]:
    found = next(c for c in cases if c.question == question)
    return found  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("question", "floor"),
    [("high-protein breakfast", 0.8), ("high-protein breakfast without dairy", 0.7), ("low-sodium lunch", 0.8)],
)
def test_food_questions_of_the_issue(
    indexes: tuple[Embedder, QdrantIndex, QdrantIndex], question: str, floor: float
) -> None:
    embedder, foods, _ = indexes
    pool = {f"food:{c.food.ndb_no}": c for c in candidate_pool()}
    relevant = {key for key, c in pool.items() if _case(FOOD_CASES, question).relevant(c)}

    def search(text: str, k: int, where: VectorFilter) -> list[Hit]:
        return foods.search(embedder.embed_one(text), k, where)

    hits = search_foods(search, question, 10)
    plain = search(question, 10, VectorFilter({"kind": ["food"]}))
    ours, before = precision_at([h.key for h in hits], relevant), precision_at([h.key for h in plain], relevant)
    assert ours >= floor, [h.payload["name"] for h in hits]
    assert ours > before
    if "dairy" in question:
        assert all("milk" not in h.payload["allergens"] for h in hits)  # exclusions stay hard filters


@pytest.mark.parametrize(
    ("question", "floor"),
    [("hamstring curl", 0.8), ("chest press with a barbell", 0.8), ("bicep curl with dumbbells", 0.8)],
)
def test_exercise_questions_of_the_issue(
    indexes: tuple[Embedder, QdrantIndex, QdrantIndex], question: str, floor: float
) -> None:
    embedder, _, exercises = indexes
    data = {f"exercise:{e.id}": e for e in load_exercises()}
    relevant = {key for key, e in data.items() if _case(EXERCISE_CASES, question).relevant(e)}

    def search(text: str, k: int, where: VectorFilter) -> list[Hit]:
        return exercises.search(embedder.embed_one(text), k, where)

    hits = search_exercises(search, question, 10)
    assert precision_at([h.key for h in hits], relevant) >= floor, [h.payload["name"] for h in hits]
    if question == "hamstring curl":
        assert all(h.payload["primary"] == ["hamstrings"] for h in hits)  # no biceps cable curls
        assert all("curl" in str(h.payload["name"]).lower() for h in hits[:5])
    if "barbell" in question:
        assert all(h.payload["equipment"] == ["barbell"] for h in hits)


def test_the_agents_index_at_setup_and_answer_through_the_new_search(falkor: FalkorServer, tmp_path: Path) -> None:
    """``setup`` indexes what the re-ranking reads; ``search`` (what ``mca ask`` calls) parses and re-ranks."""
    for agent_id, agent in (
        ("npa-search", NutritionPlanningAgent("npa-search")),
        ("wpa-search", WorkoutPlanningAgent("wpa-search")),
    ):
        folder = tmp_path / agent_id
        folder.mkdir()
        if default_cache().exists():  # seed the agent's own cache: the model need not run
            shutil.copy(default_cache(), folder / "embeddings.sqlite")
        creds = falkor.create_agent_user(agent_id)
        agent.setup(Context(agent_id, str(folder), creds.url, creds.graph_key))
        assert agent.knowledge is not None
        try:
            if isinstance(agent, NutritionPlanningAgent):
                foods = agent.search("high-protein breakfast without dairy", k=5, diets=("halal",))
                assert len(foods) == 5 and all("milk" not in cast(list[str], f["allergens"]) for f in foods), foods
                assert all(cast(float, f["protein_g_per_100kcal"]) >= 4 for f in foods), foods
            else:
                moves = agent.search("hamstring curl", k=5)
                assert [m["primary"] for m in moves] == [["hamstrings"]] * 5, moves
                moves = agent.search("bicep curl", k=5, equipment=("dumbbell",))  # the flag is a hard filter too
                assert all(m["equipment"] == ["dumbbell"] and m["primary"] == ["biceps"] for m in moves), moves
        finally:
            agent.knowledge.close()
