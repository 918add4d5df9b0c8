"""Benchmark: the knowledge layer at the real data sizes, each figure beside a plain-Python baseline.

Starts one FalkorDB server (127.0.0.1, temporary folder) and Qdrant local folders, then prints:

- graph load of both ontologies (8,463 foods, 873 exercises) vs building the same rows into
  Python dicts; the idempotent reload (a no-op);
- one-hop and two-hop query latency (p50/p95) vs the same traversal over dicts of sets;
- embedding throughput cold (the model runs) and cached (a restarted embedder reading SQLite);
- vector search latency with and without a filter at 8,463 foods (the NPA's collection) and
  873 exercises (the WPA's), vs a NumPy brute-force scan (boolean mask for the filter).

No assertions: figures only. The machine is shared and noisy: compare ratios, not absolutes.

    python bench/knowledge.py [--queries N]
"""

# ruff: noqa: E402  (imports follow the sys.path fix below, see its comment)
from __future__ import annotations

import sys
from pathlib import Path

# This script is named like the package it measures, and Python puts the script's folder first on
# the import path: drop that folder so that ``import knowledge`` finds the package, not this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import cast

import numpy as np

from knowledge.embeddings import Embedder
from knowledge.graph import FalkorGraph
from knowledge.ontology import (
    exercise_points,
    exercise_text,
    fitness_rows,
    food_points,
    food_text,
    load_fitness,
    load_nutrition,
    nutrition_rows,
)
from knowledge.server import free_port, start_server
from knowledge.vectors import Point, QdrantIndex, VectorFilter
from npa.diet import allergens_of
from npa.foods import load_foods
from wpa.exercises import complements, load_exercises, progressions


def latencies(call: Callable[[int], object], n: int) -> tuple[float, float]:
    """(p50, p95) in milliseconds over ``n`` calls of ``call(i)``."""
    took = []
    for i in range(n):
        t = time.perf_counter()
        call(i)
        took.append((time.perf_counter() - t) * 1000)
    took.sort()
    return statistics.median(took), took[int(0.95 * (len(took) - 1))]


def row(name: str, ours: tuple[float, float], base: tuple[float, float], unit: str = "ms") -> None:
    ratio = ours[0] / base[0] if base[0] else float("inf")
    print(
        f"{name:<44} p50 {ours[0]:9.3f} {unit} p95 {ours[1]:9.3f} {unit} | baseline p50 {base[0]:8.4f} p95 "
        f"{base[1]:8.4f} | ratio {ratio:9.1f}"
    )


