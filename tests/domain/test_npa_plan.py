"""Meal plans for hand-checked profiles pass every checker rule; bad input and impossible requests fail clearly."""

from __future__ import annotations

import dataclasses
import re
from types import MappingProxyType

import pytest

from npa.checks import check_meal_plan
from npa.errors import Infeasible, InvalidProfile
from npa.foods import Food, load_foods
from npa.model import MealPlan, render_text
from npa.plan import plan_meals
from npa.profile import parse_profile, targets

PROFILES: dict[str, dict[str, object]] = {
    "vegan with a strict peanut allergy": {
        "sex": "female",
        "age": 28,
        "height_cm": 168,
        "weight_kg": 62,
        "activity": "light",
        "goal": "maintain",
        "restrictions": ["vegan", {"name": "peanut", "type": "allergy", "severity": "strict"}],
    },
    "lactose intolerant, losing weight": {
        "sex": "male",
        "age": 45,
        "height_cm": 180,
        "weight_kg": 95,
        "activity": "sedentary",
        "goal": "lose",
        "rate_kg_per_week": 0.75,
        "meals_per_day": 4,
        "restrictions": [{"name": "dairy_free", "type": "intolerance", "severity": "strict"}],
    },
    "halal, gaining, 14 days": {
        "sex": "male",
        "age": 22,
        "height_cm": 175,
        "weight_kg": 65,
        "activity": "active",
        "goal": "gain",
        "meals_per_day": 5,
        "days": 14,
        "restrictions": [{"name": "halal", "type": "religious", "severity": "strict"}],
    },
    "kosher and gluten free, two meals": {
        "sex": "female",
        "age": 60,
        "height_cm": 160,
        "weight_kg": 70,
        "activity": "sedentary",
        "goal": "maintain",
        "meals_per_day": 2,
        "dislikes": ["okra"],
        "restrictions": [
            {"name": "kosher", "type": "religious", "severity": "strict"},
            {"name": "gluten_free", "type": "allergy", "severity": "strict"},
        ],
    },
}


@pytest.fixture(scope="module")
def foods() -> dict[str, Food]:
    return {f.ndb_no: f for f in load_foods()}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_plan_passes_every_rule(name: str, foods: dict[str, Food]) -> None:
    profile = parse_profile(PROFILES[name])
    plan = plan_meals(profile, training_kcal_per_week=1200.0)
    assert check_meal_plan(profile, plan, foods) == []
    assert len(plan.days) == profile.days
    assert "Day 1" in render_text(plan)


def test_strict_allergen_never_appears(foods: dict[str, Food]) -> None:
    profile = parse_profile(PROFILES["vegan with a strict peanut allergy"])
    plan = plan_meals(profile, seed=3)
    names = [item.name.lower() for d in plan.days for m in d.meals for item in m.items]
    assert not any(re.search(r"\bpeanut|\bmilk\b|^eggs?\b|^chicken|^beef", n) for n in names)


def test_same_input_same_plan_and_round_trip() -> None:
    profile = parse_profile(PROFILES["lactose intolerant, losing weight"])
    a = plan_meals(profile, seed=7)
    b = plan_meals(profile, seed=7)
    assert a.to_dict() == b.to_dict()
    assert MealPlan.from_dict(a.to_dict()) == a
    assert plan_meals(profile, seed=8).to_dict() != a.to_dict()


def test_training_energy_raises_target_without_double_counting() -> None:
    profile = parse_profile({"sex": "male", "age": 30, "height_cm": 180, "weight_kg": 80, "activity": "active"})
    plain = targets(profile)
    trained = targets(profile, 2100.0)
    bmr = 10 * 80 + 6.25 * 180 - 5 * 30 + 5
    assert plain.energy_kcal == pytest.approx(bmr * 1.725, abs=0.1)
    assert trained.energy_kcal == pytest.approx(bmr * 1.375 + 300.0, abs=0.1)


def test_loss_floor() -> None:
    profile = parse_profile(
        {"sex": "female", "age": 70, "height_cm": 150, "weight_kg": 50, "goal": "lose", "rate_kg_per_week": 1.0}
    )
    goal = targets(profile)
    assert goal.floor_applied and goal.energy_kcal == 1200.0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"age": 12}, "age"),
        ({"sex": "x"}, "sex"),
        ({"weight_kg": 250, "height_cm": 130}, "weight_kg"),
        ({"goal": "lose", "rate_kg_per_week": 2.0}, "rate_kg_per_week"),
        ({"days": 15}, "days"),
        ({"meals_per_day": 1}, "meals_per_day"),
        ({"restrictions": [{"name": "kryptonite"}]}, "restrictions[0].name"),
        ({"restrictions": [{"name": "egg", "severity": "very"}]}, "restrictions[0].severity"),
        ({"dislikes": [""]}, "dislikes[0]"),
    ],
)
def test_invalid_profile_names_field(change: dict[str, object], field: str) -> None:
    doc = {"sex": "female", "age": 30, "height_cm": 165, "weight_kg": 60} | change
    with pytest.raises(InvalidProfile) as error:
        parse_profile(doc)
    assert error.value.field == field
    assert field in str(error.value)


