"""``AgentKnowledge``: one agent's graph, vector index and embedder behind the calls planners make.

Theory of operation: an agent owns exactly one graph (FalkorDB key ``kg:{agent_id}`` under its
own ACL user, or its own Neo4j database) and one vector collection (a Qdrant local folder per
agent, or a collection on a server). ``open_embedded`` wires the embedded default from a running
``FalkorServer`` and a data folder; production builds the same object from a ``Neo4jGraph`` and
``QdrantIndex.remote``. Search embeds the question with the agent's cached embedder and lets the
index filter during the query: "high-protein breakfast without dairy" is
``search_foods(text, exclude_allergens=["milk"])``.

``index(items)`` is the generic way in: a domain gives each item's key, the text to embed and the
payload to store (the numbers and tags its own re-ranking reads); this layer embeds (cached) and
upserts. Reading a question and re-ranking the hits is the domain's job (``npa.search``,
``wpa.search``): this layer knows nothing of foods or muscles beyond the filter allow-list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from knowledge.embeddings import Embedder, print_progress
from knowledge.errors import BadInput
from knowledge.graph import FalkorGraph, GraphStore, ensure_schema_indexes
from knowledge.validate import check_agent_id
from knowledge.vectors import Hit, Point, QdrantIndex, VectorFilter, VectorIndex

if TYPE_CHECKING:
    from knowledge.server import FalkorServer

__all__ = ["AgentKnowledge", "IndexItem", "open_embedded", "open_with"]


@dataclass(frozen=True, slots=True)
class IndexItem:
    """One item to index: its domain key, the text embedded for it and the payload stored with it."""

    key: str
    text: str
    payload: Mapping[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class AgentKnowledge:
    """One agent's knowledge. ``close()`` closes the graph and index, and the embedder if it owns it."""

    agent_id: str
    graph: GraphStore
    vectors: VectorIndex
    embedder: Embedder
    owns_embedder: bool = True

    def search(self, text: str, k: int = 10, where: VectorFilter | None = None) -> list[Hit]:
        """The ``k`` items nearest in meaning to ``text`` among those that pass ``where``."""
        return self.vectors.search(self.embedder.embed_one(text), k, where)

    def search_foods(
        self,
        text: str,
        k: int = 10,
        exclude_allergens: Sequence[str] = (),
        diets: Sequence[str] = (),
        groups: Sequence[str] = (),
    ) -> list[Hit]:
        """Foods for ``text``, none holding ``exclude_allergens``, compatible with every pattern in ``diets``."""
        must: dict[str, Sequence[str]] = {"kind": ["food"]}
        if groups:
            must["group"] = list(groups)
        must_not: dict[str, Sequence[str]] = {}
        if exclude_allergens:
            must_not["allergens"] = list(exclude_allergens)
        if diets:
            must_not["conflicts_with"] = list(diets)
        return self.search(text, k, VectorFilter(must, must_not))

    def search_exercises(
        self,
        text: str,
        k: int = 10,
        equipment: Sequence[str] = (),
        muscles: Sequence[str] = (),
        levels: Sequence[str] = (),
    ) -> list[Hit]:
        """Exercises for ``text`` using any of ``equipment``, working any of ``muscles``, at any of ``levels``."""
        must: dict[str, Sequence[str]] = {"kind": ["exercise"]}
        if equipment:
            must["equipment"] = list(equipment)
        if muscles:
            must["muscles"] = list(muscles)
        if levels:
            must["level"] = list(levels)
        return self.search(text, k, VectorFilter(must))

    def index(self, items: Sequence[IndexItem]) -> int:
        """Embed each item's text (the cache skips known texts) and upsert; returns the points written."""
        vectors = self.embedder.embed([item.text for item in items])
        return self.vectors.upsert([Point(item.key, vectors[i], item.payload) for i, item in enumerate(items)])

    def index_points(self, points: Sequence[Point]) -> int:
        """Upsert points a domain built (``npa.ontology.food_points``, say); returns those written."""
        return self.vectors.upsert(points)

    def close(self) -> None:
        self.graph.close()
        self.vectors.close()
        if self.owns_embedder:
            self.embedder.close()


def open_with(agent_id: str, graph_url: str, graph_key: str, data_dir: Path | str) -> AgentKnowledge:
    """An agent's knowledge from the credentials the runtime gave it: ``graph_url`` is
    ``redis://user:password@host:port`` of its own ACL user, ``graph_key`` its graph; the vector
    index and the embedding cache live in ``data_dir`` (a folder of its own)."""
    from urllib.parse import unquote, urlsplit

    url = urlsplit(graph_url)
    if url.scheme != "redis" or not url.hostname or not url.port:
        raise BadInput(f"graph_url must be redis://user:password@host:port, got scheme {url.scheme!r}")
    username = unquote(url.username) if url.username else None
    password = unquote(url.password) if url.password else None
    graph = FalkorGraph.connect(url.hostname, url.port, graph_key, username, password)
    ensure_schema_indexes(graph)
    folder = Path(data_dir)
    vectors = QdrantIndex.local(folder / "qdrant", agent_id)
    return AgentKnowledge(
        agent_id, graph, vectors, Embedder(folder / "embeddings.sqlite", progress=print_progress(agent_id))
    )


def open_embedded(
    server: FalkorServer, agent_id: str, data_dir: Path | str, embedder: Embedder | None = None
) -> AgentKnowledge:
    """The embedded default for ``agent_id``: its own ACL user and graph on ``server`` (key indexes made),
    its own Qdrant folder and, unless ``embedder`` is shared in, its own embedding cache under
    ``data_dir/agent_id``. Loading the ontologies is the caller's choice (``load_nutrition``...)."""
    folder = Path(data_dir) / check_agent_id(agent_id)
    creds = server.create_agent_user(agent_id)
    graph = FalkorGraph.connect(creds.host, creds.port, creds.graph_key, creds.username, creds.password)
    ensure_schema_indexes(graph)
    vectors = QdrantIndex.local(folder / "qdrant", agent_id)
    if embedder is not None:
        return AgentKnowledge(agent_id, graph, vectors, embedder, owns_embedder=False)
    return AgentKnowledge(
        agent_id, graph, vectors, Embedder(folder / "embeddings.sqlite", progress=print_progress(agent_id))
    )
