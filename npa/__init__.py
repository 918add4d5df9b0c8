"""The nutrition planning agent (NPA): meal plans from the USDA food database (pure core).

``npa.foods`` parses USDA SR28, ``npa.diet`` derives allergens and diet patterns, ``npa.profile``
validates profiles and computes targets, ``npa.plan`` builds meal plans by mixed-integer
programming (a week's grocery basket, leftovers, repeated breakfasts; ``npa.model.grocery_list``
sums the week into a shopping list), ``npa.checks`` checks plans independently of the planner.
No I/O besides reading the shipped data; the SDK agent wraps it.
"""

from npa.checks import Violation, check_meal_plan
from npa.diet import ALLERGEN_PATTERN_CONFLICTS, ALLERGENS, PATTERNS, allergens_of, conflicting_patterns
from npa.errors import Infeasible, InvalidProfile
from npa.foods import Food, Measure, load_foods, load_groups
from npa.model import GroceryItem, MealPlan, grocery_list, render_text
from npa.plan import plan_meals
from npa.profile import Profile, Targets, parse_profile, targets

__all__ = [
    "ALLERGENS",
    "ALLERGEN_PATTERN_CONFLICTS",
    "PATTERNS",
    "Food",
    "GroceryItem",
    "Infeasible",
    "InvalidProfile",
    "MealPlan",
    "Measure",
    "Profile",
    "Targets",
    "Violation",
    "allergens_of",
    "check_meal_plan",
    "conflicting_patterns",
    "grocery_list",
    "load_foods",
    "load_groups",
    "parse_profile",
    "plan_meals",
    "render_text",
    "targets",
]
