"""Meal plan checker, independent of the planner (it imports no planner code).

Theory of operation: ``check_meal_plan`` re-derives what a correct plan must satisfy from the
profile and the USDA data alone, and reports every ``Violation`` it finds (an empty list means
the plan passed). Rules:

- ``structure``: one day per profile day, ``meals_per_day`` non-empty meals per day.
- ``restriction``: no item conflicts with a *strict* restriction, by ``npa.diet`` on the USDA
  food *and* by this module's own second keyword list of hidden allergens (a miss in the
  derivation is caught here); every item exists in the USDA data.
- ``energy``: each day's energy within +-10 % of a target recomputed here (Mifflin-St Jeor x
  activity factor, training and goal as documented in ``npa.profile``; the constants are
  repeated on purpose so that a planner-side error shows up as a violation).
- ``protein`` (at least 1.2 / 1.6 g/kg by goal, capped at 35 % x 0.9 of energy, never under
  0.8 g/kg) and ``fibre`` (at least 14 g / 1,000 kcal), with 2 % tolerance.
- ``portion``: integer counts 1-4, grams 1-600 per item, grams consistent with the food's
  household measures, added fat at most 30 g a day.
- ``totals``: the day's reported totals equal the sum recomputed from USDA per-100 g values.
- ``kosher``: meat and milk never in the same meal when kosher is strict.
- ``variety``: no food (added fats aside) on more than 3 days in 7 (``ceil(3 x days / 7)``, at
  least 2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from npa.diet import ALLERGENS, allergens_of, conflicting_patterns
from npa.foods import Food
from npa.model import MealPlan
from npa.profile import Profile

__all__ = ["Violation", "check_meal_plan"]


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken rule and where: ``day`` (1-based), ``meal`` (slot), ``item`` (NDB_No) when known."""

    rule: str
    detail: str
    day: int | None = None
    meal: str | None = None
    item: str | None = None


# A second, independent list of words that betray an allergen (deliberately overlapping npa.diet).
_HIDDEN: Mapping[str, tuple[str, ...]] = {
    "peanut": ("peanut", "satay", "groundnut", "arachis"),
    "tree_nut": (
        "almond",
        "cashew",
        "pecan",
        "walnut",
        "hazelnut",
        "filbert",
        "pistachio",
        "macadamia",
        "pine nut",
        "pesto",
        "marzipan",
        "praline",
        "nougat",
        "nutella",
        "brazil",
    ),
    "milk": ("milk", "cheese", "butter", "cream", "yogurt", "whey", "casein", "ghee", "lactose", "kefir", "curd"),
    "egg": ("egg", "mayonnaise", "meringue", "albumen", "custard"),
    "soy": ("soy", "tofu", "tempeh", "miso", "edamame", "natto", "tamari"),
    "wheat": (
        "wheat",
        "bulgur",
        "couscous",
        "semolina",
        "seitan",
        "spelt",
        "farina",
        "durum",
        "bread",
        "pasta",
        "spaghetti",
        "macaroni",
        "noodle",
        "bagel",
        "pita",
        "muffin",
        "tortilla",
    ),
    "gluten": (
        "wheat",
        "barley",
        "rye",
        "malt",
        "oat",
        "bulgur",
        "couscous",
        "semolina",
        "seitan",
        "spelt",
        "bread",
        "pasta",
        "spaghetti",
        "macaroni",
        "noodle",
        "bagel",
        "pita",
        "muffin",
    ),
    "fish": ("fish", "salmon", "tuna", "cod", "anchov", "sardine", "surimi", "trout", "halibut", "herring"),
    "shellfish": ("shrimp", "crab", "lobster", "clam", "mussel", "oyster", "scallop", "squid", "crustacean", "mollus"),
    "sesame": ("sesame", "tahini", "hummus", "halva"),
}
_NOT_HIDDEN = (
    "peanut butter",
    "coconut cream",
    "milkfish",
    "breadfruit",
    "breadnut",
    "butterhead",
    "almond butter",
    "cashew butter",
    "nut butter",
    "sesame butter",
    "seed butter",
    "apple butter",
    "coconut milk",
    "soymilk",
    "eggplant",
    "butternut",
    "butter beans",
    "cocoa butter",
    "buckwheat",
)
_MEAT_GROUPS = frozenset({"0500", "0700", "1000", "1300", "1700"})
_FACTORS = {"sedentary": 1.2, "light": 1.375, "moderate": 1.55, "active": 1.725, "very_active": 1.9}
_PROTEIN = {"lose": 1.6, "maintain": 1.2, "gain": 1.6}
_ENERGY_BAND = 0.10
_TOLERANCE = 0.02


def _energy_target(profile: Profile, training_kcal_per_week: float) -> float:
    bmr = 10 * profile.weight_kg + 6.25 * profile.height_cm - 5 * profile.age + (5 if profile.sex == "male" else -161)
    factor = _FACTORS[profile.activity]
    if training_kcal_per_week > 0:
        factor = min(factor, 1.375)
    tdee = bmr * factor + training_kcal_per_week / 7
    shift = profile.rate_kg_per_week * 7700 / 7
    if profile.goal == "lose":
        return max(tdee - shift, bmr, 1200.0 if profile.sex == "female" else 1500.0)
    return tdee + shift if profile.goal == "gain" else tdee


