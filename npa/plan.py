"""Meal plan generation: one small mixed-integer program per day over the curated pool.

Theory of operation:

1. ``targets`` (``npa.profile``) gives the day's energy point target and macro bands.
2. The curated pool (``npa.pool``) is filtered by the profile's *strict* restrictions before any
   model is built, so a strict allergen never appears, not even once. Moderate and preference
   restrictions and disliked words become costs on the foods.
3. Days are planned one after another. For day d a seeded ``random.Random(seed, d)`` samples a
   few candidates per role and meal slot (a handful of proteins, grains, vegetables...) from the
   foods not yet used ``uses_max`` times; this keeps each model at about 100-200 variables
   (HiGHS solves it in milliseconds) and gives variety across days. Foods used on earlier days
   cost more. If a sample has no solution, the day is retried with every eligible food.
4. The model, per (slot, food) pair i: ``n_i`` integer in [0, max_count] units of the food's
   household measure, and ``y_i`` binary (used or not) with ``y_i <= n_i <= max_count * y_i``.
   Hard constraints: meal structure (per slot template: e.g. lunch has one or two protein
   sources (meat, fish, egg, tofu or legume), one grain or bread, one or two vegetables), a food
   at most once a day, added fat at most 2 units a day, each meal's energy within 50-170 % of its
   share of the day (breakfast 25 %, lunch 30 %, dinner 35 %, snacks 10 %), the day's energy
   within +-5 % of the target, protein within its band, fibre at least 14 g / 1,000 kcal
   (protein and fibre are elastic inside the model so that HiGHS finds a first solution at
   once, but a solution that uses their slack is rejected). Soft, in the objective: energy
   outside a +-2 % dead band (1 point per % of target), fat and carbohydrate outside their
   AMDR bands (per gram), and the costs of step 2. No random noise: variety comes from step 3.
5. If even the full eligible pool has no solution, the planner diagnoses: it re-solves with
   one hard constraint relaxed at a time (energy, protein, fibre, meal structure) and with one
   strict restriction dropped at a time, and raises ``Infeasible`` naming the strict
   restrictions and hard constraints whose relaxation makes a day possible.

Solved with ``scipy.optimize.milp`` (HiGHS branch and cut), relative gap 1 %, and a time limit per
day so that a pathological input cannot hang the agent.
"""

from __future__ import annotations

import math
import random  # noqa: TID251 - only seeded random.Random(seed) instances, never the global generator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp  # type: ignore[import-untyped]

from npa.diet import ALLERGENS, allergens_of, conflicting_patterns
from npa.errors import Infeasible, InvalidProfile
from npa.model import SUMMARY_KEYS, DayPlan, Meal, MealPlan, PlanItem
from npa.pool import Candidate, candidate_pool
from npa.profile import Profile, Targets, targets

__all__ = ["SLOTS", "TEMPLATES", "eligible_pool", "plan_meals"]

# Meal slots by meals per day, and the kind of meal each slot is.
SLOTS: Mapping[int, tuple[str, ...]] = {
    2: ("breakfast", "dinner"),
    3: ("breakfast", "lunch", "dinner"),
    4: ("breakfast", "lunch", "snack", "dinner"),
    5: ("breakfast", "morning snack", "lunch", "afternoon snack", "dinner"),
    6: ("breakfast", "morning snack", "lunch", "afternoon snack", "dinner", "evening snack"),
}
_ENERGY_SHARE = {"breakfast": 0.25, "lunch": 0.30, "dinner": 0.35, "snack": 0.10}


@dataclass(frozen=True, slots=True)
class Template:
    """What a meal of one kind may hold: roles allowed, (roles, min, max) rules, item count band."""

    roles: frozenset[str]
    rules: tuple[tuple[frozenset[str], int, int], ...]
    items: tuple[int, int]


def _r(*roles: str) -> frozenset[str]:
    return frozenset(roles)


