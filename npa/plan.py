"""Meal plan generation: a week's grocery basket, then one small mixed-integer program per day.

Theory of operation:

1. ``targets`` (``npa.profile``) gives the day's energy point target and the macro, fibre and
   sodium bands.
2. The curated pool (``npa.pool``) is filtered by the profile's *strict* restrictions before any
   model is built, so a strict allergen never appears, not even once. Moderate and preference
   restrictions and disliked words become costs on the foods.
3. A week is a shopping list, not 70 different foods: a seeded ``random.Random(seed)`` picks a
   *basket* per role (3 proteins, 2 legumes, 6 vegetables, 4 fruits, ... ``_BASKET``, and
   spare mains up to ``_MAINS_MIN``, eight, for the rotation of step 4: about 31 foods) from the
   eligible pool, and every day is planned from the basket only. The lowest-cost foods (no
   disliked or soft-restricted food) are preferred when the basket is drawn. When the day's
   protein or fibre band lies away from what the pool gives on average (``_leanings``: a 95 kg
   man losing weight needs 31-38 % of his energy from protein, a young man gaining needs 3,100
   kcal with at most 18 % from protein and 45 g of fibre), each role's foods are drawn from the
   cheapest share of it that leans the right way (``_LEAN_SHARE``: e.g. tuna, lean beef, pasta
   and bagels for the first, white rice, pita and mackerel for the second). A basket drawn at
   random left those days a sliver of feasible plans, which HiGHS took 0.3-2 s a day to find.
4. Repetition on purpose: dinner is cooked for two, so lunch on day d+1 *is* dinner of day d
   (same foods, same portions: fixed in the model); dinner's protein, legume or egg is none of
   the last three cooked dishes' (a dish is eaten on two days running, and comes back at most
   once a week). Breakfasts and snacks alternate between two versions: from day 3, day d eats
   day d-2's (pinned like the leftover lunch; if the day cannot be planned so, they are chosen
   afresh). With 2 meals a day there is no lunch to carry over. Pinning leaves the solver only
   dinner to choose on most days, which is most of the speed.
5. The model for a day, per (slot, food) pair i: ``n_i`` integer in [0, max_count] units of the
   food's household measure, ``y_i`` binary with ``y_i <= n_i <= max_count * y_i``. Hard
   constraints: the meal templates (``TEMPLATES``: slots of protein, starch, vegetable, fruit,
   fat roles; breakfast foods at breakfast, no added oil there), a food at most once a day,
   added fat at most 2 tbsp a day, each meal's energy within 80-120 % of its share of the day
   (``_ENERGY_SHARE`` normalised over the day's meals: breakfast about 22-33 %), protein per
   main meal at least 20 g (or 80 % of the meal's share of the day's minimum when that is
   lower) and at most 130 % of its share of the day's maximum, protein per snack at most 130 %
   of its share of the day's maximum (at least 10 g), fruit at least 2 and vegetables at
   least 3 portions of 80 g a day, cooked legumes at most 350 g a day, the day's energy within
   +-2.5 % of the target, protein within its band, fibre within its band, sodium under its
   limit. Soft, in the objective: energy outside a +-1.5 % dead band (1 point per % of target), fat
   and carbohydrate outside their AMDR bands (per gram), and the costs of step 2. No random
   noise. The objective carries a constant offset so that HiGHS's 1 % relative gap is an
   absolute gap of 2 points: a plan that close to the best bound is kept, not proven optimal.
6. If a day has no solution from the basket, it is retried with the basket plus a seeded sample
   of the eligible pool (first with the leftover lunch, then with a fresh one), then with the
   whole eligible pool; foods so added join the basket for the following days (the grocery
   list grows by what the day needed, no more).
7. If even the full eligible pool has no solution, the planner diagnoses: it re-solves with one
   rule relaxed at a time (energy, protein, fibre, sodium, meal structure) and with one strict
   restriction dropped at a time, and raises ``Infeasible`` naming the strict restrictions and
   rules whose relaxation makes a day possible.

Each day model is first given to ``npa.feasible.local_search`` (40 seeded steps on the model's own
matrix; a plan it returns meets every row and is within the 2-point gap HiGHS would accept), then
to ``scipy.optimize.milp`` (HiGHS branch and cut, relative gap 1 %): with presolve and a node
limit first (the same outcome on every machine), and when that ends without a plan or with one
holding a disliked or soft-restricted food, without presolve and with a time limit per day so
that a pathological input cannot hang the agent.
"""

