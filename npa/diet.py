"""Allergens and diet patterns derived from USDA SR28 food groups and descriptions.

Theory of operation: SR28 has no allergen or diet field, so both are derived by rule from two
things every food has: its food group code (``FdGrp_Cd``) and its long description. Each allergen
is the union of (a) whole food groups that are that allergen (e.g. ``1500`` finfish and
shellfish), and (b) keyword patterns matched on whole words of the lower-cased description,
after blanking the phrases that merely look like the allergen ("peanut butter" is not milk,
"eggplant" is not egg, "butternut squash" is not a tree nut). Patterns (vegetarian, vegan, ...)
are derived the same way, partly from allergens: vegan conflicts with every food that has milk
or egg, gluten_free with wheat and gluten, and so on (``ALLERGEN_PATTERN_CONFLICTS``).

The derivation is **conservative**: when a description is ambiguous, the food is marked. A false
alarm removes one candidate from a plan; a miss can put an allergen on the plate of someone with
a strict allergy. Concretely:

- Negations are ignored: "mixed nuts, without peanuts" is still marked peanut (shared processing
  lines; SR28 does not say), "sandwich (without mayonnaise)" still egg.
- Hidden-allergen dishes are named explicitly: pesto (tree nut and milk: pine nuts, cheese),
  satay / peanut sauce (peanut), tahini / hummus / halva (sesame), marzipan / praline / nougat /
  nutella (tree nut), surimi / caesar / worcestershire (fish: anchovies), miso / tofu / tempeh /
  edamame / natto / soy sauce (soy; soy sauce also wheat), ghee / whey / casein / butter
  (milk), mayonnaise / meringue / custard (egg), seitan / couscous / bulgur / semolina / farina
  (wheat and gluten).
- Cakes, cookies, muffins, pancakes, waffles, pastries and similar baked goods are marked egg
  and milk (most recipes have both); oats are marked gluten (cross-contact; only certified oats
  are safe), unless the description says "gluten-free".
- Soy: highly refined soybean oil is exempt from allergen labelling (FALCPA) and is not marked;
  soy flour, lecithin, meat substitutes ("meatless", MORNINGSTAR, BOCA) are.
- Shellfish covers crustaceans and molluscs (the EU lists molluscs separately; the US does not).
- Coconut counts as a tree nut (FDA's list up to 2025 included it); conservative.
- Conservative is not careless: a name that only *looks* like an allergen or an animal is
  blanked, on named foods: corn tortillas (maize, not wheat), English muffins (a yeast bread,
  not an egg-and-milk bake), oyster mushrooms and salsify "vegetable oyster" (plants), coconut
  milk and coconut meat ("grated meat" of the nut), "danish" cabbage (a cultivar).

Patterns:

- vegetarian: no meat, poultry, fish or shellfish (groups 0500, 0700, 1000, 1300, 1500, 1700)
  and no description naming meat, fish, broth of meat, lard, suet, tallow, gelatin, anchovy...
  Lacto-ovo: milk and eggs are allowed; cheese rennet is not tracked by SR28 (a limit).
- vegan: vegetarian, and no milk, egg, honey or other animal product.
- pescatarian: vegetarian but fish and shellfish allowed.
- gluten_free / dairy_free / nut_free: the gluten(+wheat) / milk / tree_nut+peanut allergens.
- halal: no pork (group 1000 and pork words), no blood, no gelatin (usually porcine), no alcohol
  (wine, beer, spirits, liqueur, mirin, vanilla extract), no game or carnivores (group 1700 "Game
  meat"), no sausages or luncheon meats (group 0700; mixed and often pork). Permitted species
  (beef, lamb, goat, poultry, fish) are **not** marked: SR28 cannot say how an animal was
  slaughtered, so the person buys certified meat; the plan names the species.
- kosher: every halal rule, plus shellfish, fish without fins and scales (catfish, eel, shark,
  swordfish, sturgeon, monkfish, skate, caviar) and meat-with-dairy dishes (a food that is both
  meat and milk by the rules above, e.g. a cheeseburger).

Foods in group 3500 (American Indian/Alaska Native foods) mix game, marine mammals and plants in
ways the rules cannot tell apart; they conflict with every pattern except the allergen-based ones.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

__all__ = [
    "ALLERGENS",
    "ALLERGEN_PATTERN_CONFLICTS",
    "PATTERNS",
    "allergens_of",
    "conflicting_patterns",
]

ALLERGENS: tuple[str, ...] = (
    "peanut",
    "tree_nut",
    "milk",
    "egg",
    "soy",
    "wheat",
    "gluten",
    "fish",
    "shellfish",
    "sesame",
)

PATTERNS: tuple[str, ...] = (
    "vegetarian",
    "vegan",
    "pescatarian",
    "gluten_free",
    "dairy_free",
    "nut_free",
    "halal",
    "kosher",
)

# Which patterns a food with this allergen conflicts with. Used by ``conflicting_patterns`` and
# exported for the knowledge graph (an edge allergen -[CONFLICTS_WITH]-> pattern).
ALLERGEN_PATTERN_CONFLICTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "peanut": frozenset({"nut_free"}),
        "tree_nut": frozenset({"nut_free"}),
        "milk": frozenset({"vegan", "dairy_free"}),
        "egg": frozenset({"vegan"}),
        "soy": frozenset(),
        "wheat": frozenset({"gluten_free"}),
        "gluten": frozenset({"gluten_free"}),
        "fish": frozenset({"vegetarian", "vegan"}),
        "shellfish": frozenset({"vegetarian", "vegan", "kosher"}),
        "sesame": frozenset(),
    }
)


class _Described(Protocol):
    """What the derivation needs of a food (``npa.foods.Food`` has it)."""

    @property
    def description(self) -> str: ...

    @property
    def group_code(self) -> str: ...


# Whole food groups that are the allergen (SR28 FD_GROUP codes).
_ALLERGEN_GROUPS: Mapping[str, frozenset[str]] = {"fish": frozenset({"1500"})}

# Phrases blanked before matching an allergen's keywords: things that look like it but are not.
_NOT: Mapping[str, tuple[str, ...]] = {
    "milk": (
        "peanut butter",
        "nut butter",
        "almond butter",
        "cashew butter",
        "sesame butter",
        "sunflower seed butter",
        "apple butter",
        "cocoa butter",
        "butter beans",
        "butterhead",
        "butternut",
        "butterbur",
        "coconut milk",
        "coconut cream",
        "soymilk",
        "soy milk",
        "almond milk",
        "rice milk",
        "oat milk",
        "milkfish",
        "bean curd",
        "cream of tartar",
        "milkweed",
    ),
    "egg": ("eggplant", "egg plant"),
    # A corn tortilla is masa (maize), not wheat; "flour" and "whole wheat" tortillas stay marked.
    "wheat": ("tortillas, ready-to-bake or -fry, corn", "corn tortilla"),
    # Oyster mushrooms and salsify ("vegetable oyster") are plants named after the mollusc.
    "shellfish": ("mushrooms, oyster", "oyster mushroom", "vegetable oyster"),
    "tree_nut": ("butternut squash", "squash, winter, butternut", "nutmeg", "water chestnut", "chestnuts, chinese"),
    "fish": ("fish sauce",),  # re-added below as its own keyword; keeps "fish" word logic simple
}

# Keyword patterns per allergen (regular expressions matched on word boundaries).
_KEYWORDS: Mapping[str, tuple[str, ...]] = {
    "peanut": (r"peanuts?", r"satay", r"groundnuts?", r"goobers?", r"arachis", r"reese'?s", r"nutter butter"),
    "tree_nut": (
        r"almonds?",
        r"cashews?",
        r"pecans?",
        r"walnuts?",
        r"hazelnuts?",
        r"filberts?",
        r"pistachios?",
        r"macadamias?",
        r"brazil ?nuts?",
        r"brazilnuts?",
        r"pine ?nuts?",
        r"pinyon",
        r"pi[nñ]on",
        r"pignolias?",
        r"chestnuts?",
        r"beechnuts?",
        r"butternuts?",
        r"hickory ?nuts?",
        r"hickorynuts?",
        r"coconuts?",
        r"nuts?",
        r"praline",
        r"marzipan",
        r"nougats?",
        r"pesto",
        r"nutella",
        r"gianduja",
        r"baklava",
        r"frangipane",
        r"amaretto",
    ),
    "milk": (
        r"milk",
        r"milks",
        r"buttermilk",
        r"butter",
        r"buttered",
        r"cheeses?",
        r"cheeseburgers?",
        r"cream",
        r"creamed",
        r"creamy",
        r"yogh?urts?",
        r"whey",
        r"casein",
        r"caseinates?",
        r"ghee",
        r"lactose",
        r"kefir",
        r"curds?",
        r"custards?",
        r"ricotta",
        r"mozzarella",
        r"parmesan",
        r"cheddar",
        r"feta",
        r"brie",
        r"gouda",
        r"pudding",
        r"alfredo",
        r"au gratin",
        r"dairy",
        r"pesto",
        r"nougats?",
        r"ice creams?",
        r"eggnog",
        r"milkshakes?",
        r"shakes?",
        r"latte",
        r"cappuccino",
        r"fudge",
        r"caramels?",
        r"toffee",
    ),
    "egg": (
        r"eggs?",
        r"egg ?nog",
        r"yolks?",
        r"albumen",
        r"mayonnaise",
        r"mayo",
        r"meringue",
        r"custards?",
        r"french toast",
        r"aioli",
        r"hollandaise",
        r"souffle",
        r"quiche",
        r"eggnog",
    ),
    "soy": (
        r"soy",
        r"soya",
        r"soybeans?",
        r"soymilk",
        r"tofu",
        r"tempeh",
        r"miso",
        r"edamame",
        r"natto",
        r"bean curd",
        r"tamari",
        r"shoyu",
        r"teriyaki",
        r"lecithin",
        r"textured vegetable protein",
        r"meatless",
        r"morningstar",
        r"boca",
        r"veggie",
    ),
    "wheat": (
        r"wheat",
        r"flour",
        r"breads?",
        r"breaded",
        r"breadsticks?",
        r"buns?",
        r"rolls?",
        r"pasta",
        r"macaroni",
        r"spaghetti",
        r"noodles?",
        r"lasagna",
        r"ravioli",
        r"couscous",
        r"bulgur",
        r"semolina",
        r"seitan",
        r"farina",
        r"durum",
        r"spelt",
        r"kamut",
        r"triticale",
        r"einkorn",
        r"emmer",
        r"farro",
        r"graham",
        r"crackers?",
        r"pretzels?",
        r"bagels?",
        r"croissants?",
        r"muffins?",
        r"cakes?",
        r"cookies?",
        r"pancakes?",
        r"waffles?",
        r"pizza",
        r"tortillas?",
        r"batter",
        r"crumbs",
        r"croutons?",
        r"dumplings?",
        r"gnocchi",
        r"ramen",
        r"udon",
        r"soy sauce",
        r"teriyaki",
        r"biscuits?",
        r"pies?",
        r"pastry",
        r"pastries",
        r"doughnuts?",
        r"brownies?",
        r"stuffing",
        r"matzo",
        r"pitas?",
        r"wontons?",
        r"gravy",
        r"sandwich(es)?",
        r"burritos?",
        r"burgers?",
        r"hamburgers?",
        r"cheeseburgers?",
        r"bran",
        r"cereals? ready-to-eat",
        r"shredded wheat",
        r"wheaties",
        r"cheerios",
    ),
    "gluten": (
        r"barley",
        r"rye",
        r"malt",
        r"malted",
        r"oats?",
        r"oatmeal",
        r"beer",
        r"ale",
        r"pumpernickel",
    ),
    "fish": (
        r"fish",
        r"fishes",
        r"fish sauce",
        r"anchov(y|ies)",
        r"salmon",
        r"tuna",
        r"cod",
        r"codfish",
        r"haddock",
        r"halibut",
        r"herring",
        r"mackerel",
        r"sardines?",
        r"trout",
        r"tilapia",
        r"pollock",
        r"catfish",
        r"bass",
        r"carp",
        r"flounder",
        r"sole",
        r"snapper",
        r"grouper",
        r"swordfish",
        r"eel",
        r"shad",
        r"smelt",
        r"whitefish",
        r"mullet",
        r"perch",
        r"pike",
        r"roe",
        r"caviar",
        r"lox",
        r"surimi",
        r"caesar",
        r"worcestershire",
    ),
    "shellfish": (
        r"crustaceans?",
        r"mollusks?",
        r"molluscs?",
        r"shrimps?",
        r"prawns?",
        r"crabs?",
        r"lobsters?",
        r"crayfish",
        r"crawfish",
        r"clams?",
        r"mussels?",
        r"oysters?",
        r"scallops?",
        r"squid",
        r"octopus",
        r"calamari",
        r"abalone",
        r"whelks?",
        r"snails?",
        r"escargot",
        r"conch",
        r"cuttlefish",
    ),
    "sesame": (r"sesame", r"tahini", r"tahina", r"hummus", r"houmous", r"halvah?", r"benne", r"gomasio", r"za'?atar"),
}

# Baked goods whose recipes nearly always hold egg and milk (conservative, see module docstring).
_BAKED_EGG_MILK = (
    r"cakes?",
    r"cookies?",
    r"muffins?",
    r"pancakes?",
    r"waffles?",
    r"croissants?",
    r"doughnuts?",
    r"brioche",
    r"challah",
    r"danish",
    r"pastry",
    r"pastries",
    r"brownies?",
    r"sweet rolls?",
    r"cream puffs?",
    r"eclairs?",
    r"popovers?",
    r"crepes?",
)

# Names that look like a baked good but are not one of the egg-and-milk recipes: an English muffin
# is a yeast bread (flour, water, yeast, salt); "danish" in a cabbage row is a cultivar.
_NOT_BAKED = ("english muffin", "danish, domestic")

# Pattern rules beyond allergens: groups and keywords that conflict.
_MEAT_GROUPS = frozenset({"0500", "0700", "1000", "1300", "1700"})
_MEAT_WORDS = (
    r"meats?",
    r"beef",
    r"pork",
    r"chicken",
    r"turkey",
    r"ham",
    r"bacon",
    r"sausages?",
    r"pepperoni",
    r"salami",
    r"bologna",
    r"frankfurters?",
    r"hot ?dogs?",
    r"veal",
    r"lamb",
    r"mutton",
    r"goat",
    r"venison",
    r"bison",
    r"duck",
    r"goose",
    r"poultry",
    r"liver",
    r"giblets",
    r"lard",
    r"suet",
    r"tallow",
    r"gelatins?",
    r"broth",
    r"bouillon",
    r"consomme",
    r"gravy",
    r"meatballs?",
    r"meatloaf",
    r"burgers?",
    r"hamburgers?",
    r"cheeseburgers?",
    r"chili con carne",
    r"pot roast",
    r"steak",
    r"jerky",
    r"pastrami",
    r"corned",
    r"rabbit",
    r"quail",
    r"pheasant",
    r"blood",
    r"collagen",
    r"chorizo",
    r"prosciutto",
    r"pate",
    r"stock",
)
# "stock" and "broth" are assumed meat or fish stock unless the description says vegetable.
_MEAT_NOT = (
    "vegetable broth",
    "vegetable stock",
    "vegetarian",
    "meatless",
    "without meat",
    "eggplant",
    "ham, ",  # never blanked in practice; keeps the tuple's intent visible
    "grated meat",  # coconut milk is "expressed from grated meat" of the nut
    "coconut meat",
)
_VEGAN_EXTRA = (r"honey", r"bee pollen", r"royal jelly", r"beeswax", r"carmine", r"cochineal", r"shellac", r"isinglass")
_PORK_WORDS = (
    r"pork",
    r"ham",
    r"hams",
    r"bacon",
    r"lard",
    r"pepperoni",
    r"salami",
    r"prosciutto",
    r"chorizo",
    r"pancetta",
    r"gelatins?",
    r"blood",
    r"frankfurters?",
    r"hot ?dogs?",
    r"sausages?",
    r"bologna",
    r"pig",
    r"pigs",
    r"swine",
    r"boar",
    r"scrapple",
    r"chitterlings",
    r"headcheese",
    r"carnitas",
    r"pate",
)
_ALCOHOL_WORDS = (
    r"alcohol(ic)?",
    r"wine",
    r"wines",
    r"beer",
    r"ale",
    r"lager",
    r"liqueurs?",
    r"rum",
    r"brandy",
    r"whiske?y",
    r"vodka",
    r"gin",
    r"tequila",
    r"bourbon",
    r"sherry",
    r"sake",
    r"mirin",
    r"vanilla extract",
    r"creme de menthe",
    r"daiquiri",
    r"margarita",
    r"martini",
    r"pina colada",
    r"cocktail",
    r"distilled",
    r"vermouth",
    r"champagne",
    r"cordial",
)
_NOT_FINS_AND_SCALES = (
    r"catfish",
    r"eel",
    r"shark",
    r"swordfish",
    r"sturgeon",
    r"monkfish",
    r"skate",
    r"caviar",
    r"roe",
    r"surimi",
    r"lamprey",
)


def _compile(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b")


_KEYWORD_RES: Mapping[str, re.Pattern[str]] = {a: _compile(w) for a, w in _KEYWORDS.items()}
_BAKED_RE = _compile(_BAKED_EGG_MILK)
_MEAT_RE = _compile(_MEAT_WORDS)
_VEGAN_RE = _compile(_VEGAN_EXTRA)
_PORK_RE = _compile(_PORK_WORDS)
_ALCOHOL_RE = _compile(_ALCOHOL_WORDS)
_NOT_KOSHER_FISH_RE = _compile(_NOT_FINS_AND_SCALES)
_GLUTEN_FREE_RE = re.compile(r"\bgluten[- ]free\b")


def _blank(text: str, phrases: tuple[str, ...]) -> str:
    for phrase in phrases:
        text = text.replace(phrase, " ")
    return text


def _allergens(description: str, group_code: str) -> frozenset[str]:
    text = description.lower()
    found: set[str] = set()
    for allergen in ALLERGENS:
        if group_code in _ALLERGEN_GROUPS.get(allergen, frozenset()):
            found.add(allergen)
        if _KEYWORD_RES[allergen].search(_blank(text, _NOT.get(allergen, ()))):
            found.add(allergen)
    # Finfish group: crustaceans and molluscs are shellfish, not fish (unless made from surimi).
    if group_code == "1500" and text.startswith(("crustaceans", "mollusks")) and "surimi" not in text:
        found.discard("fish")
        found.add("shellfish")
    # Dairy and Egg Products: eggs are egg, everything else milk.
    if group_code == "0100":
        found.add("egg" if re.match(r"eggs?\b|egg substitute", text) else "milk")
    # Nut and Seed Products: "Nuts, ..." rows are tree nuts (peanuts live in group 1600).
    if group_code == "1200" and text.startswith("nuts"):
        found.add("tree_nut")
    if _BAKED_RE.search(_blank(text, _NOT["egg"] + _NOT_BAKED)):
        found.update({"egg", "milk"})
    if "wheat" in found:
        found.add("gluten")
    if "gluten" in found and _GLUTEN_FREE_RE.search(text):
        found.discard("gluten")
        found.discard("wheat")
    if group_code == "3500":
        # Too varied to tell apart by rule (see module docstring): assume fish could be present.
        found.add("fish")
    return frozenset(found)


@functools.lru_cache(maxsize=16384)
def _derive(description: str, group_code: str) -> tuple[frozenset[str], frozenset[str]]:
    allergens = _allergens(description, group_code)
    text = description.lower()
    conflicts: set[str] = set()
    for allergen in allergens:
        conflicts.update(ALLERGEN_PATTERN_CONFLICTS[allergen])
    meat = group_code in _MEAT_GROUPS or bool(_MEAT_RE.search(_blank(text, _MEAT_NOT)))
    if meat or group_code == "3500":
        conflicts.update({"vegetarian", "vegan", "pescatarian"})
    if _VEGAN_RE.search(text):
        conflicts.add("vegan")
    pork = group_code == "1000" or bool(_PORK_RE.search(text))
    alcohol = bool(_ALCOHOL_RE.search(text))
    game = group_code == "1700" and text.startswith("game meat")
    if pork or alcohol or game or group_code in {"0700", "3500"}:
        conflicts.update({"halal", "kosher"})
    if "shellfish" in allergens or _NOT_KOSHER_FISH_RE.search(text):
        conflicts.add("kosher")
    if meat and "milk" in allergens:
        conflicts.add("kosher")  # meat with dairy
    return allergens, frozenset(conflicts)


def allergens_of(food: _Described) -> frozenset[str]:
    """The allergens (names from ``ALLERGENS``) a food may contain, derived conservatively."""
    return _derive(food.description, food.group_code)[0]


def conflicting_patterns(food: _Described) -> frozenset[str]:
    """The diet patterns (names from ``PATTERNS``) this food is not compatible with."""
    return _derive(food.description, food.group_code)[1]