TEMPLATES: Mapping[str, Template] = {
    # Breakfast: one base (cereal, bread, or a cooked grain such as rice or quinoa), and at least
    # one of fruit, dairy or egg.
    "breakfast": Template(
        roles=_r("cereal", "bread", "grain", "egg", "dairy", "fruit", "nuts", "cheese", "fat"),
        rules=(
            (_r("cereal", "bread", "grain"), 1, 1),
            (_r("fruit", "dairy", "egg"), 1, 3),
            (_r("fruit"), 0, 1),
            (_r("dairy"), 0, 1),
            (_r("egg"), 0, 1),
            (_r("nuts"), 0, 1),
            (_r("cheese"), 0, 1),
            (_r("fat"), 0, 1),
        ),
        items=(2, 4),
    ),
    # Lunch and dinner: a protein (meat, fish, egg, tofu or legume), a starch, vegetables.
    "main": Template(
        roles=_r("protein", "legume", "egg", "grain", "bread", "vegetable", "cheese", "fat"),
        rules=(
            (_r("protein", "legume", "egg"), 1, 2),
            (_r("protein"), 0, 1),
            (_r("grain", "bread"), 1, 1),
            (_r("vegetable"), 1, 2),
            (_r("cheese"), 0, 1),
            (_r("fat"), 0, 1),
        ),
        items=(3, 5),
    ),
    "snack": Template(
        roles=_r("fruit", "nuts", "dairy", "vegetable", "cheese"),
        rules=((_r("fruit", "nuts", "dairy", "vegetable", "cheese"), 1, 2), (_r("nuts"), 0, 1)),
        items=(1, 2),
    ),
}
# Foods sampled per role and slot for one day's model (step 3 of the docstring).
_SAMPLE = {"vegetable": 3, "protein": 3, "legume": 3, "fruit": 3, "cereal": 2}
_SAMPLE_DEFAULT = 2
_ENERGY_WEIGHT = 100.0
_SHORT_WEIGHT = 5.0
_ENERGY_HARD = True
_ENERGY_TOLERANCE = 0.05
_ENERGY_FREE = 0.02
_SLOT_BAND = (0.5, 1.7)  # a meal's energy between 50 % and 170 % of its share of the day
_FAT_UNITS_MAX_PER_DAY = 2
_TIME_LIMIT_S = 2.0
_HIGHS_OPTIONS: dict[str, object] = {"time_limit": _TIME_LIMIT_S, "mip_rel_gap": 0.01, "disp": False}
_COST_MODERATE = 25.0
_COST_PREFERENCE = 8.0
_COST_DISLIKE = 15.0
_COST_REPEAT = 2.0


def _kind(slot: str) -> str:
    return "snack" if "snack" in slot else "breakfast" if slot == "breakfast" else "main"


def _share(slot: str) -> float:
    return _ENERGY_SHARE["snack" if "snack" in slot else slot]


def _violates(candidate: Candidate, name: str) -> bool:
    if name in ALLERGENS:
        return name in allergens_of(candidate.food)
    return name in conflicting_patterns(candidate.food)


def eligible_pool(profile: Profile, *, drop: str | None = None) -> tuple[Candidate, ...]:
    """The pool minus every food a strict restriction forbids (``drop``: pretend one is absent)."""
    strict = [name for name in profile.strict() if name != drop]
    return tuple(c for c in candidate_pool() if not any(_violates(c, name) for name in strict))


def _costs(profile: Profile, pool: Iterable[Candidate]) -> dict[str, float]:
    soft = [r for r in profile.restrictions if r.severity != "strict"]
    words = [re.compile(r"\b" + re.escape(w) + r"(e?s)?\b") for w in profile.dislikes]
    costs: dict[str, float] = {}
    for c in pool:
        cost = 0.0
        for r in soft:
            if _violates(c, r.name):
                cost += _COST_MODERATE if r.severity == "moderate" else _COST_PREFERENCE
        text = c.food.description.lower()
        if any(w.search(text) for w in words):
            cost += _COST_DISLIKE
        costs[c.food.ndb_no] = cost
    return costs