from __future__ import annotations

import random  # noqa: TID251 - only seeded random.Random(seed) instances, never the global generator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp  # type: ignore[import-untyped]

from npa.diet import ALLERGENS, allergens_of, conflicting_patterns
from npa.errors import Infeasible, InvalidProfile
from npa.feasible import local_search
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
# Meal energy shares before normalising over the day's meals (3 meals: 27 / 36.5 / 36.5 %).
# Lunch and dinner share one figure because lunch is the previous dinner's second portion.
_ENERGY_SHARE = {"breakfast": 0.25, "lunch": 0.325, "dinner": 0.325, "snack": 0.10}


@dataclass(frozen=True, slots=True)
class Template:
    """What a meal of one kind may hold: roles allowed, (roles, min, max) rules, item count band."""

    roles: frozenset[str]
    rules: tuple[tuple[frozenset[str], int, int], ...]
    items: tuple[int, int]


def _r(*roles: str) -> frozenset[str]:
    return frozenset(roles)


TEMPLATES: Mapping[str, Template] = {
    # Breakfast: one base (cereal, bread, or oats / buckwheat) and at least one of fruit, dairy or
    # egg; no meat, vegetables or oil (the foods of a breakfast, not a dinner at 8 am).
    "breakfast": Template(
        roles=_r("cereal", "bread", "grain", "egg", "dairy", "fruit", "nuts", "cheese"),
        rules=(
            (_r("cereal", "bread", "grain"), 1, 1),
            (_r("fruit", "dairy", "egg"), 1, 3),
            (_r("fruit"), 0, 1),
            (_r("dairy"), 0, 1),
            (_r("egg"), 0, 1),
            (_r("nuts"), 0, 1),
            (_r("cheese"), 0, 1),
        ),
        items=(2, 4),
    ),
    # Lunch and dinner: a protein slot (meat, fish, egg, tofu, or one legume), a starch, one or
    # two vegetables, optionally fruit for dessert and a tablespoon of fat.
    "main": Template(
        roles=_r("protein", "legume", "egg", "grain", "bread", "vegetable", "cheese", "fat", "fruit"),
        rules=(
            (_r("protein", "legume", "egg"), 1, 2),
            (_r("protein"), 0, 1),
            (_r("legume"), 0, 1),
            (_r("grain", "bread"), 1, 1),
            (_r("vegetable"), 1, 2),
            (_r("cheese"), 0, 1),
            (_r("fat"), 0, 1),
            (_r("fruit"), 0, 1),
        ),
        items=(3, 6),
    ),
    "snack": Template(
        roles=_r("fruit", "nuts", "dairy", "vegetable", "cheese"),
        rules=((_r("fruit", "nuts", "dairy", "vegetable", "cheese"), 1, 2), (_r("nuts"), 0, 1)),
        items=(1, 2),
    ),
}
# The week's basket: foods per role (step 3 of the docstring), then spare mains: about 31 foods.
_BASKET = {
    "protein": 3,
    "legume": 2,
    "egg": 1,
    "dairy": 2,
    "cheese": 1,
    "fat": 2,
    "cereal": 1,
    "bread": 2,
    "grain": 3,
    "vegetable": 6,
    "fruit": 4,
    "nuts": 2,
}
# Drawing each role from its cheapest, then best-leaning 40 % (step 3) when a band leans: when
# the pool's natural density lies beyond the band's edge or within 10 % of it. Measured on the
# bench's four profiles, 15 seeds each (CPU per 7-day plan, with six mains, before the spare
# two): a random basket p50 320 ms, p95 2.9 s; 40 % p50 137 ms, p95 578 ms; 25 % p50 101 ms,
# p95 747 ms (fewer foods to pick from).
_LEAN_SHARE = 40
_LEAN_MARGIN = 0.1
_ROTATION = 3  # cooked dishes whose mains today's dinner may not repeat (step 4)
_MAINS = frozenset({"protein", "legume", "egg"})
_MAINS_MIN = 8  # mains in the basket: the last three cooked dishes may hold two each, and two to choose from
_SAMPLE = 3  # extra foods per role when a day cannot be planned from the basket (step 6)
_ENERGY_WEIGHT = 100.0
_OBJECTIVE_OFFSET = 200.0
_ENERGY_TOLERANCE = 0.025
_ENERGY_FREE = 0.015
_SLOT_BAND = (0.8, 1.2)  # a meal's energy between 80 % and 120 % of its share of the day
_MEAL_PROTEIN_MIN_G = 20.0  # per main meal (breakfast, lunch, dinner)
_MEAL_PROTEIN_SHARE = (0.8, 1.3)  # of the meal's share of the day's protein minimum / maximum
_SNACK_PROTEIN_FLOOR_G = 10.0  # the snack cap never below this (a pot of yogurt)
_PORTION_G = 80.0  # one portion of fruit or vegetables (WHO / NHS "5 a day")
_FRUIT_PORTIONS_MIN = 2
_VEGETABLE_PORTIONS_MIN = 3
_LEGUME_G_MAX = 350.0  # cooked legumes a day (about 2 cups)
_FAT_UNITS_MAX_PER_DAY = 2
_TIME_LIMIT_S = 2.0
_FAST_NODES_MAX = 200
# Presolve off: the day models are small and mostly pinned columns. With presolve on, most of the
# hard days left after the local search solve about a third faster (the same 20 bench plans: CPU
# p50 243 ms vs 298 ms), but a few take far longer (one day over 6 s, where presolve off needs
# under 1 s). So a day is first solved with presolve on and a node limit (``_HIGHS_FAST``: a node
# count, not a time, so the outcome is the same on every machine). A plan found by that limit is
# kept unless it holds a disliked or soft-restricted food (``_kept_at_node_limit``); otherwise, or
# with no plan, the day is solved again with these settings. Measured, 20 bench plans: re-solving
# every day that reached the limit made p95 5.6-6.2 s; keeping them, 2.7-2.9 s (CPU p50 with
# node limits of 200 / 1,000 / 5,000 when re-solving: 267 / 271 / 290 ms).
_HIGHS_OPTIONS: dict[str, object] = {
    "time_limit": _TIME_LIMIT_S,
    "mip_rel_gap": 0.01,
    "presolve": False,
    "disp": False,
}
# HiGHS's 1 % relative gap over the offset: a plan this close to the offset bound is accepted
# by either search (``npa.feasible``).
_GAP_POINTS = _OBJECTIVE_OFFSET * float(_HIGHS_OPTIONS["mip_rel_gap"])  # type: ignore[arg-type]
# Steps of the local search before HiGHS is asked. Measured (CPU per 7-day plan, same 20 plans):
# 40 steps p50 302 ms; 100 steps 332 ms; 200 steps (found twice as many of the large first days)
# 343 ms: a failed long search costs more than the HiGHS time the found ones save.
_SEARCH_STEPS = 40
_SEARCH_PAIRS_MAX = 100
# Swap moves of the local search stay inside a meal and one of these classes.
_SWAP_CLASS = {
    "protein": "main",
    "legume": "main",
    "egg": "main",
    "grain": "starch",
    "bread": "starch",
    "cereal": "starch",
}
_HIGHS_FAST: dict[str, object] = _HIGHS_OPTIONS | {"presolve": True, "node_limit": _FAST_NODES_MAX}
_COST_MODERATE = 25.0
_COST_PREFERENCE = 8.0
_COST_DISLIKE = 15.0


