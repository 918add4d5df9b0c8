"""The two shipped ontologies, loaded into an agent's graph and vector index from the real data.

Theory of operation: nutrition (NPA) comes from USDA SR28 through ``npa.foods`` and the
allergen and diet-pattern derivations of ``npa.diet``; fitness (WPA) from the Free Exercise DB
through ``wpa.exercises`` and its ``complements`` / ``progressions`` relations. This module only
turns those values into rows and writes them; the domain rules live with the domain agents.

Loading is idempotent twice over: every write is a ``MERGE`` on the node kind's key (indexed
first, so each MERGE is an index lookup), and an ``Ontology`` marker node stores a content hash
of all rows, written last. ``load_*`` does nothing when the marker's version equals the rows'
hash; when it differs (new data, or a load that died halfway and never wrote its marker) the
ontology's nodes are deleted and loaded again, so removed items do not linger. Rows go in
``UNWIND $rows`` batches: 8,463 foods with their main-nutrient edges load in seconds.

``CONTAINS`` edges keep the main nutrients only (``MAIN_NUTRIENTS``): what a meal planner
constrains on. All 47 columns would be ~300,000 edges for values nobody queries by edge.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from knowledge.graph import GraphStore, ensure_schema_indexes, upsert_edges, upsert_nodes
from knowledge.vectors import Point

if TYPE_CHECKING:
    from knowledge.embeddings import Embedder
    from npa.foods import Food
    from wpa.exercises import Exercise

__all__ = [
    "MAIN_NUTRIENTS",
    "LoadReport",
    "exercise_points",
    "food_points",
    "load_fitness",
    "load_nutrition",
]

# key -> (name, unit); keys are npa.foods.NUTRIENT_KEYS.
MAIN_NUTRIENTS: Mapping[str, tuple[str, str]] = {
    "energy_kcal": ("Energy", "kcal"),
    "protein_g": ("Protein", "g"),
    "fat_g": ("Total fat", "g"),
    "carbohydrate_g": ("Carbohydrate", "g"),
    "fiber_g": ("Fibre", "g"),
    "sugar_g": ("Sugars", "g"),
    "sodium_mg": ("Sodium", "mg"),
    "sat_fat_g": ("Saturated fat", "g"),
    "cholesterol_mg": ("Cholesterol", "mg"),
    "calcium_mg": ("Calcium", "mg"),
    "iron_mg": ("Iron", "mg"),
    "potassium_mg": ("Potassium", "mg"),
    "vit_c_mg": ("Vitamin C", "mg"),
}

_NUTRITION_LABELS = ("Food", "Nutrient", "FoodGroup", "Allergen", "DietaryPattern")
_FITNESS_LABELS = ("Exercise", "MuscleGroup", "Equipment", "Category", "Level")


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
_Nodes = dict[str, list[dict[str, object]]]
_Edges = dict[tuple[str, str, str], list[tuple[object, object, Mapping[str, object]]]]


def _version(nodes: _Nodes, edges: _Edges) -> str:
    canonical = json.dumps(
        {"nodes": nodes, "edges": {"|".join(k): [[a, b, dict(p)] for a, b, p in v] for k, v in edges.items()}},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _load(store: GraphStore, name: str, labels: Sequence[str], nodes: _Nodes, edges: _Edges, force: bool) -> LoadReport:
    started = time.perf_counter()
    version = _version(nodes, edges)
    node_total = sum(len(rows) for rows in nodes.values())
    edge_total = sum(len(rows) for rows in edges.values())
    marker = store.run("MATCH (o:Ontology {name: $name}) RETURN o.version AS v", {"name": name})
    if marker and marker[0]["v"] == version and not force:
        return LoadReport(name, version, False, node_total, edge_total, time.perf_counter() - started)
    ensure_schema_indexes(store)
    for label in labels:  # labels come from this module's constants, not from callers
        store.run(f"MATCH (n:{label}) DETACH DELETE n")
    for label in labels:
        upsert_nodes(store, label, nodes.get(label, []))
    for (rel_type, src, dst), rows in edges.items():
        upsert_edges(store, rel_type, src, dst, rows)
    upsert_nodes(store, "Ontology", [{"name": name, "version": version, "nodes": node_total, "edges": edge_total}])
    return LoadReport(name, version, True, node_total, edge_total, time.perf_counter() - started)


def nutrition_rows(foods: Iterable[Food]) -> tuple[_Nodes, _Edges]:
    from npa.diet import ALLERGEN_PATTERN_CONFLICTS, ALLERGENS, PATTERNS, allergens_of, conflicting_patterns

    food_rows: list[dict[str, object]] = []
    groups: dict[str, str] = {}
    contains: list[tuple[object, object, Mapping[str, object]]] = []
    in_group: list[tuple[object, object, Mapping[str, object]]] = []
    has_allergen: list[tuple[object, object, Mapping[str, object]]] = []
    conflicts: list[tuple[object, object, Mapping[str, object]]] = []
    for food in foods:
        food_rows.append(
            {"ndb_no": food.ndb_no, "name": food.description, "short": food.short, "group_code": food.group_code}
        )
        groups[food.group_code] = food.group
        in_group.append((food.ndb_no, food.group_code, {}))
        for key in MAIN_NUTRIENTS:
            amount = food.nutrients.get(key)
            if amount is not None:
                contains.append((food.ndb_no, key, {"amount_per_100g": float(amount)}))
        has_allergen.extend((food.ndb_no, a, {}) for a in sorted(allergens_of(food)))
        conflicts.extend((food.ndb_no, p, {}) for p in sorted(conflicting_patterns(food)))
    nodes: _Nodes = {
        "Food": food_rows,
        "Nutrient": [{"key": k, "name": n, "unit": u} for k, (n, u) in MAIN_NUTRIENTS.items()],
        "FoodGroup": [{"code": c, "name": n} for c, n in sorted(groups.items())],
        "Allergen": [{"name": a} for a in ALLERGENS],
        "DietaryPattern": [{"name": p} for p in PATTERNS],
    }
    edges: _Edges = {
        ("IN_GROUP", "Food", "FoodGroup"): in_group,
        ("CONTAINS", "Food", "Nutrient"): contains,
        ("HAS_ALLERGEN", "Food", "Allergen"): has_allergen,
        ("CONFLICTS_WITH", "Food", "DietaryPattern"): conflicts,
        ("CONFLICTS_WITH", "Allergen", "DietaryPattern"): [
            (a, p, {}) for a in ALLERGENS for p in sorted(ALLERGEN_PATTERN_CONFLICTS[a])
        ],
    }
    return nodes, edges


def load_nutrition(store: GraphStore, foods: Iterable[Food] | None = None, force: bool = False) -> LoadReport:
    """Load the nutrition ontology (all SR28 foods unless ``foods`` is given) if its version differs."""
    from npa.foods import load_foods

    nodes, edges = nutrition_rows(load_foods() if foods is None else foods)
    return _load(store, "nutrition", _NUTRITION_LABELS, nodes, edges, force)


def fitness_rows(exercises: Iterable[Exercise]) -> tuple[_Nodes, _Edges]:
    from wpa.exercises import LEVELS, complements, progressions

    pool = tuple(exercises)
    ids = {ex.id for ex in pool}
    muscles: set[str] = set()
    equipment: set[str] = set()
    categories: set[str] = set()
    targets: list[tuple[object, object, Mapping[str, object]]] = []
    requires: list[tuple[object, object, Mapping[str, object]]] = []
    for ex in pool:
        for muscle in ex.primary_muscles:
            targets.append((ex.id, muscle, {"role": "primary"}))
            muscles.add(muscle)
        for muscle in ex.secondary_muscles:
            if muscle not in ex.primary_muscles:
                targets.append((ex.id, muscle, {"role": "secondary"}))
                muscles.add(muscle)
        if ex.equipment is not None:  # the data's null means "none listed", which is not a piece of equipment
            requires.append((ex.id, ex.equipment, {}))
            equipment.add(ex.equipment)
        categories.add(ex.category)
    nodes: _Nodes = {
        "Exercise": [
            {
                "id": ex.id,
                "name": ex.name,
                "force": ex.force,
                "mechanic": ex.mechanic,
                "level": ex.level,
                "category": ex.category,
            }
            for ex in pool
        ],
        "MuscleGroup": [{"name": m} for m in sorted(muscles)],
        "Equipment": [{"name": e} for e in sorted(equipment)],
        "Category": [{"name": c} for c in sorted(categories)],
        "Level": [{"name": lv} for lv in LEVELS],
    }
    edges: _Edges = {
        ("TARGETS", "Exercise", "MuscleGroup"): targets,
        ("REQUIRES", "Exercise", "Equipment"): requires,
        ("IN_CATEGORY", "Exercise", "Category"): [(ex.id, ex.category, {}) for ex in pool],
        ("AT_LEVEL", "Exercise", "Level"): [(ex.id, ex.level, {}) for ex in pool],
        # Stored once per pair (a < b); COMPLEMENTS is symmetric, so queries match it undirected.
        ("COMPLEMENTS", "Exercise", "Exercise"): [(a, b, {}) for a, b in complements(pool) if a in ids and b in ids],
        ("PROGRESSES_TO", "Exercise", "Exercise"): [(a, b, {}) for a, b in progressions(pool)],
    }
    return nodes, edges


def load_fitness(store: GraphStore, exercises: Iterable[Exercise] | None = None, force: bool = False) -> LoadReport:
    """Load the fitness ontology (all 873 exercises unless ``exercises`` is given) if its version differs."""
    from wpa.exercises import load_exercises

    nodes, edges = fitness_rows(load_exercises() if exercises is None else exercises)
    return _load(store, "fitness", _FITNESS_LABELS, nodes, edges, force)


def food_text(food: Food) -> str:
    """What is embedded for a food: its long description and group."""
    return f"{food.description} ({food.group})"


# People ask for "a leg exercise", the data says "quadriceps": the embedded text names the body region
# of the primary muscle too, which is what makes such questions land.
_REGIONS: Mapping[str, str] = {
    "quadriceps": "legs",
    "hamstrings": "legs",
    "glutes": "legs and hips",
    "calves": "legs",
    "adductors": "legs and hips",
    "abductors": "legs and hips",
    "biceps": "arms",
    "triceps": "arms",
    "forearms": "arms",
    "chest": "upper body",
    "shoulders": "upper body",
    "lats": "back",
    "middle back": "back",
    "lower back": "back",
    "traps": "back and neck",
    "neck": "neck",
    "abdominals": "core",
}


def exercise_text(ex: Exercise) -> str:
    """What is embedded for an exercise: name, body region, category, muscles, equipment, first instruction."""
    region = _REGIONS.get(ex.primary, ex.primary)
    muscles = ", ".join((*ex.primary_muscles, *ex.secondary_muscles))
    first = ex.instructions[0][:300] if ex.instructions else ""
    return (
        f"{ex.name}: {ex.level} {ex.category} exercise for the {region} ({muscles}); "
        f"equipment: {ex.equipment or 'none'}. {first}"
    )


def food_points(foods: Sequence[Food], embedder: Embedder) -> list[Point]:
    from npa.diet import allergens_of, conflicting_patterns

    vectors = embedder.embed([food_text(f) for f in foods])
    return [
        Point(
            f"food:{f.ndb_no}",
            vectors[i],
            {
                "kind": "food",
                "name": f.description,
                "group": f.group,
                "allergens": sorted(allergens_of(f)),
                "conflicts_with": sorted(conflicting_patterns(f)),
            },
        )
        for i, f in enumerate(foods)
    ]


def exercise_payload(ex: Exercise) -> dict[str, object]:
    """The fields an exercise is filtered on in the vector index."""
    return {
        "kind": "exercise",
        "name": ex.name,
        "equipment": [ex.equipment or "none"],
        "primary": list(ex.primary_muscles),
        "muscles": sorted({*ex.primary_muscles, *ex.secondary_muscles}),
        "level": ex.level,
        "category": ex.category,
    }


def exercise_points(exercises: Sequence[Exercise], embedder: Embedder) -> list[Point]:
    vectors = embedder.embed([exercise_text(ex) for ex in exercises])
    return [Point(f"exercise:{ex.id}", vectors[i], exercise_payload(ex)) for i, ex in enumerate(exercises)]