def _hidden(description: str) -> frozenset[str]:
    text = description.lower()
    for phrase in _NOT_HIDDEN:
        text = text.replace(phrase, " ")
    return frozenset(a for a, words in _HIDDEN.items() if any(re.search(r"\b" + w, text) for w in words))


def check_meal_plan(profile: Profile, plan: MealPlan, foods_by_id: Mapping[str, Food]) -> list[Violation]:
    """Every rule of the module docstring that ``plan`` breaks for ``profile`` (empty: none)."""
    out: list[Violation] = []
    if len(plan.days) != profile.days:
        out.append(Violation("structure", f"{len(plan.days)} days planned, profile asks {profile.days}"))
    strict = profile.strict()
    energy = _energy_target(profile, plan.training_kcal_per_week)
    protein_min = min(_PROTEIN[profile.goal] * profile.weight_kg, 0.35 * energy / 4 * 0.9)
    protein_min = max(protein_min, 0.8 * profile.weight_kg)
    fibre_min = 14.0 * energy / 1000.0
    uses: dict[str, int] = {}
    for day in plan.days:
        for ndb in {item.ndb_no for meal in day.meals for item in meal.items}:
            food = foods_by_id.get(ndb)
            if food is not None and not (food.group_code == "0400" or food.description.lower().startswith("butter")):
                uses[ndb] = uses.get(ndb, 0) + 1
    uses_max = max(2, math.ceil(3 * len(plan.days) / 7))
    for ndb, n in sorted(uses.items()):
        if n > uses_max:
            out.append(Violation("variety", f"on {n} days (at most {uses_max} in {len(plan.days)} days)", item=ndb))
    for day in plan.days:
        if len(day.meals) != profile.meals_per_day:
            out.append(Violation("structure", f"{len(day.meals)} meals, profile asks {profile.meals_per_day}", day.day))
        sums: dict[str, float] = {}
        fat_added = 0.0
        for meal in day.meals:
            if not meal.items:
                out.append(Violation("structure", "empty meal", day.day, meal.slot))
            has_meat = has_milk = False
            for item in meal.items:
                where = (day.day, meal.slot, item.ndb_no)
                food = foods_by_id.get(item.ndb_no)
                if food is None:
                    out.append(Violation("restriction", f"{item.ndb_no} is not a USDA food", *where))
                    continue
                found = allergens_of(food) | _hidden(food.description) | _hidden(item.name)
                conflicts = conflicting_patterns(food)
                for name in sorted(strict):
                    bad = name in found if name in ALLERGENS else name in conflicts
                    if not bad and name == "vegan":
                        bad = bool(found & {"milk", "egg", "fish", "shellfish"})
                    if not bad and name in {"dairy_free"}:
                        bad = "milk" in found
                    if not bad and name == "gluten_free":
                        bad = bool(found & {"wheat", "gluten"})
                    if not bad and name == "nut_free":
                        bad = bool(found & {"peanut", "tree_nut"})
                    if bad:
                        out.append(Violation("restriction", f"strict {name!r} broken by {food.description!r}", *where))
                has_meat = has_meat or food.group_code in _MEAT_GROUPS
                has_milk = has_milk or "milk" in found
                if not (isinstance(item.count, int) and 1 <= item.count <= 4):
                    out.append(Violation("portion", f"count {item.count} outside 1-4", *where))
                if not 1.0 <= item.grams <= 600.0:
                    out.append(Violation("portion", f"{item.grams:g} g outside 1-600 g", *where))
                if food.measures and not any(abs(m.grams * item.count - item.grams) <= 0.6 for m in food.measures):
                    out.append(Violation("portion", f"{item.grams:g} g is not a count of a household measure", *where))
                if food.group_code == "0400" or food.description.lower().startswith("butter"):
                    fat_added += item.grams
                for key in ("energy_kcal", "protein_g", "fat_g", "carbohydrate_g", "fiber_g"):
                    sums[key] = sums.get(key, 0.0) + food.nutrients.get(key, 0.0) * item.grams / 100.0
            if "kosher" in strict and has_meat and has_milk:
                out.append(Violation("kosher", "meat and milk in the same meal", day.day, meal.slot))
        if fat_added > 30.0:
            out.append(Violation("portion", f"{fat_added:.0f} g of added fat (over 30 g)", day.day))
        for key, value in sums.items():
            reported = day.totals.get(key, float("nan"))
            if not abs(reported - value) <= max(1.0, 0.01 * value):
                out.append(Violation("totals", f"{key} reported {reported:g}, recomputed {value:.1f}", day.day))
        kcal = sums.get("energy_kcal", 0.0)
        if abs(kcal - energy) > _ENERGY_BAND * energy:
            out.append(Violation("energy", f"{kcal:.0f} kcal, target {energy:.0f} +-{_ENERGY_BAND:.0%}", day.day))
        if sums.get("protein_g", 0.0) < protein_min * (1 - _TOLERANCE):
            out.append(
                Violation("protein", f"{sums.get('protein_g', 0.0):.0f} g, minimum {protein_min:.0f} g", day.day)
            )
        if sums.get("fiber_g", 0.0) < fibre_min * (1 - _TOLERANCE):
            out.append(Violation("fibre", f"{sums.get('fiber_g', 0.0):.0f} g, minimum {fibre_min:.0f} g", day.day))
    return out