def _kind(slot: str) -> str:
    return "snack" if "snack" in slot else "breakfast" if slot == "breakfast" else "main"


def _shares(slots: Sequence[str]) -> list[float]:
    """Each meal's share of the day's energy, normalised over the day's meals."""
    raw = [_ENERGY_SHARE["snack" if "snack" in s else s] for s in slots]
    return [r / sum(raw) for r in raw]


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
    groups: list[int] = field(default_factory=list)
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


# Rules the diagnosis relaxes one at a time (step 7); "meal structure" covers the templates and
# every per-meal and per-day portion rule.
_RELAXABLE = ("energy", "protein", "fibre", "sodium", "meal structure")


def _build(
    slots: Sequence[str],
    by_slot: Sequence[Sequence[Candidate]],
    goal: Targets,
    costs: Mapping[str, float],
    relax: str | None,
    kosher: bool,
    fixed: Mapping[int, Mapping[str, int]] | None = None,
) -> _Model:
    """One model over ``slots``; ``fixed`` pins a slot's foods and counts (the leftover lunch)."""
    pairs = [(s, c) for s, cands in enumerate(by_slot) for c in cands]
    n_pairs = len(pairs)
    fixed = fixed or {}
    # Columns: n (n_pairs), y (n_pairs), then continuous slacks: energy above / below the dead band,
    # fat below / above its band, carbohydrate below / above; last, the objective offset (fixed 1).
    extra = 7
    width = 2 * n_pairs + extra
    e0 = 2 * n_pairs
    energy_target = goal.energy_kcal
    c = np.zeros(width)
    for i, (_, cand) in enumerate(pairs):
        c[n_pairs + i] = costs.get(cand.food.ndb_no, 0.0)
    c[e0] = c[e0 + 1] = _ENERGY_WEIGHT / energy_target
    c[e0 + 2] = c[e0 + 3] = 1.0  # per gram of fat outside the AMDR band
    c[e0 + 4] = c[e0 + 5] = 0.5  # per gram of carbohydrate outside the AMDR band
    # HiGHS stops at a relative gap; a constant offset turns that into an absolute gap of
    # _OBJECTIVE_OFFSET x gap points (1 point = 1 % of energy outside the dead band, or 1 g of
    # fat): the first solution that close to the bound is kept instead of proving the optimum
    # among near-equal plans (measured: about 3x faster a day).
    c[e0 + 6] = _OBJECTIVE_OFFSET
    integrality = np.concatenate([np.ones(2 * n_pairs), np.zeros(extra)])
    lower = np.zeros(width)
    upper = np.concatenate(
        [np.array([float(cand.max_count) for _, cand in pairs]), np.ones(n_pairs), np.full(extra, np.inf)]
    )
    lower[e0 + 6] = upper[e0 + 6] = 1.0
    for i, (s, cand) in enumerate(pairs):
        if s in fixed:
            count = float(fixed[s].get(cand.food.ndb_no, 0))
            lower[i] = upper[i] = count
            lower[n_pairs + i] = upper[n_pairs + i] = 1.0 if count > 0 else 0.0
    swap_keys: dict[tuple[int, str], int] = {}
    groups = [swap_keys.setdefault((s, _SWAP_CLASS.get(cand.role, cand.role)), len(swap_keys)) for s, cand in pairs]
    model = _Model(pairs, c, integrality, lower, upper, slack0=e0, groups=groups)

    def row() -> np.ndarray:
        return np.zeros(width)

    def in_slot(s: int, key: str | None = None, roles: frozenset[str] | None = None, y: bool = False) -> np.ndarray:
        """A row over slot ``s`` (every slot when -1): per-unit ``key`` on n, or 1 on y."""
        r = row()
        for i, (ps, cand) in enumerate(pairs):
            if (s == -1 or ps == s) and (roles is None or cand.role in roles):
                if y:
                    r[n_pairs + i] = 1.0
                else:
                    r[i] = _per_unit(cand, key) if key else 1.0
        return r

    for i, (_, cand) in enumerate(pairs):
        r = row()
        r[i], r[n_pairs + i] = 1.0, -float(cand.max_count)
        model.add(r, -np.inf, 0.0)
        r = row()
        r[i], r[n_pairs + i] = 1.0, -1.0
        model.add(r, 0.0, np.inf)
    shares = _shares(slots)
    structured = relax != "meal structure"
    for s, slot in enumerate(slots):
        template = TEMPLATES[_kind(slot)]
        if not structured:
            model.add(in_slot(s, y=True), 1.0, np.inf)
            continue
        if s not in fixed:  # a leftover lunch met the template as yesterday's dinner
            for roles, lo, hi in template.rules:
                model.add(in_slot(s, roles=roles, y=True), float(lo), float(hi))
            model.add(in_slot(s, y=True), float(template.items[0]), float(template.items[1]))
        if len(slots) > 1:
            target = energy_target * shares[s]
            model.add(in_slot(s, "energy_kcal"), target * _SLOT_BAND[0], target * _SLOT_BAND[1])
        if _kind(slot) != "snack":
            low = min(_MEAL_PROTEIN_MIN_G, _MEAL_PROTEIN_SHARE[0] * shares[s] * goal.protein_g[0])
            high = max(_MEAL_PROTEIN_SHARE[1] * shares[s] * goal.protein_g[1], low + 10.0)
            model.add(in_slot(s, "protein_g"), low, high)
        else:  # a snack is not a protein meal: at most 130 % of its share of the day's maximum
            high = max(_MEAL_PROTEIN_SHARE[1] * shares[s] * goal.protein_g[1], _SNACK_PROTEIN_FLOOR_G)
            model.add(in_slot(s, "protein_g"), 0.0, high)
    if structured:
        grams = {"fruit": _FRUIT_PORTIONS_MIN, "vegetable": _VEGETABLE_PORTIONS_MIN}
        for role, portions in grams.items():
            r = row()
            for i, (_, cand) in enumerate(pairs):
                if cand.role == role:
                    r[i] = cand.unit_grams
            model.add(r, portions * _PORTION_G, np.inf)
        r = row()
        for i, (_, cand) in enumerate(pairs):
            if cand.role == "legume":
                r[i] = cand.unit_grams
        model.add(r, 0.0, _LEGUME_G_MAX)
    by_food: dict[str, list[int]] = {}
    for i, (_, cand) in enumerate(pairs):
        by_food.setdefault(cand.food.ndb_no, []).append(i)
    for ndb, columns in by_food.items():
        if len(columns) > 1:
            r = row()
            for i in columns:
                r[n_pairs + i] = 1.0
            # A food once a day among the meals chosen today; two pinned meals (a leftover lunch
            # and a repeated breakfast, each fine on its own day) may share one, e.g. a banana.
            pinned = sum(1 for s, items in fixed.items() if items.get(ndb, 0) > 0)
            model.add(r, 0.0, float(max(1, pinned)))
    model.add(in_slot(-1, roles=frozenset({"fat"})), 0.0, float(_FAT_UNITS_MAX_PER_DAY))
    if kosher:  # meat and milk never in the same meal
        for s in range(len(slots)):
            meat = [i for i, (ps, cand) in enumerate(pairs) if ps == s and cand.role == "protein"]
            milk = [i for i, (ps, cand) in enumerate(pairs) if ps == s and "milk" in allergens_of(cand.food)]
            for a in meat:
                for b in milk:
                    r = row()
                    r[n_pairs + a] = r[n_pairs + b] = 1.0
                    model.add(r, 0.0, 1.0)

    energy = in_slot(-1, "energy_kcal")
    if relax != "energy":
        model.energy = energy
        model.energy_band = (energy_target * (1 - _ENERGY_TOLERANCE), energy_target * (1 + _ENERGY_TOLERANCE))
        model.add(energy, *model.energy_band)
    free = (energy_target * (1 - _ENERGY_FREE), energy_target * (1 + _ENERGY_FREE))
    # Energy outside the dead band +-_ENERGY_FREE costs; inside it, every plan is as good, which
    # leaves HiGHS many optimal solutions to find fast (a point target made each day ~1 s).
    r = energy.copy()
    r[e0] = -1.0
    model.add(r, -np.inf, free[1])
    r = energy.copy()
    r[e0 + 1] = 1.0
    model.add(r, free[0], np.inf)
    protein = in_slot(-1, "protein_g")
    if relax != "protein":
        model.add(protein, goal.protein_g[0], goal.protein_g[1])
    if relax != "fibre":
        model.add(in_slot(-1, "fiber_g"), goal.fiber_g_min, goal.fiber_g_max)
    if relax != "sodium":
        model.add(in_slot(-1, "sodium_mg"), -np.inf, goal.sodium_mg_max)
    fat = in_slot(-1, "fat_g")
    r = fat.copy()
    r[e0 + 2] = 1.0
    model.add(r, goal.fat_g[0], np.inf)
    r = fat.copy()
    r[e0 + 3] = -1.0
    model.add(r, -np.inf, goal.fat_g[1])
    carb = in_slot(-1, "carbohydrate_g")
    r = carb.copy()
    r[e0 + 4] = 1.0
    model.add(r, goal.carbohydrate_g[0], np.inf)
    r = carb.copy()
    r[e0 + 5] = -1.0
    model.add(r, -np.inf, goal.carbohydrate_g[1])
    return model


