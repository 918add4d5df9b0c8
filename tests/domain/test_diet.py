"""The USDA parsers load every row, and allergen / pattern derivation is right on hand-picked foods."""

from __future__ import annotations

import pytest

from npa.diet import ALLERGEN_PATTERN_CONFLICTS, ALLERGENS, PATTERNS, allergens_of, conflicting_patterns
from npa.foods import Food, load_foods, load_groups
from wpa.exercises import complements, load_exercises, movement_stem, progressions


@pytest.fixture(scope="module")
def foods() -> dict[str, Food]:
    return {f.ndb_no: f for f in load_foods()}


def test_parsers_load_every_row(foods: dict[str, Food]) -> None:
    assert len(foods) == 8463
    assert len(load_groups()) == 25
    butter = foods["01001"]
    assert butter.group == "Dairy and Egg Products"
    assert butter.nutrients["energy_kcal"] == 717.0
    assert any(m.description == "cup" and m.grams == 227.0 for m in butter.measures)
    # An empty field is "no value", not zero: some foods lack a fibre value.
    assert any("fiber_g" not in f.nutrients for f in foods.values())


@pytest.mark.parametrize(
    ("ndb_no", "expected"),
    [
        ("21502", {"tree_nut", "milk", "wheat", "gluten"}),  # KASHI Pizza, Basil Pesto
        ("22987", {"tree_nut", "milk"}),  # KASHI Pesto Pasta Primavera
        ("06618", {"peanut"}),  # Sauce, peanut (satay-style)
        ("12166", {"sesame"}),  # tahini
        ("16158", {"sesame"}),  # Hummus, commercial
        ("15109", {"fish"}),  # Fish, surimi
        ("15138", {"fish", "shellfish"}),  # imitation crab made from surimi
        ("16112", {"soy"}),  # Miso
        ("16114", {"soy"}),  # Tempeh
        ("01001", {"milk"}),  # Butter, salted
        ("04708", {"egg"}),  # Mayonnaise, reduced fat
        ("20029", {"wheat", "gluten"}),  # Couscous, cooked
        ("20012", {"wheat", "gluten"}),  # Bulgur, dry
        ("12138", {"tree_nut", "peanut"}),  # mixed nuts "without peanuts": conservative
    ],
)
def test_hidden_allergens_are_found(foods: dict[str, Food], ndb_no: str, expected: set[str]) -> None:
    assert expected <= allergens_of(foods[ndb_no])


@pytest.mark.parametrize(
    ("ndb_no", "absent"),
    [
        ("11209", {"egg"}),  # Eggplant, raw
        ("16098", {"milk"}),  # Peanut butter: not milk
        ("11250", {"milk"}),  # Lettuce, butterhead
        ("11477", set(ALLERGENS)),  # zucchini: nothing
    ],
)
def test_look_alikes_are_not_marked(foods: dict[str, Food], ndb_no: str, absent: set[str]) -> None:
    assert not (absent & allergens_of(foods[ndb_no]))


def test_satay_keyword_on_a_built_food() -> None:
    food = Food("99999", "Chicken satay with sauce", "", "2200", "Meals", {}, ())
    assert "peanut" in allergens_of(food)
    assert {"vegetarian", "vegan", "pescatarian"} <= conflicting_patterns(food)


@pytest.mark.parametrize(
    ("ndb_no", "patterns"),
    [
        ("07028", {"halal", "kosher", "vegetarian"}),  # Ham, sliced
        ("14096", {"halal", "kosher"}),  # red wine
        ("15148", {"kosher", "vegetarian", "vegan"}),  # lobster
        ("05062", {"vegetarian", "vegan", "pescatarian"}),  # chicken breast
        ("01001", {"vegan", "dairy_free"}),  # butter
        ("21502", {"gluten_free", "nut_free", "vegan", "dairy_free"}),  # pesto pizza
    ],
)
def test_patterns(foods: dict[str, Food], ndb_no: str, patterns: set[str]) -> None:
    assert patterns <= conflicting_patterns(foods[ndb_no])


def test_permitted_species_are_not_marked_halal(foods: dict[str, Food]) -> None:
    assert "halal" not in conflicting_patterns(foods["05062"])  # chicken: buy certified
    assert "kosher" in conflicting_patterns(foods["15148"])  # lobster: never


def test_allergen_pattern_map_is_complete() -> None:
    assert set(ALLERGEN_PATTERN_CONFLICTS) == set(ALLERGENS)
    assert all(p in PATTERNS for ps in ALLERGEN_PATTERN_CONFLICTS.values() for p in ps)


def test_exercises_and_relations() -> None:
    exercises = load_exercises()
    assert len(exercises) == 873
    by_id = {e.id: e for e in exercises}
    pairs = complements(exercises)
    assert 0 < len(pairs) <= 3 * len(exercises)
    antagonists = {("biceps", "triceps"), ("quadriceps", "hamstrings"), ("chest", "lats"), ("chest", "middle back")}
    assert all(
        tuple(sorted((by_id[a].primary, by_id[b].primary))) in {tuple(sorted(p)) for p in antagonists}
        or {by_id[a].primary, by_id[b].primary}
        in ({"shoulders", "lats"}, {"abdominals", "lower back"}, {"adductors", "abductors"})
        for a, b in pairs
    )
    steps = progressions(exercises)
    assert 0 < len(steps) <= 3 * len(exercises)
    levels = ("beginner", "intermediate", "expert")
    for a, b in steps:
        assert by_id[a].primary == by_id[b].primary
        assert levels.index(by_id[b].level) == levels.index(by_id[a].level) + 1
        assert movement_stem(by_id[a].name) == movement_stem(by_id[b].name)
    assert movement_stem("Push Ups - Close Triceps Position") == "push-up"
