"""A person's profile, its validation, and the daily energy and macronutrient targets.

Theory of operation: ``parse_profile`` turns a JSON-like mapping into a frozen ``Profile``, or
raises ``InvalidProfile`` naming the first bad field, whatever the input: numbers are range-checked
before any conversion, and a message quotes a value only cut short (``npa.errors.shown``).
``targets`` turns a profile (and the weekly training energy negotiated with the WPA) into daily
``Targets``:

- BMR by Mifflin-St Jeor (Mifflin et al., Am J Clin Nutr 1990;51:241-7):
  ``10 x kg + 6.25 x cm - 5 x age + 5`` (male) or ``- 161`` (female).
- Total expenditure = BMR x physical activity factor (sedentary 1.2, light 1.375, moderate 1.55,
  active 1.725, very active 1.9; the usual factors used with Mifflin-St Jeor).
- Training, neither counted twice nor lost: the factor of an active person already holds their
  exercise, ``BMR x (factor - 1.375)`` a day above "light" (1.375, daily life without planned
  exercise). The WPA's weekly figure (net of resting energy) describes the same exercise, so
  when it is given (> 0) the day gets the *larger* of the two estimates on top of daily life:
  ``BMR x min(factor, 1.375) + max(training_kcal_per_week / 7, BMR x max(0, factor - 1.375))``.
  A very active person planning a light week keeps their declared 1.9 (capping the factor at
  1.375, as before, cut 3,408 kcal to 2,622); a sedentary person who starts training gets 1.2 +
  the training, not 1.375 + it.
- Goal: 1 kg of body mass ~ 7,700 kcal (the usual approximation of the energy density of mixed
  tissue loss), so a rate of r kg/week shifts the day by ``r x 7700 / 7`` kcal (minus for lose,
  plus for gain). Safe floor for weight loss: never below BMR, nor 1,200 kcal (female) / 1,500
  kcal (male); when the floor binds the plan says so (``floor_applied``).
- Protein: 1.6 g/kg when losing (lean-mass retention in a deficit), 1.2 g/kg maintaining, 1.6
  g/kg gaining (ISSN position stand 2017: 1.4-2.0 g/kg for exercising adults; DRI RDA 0.8 g/kg
  is the floor for everyone), held within the AMDR 10-35 % of energy and at most 2.2 g/kg
  (above the ISSN range there is no added benefit; a gain plan had reached 2.9 g/kg).
- Fat 20-35 % of energy, carbohydrate 45-65 % (AMDR, IOM Dietary Reference Intakes for
  Energy, Carbohydrate, Fiber, Fat, ... 2002/2005). Fibre: the same DRI's adequate intake, 14 g
  per 1,000 kcal, but at least 25 g and at most 35 g required, and never above 45 g (past
  that, plans were stacking beans: 82-113 g/day). Sodium under 2,300 mg (DGA 2020-2025 CDRR).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from npa.diet import ALLERGENS, PATTERNS
from npa.errors import InvalidProfile, shown

__all__ = [
    "ACTIVITY_FACTORS",
    "PROFILE_FIELDS",
    "RESTRICTION_NAMES",
    "Profile",
    "Restriction",
    "Targets",
    "parse_profile",
    "targets",
]

ACTIVITY_FACTORS: Mapping[str, float] = {
    "sedentary": 1.2,
    "light": 1.375,
    "moderate": 1.55,
    "active": 1.725,
    "very_active": 1.9,
}
_TRAINING_BASE_FACTOR = 1.375  # "light": daily life without planned exercise (see docstring)
KCAL_PER_KG = 7700.0
PROTEIN_G_PER_KG: Mapping[str, float] = {"lose": 1.6, "maintain": 1.2, "gain": 1.6}
FAT_SHARE = (0.20, 0.35)
CARB_SHARE = (0.45, 0.65)
PROTEIN_SHARE_MAX = 0.35
PROTEIN_G_PER_KG_MAX = 2.2
FIBRE_G_PER_1000_KCAL = 14.0
FIBRE_G_REQUIRED = (25.0, 35.0)  # the 14 g / 1,000 kcal minimum, held within this band
FIBRE_G_MAX = 45.0
SODIUM_MG_MAX = 2300.0
_FLOOR_KCAL = {"female": 1200.0, "male": 1500.0}

# Bounds of the rate in kg/week per goal: 1 kg/week is the usual upper limit for safe loss,
# 0.5 kg/week for lean gain; "maintain" has rate 0.
_RATE_BOUNDS: Mapping[str, tuple[float, float]] = {"lose": (0.1, 1.0), "maintain": (0.0, 0.0), "gain": (0.1, 0.5)}
_RATE_DEFAULT: Mapping[str, float] = {"lose": 0.5, "maintain": 0.0, "gain": 0.25}

RESTRICTION_TYPES = ("allergy", "intolerance", "preference", "religious", "ethical")
SEVERITIES = ("strict", "moderate", "preference")
# Everyday names accepted for the canonical allergens and patterns.
_ALIASES: Mapping[str, str] = {
    "peanuts": "peanut",
    "tree_nuts": "tree_nut",
    "nuts": "tree_nut",
    "dairy": "milk",
    "lactose": "milk",
    "eggs": "egg",
    "crustacean": "shellfish",
    "shellfishes": "shellfish",
    "soya": "soy",
    "pescetarian": "pescatarian",
    "gluten-free": "gluten_free",
    "dairy-free": "dairy_free",
    "nut-free": "nut_free",
}
RESTRICTION_NAMES: tuple[str, ...] = ALLERGENS + PATTERNS


@dataclass(frozen=True, slots=True)
class Restriction:
    """One dietary restriction: ``name`` is an allergen or a pattern (``RESTRICTION_NAMES``)."""

    name: str
    type: str
    severity: str


@dataclass(frozen=True, slots=True)
class Profile:
    """A validated profile. Build it with ``parse_profile``; ``to_dict`` gives the same shape back."""

    sex: str
    age: int
    height_cm: float
    weight_kg: float
    activity: str
    goal: str
    rate_kg_per_week: float
    restrictions: tuple[Restriction, ...] = ()
    dislikes: tuple[str, ...] = ()
    meals_per_day: int = 3
    days: int = 7

    @property
    def bmi(self) -> float:
        return self.weight_kg / (self.height_cm / 100.0) ** 2

    def strict(self) -> frozenset[str]:
        """Names of the restrictions that are hard constraints."""
        return frozenset(r.name for r in self.restrictions if r.severity == "strict")

    def to_dict(self) -> dict[str, object]:
        return {
            "sex": self.sex,
            "age": self.age,
            "height_cm": self.height_cm,
            "weight_kg": self.weight_kg,
            "activity": self.activity,
            "goal": self.goal,
            "rate_kg_per_week": self.rate_kg_per_week,
            "restrictions": [{"name": r.name, "type": r.type, "severity": r.severity} for r in self.restrictions],
            "dislikes": list(self.dislikes),
            "meals_per_day": self.meals_per_day,
            "days": self.days,
        }


# The fields a profile document may have: exactly what ``Profile.to_dict`` writes.
PROFILE_FIELDS = tuple(f.name for f in fields(Profile))


def _number(doc: Mapping[str, object], field: str, low: float, high: float, *, default: float | None = None) -> float:
    value = doc.get(field, default)
    if value is None:
        raise InvalidProfile(field, "is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidProfile(field, f"must be a number, got {shown(value)}")
    # Compared before converting: an integer too large for a float compares exactly, where
    # float() would raise OverflowError; NaN compares false and is refused with the rest.
    if not low <= value <= high:
        raise InvalidProfile(field, f"must be between {low:g} and {high:g}, got {shown(value)}")
    return float(value)


def _integer(doc: Mapping[str, object], field: str, low: int, high: int, default: int | None = None) -> int:
    value = doc.get(field, default)
    if value is None:
        raise InvalidProfile(field, "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidProfile(field, f"must be a whole number, got {shown(value)}")
    if not low <= value <= high:
        raise InvalidProfile(field, f"must be between {low} and {high}, got {shown(value)}")
    return value


def _choice(doc: Mapping[str, object], field: str, options: Sequence[str], default: str | None = None) -> str:
    value = doc.get(field, default)
    if value is None:
        raise InvalidProfile(field, f"is required (one of {', '.join(options)})")
    if not isinstance(value, str) or value.strip().lower() not in options:
        raise InvalidProfile(field, f"must be one of {', '.join(options)}, got {shown(value)}")
    return value.strip().lower()


def _known_fields(doc: Mapping[str, object], where: str, known: Sequence[str]) -> None:
    """A field the profile does not know is refused, not ignored: "activty" would otherwise plan
    a sedentary person without a word."""
    unknown = [key for key in doc if key not in known]
    if unknown:
        raise InvalidProfile(where, f"unknown field {shown(unknown[0])}; known: {', '.join(known)}")


def _restriction(item: object, index: int) -> Restriction:
    field = f"restrictions[{index}]"
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, Mapping):
        raise InvalidProfile(field, f"must be a name or an object with name, type, severity; got {shown(item)}")
    _known_fields(item, field, ("name", "type", "severity"))
    raw = item.get("name")
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidProfile(f"{field}.name", "is required")
    key = raw.strip().lower().replace(" ", "_")
    name = _ALIASES.get(key, key)
    if name not in RESTRICTION_NAMES:
        raise InvalidProfile(
            f"{field}.name", f"unknown restriction {shown(raw)}; known: {', '.join(RESTRICTION_NAMES)}"
        )
    default_type = "allergy" if name in ALLERGENS else "preference"
    # _choice names the bare key ("type"); the error names it within the list.
    try:
        kind = _choice(item, "type", RESTRICTION_TYPES, default_type)
    except InvalidProfile as error:
        raise InvalidProfile(f"{field}.type", error.why) from None
    try:
        severity = _choice(item, "severity", SEVERITIES, "strict")
    except InvalidProfile as error:
        raise InvalidProfile(f"{field}.severity", error.why) from None
    return Restriction(name=name, type=kind, severity=severity)


def parse_profile(doc: Mapping[str, object]) -> Profile:
    """Validate a JSON-like profile (shape: ``Profile.to_dict``); raise ``InvalidProfile`` naming the field.

    Defaults: ``rate_kg_per_week`` 0.5 (lose) / 0.25 (gain) / 0 (maintain), ``meals_per_day`` 3,
    ``days`` 7, ``activity`` "sedentary", no restrictions or dislikes. A restriction may be a bare
    name ("vegan") meaning strict; severity defaults to strict. Any other field is refused
    (``PROFILE_FIELDS``; a restriction object has name, type and severity only).
    """
    if not isinstance(doc, Mapping):
        raise InvalidProfile("profile", f"must be an object, got {type(doc).__name__}")
    _known_fields(doc, "profile", PROFILE_FIELDS)
    sex = _choice(doc, "sex", ("female", "male"))
    age = _integer(doc, "age", 18, 100)
    height = _number(doc, "height_cm", 120.0, 230.0)
    weight = _number(doc, "weight_kg", 30.0, 300.0)
    bmi = weight / (height / 100.0) ** 2
    if not 13.0 <= bmi <= 70.0:
        raise InvalidProfile("weight_kg", f"gives a BMI of {bmi:.1f} with height_cm={height:g}; check both (13-70)")
    activity = _choice(doc, "activity", tuple(ACTIVITY_FACTORS), "sedentary")
    goal = _choice(doc, "goal", tuple(_RATE_BOUNDS), "maintain")
    low, high = _RATE_BOUNDS[goal]
    rate = _number(doc, "rate_kg_per_week", low, high, default=_RATE_DEFAULT[goal])
    if goal == "lose" and bmi < 18.5:
        raise InvalidProfile(
            "goal", f"losing weight at BMI {bmi:.1f} (under 18.5) is not planned; choose maintain or gain"
        )
    raw_restrictions = doc.get("restrictions", [])
    if not isinstance(raw_restrictions, Sequence) or isinstance(raw_restrictions, str):
        raise InvalidProfile("restrictions", "must be a list")
    restrictions = tuple(_restriction(item, i) for i, item in enumerate(raw_restrictions))
    seen: set[str] = set()
    for i, r in enumerate(restrictions):
        if r.name in seen:
            raise InvalidProfile(f"restrictions[{i}].name", f"{r.name!r} is listed twice")
        seen.add(r.name)
    raw_dislikes = doc.get("dislikes", [])
    if not isinstance(raw_dislikes, Sequence) or isinstance(raw_dislikes, str):
        raise InvalidProfile("dislikes", "must be a list of words")
    dislikes: list[str] = []
    for i, word in enumerate(raw_dislikes):
        if not isinstance(word, str) or not word.strip() or len(word) > 60:
            raise InvalidProfile(
                f"dislikes[{i}]", f"must be a non-empty word of at most 60 characters, got {shown(word)}"
            )
        dislikes.append(word.strip().lower())
    return Profile(
        sex=sex,
        age=age,
        height_cm=height,
        weight_kg=weight,
        activity=activity,
        goal=goal,
        rate_kg_per_week=rate,
        restrictions=restrictions,
        dislikes=tuple(dislikes),
        meals_per_day=_integer(doc, "meals_per_day", 2, 6, 3),
        days=_integer(doc, "days", 1, 14, 7),
    )


@dataclass(frozen=True, slots=True)
class Targets:
    """Daily targets. Energy is a point target; the others are bands (min, max) in grams."""

    bmr_kcal: float
    expenditure_kcal: float
    training_kcal_per_day: float
    energy_kcal: float
    protein_g: tuple[float, float]
    fat_g: tuple[float, float]
    carbohydrate_g: tuple[float, float]
    fiber_g_min: float
    floor_applied: bool
    fiber_g_max: float = FIBRE_G_MAX
    sodium_mg_max: float = SODIUM_MG_MAX

    def to_dict(self) -> dict[str, object]:
        return {
            "bmr_kcal": self.bmr_kcal,
            "expenditure_kcal": self.expenditure_kcal,
            "training_kcal_per_day": self.training_kcal_per_day,
            "energy_kcal": self.energy_kcal,
            "protein_g": list(self.protein_g),
            "fat_g": list(self.fat_g),
            "carbohydrate_g": list(self.carbohydrate_g),
            "fiber_g_min": self.fiber_g_min,
            "floor_applied": self.floor_applied,
            "fiber_g_max": self.fiber_g_max,
            "sodium_mg_max": self.sodium_mg_max,
        }

    @staticmethod
    def from_dict(doc: Mapping[str, object]) -> Targets:
        def pair(key: str) -> tuple[float, float]:
            value = doc[key]
            if not isinstance(value, Sequence) or len(value) != 2:
                raise ValueError(f"targets.{key} must be a pair")
            return (float(value[0]), float(value[1]))

        def num(key: str) -> float:
            value = doc[key]
            if not isinstance(value, int | float):
                raise ValueError(f"targets.{key} must be a number")
            return float(value)

        return Targets(
            bmr_kcal=num("bmr_kcal"),
            expenditure_kcal=num("expenditure_kcal"),
            training_kcal_per_day=num("training_kcal_per_day"),
            energy_kcal=num("energy_kcal"),
            protein_g=pair("protein_g"),
            fat_g=pair("fat_g"),
            carbohydrate_g=pair("carbohydrate_g"),
            fiber_g_min=num("fiber_g_min"),
            floor_applied=bool(doc["floor_applied"]),
            # Documents written before these bands existed carry neither: the defaults apply.
            fiber_g_max=num("fiber_g_max") if "fiber_g_max" in doc else FIBRE_G_MAX,
            sodium_mg_max=num("sodium_mg_max") if "sodium_mg_max" in doc else SODIUM_MG_MAX,
        )


def bmr_mifflin_st_jeor(profile: Profile) -> float:
    """Basal metabolic rate, kcal/day (Mifflin-St Jeor 1990)."""
    base = 10.0 * profile.weight_kg + 6.25 * profile.height_cm - 5.0 * profile.age
    return base + (5.0 if profile.sex == "male" else -161.0)


def targets(profile: Profile, training_kcal_per_week: float = 0.0) -> Targets:
    """Daily targets for a profile; see the module docstring for every formula and its source."""
    if not 0.0 <= training_kcal_per_week <= 35_000.0:
        raise InvalidProfile("training_kcal_per_week", f"must be between 0 and 35000, got {training_kcal_per_week!r}")
    bmr = bmr_mifflin_st_jeor(profile)
    factor = ACTIVITY_FACTORS[profile.activity]
    training = training_kcal_per_week / 7.0
    if training > 0.0:
        # The declared exercise and the planned training are one thing: take the larger estimate.
        declared_exercise = bmr * max(0.0, factor - _TRAINING_BASE_FACTOR)
        expenditure = bmr * min(factor, _TRAINING_BASE_FACTOR) + max(training, declared_exercise)
    else:
        expenditure = bmr * factor
    shift = profile.rate_kg_per_week * KCAL_PER_KG / 7.0
    energy = (
        expenditure - shift
        if profile.goal == "lose"
        else expenditure + shift
        if profile.goal == "gain"
        else expenditure
    )
    floor = max(bmr, _FLOOR_KCAL[profile.sex])
    floor_applied = profile.goal == "lose" and energy < floor
    if floor_applied:
        energy = floor
    protein_target = PROTEIN_G_PER_KG[profile.goal] * profile.weight_kg
    protein_max = min(PROTEIN_SHARE_MAX * energy / 4.0, PROTEIN_G_PER_KG_MAX * profile.weight_kg)
    protein_min = min(protein_target, protein_max * 0.9)
    protein_min = max(protein_min, 0.8 * profile.weight_kg)  # DRI RDA floor
    fibre_min = min(max(FIBRE_G_PER_1000_KCAL * energy / 1000.0, FIBRE_G_REQUIRED[0]), FIBRE_G_REQUIRED[1])
    return Targets(
        bmr_kcal=round(bmr, 1),
        expenditure_kcal=round(expenditure, 1),
        training_kcal_per_day=round(training, 1),
        energy_kcal=round(energy, 1),
        protein_g=(round(protein_min, 1), round(max(protein_max, protein_min * 1.2), 1)),
        fat_g=(round(FAT_SHARE[0] * energy / 9.0, 1), round(FAT_SHARE[1] * energy / 9.0, 1)),
        carbohydrate_g=(round(CARB_SHARE[0] * energy / 4.0, 1), round(CARB_SHARE[1] * energy / 4.0, 1)),
        fiber_g_min=round(fibre_min, 1),
        floor_applied=floor_applied,
        fiber_g_max=FIBRE_G_MAX,
        sodium_mg_max=SODIUM_MG_MAX,
    )
