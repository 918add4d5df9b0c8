"""Portions a person eats at one meal (household maxima per food); snacks that are not protein meals. Hand-checked."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

from npa.checks import _household_max, check_meal_plan
from npa.foods import Food, load_foods
from npa.model import MealPlan, PlanItem
from npa.plan import plan_meals
from npa.pool import Candidate, candidate_pool
from npa.profile import parse_profile

# The bench's gain profile: 3,102 kcal, protein 104-143 g, five meals (two snacks).
GAIN = {
    "sex": "male",
    "age": 22,
    "height_cm": 175,
    "weight_kg": 65,
    "activity": "active",
    "goal": "gain",
    "meals_per_day": 5,
    "restrictions": [{"name": "halal", "type": "religious"}],
}
# By hand: a snack's share is 0.10 / (0.25 + 0.10 + 0.325 + 0.10 + 0.325) = 0.0909 of the day, so
# its cap is 1.3 x 0.0909 x 143 g = 16.9 g of protein.
GAIN_SNACK_PROTEIN_MAX_G = 16.9


@pytest.fixture(scope="module")
def foods() -> dict[str, Food]:
    return {f.ndb_no: f for f in load_foods()}


def candidate(description: str) -> Candidate:
    return next(c for c in candidate_pool() if c.food.description.lower().startswith(description.lower()))


@pytest.mark.parametrize(
    ("description", "measure", "most"),
    [
        ("Seeds, chia seeds, dried", "1 oz", 1),  # 1 oz (about 2 tbsp), not 2 oz
        ("Nuts, almond butter", "1 tbsp", 2),  # 2 tbsp, not 3
        ("Bananas, raw", "1 medium", 2),  # two bananas, not three
        ("Cereals ready-to-eat, GENERAL MILLS, CHEERIOS", "1 cup", 2),  # 2 servings, not 3
        ("Cheese, cottage, lowfat, 2% milkfat", "1 cup", 1),  # 1 cup, not 2
        ("Egg, whole, cooked, hard-boiled", "1 large", 3),
        ("Oil, olive, salad or cooking", "1 tablespoon", 1),
        ("Butter, without salt", "1 tbsp", 1),
    ],
)  # fmt: skip
def test_named_foods_have_household_maxima(description: str, measure: str, most: int) -> None:
    c = candidate(description)
    assert c.measure.text(1).startswith(measure), c.measure.text(1)
    assert c.max_count == most


def test_every_pool_portion_is_within_the_checkers_own_household_maxima() -> None:
    # Two tables written apart (npa.pool and npa.checks): the largest portion the planner may give
    # is never one the checker calls too much. (Cashew butter once slipped through the pool's list.)
    limited = 0
    for c in candidate_pool():
        limit = _household_max(c.food)
        if limit is not None:
            limited += 1
            assert c.unit_grams * c.max_count <= limit[0] * 1.02, (c.food.description, c.max_count, limit)
    assert limited >= 250  # most of the pool has a household maximum (eggs, meat, fish, dairy, nuts...)


def test_snacks_stay_under_their_protein_cap() -> None:
    plan = plan_meals(parse_profile(GAIN), seed=1)
    snacks = [m for d in plan.days for m in d.meals if "snack" in m.slot]
    assert len(snacks) == 14
    assert max(m.total("protein_g") for m in snacks) <= GAIN_SNACK_PROTEIN_MAX_G + 0.05


def _with_item(plan: MealPlan, day_no: int, slot: str, food: Food, grams: float, count: int) -> MealPlan:
    """``plan`` with ``food`` (``grams``) added to one meal; nutrients as the planner would state them."""
    nutrients = {k: round(food.nutrients.get(k, 0.0) * grams / 100.0, 2) for k in plan.days[0].totals}
    item = PlanItem(food.ndb_no, food.description, "dairy", count, "planted", grams, MappingProxyType(nutrients))
    days = []
    for day in plan.days:
        if day.day == day_no:
            meals = tuple(dataclasses.replace(m, items=(*m.items, item)) if m.slot == slot else m for m in day.meals)
            totals = {k: round(v + nutrients.get(k, 0.0), 1) for k, v in day.totals.items()}
            day = dataclasses.replace(day, meals=meals, totals=MappingProxyType(totals))
        days.append(day)
    return dataclasses.replace(plan, days=tuple(days))


def test_the_checker_catches_a_protein_snack_and_odd_portions(foods: dict[str, Food]) -> None:
    profile = parse_profile(GAIN)
    plan = plan_meals(profile, seed=1)
    assert check_meal_plan(profile, plan, foods) == []
    greek = next(f for f in foods.values() if f.description.startswith("Yogurt, Greek, plain, nonfat"))
    # Two containers of Greek yogurt (2 x 170 g, about 35 g protein) as a morning snack.
    heavy_snack = _with_item(plan, 1, "morning snack", greek, 340.0, 2)
    found = check_meal_plan(profile, heavy_snack, foods)
    assert any(v.rule == "meal" and v.meal == "morning snack" and "snack" in v.detail for v in found), found

    def portions(food: Food, grams: float, count: int, slot: str = "lunch") -> list[str]:
        return [v.detail for v in check_meal_plan(profile, _with_item(plan, 2, slot, food, grams, count), foods)]

    egg = next(f for f in foods.values() if f.description == "Egg, whole, cooked, hard-boiled")
    assert any("3 large eggs" in d for d in portions(egg, 200.0, 4))  # 4 eggs
    assert not any("3 large eggs" in d for d in portions(egg, 150.0, 3))  # 3 are fine
    oil = foods["04053"]  # olive oil
    assert any("1 tbsp of oil" in d for d in portions(oil, 27.0, 2))
    chia = next(f for f in foods.values() if f.description == "Seeds, chia seeds, dried")
    assert any("1 oz of chia" in d for d in portions(chia, 56.7, 2, "afternoon snack"))
    chicken = next(f for f in foods.values() if f.description.startswith("Chicken, broilers or fryers, breast"))
    assert any("9 oz of meat" in d for d in portions(chicken, 340.0, 4))
