"""The curated candidate pool: which USDA foods a meal plan may use, in which role and portion.

Theory of operation: SR28 has 8,463 foods, most of which are not something a person eats as a
portion of a meal (flour, baking powder, baby food, raw meat, dry pasta, restaurant items). The
pool keeps, by rule, foods that are eaten as they are described, gives each a *role* in a meal
(protein, grain, vegetable, ...) and one household *measure* from WEIGHT.txt with a maximum count,
so a portion is "2 x 1 cup" and never "3 cups of oil". The result (a few hundred foods) is cached.

Rules, per SR28 food group (code):

- 0100 dairy and egg: cooked eggs (egg role); fluid milk, yogurt, cottage cheese (dairy role);
  hard and soft cheeses (cheese role, at most 2 oz); salted / unsalted butter (fat role).
- 0400 fats and oils: plain cooking oils "salad or cooking" (fat role, 1 tbsp a meal, at most
  2 a day, never at breakfast: an accompaniment, not a food).
- 0500 / 1000 / 1300 / 1500 / 1700 poultry, pork, beef, fish, lamb and veal: cooked lean cuts
  only (a cooking word and, for red meat, "lean only"); no organ meats, no game, no breaded or
  fried, no skin-only rows (protein role); fish and shellfish from the named common species.
  Canned tuna and salmon count as cooked.
- 0800 breakfast cereals: ready-to-eat cereals and hot cereals cooked with water (cereal role);
  oatmeal cooked with water, without salt, is a cooked grain by the cup (grain role).
- Foods a person would recognise, in the state they are eaten: fruits, vegetables, grains, nuts
  and fish come from named lists of common foods (``_FRUITS``, ``_VEGETABLES_RAW``,
  ``_VEGETABLES_COOKED``, ``_GRAINS``, ``_NUTS``, ``_FISH``), not from "any raw row": SR28 also
  holds pokeweed shoots (toxic raw), taro, yautia, lima beans and elderberries (must be cooked),
  raw potato and winter squash (inedible raw), garlic, chillies and wasabi (condiments).
- 0900 fruits: the named common fruits, raw (fruit role); no juice, no canned in syrup.
- 1100 vegetables: the salad vegetables raw, the named vegetables boiled (or baked) without salt;
  potatoes and sweet potatoes baked or boiled without salt are starches (grain role), never raw;
  no canned, dehydrated, powder or juice rows. Garlic, chillies, ginger, wasabi, horseradish and
  herbs are condiments: never a portion.
- 1200 nuts and seeds: the named nuts and seeds and their butters, raw or dry roasted, no salt
  added (nuts role, at most about 2 oz); no coconut milk or cream (cooking ingredients), no
  raw chestnuts (eaten roasted).
- 1600 legumes: beans, lentils, chickpeas, peas cooked without salt (legume role: a protein at
  lunch and dinner); tofu and tempeh (protein role); soymilk (dairy role); peanuts and peanut
  butter (nuts role); hummus (legume role).
- 1800 baked products: breads, bagels, English muffins, tortillas, pita (bread role).
- 2000 cereal grains and pasta: the named common grains and pastas, cooked rows only (grain
  role); no protein-fortified or "vegetable" pasta, amaranth, teff or kamut.
- Every other group is excluded: spices, baby foods, soups and sauces, sausages and luncheon
  meats, beverages, sweets, fast foods, mixed entrees, regional and restaurant foods.
- Per-food caps in household terms (``_HOUSEHOLD_MAX``), where the role's grams would allow an
  odd portion: chia and flax seeds at most 1 oz (about 2 tbsp), nut and seed butters 2 tbsp,
  ready-to-eat cereal 2 servings (60 g), cottage cheese 1 cup, and a whole fruit of 100 g or
  more at most 2 pieces a meal (not 3 bananas); eggs stay at most 3, oil and butter 1 tbsp. A
  food whose household measure is already over its cap is left out.
- A food needs energy, protein, fat, carbohydrate and fibre values, and a household measure
  near its role's portion size; rows that differ only after the third comma-separated part of
  the description are collapsed to the one with the lowest NDB_No (fewer near-duplicates).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from npa.foods import Food, Measure, load_foods

__all__ = ["ROLE_PORTIONS", "Candidate", "candidate_pool"]

# Per role: (typical unit grams the measure should be near, maximum grams per meal).
ROLE_PORTIONS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "protein": (85.0, 255.0),  # 3 oz cooked, up to 9 oz
        "legume": (90.0, 200.0),  # 1/2 cup cooked, up to about a cup (750 g a day was seen)
        "egg": (50.0, 150.0),  # 1 large, up to 3
        "dairy": (245.0, 490.0),  # 1 cup, up to 2
        "cheese": (28.0, 60.0),  # 1 oz, up to about 2
        "fat": (13.5, 15.0),  # 1 tbsp a meal: an accompaniment
        "cereal": (30.0, 90.0),
        "fruit": (120.0, 360.0),
        "vegetable": (80.0, 300.0),
        "nuts": (28.0, 60.0),  # 1 oz, up to about 2
        "bread": (30.0, 120.0),
        "grain": (150.0, 450.0),
    }
)

_COUNT_MAX = 4  # never more than 4 of a household measure in one meal
# Per-food caps in grams a meal (matched at the start of the lower-cased description), tighter
# than the role's maximum: what one person eats of these at one meal.
_HOUSEHOLD_MAX: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"seeds, (chia|flaxseed)"), 30.0),  # 1 oz, about 2 tbsp
    (re.compile(r".*\b(almond|cashew|peanut|seed|nut) butter"), 32.0),  # 2 tbsp
    (re.compile(r"cereals ready-to-eat"), 60.0),  # 2 servings of 30 g
    (re.compile(r"cheese, cottage"), 226.0),  # 1 cup
)
_FRUIT_PIECE_G = 100.0  # a fruit counted in pieces this heavy: at most 2 a meal
_FRUIT_PIECES_MAX = 2
_NUTRIENTS_REQUIRED = ("energy_kcal", "protein_g", "fat_g", "carbohydrate_g", "fiber_g")
_COOKED = re.compile(r"\b(cooked|roasted|broiled|braised|grilled|baked|stewed|simmered|poached|steamed|boiled)\b")
_NOT_EATEN_AS_IS = re.compile(
    r"\b(raw|dry|dried|uncooked|flour|meal|powder|dehydrated|freeze-dried|frozen|unprepared|mix|concentrate|"
    r"infant|babyfood|baby|imitation|substitute|industrial|bran|germ|crumbs|stuffing|croutons|fried|breaded|"
    r"batter|canned|juice|syrup|sweetened|candied|pickled|salted|with salt|skin only|fat only|separable fat|"
    r"variety meats|by-products|liver|kidney|heart|tongue|brain|tripe|gizzard|giblets|feet|"
    r"enhanced|restaurant|fast food|USDA Commodity|cured|smoked)\b",
    re.IGNORECASE,
)


# Named lists of common foods (matched at the start of the lower-cased SR28 description). A list
# and not a rule because what is safe and usual to eat is cultural knowledge SR28 does not hold.
_FRUITS = re.compile(
    r"(apples|apricots|bananas|blackberries|blueberries|cherries, sweet|clementines|figs|grapefruit|grapes, red"
    r"|kiwifruit|mangos|melons, (cantaloupe|honeydew)|nectarines|oranges|papayas|peaches|pears|pineapple|plums"
    r"|pomegranates|raspberries|strawberries|tangerines|watermelon)\b"
)
# Salad vegetables: eaten raw.
_VEGETABLES_RAW = re.compile(
    r"(lettuce|spinach|tomatoes, red|cucumber|carrots|celery|peppers, sweet|radishes, raw|cabbage, (raw|red|savoy)"
    r"|arugula|mushrooms, (white|brown)|peas, edible-podded|broccoli, raw|cauliflower, raw|watercress|fennel"
    r"|yambean|squash, summer)\b"
)
# Vegetables eaten cooked (boiled or baked without salt): every raw-only-unsafe or unpalatable
# one (pokeweed, taro, yautia, lima beans, winter squash) is only ever taken cooked, or not at all.
_VEGETABLES_COOKED = re.compile(
    r"(asparagus|beans, snap|beets|broccoli|brussels sprouts|cabbage|carrots|cauliflower|collards|corn, sweet"
    r"|eggplant|kale|mushrooms|okra|onions, cooked|peas, green|spinach|squash|turnips|chard|mustard greens"
    r"|turnip greens|parsnips|leeks|lima beans|peppers, sweet|kohlrabi)\b"
)
_VEGETABLE_COOKED_STATE = re.compile(r"\b(boiled|baked|steamed)\b.*\bwithout salt\b")
_POTATOES = re.compile(r"(potatoes, (baked|boiled)|sweet potato, cooked)\b")
_GRAINS = re.compile(
    r"(rice, (white|brown)|wild rice|spaghetti|macaroni|pasta|noodles, egg|rice noodles|couscous|quinoa|bulgur"
    r"|barley, pearled|buckwheat groats|millet)\b"
)
_NUTS = re.compile(
    r"(nuts, (almonds|walnuts, english|cashew|pecans|pistachio|hazelnuts|macadamia|brazilnuts|almond butter)"
    r"|seeds, (sunflower seed kernels|pumpkin and squash seed kernels|chia|flaxseed))\b"
)
_FISH = re.compile(
    r"(fish, (salmon|tuna|cod|tilapia|trout|haddock|pollock|halibut|catfish|mackerel|flatfish)|crustaceans, shrimp)\b"
)

# How many comma-separated parts of a description make two rows "the same food" for the pool.
_KEY_PARTS: Mapping[str, int] = {"egg": 4, "fruit": 2, "vegetable": 2, "cereal": 3, "protein": 3}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A food the planner may use: its role, its household measure and the most units per meal."""

    food: Food
    role: str
    measure: Measure
    max_count: int

    @property
    def unit_grams(self) -> float:
        """Grams of one count of the measure (``measure.grams`` is for ``measure.amount`` of it)."""
        return self.measure.grams


