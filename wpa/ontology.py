"""The fitness ontology: the WPA's exercises as graph rows and vector points.

Theory of operation: fitness comes from the Free Exercise DB through ``wpa.exercises`` and its
``complements`` / ``progressions`` relations; this module turns those values into the rows
``knowledge.ontology.load_rows`` writes (idempotent, versioned by content) and the texts,
payloads and points the vector index holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from knowledge.embeddings import Embedder
from knowledge.graph import GraphStore
from knowledge.ontology import Edges, LoadReport, Nodes, load_rows
from knowledge.vectors import Point
from wpa.exercises import Exercise

_FITNESS_LABELS = ("Exercise", "MuscleGroup", "Equipment", "Category", "Level")


def fitness_rows(exercises: Iterable[Exercise]) -> tuple[Nodes, Edges]:
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
    nodes: Nodes = {
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
    edges: Edges = {
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
    return load_rows(store, "fitness", _FITNESS_LABELS, nodes, edges, force)


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