class Fixed:
    """Embedder stand-in returning vectors computed earlier in the run (no second model pass)."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed(self, batch: list[str]) -> np.ndarray:
        return np.stack([self.table[x] for x in batch])


def bench_index(
    folder: Path,
    agent: str,
    points: list[Point],
    embedder: Embedder,
    queries: list[str],
    where: VectorFilter,
    keep: Callable[[Point], bool],
    m: int,
) -> None:
    """Upsert ``points`` into a fresh local collection; search latency with/without ``where`` vs NumPy."""
    index = QdrantIndex.local(folder, agent)
    t = time.perf_counter()
    index.upsert(points)
    upsert_s = time.perf_counter() - t
    t = time.perf_counter()
    rewritten = index.upsert(points)  # an agent restart re-indexing unchanged data
    again_s = time.perf_counter() - t
    qv = embedder.embed(queries)
    embedder.close()
    matrix = np.stack([np.asarray(p.vector, dtype=np.float32) for p in points])
    mask = np.array([keep(p) for p in points])

    def brute(i: int, use_mask: bool) -> list[int]:
        scores = matrix @ qv[i % len(qv)]
        if use_mask:
            scores = np.where(mask, scores, -np.inf)
        return [int(x) for x in np.argpartition(-scores, 10)[:10]]

    plain = latencies(lambda i: index.search(qv[i % len(qv)], 10), m)
    filtered = latencies(lambda i: index.search(qv[i % len(qv)], 10, where), m)
    plain_base = latencies(lambda i: brute(i, False), m)
    filtered_base = latencies(lambda i: brute(i, True), m)
    print(
        f"vector index '{agent}': {len(points)} points upserted in {upsert_s:.1f} s; again unchanged in "
        f"{again_s:.2f} s ({rewritten} rewritten); the filter keeps {mask.sum()}"
    )
    row(f"  search k=10, {len(points)} points, no filter", plain, plain_base)
    row(f"  search k=10, {len(points)} points, filtered", filtered, filtered_base)
    index.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(7)
    foods, exercises = load_foods(), load_exercises()
    food_ids = [f.ndb_no for f in foods]
    exercise_ids = [e.id for e in exercises]
    print(f"data: {len(foods)} foods, {len(exercises)} exercises; torch threads default; 2 shared cores")

    with tempfile.TemporaryDirectory(prefix="bench-knowledge-") as tmp, start_server(free_port(), tmp) as server:
        creds = server.create_agent_user("bench")
        graph = FalkorGraph.connect(creds.host, creds.port, creds.graph_key, creds.username, creds.password)

        # --- load ----------------------------------------------------------------------------
        t = time.perf_counter()
        nut = load_nutrition(graph)
        fit = load_fitness(graph)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        _, edges_n = nutrition_rows(foods)
        _, edges_f = fitness_rows(exercises)
        # the dict baseline: the same rows, indexed in memory
        adjacency: dict[tuple[str, object], set[object]] = {}
        for edges in (edges_n, edges_f):
            for (rel, _, _), rows in edges.items():
                for a, b, _props in rows:
                    adjacency.setdefault((rel, a), set()).add(b)
        base_s = time.perf_counter() - t
        print(
            f"graph load: nutrition {nut.nodes} nodes / {nut.edges} edges in {nut.seconds:.2f} s, fitness "
            f"{fit.nodes} / {fit.edges} in {fit.seconds:.2f} s; total {load_s:.2f} s | dict baseline "
            f"{base_s:.2f} s | ratio {load_s / base_s:.1f}"
        )
        t = time.perf_counter()
        again = (load_nutrition(graph).loaded, load_fitness(graph).loaded)
        print(f"idempotent reload (loaded={again}): {time.perf_counter() - t:.2f} s (hashing the rows)")

        # --- graph queries --------------------------------------------------------------------
        n = args.queries
        picks = [rng.choice(food_ids) for _ in range(n)]
        one = latencies(
            lambda i: graph.run(
                "MATCH (:Food {ndb_no: $id})-[:HAS_ALLERGEN]->(a:Allergen) RETURN a.name AS a", {"id": picks[i]}
            ),
            n,
        )
        by_food = {f.ndb_no: f for f in foods}
        allergen_dict = {f.ndb_no: allergens_of(f) for f in foods}
        one_base = latencies(lambda i: sorted(allergen_dict[picks[i]]), n)
        row("one hop: allergens of a food", one, one_base)
        two = latencies(
            lambda i: graph.run(
                "MATCH (:Food {ndb_no: $id})-[:HAS_ALLERGEN]->(:Allergen)-[:CONFLICTS_WITH]->(p:DietaryPattern) "
                "RETURN DISTINCT p.name AS p",
                {"id": picks[i]},
            ),
            n,
        )
        two_base = latencies(
            lambda i: {p for a in allergen_dict[picks[i]] for p in adjacency.get(("CONFLICTS_WITH", a), ())},
            n,
        )
        row("two hops: patterns excluded via allergens", two, two_base)
        ex_picks = [rng.choice(exercise_ids) for _ in range(n)]
        two_ex = latencies(
            lambda i: graph.run(
                "MATCH (:Exercise {id: $id})-[:PROGRESSES_TO]->(:Exercise)-[:COMPLEMENTS]-(c:Exercise) "
                "RETURN DISTINCT c.id AS c",
                {"id": ex_picks[i]},
            ),
            n,
        )
        comp: dict[str, set[str]] = {}
        for a, b in complements(exercises):
            comp.setdefault(a, set()).add(b)
            comp.setdefault(b, set()).add(a)
        prog: dict[str, set[str]] = {}
        for a, b in progressions(exercises):
            prog.setdefault(a, set()).add(b)
        two_ex_base = latencies(lambda i: sorted({c for h in prog.get(ex_picks[i], ()) for c in comp.get(h, ())}), n)
        row("two hops: complements of harder variants", two_ex, two_ex_base)
        heavy = latencies(
            lambda i: graph.run(
                "MATCH (f:Food)-[c:CONTAINS]->(:Nutrient {key: 'protein_g'}) WHERE c.amount_per_100g > $min "
                "AND NOT (f)-[:HAS_ALLERGEN]->(:Allergen {name: 'milk'}) RETURN count(f) AS n",
                {"min": 15.0 + i % 10},
            ),
            max(10, n // 10),
        )
        heavy_base = latencies(
            lambda i: sum(
                1
                for f in foods
                if (f.nutrients.get("protein_g") or 0) > 15.0 + i % 10 and "milk" not in allergen_dict[f.ndb_no]
            ),
            max(10, n // 10),
        )
        row("scan: foods > x g protein, no milk (count)", heavy, heavy_base)
        del by_food

        # --- embeddings -----------------------------------------------------------------------
        texts = [food_text(f) for f in foods] + [exercise_text(e) for e in exercises]
        cache = Path(tmp) / "emb.sqlite"
        cold = Embedder(cache)
        t = time.perf_counter()
        cold._load()
        model_s = time.perf_counter() - t
        t = time.perf_counter()
        vectors = cold.embed(texts)
        cold_s = time.perf_counter() - t
        cold.close()
        warm = Embedder(cache)
        t = time.perf_counter()
        cached = warm.embed(texts)
        warm_s = time.perf_counter() - t
        print(
            f"embeddings: model load {model_s:.1f} s; cold {len(texts)} texts in {cold_s:.1f} s "
            f"({len(texts) / cold_s:.0f} texts/s); cached (restarted embedder, model never loaded: "
            f"{warm._model is None}) {warm_s:.2f} s ({len(texts) / warm_s:.0f} texts/s); cached/cold speed-up "
            f"{cold_s / warm_s:.0f}x; identical vectors: {bool(np.array_equal(vectors, cached))}"
        )
        warm.close()

        # --- vectors --------------------------------------------------------------------------
        table = dict(zip(texts, vectors, strict=True))
        food_pts = food_points(foods, cast(Embedder, Fixed(table)))
        exercise_pts = exercise_points(exercises, cast(Embedder, Fixed(table)))
        bench_index(
            Path(tmp) / "npa",
            "npa",
            food_pts,
            Embedder(cache),
            ["high-protein breakfast without dairy", "fresh fruit snack", "low sodium soup", "oily fish"],
            VectorFilter(must_not={"allergens": ["milk"], "conflicts_with": ["vegan"]}),
            lambda p: "milk" not in str(p.payload["allergens"]) and "vegan" not in str(p.payload["conflicts_with"]),
            max(20, n // 5),
        )
        bench_index(
            Path(tmp) / "wpa",
            "wpa",
            exercise_pts,
            Embedder(cache),
            ["knee-friendly leg exercise", "upper body push", "core stability", "stretch for hamstrings"],
            VectorFilter(must={"equipment": ["dumbbell"], "level": ["beginner", "intermediate"]}),
            lambda p: p.payload["equipment"] == ["dumbbell"] and p.payload["level"] in ("beginner", "intermediate"),
            max(20, n // 5),
        )
        graph.close()
    print(f"done (pid {os.getpid()})")


if __name__ == "__main__":
    main()
