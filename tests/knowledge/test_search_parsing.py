"""Query understanding and re-ranking of ``npa.search`` and ``wpa.search`` on hand-made hits: questions become
the right hard filters, nutrient goals and movement boosts, and the re-ranking orders candidates by them (no
model, no index)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from knowledge.vectors import FILTER_FIELDS, Hit, VectorFilter
from npa import search as food_search
from npa.diet import ALLERGENS, PATTERNS
from npa.pool import ROLE_PORTIONS
from npa.search import FoodQuery, NutrientGoal, parse_food_question, rank_foods, search_foods
from wpa import search as exercise_search
from wpa.exercises import load_exercises
from wpa.search import parse_exercise_question, rank_exercises, search_exercises


def food(key: str, score: float, role: str = "egg", **per_100kcal: float) -> Hit:
    payload: dict[str, object] = {"kind": "food", "name": key, "role": role}
    payload.update({f"{n}_per_100kcal": v for n, v in per_100kcal.items()})
    return Hit(f"food:{key}", score, payload)


def move(key: str, score: float, primary: str = "hamstrings", **payload: object) -> Hit:
    data: dict[str, object] = {"kind": "exercise", "name": key, "primary": [primary], "category": "strength"}
    data.update(payload)
    return Hit(f"exercise:{key}", score, data)


# --- foods: parsing -------------------------------------------------------------------------------


def test_high_protein_breakfast_is_a_protein_goal_over_breakfast_roles() -> None:
    q = parse_food_question("high-protein breakfast")
    assert q.goals == (NutrientGoal("protein_g", high=True),)
    assert q.roles == food_search.MEAL_ROLES["breakfast"]
    assert q.text == "breakfast"
    assert not q.exclude_allergens and not q.diets


@pytest.mark.parametrize(
    ("question", "nutrient", "high"),
    [
        ("low-sodium lunch", "sodium_mg", False),
        ("low in salt", "sodium_mg", False),
        ("protein-rich snack", "protein_g", True),
        ("rich in iron", "iron_mg", True),
        ("fruit high in vitamin C", "vit_c_mg", True),
        ("low-carb dinner", "carbohydrate_g", False),
        ("sugar-free snack", "sugar_g", False),
        ("something without added sugar", "sugar_g", False),
        ("high fibre cereal", "fiber_g", True),
        ("low-calorie vegetables", "energy_kcal", False),
        ("low saturated fat", "sat_fat_g", False),
    ],
)
def test_nutrient_words_become_goals(question: str, nutrient: str, high: bool) -> None:
    q = parse_food_question(question)
    assert q.goals == (NutrientGoal(nutrient, high),)
    assert not q.exclude_allergens  # "without added sugar" is a goal, not an allergen


def test_exclusions_are_hard_filters_and_leave_the_embedded_text() -> None:
    q = parse_food_question("high-protein breakfast without dairy")
    assert q.exclude_allergens == {"milk"}
    # "dairy" here is no food kind: the roles stay breakfast's (soymilk is a dairy-role food without milk).
    assert q.text == "breakfast" and q.roles == food_search.MEAL_ROLES["breakfast"]
    listed = parse_food_question("no eggs or nuts, vegan dinner please")
    assert listed.exclude_allergens == {"egg", "tree_nut", "peanut"}
    assert listed.diets == {"vegan"} and listed.text == "dinner"
    assert parse_food_question("allergic to peanut butter and shellfish").exclude_allergens == {"peanut", "shellfish"}
    assert parse_food_question("soy-free lunch").exclude_allergens == {"soy"}


def test_diet_words_are_patterns_not_nutrients_or_allergens() -> None:
    q = parse_food_question("nut-free gluten-free high-protein snack")
    assert q.diets == {"nut_free", "gluten_free"}
    assert q.goals == (NutrientGoal("protein_g", True),)
    assert not q.exclude_allergens


def test_food_kind_words_narrow_the_meal_roles() -> None:
    assert parse_food_question("fruit snack").roles == {"fruit"}
    assert parse_food_question("low-fat dairy").roles == {"dairy", "cheese"}
    assert parse_food_question("cheddar cheese").roles == {"cheese"}
    assert parse_food_question("something tasty").roles == frozenset()


def test_the_where_filter_and_explicit_flags() -> None:
    q = parse_food_question("vegan breakfast without nuts").with_filters(["sesame"], ["halal"])
    where = q.where()
    assert where.must["kind"] == ["food"] and set(where.must["role"]) == food_search.MEAL_ROLES["breakfast"]
    assert set(where.must_not["allergens"]) == {"tree_nut", "peanut", "sesame"}
    assert set(where.must_not["conflicts_with"]) == {"vegan", "halal"}
    assert where.to_qdrant() is not None  # every field is on the allow-list


def test_the_vocabulary_names_only_values_the_data_has() -> None:
    for _, allergens in food_search._ALLERGEN_WORDS:
        assert allergens <= set(ALLERGENS)
    assert {diet for _, diet in food_search._DIET_WORDS} <= set(PATTERNS)
    roles = set(ROLE_PORTIONS)
    assert all(r <= roles for r in food_search.MEAL_ROLES.values())
    assert all(r <= roles for _, r in food_search._KIND_WORDS)
    assert "role" in FILTER_FIELDS


# --- foods: ranking -------------------------------------------------------------------------------


def test_a_nutrient_goal_outranks_similarity() -> None:
    hits = [
        food("cereal", 0.70, "cereal", protein_g=3.0),
        food("toast", 0.65, "bread", protein_g=3.5),
        food("egg", 0.50, "egg", protein_g=8.0),
        food("yogurt", 0.45, "dairy", protein_g=17.0),
    ]
    query = FoodQuery("breakfast", goals=(NutrientGoal("protein_g", True),))
    assert [h.key for h in rank_foods(query, hits, 2)] == ["food:yogurt", "food:egg"]
    low = FoodQuery("breakfast", goals=(NutrientGoal("protein_g", False),))
    assert rank_foods(low, hits, 1)[0].key == "food:cereal"


def test_similarity_breaks_nutrient_ties_and_a_missing_value_goes_last() -> None:
    hits = [
        food("unknown", 0.90),  # no protein value: SR28 blank, not zero
        food("a", 0.40, protein_g=10.0),
        food("b", 0.60, protein_g=10.0),
    ]
    ranked = rank_foods(FoodQuery("x", goals=(NutrientGoal("protein_g", True),)), hits, 3)
    assert [h.key for h in ranked] == ["food:b", "food:a", "food:unknown"]
    assert ranked[0].score >= ranked[1].score >= ranked[2].score


def test_without_goals_the_index_order_stands() -> None:
    hits = [food("a", 0.9), food("b", 0.8), food("c", 0.7)]
    assert rank_foods(FoodQuery("x"), hits, 2) == hits[:2]
    assert rank_foods(FoodQuery("x"), [], 5) == []


def test_search_foods_asks_the_index_with_the_hard_filters() -> None:
    asked: list[tuple[str, int, VectorFilter]] = []

    def index(text: str, n: int, where: VectorFilter) -> list[Hit]:
        asked.append((text, n, where))
        return [food("egg", 0.5, protein_g=8.0), food("bread", 0.6, "bread", protein_g=3.0)]

    hits = search_foods(index, "high-protein breakfast without dairy", k=1, diets=["halal"])
    assert [h.key for h in hits] == ["food:egg"]
    text, n, where = asked[0]
    assert text == "breakfast" and n == food_search.CANDIDATES
    assert where.must_not == {"allergens": ["milk"], "conflicts_with": ["halal"]}


# --- exercises: parsing ---------------------------------------------------------------------------


def test_hamstring_curl_is_a_primary_muscle_and_a_curl() -> None:
    q = parse_exercise_question("hamstring curl")
    assert q.muscles == {"hamstrings"} and q.stem == "curl"
    assert q.where().must == {"kind": ["exercise"], "primary": ["hamstrings"]}
    assert q.where(widen=True).must == {"kind": ["exercise"], "muscles": ["hamstrings"]}


def test_chest_press_with_a_barbell() -> None:
    q = parse_exercise_question("chest press with a barbell")
    assert (set(q.muscles), set(q.equipment), q.stem) == ({"chest"}, {"barbell"}, "press")
    assert "barbell" not in q.text


@pytest.mark.parametrize(
    ("question", "muscles", "equipment", "levels", "categories"),
    [
        ("barbell back squat", set(), {"barbell"}, set(), set()),  # a back squat works the legs, not "back"
        ("lower back stretch", {"lower back"}, set(), set(), {"stretching"}),
        ("bodyweight leg exercise", {"quadriceps", "hamstrings", "glutes", "calves", "adductors", "abductors"},
         {"body only", "none"}, set(), set()),
        ("easy core exercise without equipment", {"abdominals"}, {"body only", "none"}, {"beginner"}, set()),
        ("advanced plyometric jumps", set(), set(), {"expert"}, {"plyometrics"}),
        ("EZ bar curl for biceps", {"biceps"}, {"e-z curl bar"}, set(), set()),
        ("lat pulldown on a cable", {"lats"}, {"cable"}, set(), set()),
    ],
)  # fmt: skip
def test_exercise_vocabulary(
    question: str, muscles: set[str], equipment: set[str], levels: set[str], categories: set[str]
) -> None:
    q = parse_exercise_question(question)
    assert (set(q.muscles), set(q.equipment), set(q.levels), set(q.categories)) == (
        muscles,
        equipment,
        levels,
        categories,
    )


def test_the_exercise_vocabulary_names_only_values_the_data_has() -> None:
    data = load_exercises()
    muscles = {m for e in data for m in (*e.primary_muscles, *e.secondary_muscles)}
    equipment = {e.equipment or "none" for e in data}
    assert all(set(names) <= muscles for _, names in exercise_search._MUSCLE_WORDS)
    assert all(set(names) <= equipment for _, names in exercise_search._EQUIPMENT_WORDS)
    assert {c for _, c in exercise_search._CATEGORY_WORDS} <= {e.category for e in data}


def test_explicit_flags_filter_on_any_muscle_worked() -> None:
    q = parse_exercise_question("pulling movement").with_filters(["cable"], ["lats"], ["beginner"])
    assert q.where().must == {"kind": ["exercise"], "muscles": ["lats"], "equipment": ["cable"], "level": ["beginner"]}


# --- exercises: ranking ---------------------------------------------------------------------------


def test_the_movement_asked_for_outranks_a_closer_vector() -> None:
    hits = [
        move("Romanian Deadlift", 0.62, mechanic="compound", force="pull"),
        move("Hamstring Stretch", 0.61, category="stretching"),
        move("Lying Leg Curls", 0.50, mechanic="isolation", force="pull"),
    ]
    ranked = rank_exercises(parse_exercise_question("hamstring curl"), hits, 3)
    assert [h.key for h in ranked] == [
        "exercise:Lying Leg Curls",
        "exercise:Romanian Deadlift",
        "exercise:Hamstring Stretch",
    ]


def test_a_stretch_asked_for_is_not_pushed_down() -> None:
    hits = [move("Good Morning", 0.6), move("Hamstring Stretch", 0.55, category="stretching")]
    ranked = rank_exercises(parse_exercise_question("hamstring stretch"), hits, 1)
    assert ranked[0].key == "exercise:Hamstring Stretch"


def test_search_widens_to_any_muscle_worked_when_too_few_have_it_as_primary() -> None:
    asked: list[Mapping[str, Sequence[str]]] = []

    def index(text: str, n: int, where: VectorFilter) -> list[Hit]:
        asked.append(where.must)
        if "primary" in where.must:
            return [move("Barbell Bench Press", 0.5, "chest")]
        return [move("Barbell Bench Press", 0.5, "chest"), move("JM Press", 0.6, "triceps")]

    hits = search_exercises(index, "chest press with a barbell", k=2)
    assert [m.get("primary") for m in asked] == [["chest"], None]
    assert asked[1]["muscles"] == ["chest"]
    assert [h.key for h in hits] == ["exercise:Barbell Bench Press", "exercise:JM Press"]  # primary match first
