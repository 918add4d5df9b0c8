"""Fixtures of the knowledge tests: one real FalkorDB server, the real embedding model, real Qdrant folders.

The server is started once for the session on a free 127.0.0.1 port in a temporary folder and
stopped at the end. Every test that writes gets its own agent (own ACL user and graph key), so
tests never see each other's data. Neo4j joins the graph conformance tests only when
``NEO4J_URI`` (with ``NEO4J_USER`` / ``NEO4J_PASSWORD``, optional ``NEO4J_DATABASE``) is set.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge.agent import AgentKnowledge
from knowledge.embeddings import Embedder
from knowledge.graph import FalkorGraph, GraphStore, Neo4jGraph
from knowledge.server import FalkorServer, free_port, start_server
from knowledge.vectors import QdrantIndex
from npa.foods import Food, load_foods
from npa.ontology import food_points, load_nutrition
from wpa.exercises import Exercise, load_exercises
from wpa.ontology import exercise_points, load_fitness

_agent_numbers = itertools.count(1)


def new_agent_id(prefix: str = "t") -> str:
    return f"{prefix}{next(_agent_numbers)}"


@pytest.fixture(scope="session")
def falkor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalkorServer]:
    """One real redis-server + FalkorDB module for the whole session."""
    server = start_server(free_port(), tmp_path_factory.mktemp("falkordb"), admin_password="test-admin-secret")
    try:
        yield server
    finally:
        server.stop(save=False)


def agent_graph(server: FalkorServer, agent_id: str) -> FalkorGraph:
    creds = server.create_agent_user(agent_id)
    return FalkorGraph.connect(creds.host, creds.port, creds.graph_key, creds.username, creds.password)


@pytest.fixture
def falkor_graph(falkor: FalkorServer) -> Iterator[FalkorGraph]:
    """A fresh, empty graph of a fresh agent."""
    graph = agent_graph(falkor, new_agent_id())
    try:
        yield graph
    finally:
        graph.drop()
        graph.close()


@pytest.fixture(params=["falkordb", "neo4j"])
def store(request: pytest.FixtureRequest, falkor: FalkorServer) -> Iterator[GraphStore]:
    """Every reachable backend, empty: FalkorDB always, Neo4j when NEO4J_URI is set."""
    if request.param == "falkordb":
        graph = agent_graph(falkor, new_agent_id())
        try:
            yield graph
        finally:
            graph.drop()
            graph.close()
        return
    uri = os.environ.get("NEO4J_URI")
    if not uri:
        pytest.skip("Neo4j not configured: set NEO4J_URI, NEO4J_USER and NEO4J_PASSWORD to run these on Neo4j")
    neo = Neo4jGraph(
        uri,
        os.environ.get("NEO4J_USER", "neo4j"),
        os.environ.get("NEO4J_PASSWORD", ""),
        os.environ.get("NEO4J_DATABASE", "neo4j"),
    )
    neo.clear()
    try:
        yield neo
    finally:
        neo.clear()
        neo.close()


@pytest.fixture(scope="session")
def loaded_graph(falkor: FalkorServer) -> Iterator[FalkorGraph]:
    """One agent graph with both full ontologies loaded (8,463 foods, 873 exercises); read-only for tests."""
    graph = agent_graph(falkor, "loaded")
    load_nutrition(graph)
    load_fitness(graph)
    try:
        yield graph
    finally:
        graph.close()


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedder]:
    """The real all-MiniLM-L6-v2 model (loaded once), caching into a session folder."""
    emb = Embedder(tmp_path_factory.mktemp("embeddings") / "cache.sqlite")
    try:
        yield emb
    finally:
        emb.close()


# Foods and exercises picked by hand for the search tests, plus a regular sample of the rest.
HAND_FOODS = (
    "01001",
    "01009",
    "01123",
    "01077",
    "05062",
    "15076",
    "16097",
    "12061",
    "08120",
    "20044",
    "11124",
    "09003",
)
HAND_EXERCISES = (
    "Barbell_Bench_Press_-_Medium_Grip",
    "Bent_Over_Barbell_Row",
    "Barbell_Squat",
    "Barbell_Full_Squat",
    "Dumbbell_Lunges",
    "Dumbbell_Squat",
    "Goblet_Squat",
    "Dumbbell_Step_Ups",
    "Alternate_Hammer_Curl",
)


def food_sample() -> list[Food]:
    foods = load_foods()
    picked = {f.ndb_no: f for f in foods[::40]}
    picked.update({f.ndb_no: f for f in foods if f.ndb_no in HAND_FOODS})
    return sorted(picked.values(), key=lambda f: f.ndb_no)


def exercise_sample() -> list[Exercise]:
    exercises = load_exercises()
    picked = {e.id: e for e in exercises[::5]}
    picked.update({e.id: e for e in exercises if e.id in HAND_EXERCISES})
    return sorted(picked.values(), key=lambda e: e.id)


@pytest.fixture(scope="session")
def search_agent(
    falkor: FalkorServer, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentKnowledge]:
    """An agent whose vector index holds a few hundred real foods and exercises, embedded by the real model."""
    folder: Path = tmp_path_factory.mktemp("search-agent")
    agent = AgentKnowledge(
        "searcher", agent_graph(falkor, "searcher"), QdrantIndex.local(folder / "qdrant", "searcher"), embedder
    )
    agent.index_points(food_points(food_sample(), agent.embedder))
    agent.index_points(exercise_points(exercise_sample(), agent.embedder))
    try:
        yield agent
    finally:
        agent.graph.close()
        agent.vectors.close()
