"""Food search that reads the question: hard filters from allergen, diet and meal words, nutrient ranking.

Theory of operation. A sentence embedding knows what "breakfast" is about but not what "high in
protein" means: the vector index alone returned 3 high-protein foods of 10 for "high-protein
breakfast". So a question is first parsed, with this domain's own vocabulary, into a
``FoodQuery`` (pure, no I/O):

- exclusions ("without dairy", "nut-free", "no eggs", "allergic to peanuts") become allergens or
  diet patterns that no hit may hold: hard filters applied *inside* the index query, as before;
- diet words ("vegan", "halal", "gluten-free") become patterns every hit must be compatible with;
- meal words ("breakfast", "snack") and food-kind words ("fruit", "cheese", "beans") become the
  pool roles a hit must have (the roles of ``npa.pool``: breakfast is cereal, bread, grain, egg,
  dairy, fruit, nuts or cheese); a hard filter too, in the index;
- nutrient words ("high-protein", "low-sodium", "rich in iron", "low-carb") become goals ranked
  by the nutrient **per 100 kcal** (so a food is not "high in protein" for being dense in
  everything), except energy itself ("low-calorie"), ranked per 100 g.

Then ``rank_foods`` re-scores the index's top ``CANDIDATES`` hits for the text that is left: with
nutrient goals, ``NUTRIENT_WEIGHT`` of the score is the candidates' rank on the goals and the
rest their rank on similarity; without, the order is the index's. Exclusion phrases are removed
from the text that is embedded ("without dairy" would otherwise pull dairy up).

The payload each food is indexed with (``food_items``) carries what the re-ranking reads: the pool
role and the main nutrients per 100 kcal. The pure parts are tested on hand-made hits; the edge
(``search_foods``) takes the index's search as a function, so it runs on a real index or a fake.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from knowledge.agent import IndexItem
from knowledge.vectors import Hit, VectorFilter
from npa.diet import allergens_of, conflicting_patterns
from npa.ontology import MAIN_NUTRIENTS, food_text
from npa.pool import Candidate

__all__ = [
    "CANDIDATES",
    "MEAL_ROLES",
    "NUTRIENT_WEIGHT",
    "FoodQuery",
    "NutrientGoal",
    "food_items",
    "food_payload",
    "parse_food_question",
    "per_100kcal_field",
    "rank_foods",
    "search_foods",
]

#: How many hits of the vector index are re-ranked (the NPA's index holds the pool: about 600 foods).
CANDIDATES = 200
#: Share of the score that comes from the nutrient goals when the question names one.
NUTRIENT_WEIGHT = 0.7

#: Pool roles a meal word allows (the roles ``npa.pool`` gives; the meal templates of ``npa.plan``).
MEAL_ROLES: Mapping[str, frozenset[str]] = {
    # Not "grain": the pool's grains are cooked rice, pasta and the like (hot oats are cereals).
    "breakfast": frozenset({"cereal", "bread", "egg", "dairy", "fruit", "nuts", "cheese"}),
    "lunch": frozenset({"protein", "legume", "egg", "grain", "bread", "vegetable", "cheese"}),
    "dinner": frozenset({"protein", "legume", "egg", "grain", "bread", "vegetable", "cheese"}),
    "snack": frozenset({"fruit", "nuts", "dairy", "vegetable", "cheese"}),
}
_MEAL_WORDS: tuple[tuple[str, str], ...] = (
    (r"breakfasts?|brunch|morning meal", "breakfast"),
    (r"lunch(?:es)?|midday meal", "lunch"),
    (r"dinners?|suppers?|evening meal|main meal|main course", "dinner"),
    (r"snacks?|snacking|between meals", "snack"),
)
# Food-kind words -> pool roles. Allergen words ("dairy", "nuts", "eggs") are kinds too unless negated.
_KIND_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    (r"fruits?|berry|berries", frozenset({"fruit"})),
    (r"vegetables?|veggies?|veg|greens|salad", frozenset({"vegetable"})),
    (r"cheeses?", frozenset({"cheese"})),
    (r"dairy|milk|yogh?urts?", frozenset({"dairy", "cheese"})),
    (r"eggs?", frozenset({"egg"})),
    (r"nuts?|seeds?", frozenset({"nuts"})),
    (r"beans?|legumes?|lentils?|pulses|chickpeas?", frozenset({"legume"})),
    (r"breads?|toast|bagels?|tortillas?", frozenset({"bread"})),
    (r"cereals?|porridge|oatmeal|muesli|granola", frozenset({"cereal"})),
    (r"grains?|rice|pasta|quinoa", frozenset({"grain"})),
    (r"meats?|poultry|fish|seafood|chicken|beef|pork|turkey|lamb|tofu|tempeh", frozenset({"protein"})),
    (r"oils?|butter", frozenset({"fat"})),
)

# Nutrient words -> the nutrient key (``npa.foods.NUTRIENT_KEYS``, among ``MAIN_NUTRIENTS``).
_NUTRIENT_WORDS: tuple[tuple[str, str], ...] = (
    (r"saturated fats?|sat(?:urated)?[- ]fats?", "sat_fat_g"),
    (r"proteins?", "protein_g"),
    (r"fib(?:er|re)s?", "fiber_g"),
    (r"sodium|salt|salty", "sodium_mg"),
    (r"sugars?|sugary|sweet", "sugar_g"),
    (r"fats?|fatty", "fat_g"),
    (r"carbs?|carbohydrates?", "carbohydrate_g"),
    (r"cholesterol", "cholesterol_mg"),
    (r"calcium", "calcium_mg"),
    (r"iron", "iron_mg"),
    (r"potassium", "potassium_mg"),
    (r"vitamin c|vit c|vitamin-c", "vit_c_mg"),
    (r"calories?|calorie|kcal|energy", "energy_kcal"),
)
_HIGH = r"high|higher|rich|packed|loaded|lots of|plenty of|full of|good source of|source of|more|max(?:imum)?"
_LOW = r"low|lower|less|little|reduced|light|min(?:imum)?|no added|without added"

# Exclusion words -> allergens. "nuts" excludes both kinds of nut; "seafood" both fish and shellfish.
_ALLERGEN_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    (r"dairy|milk|lactose|cheese|butter|yogh?urt|cream", frozenset({"milk"})),
    (r"eggs?", frozenset({"egg"})),
    (r"peanuts?|peanut butter", frozenset({"peanut"})),
    (r"tree[- ]nuts?", frozenset({"tree_nut"})),
    (r"nuts?", frozenset({"tree_nut", "peanut"})),
    (r"soy|soya|soybeans?|tofu", frozenset({"soy"})),
    (r"wheat", frozenset({"wheat"})),
    (r"gluten", frozenset({"gluten", "wheat"})),
    (r"shellfish|shrimps?|prawns?|crabs?|lobsters?", frozenset({"shellfish"})),
    (r"seafood", frozenset({"fish", "shellfish"})),
    (r"fish", frozenset({"fish"})),
    (r"sesame", frozenset({"sesame"})),
)
_DIET_WORDS: tuple[tuple[str, str], ...] = (
    (r"vegans?|plant[- ]based", "vegan"),
    (r"vegetarians?|veggie diet|meat[- ]free|meatless|no meat|without meat", "vegetarian"),
    (r"pescatarians?|pescetarians?", "pescatarian"),
    (r"gluten[- ]free|coeliac|celiac", "gluten_free"),
    (r"dairy[- ]free|lactose[- ]free|lactose intolerant", "dairy_free"),
    (r"nut[- ]free", "nut_free"),
    (r"halal", "halal"),
    (r"kosher", "kosher"),
)
_NEGATION = r"without|no|not|free of|free from|avoid(?:ing)?|allergic to|allergy to|except|minus|hold the"
_STOP_WORDS = (
    "a an the for of in on with and or to me my i some any food foods meal meals idea ideas good "
    "something that is are please give find show what which"
)
_STOP = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True, slots=True)
class NutrientGoal:
    """Rank by ``nutrient`` per 100 kcal (per 100 g for energy itself), ``high`` or low first."""

    nutrient: str
    high: bool


@dataclass(frozen=True, slots=True)
class FoodQuery:
    """A food question read: the text to embed, hard filters, and the nutrient goals to rank by."""

    text: str
    roles: frozenset[str] = frozenset()
    exclude_allergens: frozenset[str] = frozenset()
    diets: frozenset[str] = frozenset()
    goals: tuple[NutrientGoal, ...] = ()
    meals: tuple[str, ...] = ()

    def where(self) -> VectorFilter:
        """The hard filters, applied inside the index query."""
        must: dict[str, Sequence[str]] = {"kind": ["food"]}
        if self.roles:
            must["role"] = sorted(self.roles)
        must_not: dict[str, Sequence[str]] = {}
        if self.exclude_allergens:
            must_not["allergens"] = sorted(self.exclude_allergens)
        if self.diets:
            must_not["conflicts_with"] = sorted(self.diets)
        return VectorFilter(must, must_not)

    def with_filters(self, exclude_allergens: Iterable[str] = (), diets: Iterable[str] = ()) -> FoodQuery:
        """This query with explicit filters (``mca ask --exclude-allergen/--diet``) added."""
        return replace(
            self,
            exclude_allergens=self.exclude_allergens | frozenset(exclude_allergens),
            diets=self.diets | frozenset(diets),
        )


def _word(pattern: str) -> str:
    return rf"(?<![a-z])(?:{pattern})(?![a-z])"


_NEGATION_RE = re.compile(_word(_NEGATION))
_ALLERGEN_RES = tuple((re.compile(rf"(?:{pattern})$"), excluded) for pattern, excluded in _ALLERGEN_WORDS)
_LIST_GLUE = frozenset({"or", "and", "any", "added", "nor", "&"})


def _negated(text: str, allergens: set[str]) -> str:
    """Remove "without X, Y or Z" (X, Y, Z allergen words) from ``text``, adding their allergens."""
    out: list[str] = []
    tokens = re.findall(r"[a-z0-9'-]+|,", _NEGATION_RE.sub(" without ", text))
    negating = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "without":
            negating = True
            i += 1
            continue
        if negating:
            two = f"{token} {tokens[i + 1]}" if i + 1 < len(tokens) else ""
            matched = next(((t, ex) for t in (two, token) if t for rx, ex in _ALLERGEN_RES if rx.match(t)), None)
            if matched is not None:
                allergens |= matched[1]
                i += len(matched[0].split())
                continue
            if token in _LIST_GLUE or token == ",":
                i += 1
                continue
            negating = False
        if token != ",":
            out.append(token)
        i += 1
    return " ".join(out)


def parse_food_question(question: str) -> FoodQuery:
    """Read ``question`` with the nutrition vocabulary (see the module docstring)."""
    text = " ".join(question.lower().replace("\u2019", "'").split())
    work = text
    allergens: set[str] = set()
    diets: set[str] = set()
    goals: list[NutrientGoal] = []
    # Diet words first ("nut-free", "gluten-free", "dairy-free" are patterns, not nutrient goals).
    for pattern, diet in _DIET_WORDS:
        found = re.compile(_word(pattern))
        if found.search(work):
            diets.add(diet)
            work = found.sub(" ", work)
    # Nutrient goals: "high-protein", "high in protein", "protein-rich", "rich in iron", "low-carb", "sugar-free".
    for pattern, nutrient in _NUTRIENT_WORDS:
        for regex, high in (
            (rf"(?:{_HIGH})(?:[- ]in)?[- ](?:{pattern})", True),
            (rf"(?:{pattern})[- ](?:rich|dense|packed|heavy)", True),
            (rf"(?:{_LOW})(?:[- ]in)?[- ](?:{pattern})", False),
            (rf"(?:{pattern})[- ](?:free|light)|(?:{_NEGATION}) (?:added )?(?:{pattern})", False),
        ):
            found = re.compile(_word(regex))
            if found.search(work):
                if all(g.nutrient != nutrient for g in goals):
                    goals.append(NutrientGoal(nutrient, high))
                work = found.sub(" ", work)
    # Exclusions: "without dairy", "no eggs or nuts", "soy-free", "allergic to peanuts".
    for pattern, excluded in _ALLERGEN_WORDS:
        found = re.compile(_word(rf"(?:{pattern})[- ]free"))
        if found.search(work):
            allergens |= excluded
            work = found.sub(" ", work)
    work = _negated(work, allergens)
    meals = tuple(meal for pattern, meal in _MEAL_WORDS if re.search(_word(pattern), work))
    kinds: set[str] = set()
    for pattern, roles in _KIND_WORDS:
        if re.search(_word(pattern), work):
            kinds |= roles
    meal_roles = frozenset().union(*(MEAL_ROLES[m] for m in meals)) if meals else frozenset()
    if kinds and meal_roles:
        roles = frozenset(kinds & meal_roles) or frozenset(kinds)
    else:
        roles = frozenset(kinds) or meal_roles
    residue = " ".join(w for w in re.findall(r"[a-z0-9'-]+", work) if w not in _STOP)
    # With nothing left to embed ("calcium-rich foods without dairy"), embed the nutrients named.
    fallback = " ".join(MAIN_NUTRIENTS[g.nutrient][0].lower() for g in goals) or "food"
    return FoodQuery(
        text=residue or fallback,
        roles=roles,
        exclude_allergens=frozenset(allergens),
        diets=frozenset(diets),
        goals=tuple(goals),
        meals=meals,
    )


def per_100kcal_field(nutrient: str) -> str:
    """The payload field holding ``nutrient`` per 100 kcal (``energy_kcal``: kcal per 100 g)."""
    return "kcal_per_100g" if nutrient == "energy_kcal" else f"{nutrient}_per_100kcal"


def food_payload(candidate: Candidate) -> dict[str, object]:
    """What a pool food is indexed with: the filter fields plus its role and main nutrients per 100 kcal."""
    food = candidate.food
    energy = food.nutrients.get("energy_kcal") or 0.0
    payload: dict[str, object] = {
        "kind": "food",
        "name": food.description,
        "group": food.group,
        "role": candidate.role,
        "allergens": sorted(allergens_of(food)),
        "conflicts_with": sorted(conflicting_patterns(food)),
        "kcal_per_100g": float(energy),
    }
    for nutrient in MAIN_NUTRIENTS:
        amount = food.nutrients.get(nutrient)
        if nutrient != "energy_kcal" and amount is not None and energy > 0:
            payload[per_100kcal_field(nutrient)] = round(100.0 * amount / energy, 4)
    return payload


def food_items(pool: Iterable[Candidate]) -> list[IndexItem]:
    """The NPA's index: one item per pool food, embedded as ``npa.ontology.food_text``."""
    return [IndexItem(f"food:{c.food.ndb_no}", food_text(c.food), food_payload(c)) for c in pool]