def _role(food: Food) -> str | None:
    """The meal role of a food, or ``None`` when the rules above leave it out."""
    d = food.description.lower()
    g = food.group_code

    def blocked(*allowed: str) -> bool:
        text = d
        for word in allowed:
            text = text.replace(word, " ")
        return bool(_NOT_EATEN_AS_IS.search(text))

    if g == "0100":
        if re.match(r"egg, whole, cooked", d) and not blocked("fried"):
            return "egg"
        if d.startswith("butter, ") and ("without salt" in d or d == "butter, salted"):
            return "fat"
        if re.match(r"(milk, (whole|reduced fat|lowfat|nonfat)|yogurt, (plain|greek)|cheese, cottage)", d) and not (
            "dry" in d or "canned" in d or "human" in d or "chocolate" in d or "fruit" in d
        ):
            return "dairy"
        if re.match(r"cheese, (cheddar|swiss|mozzarella|feta|parmesan, grated|provolone|gouda|edam|ricotta)", d):
            return None if blocked() else "cheese"
        return None
    if g == "0400":
        if (
            re.match(r"oil, (olive|canola|sunflower|safflower|peanut|sesame|corn|soybean)", d)
            and "salad or cooking" in d
        ):
            return "fat"
        return None
    if g in {"0500", "1000", "1300", "1500", "1700"}:
        if g == "1700" and not d.startswith(("lamb", "veal")):
            return None
        if g in {"1000", "1300", "1700"} and "lean only" not in d:
            return None
        if g == "0500" and not d.startswith(("chicken", "turkey")):
            return None
        if g == "0500" and "meat only" not in d:
            return None
        if g == "1500" and not _FISH.match(d):
            return None
        if g == "1500" and re.search(r"\b(tuna|salmon)\b", d) and "canned" in d and "water" in d:
            return "protein"
        if not _COOKED.search(d) or blocked("dry heat", "moist heat"):
            return None
        return "protein"
    if g == "0800":
        # Fibre at least 3 g and sugars at most 20 g per 100 g: keeps whole-grain cereals, drops
        # frosted ones (and most of the 354 rows of this group).
        wholesome = food.nutrients.get("fiber_g", 0.0) >= 3.0 and food.nutrients.get("sugar_g", 99.0) <= 20.0
        if wholesome and (d.startswith("cereals ready-to-eat") or ("cooked with water" in d and "without salt" in d)):
            return "cereal"
        # Porridge: cooked oats are mostly water (1.7 g fibre per 100 g, 8 g a bowl) and served
        # by the cup like a cooked grain, so they take the grain role (breakfast allows oats).
        if d.startswith("cereals, oats") and "cooked with water" in d and "without salt" in d:
            return "grain"
        return None
    if g == "0900":
        return "fruit" if _FRUITS.match(d) and re.search(r"\braw\b", d) and not blocked("raw") else None
    if g == "1100":
        if re.match(r"(potato|sweet potato)", d):
            # Starches, cooked only: a raw potato is not a vegetable portion.
            if _POTATOES.match(d) and "without salt" in d and not blocked("without salt"):
                return "grain"
            return None
        if re.search(r"\braw\b", d):
            return "vegetable" if _VEGETABLES_RAW.match(d) and not blocked("raw") else None
        if _VEGETABLES_COOKED.match(d) and _VEGETABLE_COOKED_STATE.search(d):
            return None if blocked("boiled", "baked", "steamed", "without salt") else "vegetable"
        return None
    if g == "1200":
        if not _NUTS.match(d):
            return None
        if "without salt" in d or re.search(r"\b(raw|dried)\b", d):
            if re.search(r"\b(flour|meal|oil|paste|salted|with salt)\b", d.replace("without salt", "")):
                return None
            return "nuts"
        return None
    if g == "1600":
        if d.startswith("peanut butter, smooth style, without salt") or d.startswith(
            "peanuts, all types, dry-roasted, without"
        ):
            return "nuts"
        if d.startswith(("tofu, firm", "tofu, raw, firm", "tempeh, cooked")):
            return "protein"
        if d.startswith("soymilk, original and vanilla, unfortified") or d.startswith("soymilk, unsweetened"):
            return "dairy"
        if d.startswith("hummus, commercial"):
            return "legume"
        if re.match(r"(beans|lentils|chickpeas|peas, split|broadbeans)", d) and "cooked, boiled, without salt" in d:
            return "legume"
        return None
    if g == "1800":
        if (
            re.match(
                r"(bread, (whole-wheat|wheat|white|rye|multi-grain|oatmeal|pita)|bagels, plain|english muffins, plain"
                r"|tortillas, ready-to-bake or -fry, (corn|flour))",
                d,
            )
            and "toasted" not in d
        ):
            return None if re.search(r"\b(reduced|low sodium|calorie|crumbs)\b", d) else "bread"
        return None
    if g == "2000":
        if not _GRAINS.match(d) or re.search(r"\b(protein-fortified|vegetable|spinach)\b", d):
            return None
        if re.search(r"\bcooked\b", d) and "uncooked" not in d and not re.search(r"\b(with salt|enriched, with)\b", d):
            return "grain"
        return None
    return None


