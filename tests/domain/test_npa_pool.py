"""The food pool holds foods a person would recognise, in the state they are eaten: named cases."""

from __future__ import annotations

import pytest

from npa.diet import allergens_of, conflicting_patterns
from npa.foods import Food, load_foods
from npa.pool import candidate_pool


@pytest.fixture(scope="module")
def by_description() -> dict[str, Food]:
    return {f.description: f for f in load_foods()}


@pytest.fixture(scope="module")
def pool_roles() -> dict[str, str]:
    return {c.food.description: c.role for c in candidate_pool()}


@pytest.mark.parametrize(
    "description",
    [
        "Pokeberry shoots, (poke), raw",  # toxic raw
        "Taro, raw",  # calcium oxalate: must be cooked
        "Yautia (tannier), raw",
        "Lima beans, immature seeds, raw",  # cyanogenic glycosides raw
        "Elderberries, raw",
        "Potato, flesh and skin, raw",  # 300 g raw potato was served as a vegetable
        "Squash, winter, acorn, raw",
        "Garlic, raw",  # 272 g a day was served: a condiment, never a portion
        "Peppers, hot chili, green, raw",
        "Peppers, jalapeno, raw",
        "Wasabi, root, raw",
        "Nuts, coconut milk, raw (liquid expressed from grated meat and water)",  # a cooking ingredient
    ],
)
def test_unsafe_inedible_and_condiments_are_out(
    description: str, by_description: dict[str, Food], pool_roles: dict[str, str]
) -> None:
    assert description in by_description  # the name is right: the food exists in SR28
    assert description not in pool_roles


@pytest.mark.parametrize(
    ("description", "role"),
    [
        ("Potatoes, baked, flesh, without salt", "grain"),  # cooked potatoes were kept out
        ("Sweet potato, cooked, baked in skin, without salt", "grain"),
        ("Tortillas, ready-to-bake or -fry, corn", "bread"),
        ("Broccoli, cooked, boiled, drained, without salt", "vegetable"),
        ("Lettuce, cos or romaine, raw", "vegetable"),
        ("Bananas, raw", "fruit"),
        ("Oil, olive, salad or cooking", "fat"),
    ],
)
def test_common_foods_are_in_with_their_role(description: str, role: str, pool_roles: dict[str, str]) -> None:
    assert pool_roles.get(description) == role


def test_oats_are_in_as_cooked_porridge(pool_roles: dict[str, str]) -> None:
    oats = [d for d, role in pool_roles.items() if d.lower().startswith("cereals, oats") and role == "grain"]
    assert oats and all("cooked" in d.lower() for d in oats)
    assert not any(d.lower().startswith("cereals, oats") and "dry" in d.lower() for d in pool_roles)


def test_accompaniments_stay_small() -> None:
    for c in candidate_pool():
        if c.role == "fat":
            assert c.unit_grams * c.max_count <= 15.0, c.food.description  # a tablespoon a meal
        if c.role == "legume":
            assert c.unit_grams * c.max_count <= 200.0, c.food.description  # about a cup a meal


@pytest.mark.parametrize(
    ("description", "absent_allergens", "absent_conflicts"),
    [
        ("Tortillas, ready-to-bake or -fry, corn", {"wheat", "gluten"}, {"gluten_free"}),
        ("English muffins, plain, enriched, with ca prop (includes sourdough)", {"egg", "milk"}, {"vegan"}),
        ("Mushrooms, oyster, raw", {"shellfish"}, {"vegan", "vegetarian", "kosher"}),
        ("Salsify, (vegetable oyster), raw", {"shellfish"}, {"vegan", "vegetarian"}),
        ("Nuts, coconut milk, raw (liquid expressed from grated meat and water)", {"milk"}, {"vegetarian", "vegan"}),
        ("Cabbage, common (danish, domestic, and pointed types), freshly harvest, raw", {"egg", "milk"}, {"vegan"}),
    ],
)
def test_look_alike_names_are_not_over_marked(
    description: str, absent_allergens: set[str], absent_conflicts: set[str], by_description: dict[str, Food]
) -> None:
    food = by_description[description]
    assert not allergens_of(food) & absent_allergens
    assert not conflicting_patterns(food) & absent_conflicts


def test_conservative_marks_stay(by_description: dict[str, Food]) -> None:
    flour = by_description["Tortillas, ready-to-bake or -fry, flour, refrigerated"]
    assert {"wheat", "gluten"} <= allergens_of(flour)
    assert "wheat" in allergens_of(
        by_description["English muffins, plain, enriched, with ca prop (includes sourdough)"]
    )
    assert "shellfish" in allergens_of(by_description["Mollusks, oyster, eastern, wild, raw"])
    assert "tree_nut" in allergens_of(
        by_description["Nuts, coconut milk, raw (liquid expressed from grated meat and water)"]
    )
    assert {"egg", "milk"} <= allergens_of(by_description["Danish pastry, cheese"])
