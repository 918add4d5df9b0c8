"""Benchmark: the knowledge layer at the real data sizes, each figure beside a plain-Python baseline.

Starts one FalkorDB server (127.0.0.1, temporary folder) and Qdrant local folders, then prints:

- graph load of both ontologies (8,463 foods, 873 exercises) vs building the same rows into
  Python dicts; the idempotent reload (a no-op);
- one-hop and two-hop query latency (p50/p95) vs the same traversal over dicts of sets;
- embedding throughput cold (the model runs) and cached (a restarted embedder reading SQLite);
- vector search latency with and without a filter at 8,463 foods (the NPA's collection) and
  873 exercises (the WPA's), vs a NumPy brute-force scan (boolean mask for the filter);
- search relevance: precision@10 of a labelled set of questions (``FOOD_CASES``,
  ``EXERCISE_CASES``, used while tuning the search) and, printed apart, of a held-out set
  (``HELD_OUT_FOOD_CASES``, ``HELD_OUT_EXERCISE_CASES``, written after the tuning and not used to
  change it) on the agents' real indexes (the NPA's pool, all exercises), before (the index's
  vector search alone) and after (``npa.search`` / ``wpa.search``). Relevance is a rule on the
  data per question (protein per 100 kcal above a threshold and a breakfast role; primary muscle
  hamstrings and a curl movement), written here independently of the search's own vocabulary, so
  precision is computed, not asserted. When fewer than 10 items are relevant the denominator is
  that number (precision@10 capped at |R|), so a perfect answer always scores 1.

No assertions: figures only. The machine is shared and noisy: compare ratios, not absolutes.

    python bench/knowledge.py [--queries N] [--relevance-only] [--cache PATH]

The relevance part embeds the indexed texts through ``--cache`` (default
``$MCA_EMBEDDINGS_CACHE`` or ``~/.cache/mca-runtime/embeddings.sqlite``), so a second run loads no model.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import numpy as np
from qdrant_client import QdrantClient

from knowledge.embeddings import Embedder
from knowledge.graph import FalkorGraph
from knowledge.server import free_port, start_server
from knowledge.vectors import Hit, Point, QdrantIndex, VectorFilter
from npa.diet import allergens_of, conflicting_patterns
from npa.foods import load_foods
from npa.ontology import food_points, food_text, load_nutrition, nutrition_rows
from npa.pool import Candidate, candidate_pool
from npa.search import food_items, search_foods
from wpa.exercises import Exercise, complements, load_exercises, movement_stem, progressions
from wpa.ontology import exercise_points, exercise_text, fitness_rows, load_fitness
from wpa.search import exercise_items, search_exercises


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


T = TypeVar("T")
Rule = Callable[[T], bool]


@dataclass(frozen=True)
class Case(Generic[T]):
    """A labelled question: the items ``relevant`` says yes to are the right answers."""

    question: str
    relevant: Rule[T]


def _per_100kcal(c: Candidate, nutrient: str) -> float | None:
    energy, amount = c.food.nutrients.get("energy_kcal") or 0.0, c.food.nutrients.get(nutrient)
    return None if amount is None or energy <= 0 else 100.0 * amount / energy


def _high(nutrient: str, at_least: float) -> Rule[Candidate]:
    return lambda c: (_per_100kcal(c, nutrient) or 0.0) >= at_least


def _low(nutrient: str, at_most: float) -> Rule[Candidate]:
    return lambda c: (v := _per_100kcal(c, nutrient)) is not None and v <= at_most


def _roles(*roles: str) -> Rule[Candidate]:
    return lambda c: c.role in roles


def _free_of(allergen: str) -> Rule[Candidate]:
    return lambda c: allergen not in allergens_of(c.food)


def _fits(pattern: str) -> Rule[Candidate]:
    return lambda c: pattern not in conflicting_patterns(c.food)


def _all(*rules: Rule[T]) -> Rule[T]:
    return lambda item: all(rule(item) for rule in rules)


def _any(*rules: Rule[T]) -> Rule[T]:
    return lambda item: any(rule(item) for rule in rules)


# Meal-appropriate pool roles, as a dietitian would say them (pasta and rice are not breakfast).
_BREAKFAST = ("cereal", "bread", "egg", "dairy", "fruit", "nuts", "cheese")
_MAIN = ("protein", "legume", "egg", "grain", "bread", "vegetable", "cheese")
_SNACK = ("fruit", "nuts", "dairy", "vegetable", "cheese")
# "High" is at least a quarter of the energy from protein (6 g per 100 kcal = 24 %); fibre, iron,
# calcium, potassium and vitamin C thresholds are about 10 % of a daily value per 100 kcal.
FOOD_CASES: tuple[Case[Candidate], ...] = (
    Case("high-protein breakfast", _all(_roles(*_BREAKFAST), _high("protein_g", 6))),
    Case("high-protein breakfast without dairy", _all(_roles(*_BREAKFAST), _high("protein_g", 6), _free_of("milk"))),
    Case("high-protein snack", _all(_roles(*_SNACK), _high("protein_g", 6))),
    Case("high-protein vegan dinner", _all(_roles(*_MAIN), _high("protein_g", 6), _fits("vegan"))),
    Case("high-protein vegetarian lunch", _all(_roles(*_MAIN), _high("protein_g", 6), _fits("vegetarian"))),
    Case("nut-free high-protein snack", _all(_roles(*_SNACK), _high("protein_g", 6), _fits("nut_free"))),
    Case("low-sodium lunch", _all(_roles(*_MAIN), _low("sodium_mg", 20))),
    Case("low-carb dinner", _all(_roles(*_MAIN), _low("carbohydrate_g", 3))),
    Case("high-fiber breakfast cereal", _all(_roles("cereal"), _high("fiber_g", 3))),
    Case("low-fat dairy", _all(_roles("dairy", "cheese"), _low("fat_g", 3.5))),
    Case("fruit high in vitamin C", _all(_roles("fruit"), _high("vit_c_mg", 50))),
    Case("iron-rich vegetables", _all(_roles("vegetable"), _high("iron_mg", 2))),
    Case("calcium-rich foods without dairy", _all(_high("calcium_mg", 100), _free_of("milk"))),
    Case("low-sugar snack", _all(_roles(*_SNACK), _low("sugar_g", 3))),
    Case("potassium-rich fruit", _all(_roles("fruit"), _high("potassium_mg", 400))),
    Case("low-calorie vegetables", _all(_roles("vegetable"), lambda c: c.food.nutrients["energy_kcal"] <= 30)),
    Case("dairy-free breakfast", _all(_roles(*_BREAKFAST), _free_of("milk"))),
    Case("lean high-protein meat", _all(_roles("protein"), _high("protein_g", 15))),
)

_LEGS = frozenset({"quadriceps", "hamstrings", "glutes", "calves", "adductors", "abductors"})


def _primary(*muscles: str) -> Rule[Exercise]:
    return lambda e: e.primary in muscles


def _equipment(*names: str) -> Rule[Exercise]:
    return lambda e: (e.equipment or "none") in names


def _category(*names: str) -> Rule[Exercise]:
    return lambda e: e.category in names


def _not_stretch(e: Exercise) -> bool:
    return e.category != "stretching"


def _stem(*stems: str) -> Rule[Exercise]:
    return lambda e: movement_stem(e.name) in stems


def _named(*words: str) -> Rule[Exercise]:
    return lambda e: any(w in e.name.lower() for w in words)


def _mechanic(m: str) -> Rule[Exercise]:
    return lambda e: e.mechanic == m


def _force(f: str) -> Rule[Exercise]:
    return lambda e: e.force == f


def _level(*levels: str) -> Rule[Exercise]:
    return lambda e: e.level in levels


EXERCISE_CASES: tuple[Case[Exercise], ...] = (
    # A hamstring curl bends the knee against load: the curls, glute-ham raises, hamstring slides.
    Case(
        "hamstring curl",
        _all(
            _primary("hamstrings"), _not_stretch, _any(_mechanic("isolation"), _named("curl", "glute ham", "glute-ham"))
        ),
    ),
    Case("chest press with a barbell", _all(_primary("chest"), _equipment("barbell"), _force("push"))),
    Case("bicep curl with dumbbells", _all(_primary("biceps"), _equipment("dumbbell"), _stem("curl"))),
    Case("tricep extension", _all(_primary("triceps"), _not_stretch, _mechanic("isolation"))),
    Case("bodyweight leg exercise", _all(lambda e: e.primary in _LEGS, _equipment("body only", "none"), _not_stretch)),
    Case("beginner ab exercises", _all(_primary("abdominals"), _level("beginner"), _not_stretch)),
    Case("lower back stretch", _all(_primary("lower back"), _category("stretching"))),
    Case(
        "shoulder press with dumbbells",
        _all(_primary("shoulders"), _equipment("dumbbell"), _force("push"), _mechanic("compound")),
    ),
    Case("lat pulldown on a cable", _all(_primary("lats"), _equipment("cable"), _force("pull"))),
    Case("calf raises", _all(_primary("calves"), _not_stretch)),
    Case(
        "glute exercise with a kettlebell",
        _all(lambda e: "glutes" in (*e.primary_muscles, *e.secondary_muscles), _equipment("kettlebells")),
    ),
    Case("plyometric jumps for legs", _all(_category("plyometrics"), lambda e: e.primary in _LEGS)),
    Case("barbell back squat", _all(_primary("quadriceps", "glutes"), _equipment("barbell"), _stem("squat"))),
    Case("dumbbell row for the back", _all(_primary("middle back", "lats"), _equipment("dumbbell"), _force("pull"))),
    Case("hamstring stretch", _all(_primary("hamstrings"), _category("stretching"))),
    Case("chest fly", _all(_primary("chest"), _stem("fly"))),
    Case(
        "easy core exercise without equipment",
        _all(_primary("abdominals"), _equipment("body only", "none"), _level("beginner"), _not_stretch),
    ),
    Case("quad exercise on a machine", _all(_primary("quadriceps"), _equipment("machine"), _not_stretch)),
    Case("forearm exercise", _all(_primary("forearms"), _not_stretch)),
)

# Held out: questions written after the search was tuned, with their relevance rules, and not
# used to change it (issue 11: the tuning set's figure alone flatters the search). New phrasings
# ("fibre", "rich in"), nutrients and restrictions the tuning set does not ask, moves it does not
# name. Printed apart; a change to the search that lifts only the tuning set shows here.
HELD_OUT_FOOD_CASES: tuple[Case[Candidate], ...] = (
    Case("high-fibre lunch", _all(_roles(*_MAIN), _high("fiber_g", 3))),
    Case("gluten-free high-protein dinner", _all(_roles(*_MAIN), _high("protein_g", 6), _fits("gluten_free"))),
    Case("low-fat high-protein snack", _all(_roles(*_SNACK), _high("protein_g", 6), _low("fat_g", 3.5))),
    Case("vegetables rich in vitamin C", _all(_roles("vegetable"), _high("vit_c_mg", 50))),
    Case("egg-free vegetarian breakfast", _all(_roles(*_BREAKFAST), _free_of("egg"), _fits("vegetarian"))),
    Case("low-sodium high-protein dinner", _all(_roles(*_MAIN), _high("protein_g", 6), _low("sodium_mg", 20))),
    Case("nuts rich in magnesium", _all(_roles("nuts"), _high("magnesium_mg", 40))),
    Case(
        "fish high in protein", _all(_roles("protein"), lambda c: c.food.group_code == "1500", _high("protein_g", 15))
    ),
    Case("low-sugar fruit", _all(_roles("fruit"), _low("sugar_g", 15))),
    Case("shellfish-free high-protein lunch", _all(_roles(*_MAIN), _high("protein_g", 6), _free_of("shellfish"))),
    Case("high-calcium dairy", _all(_roles("dairy", "cheese"), _high("calcium_mg", 150))),
)
HELD_OUT_EXERCISE_CASES: tuple[Case[Exercise], ...] = (
    Case("glute bridge", _all(_primary("glutes"), _named("bridge", "hip thrust", "hip lift", "hip extension"))),
    Case("triceps pushdown on a cable", _all(_primary("triceps"), _equipment("cable"), _force("push"))),
    Case("biceps exercise with a barbell", _all(_primary("biceps"), _equipment("barbell"), _not_stretch)),
    Case("deadlift for the hamstrings", _all(_primary("hamstrings", "glutes", "lower back"), _named("deadlift"))),
    Case("kettlebell swing", _all(_equipment("kettlebells"), _named("swing"))),
    Case("shoulder stretch", _all(_primary("shoulders"), _category("stretching"))),
    Case(
        "beginner chest exercise without equipment",
        _all(_primary("chest"), _equipment("body only", "none"), _level("beginner"), _not_stretch),
    ),
    Case("lunges with dumbbells", _all(_equipment("dumbbell"), _named("lunge"))),
    Case(
        "upper back exercise with a resistance band",
        _all(_primary("middle back", "lats", "traps"), _equipment("bands"), _not_stretch),
    ),
    Case("cardio machine for beginners", _all(_category("cardio"), _equipment("machine"), _level("beginner"))),
    Case("quadriceps stretch", _all(_primary("quadriceps"), _category("stretching"))),
)


def precision_at(keys: Sequence[str], relevant: set[str], k: int = 10) -> float:
    """Relevant among the first ``k`` keys, over ``min(k, |relevant|)`` (1.0 is the best possible)."""
    if not relevant:
        return 0.0
    return sum(1 for key in keys[:k] if key in relevant) / min(k, len(relevant))


def default_cache() -> Path:
    return Path(os.environ.get("MCA_EMBEDDINGS_CACHE", Path.home() / ".cache" / "mca-runtime" / "embeddings.sqlite"))


@dataclass
class GroupResult:
    name: str
    before: list[float]
    after: list[float]
    before_ms: list[float]
    after_ms: list[float]


def _run_cases(
    name: str,
    cases: Sequence[Case[T]],
    items: dict[str, T],
    plain: Callable[[str], list[Hit]],
    ours: Callable[[str], list[Hit]],
) -> GroupResult:
    result = GroupResult(name, [], [], [], [])
    print(f"  {name}: question{'':<40} |R|  before  after")
    for case in cases:
        relevant = {key for key, item in items.items() if case.relevant(item)}
        t = time.perf_counter()
        base = plain(case.question)
        result.before_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        hits = ours(case.question)
        result.after_ms.append((time.perf_counter() - t) * 1000)
        result.before.append(precision_at([h.key for h in base], relevant))
        result.after.append(precision_at([h.key for h in hits], relevant))
        print(f"    {case.question:<48} {len(relevant):>4}  {result.before[-1]:6.2f}  {result.after[-1]:5.2f}")
    print(
        f"  {name}: mean precision@10 before {statistics.mean(result.before):.2f}, after "
        f"{statistics.mean(result.after):.2f}; search p50 before {statistics.median(result.before_ms):.1f} ms, "
        f"after {statistics.median(result.after_ms):.1f} ms"
    )
    return result


def relevance(cache: Path) -> tuple[GroupResult, GroupResult]:
    """Precision@10 of the labelled questions, pure vector search vs ``npa.search`` / ``wpa.search``:
    the tuning set, then the held-out set apart."""
    started = time.perf_counter()
    embedder = Embedder(cache)
    pool = candidate_pool()
    exercises = load_exercises()
    food_index = QdrantIndex(QdrantClient(":memory:"), "kg-npa")
    exercise_index = QdrantIndex(QdrantClient(":memory:"), "kg-wpa")
    for index, items in ((food_index, food_items(pool)), (exercise_index, exercise_items(exercises))):
        vectors = embedder.embed([item.text for item in items])
        index.upsert([Point(item.key, vectors[i], item.payload) for i, item in enumerate(items)])
    questions = [c.question for c in (*FOOD_CASES, *HELD_OUT_FOOD_CASES)]
    questions += [c.question for c in (*EXERCISE_CASES, *HELD_OUT_EXERCISE_CASES)]
    embedder.embed(questions)  # one batch (cached after the first run)
    print(
        f"search relevance: {len(pool)} pool foods, {len(exercises)} exercises indexed in "
        f"{time.perf_counter() - started:.1f} s ({embedder.computed_total} texts embedded, the rest cached in {cache})"
    )

    def searcher(index: QdrantIndex) -> Callable[[str, int, VectorFilter], list[Hit]]:
        return lambda text, k, where: index.search(embedder.embed_one(text), k, where)

    food_items_by_key = {f"food:{c.food.ndb_no}": c for c in pool}
    exercise_items_by_key = {f"exercise:{e.id}": e for e in exercises}

    def plain_foods(q: str) -> list[Hit]:
        return food_index.search(embedder.embed_one(q), 10, VectorFilter({"kind": ["food"]}))

    def plain_exercises(q: str) -> list[Hit]:
        return exercise_index.search(embedder.embed_one(q), 10, VectorFilter({"kind": ["exercise"]}))

    def our_foods(q: str) -> list[Hit]:
        return search_foods(searcher(food_index), q, 10)

    def our_exercises(q: str) -> list[Hit]:
        return search_exercises(searcher(exercise_index), q, 10)

    print("tuning set (the questions the search was tuned on):")
    foods = _run_cases("foods", FOOD_CASES, food_items_by_key, plain_foods, our_foods)
    moves = _run_cases("exercises", EXERCISE_CASES, exercise_items_by_key, plain_exercises, our_exercises)
    both_before = foods.before + moves.before
    both_after = foods.after + moves.after
    print(
        f"  tuning set, all {len(both_before)} questions: mean precision@10 before "
        f"{statistics.mean(both_before):.2f}, after {statistics.mean(both_after):.2f}"
    )
    print("held-out set (written after the tuning, never used to change the search):")
    held_foods = _run_cases("foods", HELD_OUT_FOOD_CASES, food_items_by_key, plain_foods, our_foods)
    held_moves = _run_cases("exercises", HELD_OUT_EXERCISE_CASES, exercise_items_by_key, plain_exercises, our_exercises)
    held_before = held_foods.before + held_moves.before
    held_after = held_foods.after + held_moves.after
    print(
        f"  held-out set, all {len(held_before)} questions: mean precision@10 before "
        f"{statistics.mean(held_before):.2f}, after {statistics.mean(held_after):.2f}; relevance run "
        f"{time.perf_counter() - started:.1f} s"
    )
    food_index.close()
    exercise_index.close()
    embedder.close()
    return foods, moves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--relevance-only", action="store_true", help="only the search relevance part")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache for the relevance part")
    args = parser.parse_args()
    if args.relevance_only:
        relevance(args.cache or default_cache())
        return
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
    relevance(args.cache or default_cache())
    print(f"done (pid {os.getpid()})")


if __name__ == "__main__":
    main()