def _kept_at_node_limit(model: _Model, x: np.ndarray | None) -> bool:
    """A plan HiGHS had at its node limit is kept unless it holds a disliked or soft-restricted food
    that was not pinned: its soft energy and macro costs may be above the gap (every hard rule
    holds), but a preference the gap would have honoured is not given up for speed."""
    if x is None:
        return False
    n = len(model.pairs)
    chosen = np.asarray(x)[n : 2 * n] > 0.5
    return not bool(np.any(chosen & (model.c[n : 2 * n] > 0) & (model.lower[n : 2 * n] < 0.5)))


def _solve(model: _Model, search_seed: int | None = None) -> np.ndarray | None:
    """A plan of the model: the local search first (``search_seed`` given), then HiGHS."""
    if not model.pairs:
        return None
    matrix = np.vstack(model.rows)
    row_lo, row_hi = np.array(model.row_lo), np.array(model.row_hi)
    if search_seed is not None and len(model.pairs) <= _SEARCH_PAIRS_MAX:
        found = local_search(
            model.c,
            model.lower,
            model.upper,
            matrix,
            row_lo,
            row_hi,
            len(model.pairs),
            model.groups,
            [s for s, _ in model.pairs],
            random.Random(search_seed),
            gap_points=_GAP_POINTS,
            steps=_SEARCH_STEPS,
        )
        if found is not None:
            return found
    constraints = LinearConstraint(matrix, row_lo, row_hi)
    bounds = Bounds(model.lower, model.upper)
    # Copies: scipy's milp pops keys ("disp", "node_limit") from the options it is given.
    fast = dict(_HIGHS_FAST)
    result = milp(model.c, integrality=model.integrality, bounds=bounds, constraints=constraints, options=fast)
    if result.status == 1 and not _kept_at_node_limit(model, result.x):
        robust = dict(_HIGHS_OPTIONS)
        result = milp(model.c, integrality=model.integrality, bounds=bounds, constraints=constraints, options=robust)
    if result.x is None or result.status not in (0, 1):
        return None
    x = np.asarray(result.x)
    if (
        model.energy is not None
        and not model.energy_band[0] - 1e-6 <= float(model.energy @ x) <= model.energy_band[1] + 1e-6
    ):
        return None
    return x


