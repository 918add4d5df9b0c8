"""The meal plan value: frozen, JSON-serialisable, readable as text.

Theory of operation: a ``MealPlan`` is what the planner returns and what the checker, the
knowledge graph and the CLI consume. It carries everything needed to check it without the
planner: per item the NDB_No, the household measure and grams, and the item's nutrients; per day
the totals; for the plan the targets and the negotiated training energy they were computed from.
``to_dict`` / ``from_dict`` round-trip exactly (floats are rounded when the plan is built).
The grocery list (``grocery_list``) is derived from the days, never stored apart from them: the
document carries it for readers (``mca submit`` prints it), and ``from_dict`` ignores it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import cast

from npa.profile import Targets

__all__ = ["SUMMARY_KEYS", "DayPlan", "GroceryItem", "Meal", "MealPlan", "PlanItem", "grocery_list", "render_text"]

# Nutrients summed per item and per day (a missing SR28 value counts as 0 in the sums).
SUMMARY_KEYS: tuple[str, ...] = (
    "energy_kcal",
    "protein_g",
    "fat_g",
    "carbohydrate_g",
    "fiber_g",
    "sugar_g",
    "sat_fat_g",
    "sodium_mg",
)


@dataclass(frozen=True, slots=True)
class PlanItem:
    """A portion: ``count`` x the household ``measure`` of a food, weighing ``grams``."""

    ndb_no: str
    name: str
    role: str
    count: int
    measure: str
    grams: float
    nutrients: Mapping[str, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "ndb_no": self.ndb_no,
            "name": self.name,
            "role": self.role,
            "count": self.count,
            "measure": self.measure,
            "grams": self.grams,
            "nutrients": dict(self.nutrients),
        }

    @staticmethod
    def from_dict(doc: Mapping[str, object]) -> PlanItem:
        return PlanItem(
            ndb_no=str(doc["ndb_no"]),
            name=str(doc["name"]),
            role=str(doc["role"]),
            count=int(cast(int, doc["count"])),
            measure=str(doc["measure"]),
            grams=float(cast(float, doc["grams"])),
            nutrients=MappingProxyType(
                {str(k): float(v) for k, v in cast(Mapping[str, float], doc["nutrients"]).items()}
            ),
        )


@dataclass(frozen=True, slots=True)
class Meal:
    slot: str
    items: tuple[PlanItem, ...]

    def total(self, key: str) -> float:
        return round(sum(item.nutrients.get(key, 0.0) for item in self.items), 1)

    def to_dict(self) -> dict[str, object]:
        return {"slot": self.slot, "items": [i.to_dict() for i in self.items], "energy_kcal": self.total("energy_kcal")}

    @staticmethod
    def from_dict(doc: Mapping[str, object]) -> Meal:
        items = cast(Sequence[Mapping[str, object]], doc["items"])
        return Meal(slot=str(doc["slot"]), items=tuple(PlanItem.from_dict(i) for i in items))


@dataclass(frozen=True, slots=True)
class DayPlan:
    day: int
    meals: tuple[Meal, ...]
    totals: Mapping[str, float]

    def to_dict(self) -> dict[str, object]:
        return {"day": self.day, "meals": [m.to_dict() for m in self.meals], "totals": dict(self.totals)}

    @staticmethod
    def from_dict(doc: Mapping[str, object]) -> DayPlan:
        meals = cast(Sequence[Mapping[str, object]], doc["meals"])
        totals = cast(Mapping[str, float], doc["totals"])
        return DayPlan(
            day=int(cast(int, doc["day"])),
            meals=tuple(Meal.from_dict(m) for m in meals),
            totals=MappingProxyType({str(k): float(v) for k, v in totals.items()}),
        )


@dataclass(frozen=True, slots=True)
class MealPlan:
    """A meal plan: ``days`` in order, the daily ``targets``, and how they were derived."""

    days: tuple[DayPlan, ...]
    targets: Targets
    training_kcal_per_week: float
    seed: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": "meal_plan",
            "version": 1,
            "targets": self.targets.to_dict(),
            "training_kcal_per_week": self.training_kcal_per_week,
            "seed": self.seed,
            "notes": list(self.notes),
            "days": [d.to_dict() for d in self.days],
            "grocery_list": [g.to_dict() for g in grocery_list(self)],
        }

    @staticmethod
    def from_dict(doc: Mapping[str, object]) -> MealPlan:
        if doc.get("kind") != "meal_plan" or doc.get("version") != 1:
            raise ValueError("not a version-1 meal plan document (kind 'meal_plan', version 1)")
        days = cast(Sequence[Mapping[str, object]], doc["days"])
        return MealPlan(
            days=tuple(DayPlan.from_dict(d) for d in days),
            targets=Targets.from_dict(cast(Mapping[str, object], doc["targets"])),
            training_kcal_per_week=float(cast(float, doc["training_kcal_per_week"])),
            seed=int(cast(int, doc["seed"])),
            notes=tuple(str(n) for n in cast(Sequence[str], doc["notes"])),
        )


@dataclass(frozen=True, slots=True)
class GroceryItem:
    """One line of the shopping list: ``count`` x the household ``unit`` of a food, ``grams`` in all."""

    ndb_no: str
    name: str
    count: int
    unit: str
    grams: float

    def text(self) -> str:
        return f"{self.count} x {self.unit} ({self.grams:,.0f} g)"

    def to_dict(self) -> dict[str, object]:
        return {"ndb_no": self.ndb_no, "name": self.name, "count": self.count, "unit": self.unit, "grams": self.grams}


_COUNT_PREFIX = re.compile(r"^\d+ x ")


def grocery_list(plan: MealPlan) -> tuple[GroceryItem, ...]:
    """The week's shopping list: per food, the total of its household measure and grams, by name.

    An item's ``measure`` reads "2 x 1 cup" (or "1 cup" for one): the unit is the text after the
    count, which is the same for every portion of a food (the pool gives each food one measure).
    A food met with two different units (a plan edited by hand) gets one line per unit.
    """
    lines: dict[tuple[str, str], list[object]] = {}
    for day in plan.days:
        for meal in day.meals:
            for item in meal.items:
                unit = _COUNT_PREFIX.sub("", item.measure) if item.count > 1 else item.measure
                entry = lines.setdefault((item.ndb_no, unit), [item.name, 0, 0.0])
                entry[1] = cast(int, entry[1]) + item.count
                entry[2] = cast(float, entry[2]) + item.grams
    return tuple(
        sorted(
            (
                GroceryItem(ndb, str(name), cast(int, count), unit, round(cast(float, grams), 1))
                for (ndb, unit), (name, count, grams) in lines.items()
            ),
            key=lambda g: (g.name.lower(), g.unit),
        )
    )


def render_text(plan: MealPlan) -> str:
    """A readable table per day (for the CLI): meal, portion, food, kcal, protein; then goal vs actual."""
    t = plan.targets
    lines = [
        f"Daily target {t.energy_kcal:.0f} kcal; protein {t.protein_g[0]:.0f}-{t.protein_g[1]:.0f} g, "
        f"fat {t.fat_g[0]:.0f}-{t.fat_g[1]:.0f} g, carbohydrate {t.carbohydrate_g[0]:.0f}-{t.carbohydrate_g[1]:.0f} g, "
        f"fibre >= {t.fiber_g_min:.0f} g"
    ]
    lines.extend(f"note: {n}" for n in plan.notes)
    for day in plan.days:
        lines.append("")
        lines.append(f"Day {day.day}")
        lines.append(f"  {'meal':<10} {'portion':<28} {'g':>5} {'kcal':>5} {'prot':>5}  food")
        for meal in day.meals:
            for i, item in enumerate(meal.items):
                slot = meal.slot if i == 0 else ""
                lines.append(
                    f"  {slot:<10} {item.measure[:28]:<28} {item.grams:>5.0f}"
                    f" {item.nutrients.get('energy_kcal', 0.0):>5.0f}"
                    f" {item.nutrients.get('protein_g', 0.0):>5.1f}  {item.name}"
                )
        tot = day.totals
        lines.append(
            f"  total: {tot['energy_kcal']:.0f} kcal (goal {t.energy_kcal:.0f}), protein {tot['protein_g']:.0f} g, "
            f"fat {tot['fat_g']:.0f} g, carbohydrate {tot['carbohydrate_g']:.0f} g, fibre {tot['fiber_g']:.0f} g, "
            f"sodium {tot['sodium_mg']:.0f} mg"
        )
    groceries = grocery_list(plan)
    lines.append("")
    lines.append(f"Grocery list ({len(groceries)} items)")
    lines.extend(f"  {g.text():<36} {g.name}" for g in groceries)
    return "\n".join(lines)