@dataclass
class _Model:
    """One day's MILP in scipy's matrix form, with the (slot, candidate) of each pair column."""

    pairs: list[tuple[int, Candidate]]
    c: np.ndarray
    integrality: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    slack0: int = 0
    energy: np.ndarray | None = None
    energy_band: tuple[float, float] = (0.0, np.inf)
    rows: list[np.ndarray] = field(default_factory=list)
    row_lo: list[float] = field(default_factory=list)
    row_hi: list[float] = field(default_factory=list)

    def add(self, row: np.ndarray, lo: float, hi: float) -> None:
        self.rows.append(row)
        self.row_lo.append(lo)
        self.row_hi.append(hi)


def _per_unit(c: Candidate, key: str) -> float:
    return c.food.nutrients.get(key, 0.0) * c.unit_grams / 100.0


def _build(
    slots: Sequence[str],
    by_slot: Sequence[Sequence[Candidate]],
    goal: Targets,
    costs: Mapping[str, float],
    uses: Mapping[str, int],
    relax: str | None,
    kosher: bool,
    *,
    band: tuple[float, float] | None = None,
    free: tuple[float, float] | None = None,
    fat_units_max: float = _FAT_UNITS_MAX_PER_DAY,
) -> _Model:
    """One model over ``slots``; ``band`` / ``free`` override the energy bands (absolute kcal)."""
    pairs = [(s, c) for s, cands in enumerate(by_slot) for c in cands]
    n_pairs = len(pairs)
    # Columns: n (n_pairs), y (n_pairs), then continuous slacks: energy above / below the dead band,
    # fat below / above its band, carbohydrate below / above, protein short, fibre short.
    extra = 8
    width = 2 * n_pairs + extra
    e0 = 2 * n_pairs
    energy_target = goal.energy_kcal
    c = np.zeros(width)
    # No random noise in the objective: it made HiGHS prove optimality among near-equal plans
    # (measured: 30 % slower); variety comes from the seeded candidate sample instead.
    for i, (_, cand) in enumerate(pairs):
        c[n_pairs + i] = costs.get(cand.food.ndb_no, 0.0) + _COST_REPEAT * uses.get(cand.food.ndb_no, 0)
    c[e0] = c[e0 + 1] = _ENERGY_WEIGHT / energy_target
    c[e0 + 2] = c[e0 + 3] = 1.0  # per gram of fat outside the AMDR band
    c[e0 + 4] = c[e0 + 5] = 0.5  # per gram of carbohydrate outside the AMDR band
    c[e0 + 6] = c[e0 + 7] = _SHORT_WEIGHT  # per gram of protein or fibre under its minimum
    integrality = np.concatenate([np.ones(2 * n_pairs), np.zeros(extra)])
    lower = np.zeros(width)
    upper = np.concatenate(
        [np.array([float(cand.max_count) for _, cand in pairs]), np.ones(n_pairs), np.full(extra, np.inf)]
    )
    model = _Model(pairs, c, integrality, lower, upper, slack0=e0)

    def row() -> np.ndarray:
        return np.zeros(width)

    for i, (_, cand) in enumerate(pairs):
        r = row()
        r[i], r[n_pairs + i] = 1.0, -float(cand.max_count)
        model.add(r, -np.inf, 0.0)
        r = row()
        r[i], r[n_pairs + i] = 1.0, -1.0
        model.add(r, 0.0, np.inf)
    if relax != "meal structure":
        for s, slot in enumerate(slots):
            template = TEMPLATES[_kind(slot)]
            for roles, lo, hi in template.rules:
                r = row()
                for i, (ps, cand) in enumerate(pairs):
                    if ps == s and cand.role in roles:
                        r[n_pairs + i] = 1.0
                model.add(r, float(lo), float(hi))
            r = row()
            for i, (ps, _) in enumerate(pairs):
                if ps == s:
                    r[n_pairs + i] = 1.0
            model.add(r, float(template.items[0]), float(template.items[1]))
    else:
        for s in range(len(slots)):
            r = row()
            for i, (ps, _) in enumerate(pairs):
                if ps == s:
                    r[n_pairs + i] = 1.0
            model.add(r, 1.0, np.inf)
    by_food: dict[str, list[int]] = {}
    for i, (_, cand) in enumerate(pairs):
        by_food.setdefault(cand.food.ndb_no, []).append(i)
    for columns in by_food.values():
        if len(columns) > 1:
            r = row()
            for i in columns:
                r[n_pairs + i] = 1.0
            model.add(r, 0.0, 1.0)
    r = row()
    for i, (_, cand) in enumerate(pairs):
        if cand.role == "fat":
            r[i] = 1.0
    model.add(r, 0.0, float(fat_units_max))
    if kosher:  # meat and milk never in the same meal
        for s in range(len(slots)):
            meat = [i for i, (ps, cand) in enumerate(pairs) if ps == s and cand.role == "protein"]
            milk = [i for i, (ps, cand) in enumerate(pairs) if ps == s and "milk" in allergens_of(cand.food)]
            for a in meat:
                for b in milk:
                    r = row()
                    r[n_pairs + a] = r[n_pairs + b] = 1.0
                    model.add(r, 0.0, 1.0)

    def nutrient_row(key: str) -> np.ndarray:
        r = row()
        for i, (_, cand) in enumerate(pairs):
            r[i] = _per_unit(cand, key)
        return r

    energy = nutrient_row("energy_kcal")
    if relax != "energy":
        model.energy = energy
        model.energy_band = band or (energy_target * (1 - _ENERGY_TOLERANCE), energy_target * (1 + _ENERGY_TOLERANCE))
    free = free or (energy_target * (1 - _ENERGY_FREE), energy_target * (1 + _ENERGY_FREE))
    # Energy outside the dead band +-_ENERGY_FREE costs; inside it, every plan is as good, which
    # leaves HiGHS many optimal solutions to find fast (a point target made each day ~1 s).
    r = energy.copy()
    r[e0] = -1.0
    model.add(r, -np.inf, free[1])
    r = energy.copy()
    r[e0 + 1] = 1.0
    model.add(r, free[0], np.inf)
    if relax != "energy" and _ENERGY_HARD:
        model.add(energy, *model.energy_band)
    protein = nutrient_row("protein_g")
    if relax != "protein":
        r = protein.copy()
        r[e0 + 6] = 1.0
        model.add(r, goal.protein_g[0], np.inf)
    model.add(protein, -np.inf, goal.protein_g[1])
    if relax != "fibre":
        r = nutrient_row("fiber_g")
        r[e0 + 7] = 1.0
        model.add(r, goal.fiber_g_min, np.inf)
    fat = nutrient_row("fat_g")
    r = fat.copy()
    r[e0 + 2] = 1.0
    model.add(r, goal.fat_g[0], np.inf)
    r = fat.copy()
    r[e0 + 3] = -1.0
    model.add(r, -np.inf, goal.fat_g[1])
    carb = nutrient_row("carbohydrate_g")
    r = carb.copy()
    r[e0 + 4] = 1.0
    model.add(r, goal.carbohydrate_g[0], np.inf)
    r = carb.copy()
    r[e0 + 5] = -1.0
    model.add(r, -np.inf, goal.carbohydrate_g[1])
    shares = [_share(s) for s in slots]
    total_share = sum(shares)
    for s in range(len(slots) if len(slots) > 1 else 0):
        r = row()
        for i, (ps, cand) in enumerate(pairs):
            if ps == s:
                r[i] = _per_unit(cand, "energy_kcal")
        target = energy_target * shares[s] / total_share
        model.add(r, target * _SLOT_BAND[0], target * _SLOT_BAND[1])
    return model