# Grains that make a breakfast (porridge); rice, pasta, potatoes and the rest wait for lunch.
_BREAKFAST_GRAIN = re.compile(r"\b(oats?|oatmeal|buckwheat)\b")


def _slot_candidates(
    slots: Sequence[str],
    pool: Sequence[Candidate],
    kosher: bool,
    *,
    fixed: Mapping[int, Sequence[Candidate]] | None = None,
    excluded: Mapping[int, set[str]] | None = None,
) -> list[list[Candidate]]:
    """Per slot, the pool foods its template allows (``fixed`` slots: just those foods)."""
    by_role: dict[str, list[Candidate]] = {}
    for cand in pool:
        by_role.setdefault(cand.role, []).append(cand)
    out: list[list[Candidate]] = []
    for s, slot in enumerate(slots):
        if fixed and s in fixed:
            out.append(list(fixed[s]))
            continue
        kind = _kind(slot)
        skip = excluded.get(s, set()) if excluded else set()
        chosen: list[Candidate] = []
        for role in sorted(TEMPLATES[kind].roles):
            if kosher and kind == "main" and role in {"cheese"}:
                continue
            options = [c for c in by_role.get(role, ()) if c.food.ndb_no not in skip]
            if kind == "breakfast" and role == "grain":
                options = [c for c in options if _BREAKFAST_GRAIN.search(c.food.description.lower())]
            chosen.extend(options)
        out.append(chosen)
    return out