def _pick_measure(food: Food, role: str) -> tuple[Measure, int] | None:
    unit, most = ROLE_PORTIONS[role]
    best: tuple[float, Measure] | None = None
    for m in food.measures:
        if re.search(r"\b(hulls|shells?|yield)\b", m.description):
            continue  # a measure of the food as bought in its shell reads wrong on a plate
        per_unit = m.grams
        if not 0.4 * unit <= per_unit <= 2.5 * unit or per_unit > most:
            continue
        score = abs(math.log(per_unit / unit))
        if best is None or score < best[0]:
            best = (score, m)
    if best is None:
        return None
    measure = best[1]
    cap = most
    d = food.description.lower()
    for pattern, grams in _HOUSEHOLD_MAX:
        if pattern.match(d):
            cap = min(cap, grams)
    if measure.grams > cap:
        return None  # one unit of its measure is already more than a meal's worth
    count = max(1, min(_COUNT_MAX, int(cap // measure.grams)))
    if role == "fruit" and measure.grams >= _FRUIT_PIECE_G and not re.search(r"\bcups?\b", measure.description):
        count = min(count, _FRUIT_PIECES_MAX)
    return measure, count


@functools.cache
def candidate_pool() -> tuple[Candidate, ...]:
    """The curated pool (cached), in NDB_No order; see the module docstring for the rules."""
    chosen: dict[str, Candidate] = {}
    for food in load_foods():
        if any(k not in food.nutrients for k in _NUTRIENTS_REQUIRED) or food.nutrients["energy_kcal"] <= 0:
            continue
        role = _role(food)
        if role is None:
            continue
        picked = _pick_measure(food, role)
        if picked is None:
            continue
        if food.nutrients.get("sodium_mg", 0.0) > 800.0:
            continue  # cured, brined or salted rows: a day would blow past the 2,300 mg limit
        key = ",".join(part.strip() for part in food.description.lower().split(",")[: _KEY_PARTS.get(role, 3)])
        if key in chosen:
            continue
        chosen[key] = Candidate(food=food, role=role, measure=picked[0], max_count=picked[1])
    return tuple(sorted(chosen.values(), key=lambda c: c.food.ndb_no))