def _solve(model: _Model) -> np.ndarray | None:
    if not model.pairs:
        return None
    result = milp(
        model.c,
        integrality=model.integrality,
        bounds=Bounds(model.lower, model.upper),
        constraints=LinearConstraint(np.vstack(model.rows), np.array(model.row_lo), np.array(model.row_hi)),
        options=_HIGHS_OPTIONS,
    )
    if result.x is None or result.status not in (0, 1):
        return None
    x = np.asarray(result.x)
    # Protein and fibre minimums are elastic in the model (HiGHS finds a first solution at once)
    # but hard for the plan: a solution that needs their slack counts as no solution.
    if x[model.slack0 + 6] > 1e-6 or x[model.slack0 + 7] > 1e-6:
        return None
    if (
        model.energy is not None
        and not model.energy_band[0] - 1e-6 <= float(model.energy @ x) <= model.energy_band[1] + 1e-6
    ):
        return None
    return x


_NOT_BREAKFAST = re.compile(r"\b(pasta|macaroni|spaghetti|noodles?|couscous|potato(es)?|lasagna)\b")


def _slot_candidates(
    slots: Sequence[str],
    pool: Sequence[Candidate],
    exhausted: set[str],
    rng: random.Random | None,
    kosher: bool,
) -> list[list[Candidate]]:
    """Per slot, the candidates of the model: a seeded sample per role, or all when ``rng`` is None."""
    by_role: dict[str, list[Candidate]] = {}
    for cand in pool:
        if cand.food.ndb_no not in exhausted or cand.role == "fat":
            by_role.setdefault(cand.role, []).append(cand)
    out: list[list[Candidate]] = []
    for slot in slots:
        kind = _kind(slot)
        chosen: list[Candidate] = []
        for role in sorted(TEMPLATES[kind].roles):
            if kosher and kind == "main" and role in {"cheese"}:
                continue
            options = list(by_role.get(role, ()))
            if kind == "breakfast" and role == "grain":
                # Rice, quinoa, oats or buckwheat make a breakfast; pasta and noodles do not.
                options = [c for c in options if not _NOT_BREAKFAST.search(c.food.description.lower())]
            if rng is not None:
                rng.shuffle(options)
                options = options[: _SAMPLE.get(role, _SAMPLE_DEFAULT)]
            chosen.extend(options)
        out.append(chosen)
    return out