def _leanings(by_role: Mapping[str, Sequence[Candidate]], goal: Targets) -> dict[str, float]:
    """Which way the basket must lean, per nutrient: a weight per kcal-density of ``protein_g`` or
    ``fiber_g``, positive to prefer foods dense in it, negative to prefer foods poor in it.

    The pool's *natural* density is what a basket drawn at random gives: each role's average per
    unit, weighted by the role's basket count. A nutrient leans only when the day's band (per
    kcal of the day's target) does not hold that density with a margin (``_LEAN_MARGIN`` of the
    band's edge); the weight is the inverse of the natural density, so the nutrients count alike.
    A band so narrow that the density is within the margin of both edges leans neither way.
    """

    def random_basket(key: str) -> float:  # what a basket drawn at random holds of ``key``
        return sum(_BASKET.get(r, 1) * sum(_per_unit(c, key) for c in cs) / len(cs) for r, cs in by_role.items())

    leanings: dict[str, float] = {}
    bands = {"protein_g": goal.protein_g, "fiber_g": (goal.fiber_g_min, goal.fiber_g_max)}
    kcal = max(random_basket("energy_kcal"), 1.0)
    for key, (low, high) in bands.items():
        natural = random_basket(key) / kcal
        if natural <= 0.0:
            continue
        down = natural > high / goal.energy_kcal * (1 - _LEAN_MARGIN)
        up = natural < low / goal.energy_kcal * (1 + _LEAN_MARGIN)
        if down != up:
            leanings[key] = (1.0 if up else -1.0) / natural
    return leanings


