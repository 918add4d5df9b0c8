"""Meal plan checker, independent of the planner (it imports no planner code).

Theory of operation: ``check_meal_plan`` re-derives what a correct plan must satisfy from the
profile and the USDA data alone, and reports every ``Violation`` it finds (an empty list means
the plan passed). Rules:

- ``structure``: one day per profile day, ``meals_per_day`` non-empty meals per day.
- ``restriction``: no item conflicts with a *strict* restriction, by ``npa.diet`` on the USDA
  food *and* by this module's own second keyword list of hidden allergens (a miss in the
  derivation is caught here); every item exists in the USDA data.
- ``energy``: each day's energy within +-10 % of a target recomputed here (Mifflin-St Jeor x
  activity factor, training and goal as documented in ``npa.profile``: the larger of declared
  and planned exercise; the constants are repeated on purpose so that a planner-side error
  shows up as a violation).
- ``protein`` (at least 1.2 / 1.6 g/kg by goal, capped at 35 % x 0.9 of energy, never under
  0.8 g/kg; at most 2.2 g/kg and 35 % of energy), ``fibre`` (14 g / 1,000 kcal held within
  25-35 g, at most 45 g) and ``sodium`` (under 2,300 mg), with 2 % tolerance.
- ``portion``: integer counts 1-4, grams 1-600 per item, grams consistent with the food's
  household measures, added fat at most 30 g a day and none at breakfast, cooked legumes at
  most 350 g a day; and per item no more than a person eats of it at one meal, by this module's
  own table of household maxima (``_HOUSEHOLD_MAX_G``): eggs 3 large (150 g), oil or butter
  1 tbsp (15 g), cheese 2 oz (60 g), nuts and seeds 2 oz (60 g), chia or flax 1 oz (30 g), nut
  butters 2 tbsp (32 g), cooked legumes 1 cup (200 g), meat or fish 9 oz (255 g), ready-to-eat
  cereal 60 g, cottage cheese 1 cup (226 g), milk or yogurt 2 cups (490 g), fruit 360 g.
- ``meal``: each meal's share of the day's energy within 75-125 % of its nominal share
  (breakfast 25, lunch 32.5, dinner 32.5, snack 10, normalised over the day's meals); protein
  at breakfast, lunch and dinner at least 20 g (or 80 % of the meal's share of the day's
  minimum when lower) and at most 130 % of its share of the day's maximum (+10 g slack);
  protein per snack at most 130 % of its share of the day's maximum (never below 10 g).
- ``produce``: at least 2 portions of fruit and 3 of vegetables (80 g each; potatoes are a
  starch) a day.
- ``food``: nothing unsafe or inedible as served (this module's own list: raw pokeweed, taro,
  yautia, cassava, lima or kidney beans, elderberries, potato, winter squash...), no condiment
  (garlic, chillies, ginger, wasabi, horseradish) over 30 g a day.
- ``totals``: the day's reported totals equal the sum recomputed from USDA per-100 g values.
- ``kosher``: meat and milk never in the same meal when kosher is strict.
- ``variety``: the week is a shopping list, so repetition is expected, but the same lunch or
  dinner (the same set of foods) never on three days running and on at most 4 days a week
  (cooked twice, eaten twice each); and the grocery list at most 35 distinct foods a week
  (``35 x days / 7`` for longer plans).
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
    "tortillas, ready-to-bake or -fry, corn",
    "mushrooms, oyster",
    "vegetable oyster",
)
_MEAT_GROUPS = frozenset({"0500", "0700", "1000", "1300", "1700"})
_FACTORS = {"sedentary": 1.2, "light": 1.375, "moderate": 1.55, "active": 1.725, "very_active": 1.9}
_PROTEIN = {"lose": 1.6, "maintain": 1.2, "gain": 1.6}
_ENERGY_BAND = 0.10
_TOLERANCE = 0.02
_SHARE = {"breakfast": 0.25, "lunch": 0.325, "dinner": 0.325, "snack": 0.10}
_SHARE_BAND = (0.75, 1.25)
_DISTINCT_PER_WEEK = 35
# Unsafe or inedible as served when the description says raw (toxins or must-cook starches).
_UNSAFE_RAW = re.compile(
    r"\b(poke|pokeberry|pokeweed|taro|yautia|tannier|cassava|yuca|lima beans|kidney|elderberr\w*|potato(es)?"
    r"|sweet potato|squash, winter|acorn|yam|arrowroot|burdock|fava|broadbeans|bamboo shoots|rhubarb|chestnuts)\b"
)
_CONDIMENT = re.compile(r"\b(garlic|peppers, hot|chili|chilli|jalapeno|serrano|habanero|wasabi|horseradish|ginger)\b")
_CONDIMENT_G_MAX = 30.0
_LEGUME = re.compile(r"^(beans|lentils|chickpeas|peas, split|broadbeans|hummus)")
_LEGUME_G_MAX = 350.0
# Household maxima per item and meal, grams (first match of the lower-cased description wins;
# group codes where a description alone is ambiguous). Kept apart from npa.pool on purpose.
_HOUSEHOLD_MAX_G: tuple[tuple[str, re.Pattern[str], float, str], ...] = (
    ("0100", re.compile(r"^egg, whole"), 150.0, "3 large eggs"),
    ("", re.compile(r"^(oil|butter),"), 15.0, "1 tbsp of oil or butter"),
    ("", re.compile(r"^cheese, cottage"), 226.0, "1 cup of cottage cheese"),
    ("0100", re.compile(r"^cheese,"), 60.0, "2 oz of cheese"),
    ("", re.compile(r"^seeds, (chia|flaxseed)"), 30.0, "1 oz of chia or flax"),
    ("", re.compile(r"(almond butter|peanut butter|seed butter|cashew butter)"), 32.0, "2 tbsp of nut butter"),
    ("1200", re.compile(r"."), 60.0, "2 oz of nuts or seeds"),
    ("", re.compile(r"^peanuts"), 60.0, "2 oz of peanuts"),
    ("1600", re.compile(r"^(beans|lentils|chickpeas|peas, split|broadbeans|hummus)"), 200.0, "1 cup of legumes"),
    ("", re.compile(r"^cereals ready-to-eat"), 60.0, "2 servings of cereal"),
    ("0100", re.compile(r"^(milk|yogurt)"), 490.0, "2 cups of milk or yogurt"),
    ("0900", re.compile(r"."), 360.0, "360 g of fruit"),
)
_HOUSEHOLD_MEAT_G = 255.0  # 9 oz of cooked meat, poultry or fish a meal
_SNACK_PROTEIN_FLOOR_G = 10.0


def _energy_target(profile: Profile, training_kcal_per_week: float) -> float:
    bmr = 10 * profile.weight_kg + 6.25 * profile.height_cm - 5 * profile.age + (5 if profile.sex == "male" else -161)
    factor = _FACTORS[profile.activity]
    if training_kcal_per_week > 0:
        tdee = bmr * min(factor, 1.375) + max(training_kcal_per_week / 7, bmr * max(0.0, factor - 1.375))
    else:
        tdee = bmr * factor
    shift = profile.rate_kg_per_week * 7700 / 7
    if profile.goal == "lose":
        return max(tdee - shift, bmr, 1200.0 if profile.sex == "female" else 1500.0)
    return tdee + shift if profile.goal == "gain" else tdee


def _hidden(description: str) -> frozenset[str]:
    text = description.lower()
    for phrase in _NOT_HIDDEN:
        text = text.replace(phrase, " ")
    return frozenset(a for a, words in _HIDDEN.items() if any(re.search(r"\b" + w, text) for w in words))


def _household_max(food: Food) -> tuple[float, str] | None:
    """The most grams of ``food`` a person eats at one meal, and its household words (or ``None``)."""
    text = food.description.lower()
    for group, pattern, grams, words in _HOUSEHOLD_MAX_G:
        if (not group or food.group_code == group) and pattern.search(text):
            return grams, words
    if food.group_code in _MEAT_GROUPS | {"1500"}:
        return _HOUSEHOLD_MEAT_G, "9 oz of meat or fish"
    return None


def _slot_kind(slot: str) -> str:
    return "snack" if "snack" in slot else slot


def check_meal_plan(profile: Profile, plan: MealPlan, foods_by_id: Mapping[str, Food]) -> list[Violation]:
    """Every rule of the module docstring that ``plan`` breaks for ``profile`` (empty: none)."""
    out: list[Violation] = []
    if len(plan.days) != profile.days:
        out.append(Violation("structure", f"{len(plan.days)} days planned, profile asks {profile.days}"))
    strict = profile.strict()
    energy = _energy_target(profile, plan.training_kcal_per_week)
    protein_max = min(0.35 * energy / 4, 2.2 * profile.weight_kg)
    protein_min = min(_PROTEIN[profile.goal] * profile.weight_kg, protein_max * 0.9)
    protein_min = max(protein_min, 0.8 * profile.weight_kg)
    protein_max = max(protein_max, protein_min * 1.2)
    fibre_min = min(max(14.0 * energy / 1000.0, 25.0), 35.0)
    fibre_max, sodium_max = 45.0, 2300.0
    distinct = {item.ndb_no for day in plan.days for meal in day.meals for item in meal.items}
    distinct_max = max(_DISTINCT_PER_WEEK, math.ceil(_DISTINCT_PER_WEEK * len(plan.days) / 7))
    if len(distinct) > distinct_max:
        out.append(Violation("variety", f"{len(distinct)} distinct foods to buy (at most {distinct_max})"))
    dishes: dict[frozenset[str], list[int]] = {}
    for day in plan.days:
        for meal in day.meals:
            if _slot_kind(meal.slot) in {"lunch", "dinner"}:
                dishes.setdefault(frozenset(i.ndb_no for i in meal.items), []).append(day.day)
    dish_days_max = max(4, math.ceil(4 * len(plan.days) / 7))
    for dish, on_days in dishes.items():
        days = sorted(set(on_days))
        running = any(days[i + 2] - days[i] == 2 for i in range(len(days) - 2))
        if running or len(days) > dish_days_max:
            out.append(Violation("variety", f"the same main meal on days {days}", item=min(dish)))
    for day in plan.days:
        if len(day.meals) != profile.meals_per_day:
            out.append(Violation("structure", f"{len(day.meals)} meals, profile asks {profile.meals_per_day}", day.day))
        shares = [_SHARE.get(_slot_kind(m.slot), 0.0) for m in day.meals]
        share_sum = sum(shares) or 1.0
        sums: dict[str, float] = {}
        fat_added = condiment = legume = fruit = vegetable = 0.0
        meal_kcal: list[float] = []
        meal_protein: list[float] = []
        for meal in day.meals:
            if not meal.items:
                out.append(Violation("structure", "empty meal", day.day, meal.slot))
            has_meat = has_milk = False
            kcal = protein = 0.0
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
                text = food.description.lower()
                if (limit := _household_max(food)) is not None and item.grams > limit[0] * (1 + _TOLERANCE):
                    out.append(Violation("portion", f"{item.grams:g} g, more than {limit[1]} a meal", *where))
                added_fat = food.group_code == "0400" or text.startswith("butter")
                if added_fat:
                    fat_added += item.grams
                    if meal.slot == "breakfast":
                        out.append(Violation("portion", "added oil or butter at breakfast", *where))
                if re.search(r"\braw\b", text) and _UNSAFE_RAW.search(text):
                    out.append(Violation("food", f"{food.description!r} is unsafe or inedible raw", *where))
                if _CONDIMENT.search(text):
                    condiment += item.grams
                if food.group_code == "1600" and _LEGUME.match(text):
                    legume += item.grams
                if food.group_code == "0900":
                    fruit += item.grams
                if food.group_code == "1100" and not re.match(r"(potato|sweet potato)", text):
                    vegetable += item.grams
                kcal += food.nutrients.get("energy_kcal", 0.0) * item.grams / 100.0
                protein += food.nutrients.get("protein_g", 0.0) * item.grams / 100.0
                for key in ("energy_kcal", "protein_g", "fat_g", "carbohydrate_g", "fiber_g", "sodium_mg"):
                    sums[key] = sums.get(key, 0.0) + food.nutrients.get(key, 0.0) * item.grams / 100.0
            meal_kcal.append(kcal)
            meal_protein.append(protein)
            if "kosher" in strict and has_meat and has_milk:
                out.append(Violation("kosher", "meat and milk in the same meal", day.day, meal.slot))
        if fat_added > 30.0:
            out.append(Violation("portion", f"{fat_added:.0f} g of added fat (over 30 g)", day.day))
        if legume > _LEGUME_G_MAX:
            out.append(Violation("portion", f"{legume:.0f} g of cooked legumes (over {_LEGUME_G_MAX:.0f} g)", day.day))
        if condiment > _CONDIMENT_G_MAX:
            out.append(Violation("food", f"{condiment:.0f} g of condiments served as food", day.day))
        if fruit < 2 * 80.0 * (1 - _TOLERANCE):
            out.append(Violation("produce", f"{fruit:.0f} g of fruit (2 portions: 160 g)", day.day))
        if vegetable < 3 * 80.0 * (1 - _TOLERANCE):
            out.append(Violation("produce", f"{vegetable:.0f} g of vegetables (3 portions: 240 g)", day.day))
        total_kcal = sum(meal_kcal)
        for meal, share, kcal, protein in zip(day.meals, shares, meal_kcal, meal_protein, strict=True):
            nominal = share / share_sum
            if len(day.meals) > 1 and total_kcal > 0:
                low, high = nominal * _SHARE_BAND[0], nominal * _SHARE_BAND[1]
                if not low <= kcal / total_kcal <= high:
                    out.append(
                        Violation(
                            "meal",
                            f"{kcal / total_kcal:.0%} of the day's energy (band {low:.0%}-{high:.0%})",
                            day.day,
                            meal.slot,
                        )
                    )
            if _slot_kind(meal.slot) == "snack":
                cap = max(1.3 * nominal * protein_max, _SNACK_PROTEIN_FLOOR_G)
                if protein > cap * (1 + _TOLERANCE):
                    out.append(
                        Violation(
                            "meal", f"{protein:.0f} g protein in a snack (at most {cap:.0f} g)", day.day, meal.slot
                        )
                    )
            else:
                p_low = min(20.0, 0.8 * nominal * protein_min)
                p_high = max(1.3 * nominal * protein_max, p_low + 10.0)
                if not p_low * (1 - _TOLERANCE) <= protein <= p_high * (1 + _TOLERANCE):
                    out.append(
                        Violation(
                            "meal", f"{protein:.0f} g protein (band {p_low:.0f}-{p_high:.0f} g)", day.day, meal.slot
                        )
                    )
        for key, value in sums.items():
            reported = day.totals.get(key, float("nan"))
            if not abs(reported - value) <= max(1.0, 0.01 * value):
                out.append(Violation("totals", f"{key} reported {reported:g}, recomputed {value:.1f}", day.day))
        kcal = sums.get("energy_kcal", 0.0)
        if abs(kcal - energy) > _ENERGY_BAND * energy:
            out.append(Violation("energy", f"{kcal:.0f} kcal, target {energy:.0f} +-{_ENERGY_BAND:.0%}", day.day))
        protein_day = sums.get("protein_g", 0.0)
        if not protein_min * (1 - _TOLERANCE) <= protein_day <= protein_max * (1 + _TOLERANCE):
            out.append(
                Violation("protein", f"{protein_day:.0f} g, band {protein_min:.0f}-{protein_max:.0f} g", day.day)
            )
        fibre = sums.get("fiber_g", 0.0)
        if not fibre_min * (1 - _TOLERANCE) <= fibre <= fibre_max * (1 + _TOLERANCE):
            out.append(Violation("fibre", f"{fibre:.0f} g, band {fibre_min:.0f}-{fibre_max:.0f} g", day.day))
        if sums.get("sodium_mg", 0.0) > sodium_max * (1 + _TOLERANCE):
            out.append(Violation("sodium", f"{sums.get('sodium_mg', 0.0):.0f} mg (limit {sodium_max:.0f})", day.day))
    return out