def test_infeasible_names_conflicts() -> None:
    profile = parse_profile(
        {
            "sex": "male",
            "age": 25,
            "height_cm": 200,
            "weight_kg": 150,
            "activity": "very_active",
            "goal": "gain",
            "meals_per_day": 2,
            "restrictions": ["vegan", "soy", "tree_nut", "peanut", "gluten_free", "sesame"],
        }
    )
    with pytest.raises(Infeasible) as error:
        plan_meals(profile)
    assert error.value.conflicts
    assert any("strict" in c or "protein" in c for c in error.value.conflicts)


def _first_item_swapped(plan: MealPlan, food: Food, grams: float) -> MealPlan:
    day = plan.days[0]
    meal = day.meals[0]
    item = dataclasses.replace(meal.items[0], ndb_no=food.ndb_no, name=food.description, grams=grams, count=1)
    meals = (dataclasses.replace(meal, items=(item, *meal.items[1:])), *day.meals[1:])
    return dataclasses.replace(plan, days=(dataclasses.replace(day, meals=meals), *plan.days[1:]))


def test_checker_catches_planted_violations(foods: dict[str, Food]) -> None:
    profile = parse_profile(PROFILES["vegan with a strict peanut allergy"])
    plan = plan_meals(profile)
    assert check_meal_plan(profile, plan, foods) == []
    bad = _first_item_swapped(plan, foods["06618"], 700.0)  # peanut sauce, 700 g
    rules = {v.rule for v in check_meal_plan(profile, bad, foods)}
    assert {"restriction", "portion", "totals"} <= rules
    day = plan.days[0]
    halved = dataclasses.replace(
        day, totals=MappingProxyType({k: v / 2 for k, v in day.totals.items()}), meals=day.meals[:1]
    )
    short = dataclasses.replace(plan, days=(halved,))
    rules = {v.rule for v in check_meal_plan(profile, short, foods)}
    assert {"structure", "energy", "protein"} <= rules
    same = dataclasses.replace(plan, days=tuple(dataclasses.replace(plan.days[0], day=i + 1) for i in range(7)))
    assert "variety" in {v.rule for v in check_meal_plan(profile, same, foods)}


def test_workout_energy_feeds_the_meal_plan(foods: dict[str, Food]) -> None:
    from wpa import parse_request, plan_workouts

    workout = plan_workouts(
        parse_request(
            {
                "goal": "fat_loss",
                "days_per_week": 4,
                "session_minutes": 60,
                "body_mass_kg": 95,
                "equipment": ["dumbbell", "machine"],
            }
        )
    )
    profile = parse_profile(PROFILES["lactose intolerant, losing weight"])
    plain = plan_meals(profile)
    trained = plan_meals(profile, training_kcal_per_week=workout.weekly_expenditure_kcal)
    assert trained.training_kcal_per_week == workout.weekly_expenditure_kcal > 0
    assert trained.targets.training_kcal_per_day == pytest.approx(workout.weekly_expenditure_kcal / 7, abs=0.1)
    assert check_meal_plan(profile, trained, foods) == []
    assert trained.targets.energy_kcal >= plain.targets.energy_kcal


def test_soft_restrictions_and_dislikes_are_avoided_when_possible() -> None:
    doc = {
        "sex": "female",
        "age": 35,
        "height_cm": 170,
        "weight_kg": 65,
        "activity": "moderate",
        "dislikes": ["spinach", "egg"],
        "restrictions": [{"name": "fish", "type": "preference", "severity": "moderate"}],
    }
    plan = plan_meals(parse_profile(doc))
    names = [item.name.lower() for d in plan.days for m in d.meals for item in m.items]
    assert not any(re.search(r"\bspinach\b|^eggs?\b|^fish\b", n) for n in names)


def test_checker_catches_meat_with_milk_for_kosher(foods: dict[str, Food]) -> None:
    profile = parse_profile(PROFILES["kosher and gluten free, two meals"])
    plan = plan_meals(profile)
    day = plan.days[0]
    dinner = day.meals[-1]
    cheese, beef = foods["01009"], foods["13023"] if "13023" in foods else foods["05062"]
    extra = dataclasses.replace(dinner.items[0], ndb_no=cheese.ndb_no, name=cheese.description, grams=28.0, count=1)
    meat = dataclasses.replace(dinner.items[0], ndb_no=beef.ndb_no, name=beef.description)
    bad_dinner = dataclasses.replace(dinner, items=(meat, extra, *dinner.items[1:]))
    bad_day = dataclasses.replace(day, meals=(*day.meals[:-1], bad_dinner))
    bad = dataclasses.replace(plan, days=(bad_day, *plan.days[1:]))
    assert "kosher" in {v.rule for v in check_meal_plan(profile, bad, foods)}