def _basket(
    pool: Sequence[Candidate], costs: Mapping[str, float], goal: Targets, rng: random.Random
) -> list[Candidate]:
    """The week's grocery basket: per role, ``_BASKET`` foods, cheapest first, seeded among equals,
    drawn from the foods that lean the way the day's bands need (``_leanings``)."""
    by_role: dict[str, list[Candidate]] = {}
    for cand in pool:
        by_role.setdefault(cand.role, []).append(cand)
    leanings = _leanings(by_role, goal)

    def lean(c: Candidate) -> float:
        kcal = max(c.food.nutrients.get("energy_kcal", 0.0), 1.0)
        return sum(w * c.food.nutrients.get(k, 0.0) / kcal for k, w in leanings.items())

    basket: list[Candidate] = []
    for role in sorted(by_role):
        options = by_role[role]
        if leanings:  # the cheapest, best-leaning share, three per food wanted; the draw is seeded
            # (ties at the cut go by NDB number: seeding them too measured no faster, p95 0.38-0.47 s
            # against 0.34-0.36 s over the same 60 plans)
            options.sort(key=lambda c: (costs.get(c.food.ndb_no, 0.0), -lean(c), c.food.ndb_no))
            del options[max(3 * _BASKET.get(role, 1), len(options) * _LEAN_SHARE // 100) :]
        rng.shuffle(options)
        options.sort(key=lambda c: costs.get(c.food.ndb_no, 0.0))  # stable: the shuffle breaks ties
        basket.extend(options[: _BASKET.get(role, 1)])
    # Dinner rotates its main over the last three cooked dishes (step 4), so the basket needs
    # spare mains: the last three cooked dishes may hold two each, which left a dinner with no
    # main in the basket on some day of 5 of 60 bench plans when it held six (that day then took a
    # 150-pair model). When proteins are scarce (a vegan has tofu and tempeh), legumes make them
    # up; when the bands lean, the best-leaning come first (meat and fish for a 95 kg man losing
    # weight, whose 31-38 % of energy from protein a legume dinner cannot give).
    spare = [c for role in ("legume", "protein") for c in by_role.get(role, ()) if c not in basket]
    if leanings:
        spare.sort(key=lambda c: (costs.get(c.food.ndb_no, 0.0), -lean(c)))  # stable: seeded order among equals
    mains = sum(1 for c in basket if c.role in _MAINS)
    basket.extend(spare[: max(0, _MAINS_MIN - mains)])
    return basket


def _diagnose(profile: Profile, slots: Sequence[str], goal: Targets, kosher: bool) -> Infeasible:
    pool = eligible_pool(profile)
    conflicts: list[str] = []
    for name in sorted(profile.strict()):
        relaxed_pool = eligible_pool(profile, drop=name)
        by_slot = _slot_candidates(slots, relaxed_pool, kosher)
        if _solve(_build(slots, by_slot, goal, {}, None, kosher)) is not None:
            conflicts.append(f"strict restriction {name!r}")
    labels = {
        "energy": f"energy {goal.energy_kcal:.0f} kcal/day +-{_ENERGY_TOLERANCE:.1%}",
        "protein": f"protein {goal.protein_g[0]:.0f}-{goal.protein_g[1]:.0f} g/day",
        "fibre": f"fibre {goal.fiber_g_min:.0f}-{goal.fiber_g_max:.0f} g/day",
        "sodium": f"sodium < {goal.sodium_mg_max:.0f} mg/day",
        "meal structure": "meal structure (" + ", ".join(slots) + ": templates, energy shares, protein per meal,"
        " fruit and vegetable portions, legumes)",
    }
    by_slot = _slot_candidates(slots, pool, kosher)
    for relax in _RELAXABLE:
        if _solve(_build(slots, by_slot, goal, {}, relax, kosher)) is not None:
            conflicts.append(labels[relax])
    if (
        not conflicts
        or all(c.startswith("strict") for c in conflicts)
        or not any(c.startswith("strict") for c in conflicts)
    ):
        # Name the whole clash when no single relaxation decides it: every strict restriction and
        # every rule that took part.
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


_Day = list[list[tuple[Candidate, int]]]


def _plan_day(
    slots: Sequence[str],
    basket: list[Candidate],
    pool: Sequence[Candidate],
    goal: Targets,
    costs: Mapping[str, float],
    rng: random.Random,
    kosher: bool,
    fixed: Mapping[int, Sequence[tuple[Candidate, int]]],
    recent_mains: set[str],
    stages: Sequence[int] = (0, 1, 2),
    search_seed: int | None = None,
) -> _Day | None:
    """Plan a day as one model: from the basket, then the basket and a sample, then the whole pool.

    ``fixed`` meals (the leftover lunch, a repeated breakfast) are pinned; ``recent_mains`` are
    kept off dinner. (Solving meal by meal instead, with the last meal taking the day's
    remainder, was measured: 30-40 models of 20-30 pairs cost more than 7 of 60-120, because
    HiGHS spends most of each solve on its root heuristics whatever the size.)
    """
    fixed_cands = {s: [c for c, _ in items] for s, items in fixed.items()}
    fixed_counts = {s: {c.food.ndb_no: n for c, n in items} for s, items in fixed.items()}
    excluded = {slots.index("dinner"): recent_mains}
    in_basket = {c.food.ndb_no for c in basket}
    by_role: dict[str, list[Candidate]] = {}
    for cand in pool:
        if cand.food.ndb_no not in in_basket:
            by_role.setdefault(cand.role, []).append(cand)
    sample: list[Candidate] = []
    for role in sorted(by_role):
        sample.extend(rng.sample(by_role[role], min(_SAMPLE, len(by_role[role]))))
    food_sets = (basket, basket + sample, list(pool))
    for foods in (food_sets[k] for k in stages):
        by_slot = _slot_candidates(slots, foods, kosher, fixed=fixed_cands, excluded=excluded)
        model = _build(slots, by_slot, goal, costs, None, kosher, fixed_counts)
        x = _solve(model, search_seed)
        if x is not None:
            chosen: _Day = [[] for _ in slots]
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
    basket = _basket(pool, costs, goal, random.Random(seed))
    days: list[DayPlan] = []
    picked_days: list[_Day] = []
    recent: list[set[str]] = []
    lunch = slots.index("lunch") if "lunch" in slots else -1
    dinner = slots.index("dinner")
    repeated = [s for s, slot in enumerate(slots) if _kind(slot) in {"breakfast", "snack"}]
    for day in range(1, profile.days + 1):
        rng = random.Random(seed * 1_000 + day)
        leftover = {lunch: picked_days[-1][dinner]} if lunch >= 0 and picked_days else {}
        # Cheapest first (stages: 0 the basket, 1 the basket and a sample, 2 the whole pool):
        # breakfasts and snacks alternate between two versions (step 4), day d eats day d-2's,
        # which leaves only dinner to choose; then the leftover lunch with breakfast chosen
        # afresh; then a fresh lunch (the leftover no longer fits); the whole pool (a 270-pair
        # model, up to a second) only when the basket and a sample cannot do it.
        tries: list[tuple[dict[int, list[tuple[Candidate, int]]], tuple[int, ...]]] = []
        if len(picked_days) >= 2:
            tries.append((leftover | {s: picked_days[-2][s] for s in repeated}, (0,)))
        tries.append((leftover, (0, 1)))
        if leftover:
            tries.append(({}, (0, 1)))
        tries.append((leftover, (2,)))
        if leftover:
            tries.append(({}, (2,)))
        picked: _Day | None = None
        fresh_lunch = True
        recent_mains = set().union(*recent)
        for fixed, stages in tries:
            picked = _plan_day(
                slots, basket, pool, goal, costs, rng, kosher, fixed, recent_mains, stages, seed * 1_000 + day
            )
            if picked is not None:
                fresh_lunch = lunch >= 0 and lunch not in fixed
                break
        if picked is None:
            raise _diagnose(profile, slots, goal, kosher)
        picked_days.append(picked)
        in_basket = {c.food.ndb_no for c in basket}
        for items in picked:
            for c, _ in items:
                if c.food.ndb_no not in in_basket:
                    basket.append(c)
                    in_basket.add(c.food.ndb_no)
        # The mains of the last three cooked dishes (dinners, and a fresh lunch) are off the next
        # dinner: a dish is eaten on two days running at most, and comes back at most once a week.
        cooked = [s for s in (lunch, dinner) if s == dinner or (s >= 0 and fresh_lunch)]
        for s in cooked:
            recent.append({c.food.ndb_no for c, _ in picked[s] if c.role in _MAINS})
        recent = recent[-_ROTATION:]
        meals: list[list[PlanItem]] = [[_item(cand, count) for cand, count in items] for items in picked]
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
    if "lunch" in slots:
        notes.append("dinner is cooked for two: lunch the next day is its second portion")
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