def _ranks(values: Sequence[float]) -> list[float]:
    """Each value's rank in [0, 1] among ``values`` (1 = largest; ties share their mean rank)."""
    n = len(values)
    if n <= 1:
        return [1.0] * n
    order = sorted(range(n), key=lambda i: values[i])
    out = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and values[order[j + 1]] == values[order[i]]:
            j += 1
        mean = (i + j) / 2 / (n - 1)
        for m in range(i, j + 1):
            out[order[m]] = mean
        i = j + 1
    return out


def _goal_value(hit: Hit, goal: NutrientGoal) -> float | None:
    value = hit.payload.get(per_100kcal_field(goal.nutrient))
    return float(value) if isinstance(value, int | float) else None


def rank_foods(query: FoodQuery, hits: Sequence[Hit], k: int) -> list[Hit]:
    """The ``k`` best of ``hits`` (the index's candidates) for ``query``; scores are the combined ones.

    Without nutrient goals the index's order stands. With goals, a hit lacking a goal's value
    goes last for that goal (a missing value is not zero: SR28 leaves blanks).
    """
    if not hits:
        return []
    if not query.goals:
        return list(hits[:k])
    similarity = _ranks([h.score for h in hits])
    goal_ranks: list[list[float]] = []
    for goal in query.goals:
        raw = [_goal_value(h, goal) for h in hits]
        known = [v for v in raw if v is not None]
        floor = (min(known) if goal.high else -max(known)) - 1.0 if known else 0.0
        signed = [(v if goal.high else -v) if v is not None else floor for v in raw]
        goal_ranks.append(_ranks(signed))
    scored = []
    for i, hit in enumerate(hits):
        nutrient = sum(r[i] for r in goal_ranks) / len(goal_ranks)
        score = NUTRIENT_WEIGHT * nutrient + (1.0 - NUTRIENT_WEIGHT) * similarity[i]
        scored.append((score, hit.score, hit.key, hit))
    scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
    return [Hit(h.key, round(s, 4), h.payload) for s, _, _, h in scored[:k]]


Search = Callable[[str, int, VectorFilter], list[Hit]]


def search_foods(
    search: Search, question: str, k: int = 5, exclude_allergens: Iterable[str] = (), diets: Iterable[str] = ()
) -> list[Hit]:
    """Parse ``question``, fetch ``CANDIDATES`` hits that pass the hard filters, re-rank, keep ``k``.

    ``search(text, n, where)`` is the index's filtered vector search (``AgentKnowledge.search``).
    """
    query = parse_food_question(question).with_filters(exclude_allergens, diets)
    hits = search(query.text, max(k, CANDIDATES), query.where())
    return rank_foods(query, hits, k)