def _diagnose(
    profile: Profile,
    slots: Sequence[str],
    goal: Targets,
    exhausted: set[str],
    kosher: bool,
) -> Infeasible:
    pool = eligible_pool(profile)
    conflicts: list[str] = []
    for name in sorted(profile.strict()):
        relaxed_pool = eligible_pool(profile, drop=name)
        by_slot = _slot_candidates(slots, relaxed_pool, exhausted, None, kosher)
        if _solve(_build(slots, by_slot, goal, {}, {}, None, kosher)) is not None:
            conflicts.append(f"strict restriction {name!r}")
    labels = {
        "energy": f"energy {goal.energy_kcal:.0f} kcal/day +-{_ENERGY_TOLERANCE:.0%}",
        "protein": f"protein {goal.protein_g[0]:.0f}-{goal.protein_g[1]:.0f} g/day",
        "fibre": f"fibre >= {goal.fiber_g_min:.0f} g/day",
        "meal structure": "meal structure (" + ", ".join(slots) + ")",
    }
    by_slot = _slot_candidates(slots, pool, exhausted, None, kosher)
    for relax, label in labels.items():
        if _solve(_build(slots, by_slot, goal, {}, {}, relax, kosher)) is not None:
            conflicts.append(label)
    if (
        not conflicts
        or all(c.startswith("strict") for c in conflicts)
        or not any(c.startswith("strict") for c in conflicts)
    ):
        # Name the whole clash when no single relaxation decides it: every strict restriction and
        # every hard constraint that took part.
        strict = [f"strict restriction {n!r}" for n in sorted(profile.strict())]
        conflicts = sorted(set(conflicts) | set(strict)) if conflicts else strict + list(labels.values())
    empty = [slot for slot, cands in zip(slots, by_slot, strict=True) if not cands]
    detail = f"{len(pool)} foods left after strict restrictions"
    if empty:
        detail += "; no food left for " + ", ".join(empty)
    return Infeasible(tuple(conflicts), detail)


def _item(cand: Candidate, count: int) -> PlanItem:
    grams = round(cand.unit_grams * count, 1)
    nutrients = {k: round(cand.food.nutrients.get(k, 0.0) * grams / 100.0, 2) for k in SUMMARY_KEYS}
    return PlanItem(
        ndb_no=cand.food.ndb_no,
        name=cand.food.description,
        role=cand.role,
        count=count,
        measure=cand.measure.text(count),
        grams=grams,
        nutrients=MappingProxyType(nutrients),
    )


