"""The nutrition ontology: the NPA's foods as graph rows and vector points.

Theory of operation: nutrition comes from USDA SR28 through ``npa.foods`` and the allergen and
diet-pattern derivations of ``npa.diet``; this module turns those values into the rows
``knowledge.ontology.load_rows`` writes (idempotent, versioned by content) and the texts and
points the vector index holds.

``CONTAINS`` edges keep the main nutrients only (``MAIN_NUTRIENTS``): what a meal planner
constrains on. All 47 columns would be ~300,000 edges for values nobody queries by edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from knowledge.embeddings import Embedder
from knowledge.graph import GraphStore
from knowledge.ontology import Edges, LoadReport, Nodes, load_rows
from knowledge.vectors import Point
from npa.foods import Food

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


def nutrition_rows(foods: Iterable[Food]) -> tuple[Nodes, Edges]:
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
    nodes: Nodes = {
        "Food": food_rows,
        "Nutrient": [{"key": k, "name": n, "unit": u} for k, (n, u) in MAIN_NUTRIENTS.items()],
        "FoodGroup": [{"code": c, "name": n} for c, n in sorted(groups.items())],
        "Allergen": [{"name": a} for a in ALLERGENS],
        "DietaryPattern": [{"name": p} for p in PATTERNS],
    }
    edges: Edges = {
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
    return load_rows(store, "nutrition", _NUTRITION_LABELS, nodes, edges, force)


def food_text(food: Food) -> str:
    """What is embedded for a food: its long description and group."""
    return f"{food.description} ({food.group})"


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
