"""Planning figures: time of a 7-day meal plan and a 4-week workout plan, and meal plan quality vs a greedy baseline.

Run: .venv/bin/python bench/planning.py   (prints figures; no assertions)
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from types import MappingProxyType

from npa import check_meal_plan, load_foods, parse_profile, plan_meals, targets
from npa.diet import ALLERGENS, allergens_of, conflicting_patterns
from npa.model import SUMMARY_KEYS, DayPlan, Meal, MealPlan, PlanItem, grocery_list
from npa.plan import SLOTS
from npa.pool import candidate_pool
from wpa import check_workout_plan, load_exercises, parse_request, plan_workouts

PROFILES = [
    {"sex": "female", "age": 30, "height_cm": 165, "weight_kg": 60, "activity": "moderate", "goal": "lose"},
    {
        "sex": "male",
        "age": 45,
        "height_cm": 180,
        "weight_kg": 95,
        "goal": "lose",
        "meals_per_day": 4,
        "restrictions": [{"name": "dairy_free", "type": "intolerance"}],
    },
    {
        "sex": "female",
        "age": 28,
        "height_cm": 168,
        "weight_kg": 62,
        "activity": "light",
        "restrictions": ["vegan", "peanut"],
    },
    {
        "sex": "male",
        "age": 22,
        "height_cm": 175,
        "weight_kg": 65,
        "activity": "active",
        "goal": "gain",
        "meals_per_day": 5,
        "restrictions": [{"name": "halal", "type": "religious"}],
    },
]
REQUEST = {
    "goal": "hypertrophy",
    "level": "intermediate",
    "days_per_week": 4,
    "session_minutes": 60,
    "equipment": ["barbell", "dumbbell", "cable", "machine"],
    "weeks": 4,
    "body_mass_kg": 75,
}


def greedy(profile_doc: dict[str, object]) -> MealPlan:
    """Baseline: per meal, add allowed pool foods in protein-density order (one measure each) until
    the meal's share of the day's energy is reached; strict restrictions filtered like the planner."""
    profile = parse_profile(profile_doc)
    goal = targets(profile)
    strict = profile.strict()
    pool = [
        c
        for c in candidate_pool()
        if not any(
            (n in allergens_of(c.food)) if n in ALLERGENS else (n in conflicting_patterns(c.food)) for n in strict
        )
    ]
    pool.sort(key=lambda c: -c.food.nutrients["protein_g"] / max(c.food.nutrients["energy_kcal"], 1.0))
    slots = SLOTS[profile.meals_per_day]
    shares = [0.1 if "snack" in s else {"breakfast": 0.25, "lunch": 0.3, "dinner": 0.35}[s] for s in slots]
    days = []
    cursor = 0
    for day in range(1, profile.days + 1):
        meals = []
        for slot, share in zip(slots, shares, strict=True):
            items: list[PlanItem] = []
            kcal = 0.0
            while kcal < goal.energy_kcal * share / sum(shares):
                c = pool[cursor % len(pool)]
                cursor += 1
                grams = c.unit_grams
                nutrients = {k: c.food.nutrients.get(k, 0.0) * grams / 100 for k in SUMMARY_KEYS}
                items.append(
                    PlanItem(
                        c.food.ndb_no,
                        c.food.description,
                        c.role,
                        1,
                        c.measure.text(1),
                        grams,
                        MappingProxyType(nutrients),
                    )
                )
                kcal += nutrients["energy_kcal"]
            meals.append(Meal(slot, tuple(items)))
        totals = {k: sum(i.nutrients[k] for m in meals for i in m.items) for k in SUMMARY_KEYS}
        days.append(DayPlan(day, tuple(meals), MappingProxyType(totals)))
    return MealPlan(tuple(days), goal, 0.0, 0)


def quality(days: list[dict[str, float]], profile_doc: dict[str, object]) -> tuple[float, float]:
    goal = targets(parse_profile(profile_doc))
    kcal = statistics.mean(abs(d["energy_kcal"] - goal.energy_kcal) / goal.energy_kcal * 100 for d in days)

    def out_of_band(value: float, band: tuple[float, float]) -> float:
        low, high = band
        return max(0.0, low - value, value - high) / ((low + high) / 2) * 100

    macro = statistics.mean(
        (
            out_of_band(d["protein_g"], goal.protein_g)
            + out_of_band(d["fat_g"], goal.fat_g)
            + out_of_band(d["carbohydrate_g"], goal.carbohydrate_g)
        )
        / 3
        for d in days
    )
    return kcal, macro


def shape(plan: MealPlan) -> str:
    """What a dietitian reads first: grocery list, per-meal protein and energy share, fibre, sodium."""
    per_meal: dict[str, list[tuple[float, float]]] = {}
    for d in plan.days:
        for m in d.meals:
            kind = "snack" if "snack" in m.slot else m.slot
            per_meal.setdefault(kind, []).append(
                (m.total("protein_g"), m.total("energy_kcal") / d.totals["energy_kcal"])
            )
    meals = "; ".join(
        f"{k} {min(p for p, _ in v):.0f}-{max(p for p, _ in v):.0f} g, "
        f"{min(e for _, e in v):.0%}-{max(e for _, e in v):.0%}"
        for k, v in per_meal.items()
    )
    fibre = [d.totals["fiber_g"] for d in plan.days]
    sodium = [d.totals["sodium_mg"] for d in plan.days]
    distinct = len({i.ndb_no for d in plan.days for m in d.meals for i in m.items})
    return (
        f"{distinct} distinct foods, grocery list {len(grocery_list(plan))} items; protein / energy share per meal: "
        f"{meals}; fibre {min(fibre):.0f}-{max(fibre):.0f} g, sodium {min(sodium):.0f}-{max(sodium):.0f} mg"
    )


def main() -> None:
    foods = {f.ndb_no: f for f in load_foods()}
    candidate_pool()
    exercises = {e.id: e for e in load_exercises()}
    times: list[float] = []
    cpu: list[float] = []
    rows: list[tuple[tuple[float, float], tuple[float, float], Counter[str], Counter[str]]] = []
    shapes: list[str] = []
    findings: Counter[str] = Counter()
    for doc in PROFILES:
        profile = parse_profile(doc)
        for seed in range(5):
            start, start_cpu = time.perf_counter(), time.process_time()
            plan = plan_meals(profile, seed=seed)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            findings.update(v.rule for v in check_meal_plan(profile, plan, foods))
        shapes.append(shape(plan))
        days = [dict(d.totals) for d in plan.days]
        baseline = greedy(doc)
        milp_q = quality(days, doc)
        greedy_q = quality([dict(d.totals) for d in baseline.days], doc)
        violations = Counter(v.rule for v in check_meal_plan(profile, plan, foods))
        greedy_violations = Counter(v.rule for v in check_meal_plan(profile, baseline, foods))
        rows.append((milp_q, greedy_q, violations, greedy_violations))
    times.sort()
    p50, p95 = statistics.median(times), times[int(0.95 * (len(times) - 1))]
    print(
        f"meal plan, 7 days: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, slowest {times[-1] * 1000:.0f} ms "
        f"over {len(times)} plans"
    )
    print(f"  cpu per plan: p50 {statistics.median(cpu) * 1000:.0f} ms (wall also waits for the shared cores)")
    for (mk, mm), (gk, gm), v, gv in rows:
        print(
            f"  MILP kcal err {mk:.2f} %, macro out-of-band {mm:.2f} %, violations {dict(v)} | "
            f"greedy kcal err {gk:.2f} %, macro out-of-band {gm:.2f} %, violations {dict(gv)} | "
            f"MILP/greedy kcal err {mk / max(gk, 1e-9):.2f}"
        )
    print(f"  checker findings over the {len(times)} meal plans: {dict(findings) or 'none'}")
    for line in shapes:
        print(f"  {line}")
    request = parse_request(REQUEST)
    wtimes = []
    for seed in range(50):
        start = time.perf_counter()
        wplan = plan_workouts(request, seed=seed)
        wtimes.append(time.perf_counter() - start)
    wtimes.sort()
    print(
        f"workout plan, 4 weeks: p50 {statistics.median(wtimes) * 1000:.1f} ms, "
        f"p95 {wtimes[int(0.95 * (len(wtimes) - 1))] * 1000:.1f} ms over {len(wtimes)} plans; "
        f"violations {len(check_workout_plan(request, wplan, exercises))}; "
        f"{wplan.weekly_expenditure_kcal:.0f} kcal/week net of rest "
        f"({wplan.weekly_expenditure_gross_kcal:.0f} gross)"
    )


if __name__ == "__main__":
    main()