def _whole_day(
    slots: Sequence[str],
    pool: Sequence[Candidate],
    exhausted: set[str],
    goal: Targets,
    costs: Mapping[str, float],
    uses: Mapping[str, int],
    rng: random.Random,
    kosher: bool,
) -> list[list[tuple[Candidate, int]]] | None:
    """Plan a day as one model: a seeded sample of candidates first, every eligible food if that fails.

    (Solving meal by meal instead, with the last meal taking the day's remainder, was measured:
    30-40 models of 20-30 pairs cost more than 7 of 60-120, because HiGHS spends most of each
    solve on its root heuristics whatever the size.)
    """
    for sample in (rng, None):
        by_slot = _slot_candidates(slots, pool, exhausted, sample, kosher)
        model = _build(slots, by_slot, goal, costs, uses, None, kosher)
        x = _solve(model)
        if x is not None:
            chosen: list[list[tuple[Candidate, int]]] = [[] for _ in slots]
            for i, (s, cand) in enumerate(model.pairs):
                count = round(float(x[i]))
                if count > 0:
                    chosen[s].append((cand, count))
            return chosen
    return None


def plan_meals(profile: Profile, *, training_kcal_per_week: float = 0.0, seed: int = 0) -> MealPlan:
    """A ``profile.days``-day meal plan; raises ``Infeasible`` naming conflicts, never returns an empty plan.

    ``training_kcal_per_week`` is the WPA's ``weekly_expenditure_kcal`` (see ``npa.profile``).
    The same profile, training figure and seed always give the same plan.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidProfile("seed", f"must be an integer, got {seed!r}")
    goal = targets(profile, training_kcal_per_week)
    slots = SLOTS[profile.meals_per_day]
    kosher = "kosher" in profile.strict()
    pool = eligible_pool(profile)
    costs = _costs(profile, pool)
    uses_max = max(2, math.ceil(3 * profile.days / 7))
    uses: dict[str, int] = {}
    days: list[DayPlan] = []
    for day in range(1, profile.days + 1):
        rng = random.Random(seed * 1_000 + day)
        exhausted = {ndb for ndb, n in uses.items() if n >= uses_max}
        picked = _whole_day(slots, pool, exhausted, goal, costs, uses, rng, kosher)
        if picked is None:
            raise _diagnose(profile, slots, goal, exhausted, kosher)
        meals: list[list[PlanItem]] = [[] for _ in slots]
        for s, items in enumerate(picked):
            for cand, count in items:
                meals[s].append(_item(cand, count))
                uses[cand.food.ndb_no] = uses.get(cand.food.ndb_no, 0) + 1
        if any(not m for m in meals):
            raise RuntimeError("solver returned a day with an empty meal despite the structure constraints")
        built = tuple(
            Meal(slot=slot, items=tuple(sorted(items, key=lambda it: (_ROLE_ORDER.get(it.role, 9), it.ndb_no))))
            for slot, items in zip(slots, meals, strict=True)
        )
        totals = {k: round(sum(it.nutrients[k] for m in built for it in m.items), 1) for k in SUMMARY_KEYS}
        days.append(DayPlan(day=day, meals=built, totals=MappingProxyType(totals)))
    notes: list[str] = []
    if goal.floor_applied:
        notes.append("energy raised to the safe floor (BMR, and 1,200 / 1,500 kcal); expect slower loss")
    if profile.strict() & {"halal", "kosher"}:
        notes.append("meat and poultry must be bought halal / kosher certified; the plan names the species")
    notes.append("nutrient data: USDA SR28 (2016); allergens derived from descriptions, check product labels")
    return MealPlan(
        days=tuple(days),
        targets=goal,
        training_kcal_per_week=float(training_kcal_per_week),
        seed=seed,
        notes=tuple(notes),
    )


_ROLE_ORDER = {
    "protein": 0,
    "egg": 0,
    "legume": 1,
    "cereal": 1,
    "grain": 2,
    "bread": 2,
    "vegetable": 3,
    "dairy": 4,
    "cheese": 5,
    "fruit": 6,
    "nuts": 7,
    "fat": 8,
}
