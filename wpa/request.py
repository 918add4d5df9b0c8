"""A workout request, its validation, and the rules that depend only on it.

Theory of operation: ``parse_request`` turns a JSON-like mapping into a frozen ``WorkoutRequest``
or raises ``InvalidRequest`` naming the first bad field, whatever the input: numbers are
range-checked before any conversion, and a message quotes a value only cut short
(``wpa.errors.shown``). This module also holds the *data* of the domain rules that the planner
applies (the checker in ``wpa.checks`` keeps its own copy on purpose): major muscle groups, the
injury map and the prescription per goal.

Injury map (``INJURIES``): an injury word excludes exercises whose primary muscle is in its
muscle set, whose category is in its category set, or whose name contains one of its keywords.
"knee" excludes quadriceps-primary work, plyometrics, and squats, lunges, leg presses, step-ups,
leg extensions, jumps and running (the knee is loaded heavily in deep flexion and landing);
hamstring, glute and calf work stays (bridges, hip thrusts, seated calf raises). Other entries:
shoulder, lower_back (alias back), wrist, elbow, hip, ankle, neck. Any other word in ``avoid``
is an exercise id or a word of exercise names to leave out.

Exercise suitability (``unsuitable``), beside the data set's own ``level``: beginners get no
pull-ups, chin-ups, dips, muscle-ups, handstands, pistols, jumps or plyometrics (all labelled
"beginner" in places, but each needs the strength to move the whole body weight for 3 x 10-15,
or landing skill; assisted and machine versions stay); nobody gets a behind-the-neck press or
pull-down (the shoulder loaded in full abduction and external rotation, a position strength
coaches commonly advise against for general clients, and the front versions train the same
muscles); and unless the request says a partner or spotter is there
(``partner``), no exercise whose instructions require one (``NEEDS_PARTNER``).

Older beginners (``age`` >= ``OLDER_AGE``, 60, at beginner level; ``WorkoutRequest.older_beginner``):
beside the beginner rules, no high-impact or vigorous moves (running, jogging, sprints, rope
jumping, skating, stair machines, hops, bounds, burpees; plyometrics, olympic lifts and strongman
events), so cardio is walking or cycling; and a moderate prescription (``prescription``): 10-15
reps at 50-65 % 1RM (RPE 5-6), at most 3 sets, at least 60 s rest. ACSM / AHA physical activity
for older adults (Nelson et al. 2007) and ACSM's position stand on exercise for older adults
(Chodzko-Zajko et al. 2009): moderate intensity, 5-6 on a 0-10 effort scale, 10-15 repetitions,
8-10 exercises; low-impact aerobic work (walking, cycling) for people starting out. Without an
age, a beginner gets the beginner rules only.

Weekly volume (``VOLUME``): sets per major group per load week, counted fractionally (a set
counts 1 for its primary muscle's group and 0.5 for each other group among its secondary
muscles; Pelland et al. 2024 meta-regression, Schoenfeld, Ogborn & Krieger 2017 dose-response:
about 10-20 weekly sets per muscle for hypertrophy). Hypertrophy asks 10-20; the other goals ask
coverage (at least 2) and the same 20 ceiling: strength is driven by load rather than volume, and
ACSM's general guideline is 2-4 sets per major group 2-3 days a week.

Prescription by goal (NSCA Essentials of Strength Training and Conditioning, 4th ed., ch. 17;
ACSM position stand on progression models in resistance training, 2009):
strength 1-6 reps at >= 85 % 1RM with 2-5 min rest; hypertrophy 6-12 reps at 67-85 % 1RM with
30-90 s rest; muscular endurance 12-20+ reps at <= 67 % 1RM with <= 30-60 s rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wpa.errors import InvalidRequest, shown
from wpa.exercises import LEVELS

__all__ = [
    "EQUIPMENT",
    "GOALS",
    "INJURIES",
    "MAJOR_GROUPS",
    "NEEDS_PARTNER",
    "OLDER_AGE",
    "PRESCRIPTIONS",
    "REQUEST_FIELDS",
    "VOLUME",
    "Prescription",
    "WorkoutRequest",
    "parse_request",
    "prescription",
    "unsuitable",
]

GOALS = ("strength", "hypertrophy", "endurance", "general_fitness", "fat_loss")
EQUIPMENT = (
    "body only",
    "barbell",
    "dumbbell",
    "cable",
    "machine",
    "kettlebells",
    "bands",
    "medicine ball",
    "exercise ball",
    "foam roll",
    "e-z curl bar",
    "other",
)

# Major muscle groups -> muscle names of the data set. Neck and adductors are not major groups;
# abductors (gluteus medius) count with the glutes.
MAJOR_GROUPS: Mapping[str, frozenset[str]] = {
    "quadriceps": frozenset({"quadriceps"}),
    "hamstrings": frozenset({"hamstrings"}),
    "glutes": frozenset({"glutes", "abductors"}),
    "calves": frozenset({"calves"}),
    "chest": frozenset({"chest"}),
    "back": frozenset({"lats", "middle back", "lower back", "traps"}),
    "shoulders": frozenset({"shoulders"}),
    "arms": frozenset({"biceps", "triceps", "forearms"}),
    "core": frozenset({"abdominals"}),
}

# Weekly fractional sets per major group in a load week, (at least, at most); see the docstring.
VOLUME: Mapping[str, tuple[float, float]] = {
    "strength": (2.0, 20.0),
    "hypertrophy": (10.0, 20.0),
    "endurance": (2.0, 20.0),
    "general_fitness": (2.0, 20.0),
    "fat_loss": (2.0, 20.0),
}

# Exercises whose instructions require a partner or a spotter (read from the instructions: "you
# will need a partner", "your partner should provide resistance", "best performed with a partner",
# "have a partner hand you the bar", "best if you have a spotter"). Where the instructions offer
# an alternative (a wall, feet under something stable) the exercise is not listed.
NEEDS_PARTNER: frozenset[str] = frozenset(
    {
        "Prone_Manual_Hamstring",
        "Medicine_Ball_Chest_Pass",
        "Medicine_Ball_Full_Twist",
        "Return_Push_from_Stance",
        "Standing_Towel_Triceps_Extension",
        "Weighted_Bench_Dip",
        "One_Arm_Floor_Press",
        "Decline_Barbell_Bench_Press",
        "Decline_Close-Grip_Bench_To_Skull_Crusher",
        "Decline_EZ_Bar_Triceps_Extension",
        "Handstand_Push-Ups",
    }
)
# Body-weight moves too hard for 3 x 10-15 at beginner level, whatever the data set says.
_BEGINNER_HARD = re.compile(r"\b(pull-?ups?|chin-?ups?|dips?|muscle-?ups?|handstand|pistol|jumps?|jumping)\b")
_BEGINNER_KEEP = re.compile(r"\bassisted\b|\bmachine\b")
_CONTRAINDICATED = re.compile(r"\bbehind (the )?neck\b")
OLDER_AGE = 60  # from this age a beginner gets the older-beginner rules (see the docstring)
# High-impact or vigorous for an older beginner: landing, running, stair climbing, skating.
_HIGH_IMPACT = re.compile(
    r"\b(running|jogging|sprints?|rope jumping|jump rope|skating|stair\w*|step mill|jumps?|jumping|hops?|hopping"
    r"|bounds?|bounding|burpees?|skips?|skipping)\b"
)
_HEAVY_CATEGORIES = frozenset({"plyometrics", "olympic weightlifting", "strongman"})


def unsuitable(
    name: str, exercise_id: str, category: str, level: str, partner: bool, *, older: bool = False
) -> str | None:
    """Why an exercise does not suit this person (see the module docstring), or ``None``.

    ``older``: the person is an older beginner (``WorkoutRequest.older_beginner``).
    """
    text = name.lower()
    if older:
        if category in _HEAVY_CATEGORIES:
            return f"{category} for an older beginner"
        if _HIGH_IMPACT.search(text):
            return "high-impact or vigorous for an older beginner (walking or cycling instead)"
    if _CONTRAINDICATED.search(text):
        return "behind-the-neck position (shoulder at risk; the front version trains the same)"
    if not partner and exercise_id in NEEDS_PARTNER:
        return "needs a partner or spotter"
    if level == "beginner":
        if category == "plyometrics":
            return "plyometrics at beginner level"
        if _BEGINNER_HARD.search(text) and not _BEGINNER_KEEP.search(text):
            return "body-weight move too hard for a beginner"
    return None


@dataclass(frozen=True, slots=True)
class Injury:
    muscles: frozenset[str]
    categories: frozenset[str]
    keywords: tuple[str, ...]


INJURIES: Mapping[str, Injury] = {
    "knee": Injury(
        frozenset({"quadriceps"}),
        frozenset({"plyometrics"}),
        (
            "squat",
            "lunge",
            "leg press",
            "step-up",
            "step up",
            "leg extension",
            "jump",
            "pistol",
            "running",
            "jogging",
            "sprint",
            "hop",
            "bound",
            "skating",
            "stair",
            "step mill",
        ),
    ),
    "shoulder": Injury(
        frozenset({"shoulders"}),
        frozenset({"olympic weightlifting"}),
        (
            "overhead",
            "military press",
            "shoulder press",
            "upright row",
            "behind the neck",
            "dip",
            "handstand",
            "snatch",
            "jerk",
        ),
    ),
    "lower_back": Injury(
        frozenset({"lower back"}),
        frozenset({"olympic weightlifting", "strongman", "powerlifting"}),
        (
            "deadlift",
            "good morning",
            "hyperextension",
            "bent over",
            "bent-over",
            "clean",
            "snatch",
            "back squat",
            "superman",
            "t-bar",
        ),
    ),
    "wrist": Injury(
        frozenset({"forearms"}), frozenset(), ("wrist", "push-up", "pushup", "front squat", "clean", "plank")
    ),
    "elbow": Injury(
        frozenset(), frozenset(), ("skullcrusher", "skull crusher", "triceps extension", "dip", "close-grip")
    ),
    "hip": Injury(frozenset({"adductors", "abductors"}), frozenset({"plyometrics"}), ("lunge", "split squat", "sumo")),
    "ankle": Injury(
        frozenset({"calves"}),
        frozenset({"plyometrics", "cardio"}),
        ("jump", "hop", "bound", "sprint", "running", "jogging", "skipping", "calf raise"),
    ),
    "neck": Injury(frozenset({"neck", "traps"}), frozenset(), ("shrug", "behind the neck", "neck")),
}
_INJURY_ALIASES = {"back": "lower_back", "lower back": "lower_back", "knees": "knee", "shoulders": "shoulder"}


@dataclass(frozen=True, slots=True)
class Prescription:
    """Sets, reps, rest and intensity of one goal (see the module docstring for sources)."""

    sets: int
    reps: str
    rest_s: int
    intensity: str
    categories: frozenset[str]
    reps_range: tuple[int, int]
    rest_range_s: tuple[int, int]


PRESCRIPTIONS: Mapping[str, Prescription] = {
    "strength": Prescription(
        4, "4-6", 180, "80-88% 1RM (RPE 8)", frozenset({"strength", "powerlifting"}), (1, 6), (120, 300)
    ),
    "hypertrophy": Prescription(3, "8-12", 75, "67-80% 1RM (RPE 7-8)", frozenset({"strength"}), (6, 12), (60, 90)),
    "endurance": Prescription(
        2, "15-20", 45, "50-65% 1RM (RPE 6-7)", frozenset({"strength", "cardio"}), (12, 25), (30, 60)
    ),
    "general_fitness": Prescription(
        3, "10-12", 60, "65-75% 1RM (RPE 7)", frozenset({"strength", "cardio"}), (8, 15), (45, 90)
    ),
    "fat_loss": Prescription(
        3,
        "12-15",
        40,
        "60-70% 1RM, circuit (RPE 7)",
        frozenset({"strength", "cardio", "plyometrics"}),
        (10, 20),
        (30, 60),
    ),
}


@dataclass(frozen=True, slots=True)
class WorkoutRequest:
    """A validated request; ``to_dict`` gives the shape ``parse_request`` accepts."""

    goal: str
    level: str
    days_per_week: int
    session_minutes: int
    equipment: frozenset[str]
    injuries: tuple[str, ...]
    avoid: tuple[str, ...]
    weeks: int
    body_mass_kg: float
    partner: bool = False
    age: int | None = None

    @property
    def older_beginner(self) -> bool:
        """A beginner aged ``OLDER_AGE`` or more: the lower-impact, moderate rules apply."""
        return self.level == "beginner" and self.age is not None and self.age >= OLDER_AGE

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "goal": self.goal,
            "level": self.level,
            "days_per_week": self.days_per_week,
            "session_minutes": self.session_minutes,
            "equipment": sorted(self.equipment),
            "avoid": list(self.injuries) + list(self.avoid),
            "weeks": self.weeks,
            "body_mass_kg": self.body_mass_kg,
            "partner": self.partner,
        }
        if self.age is not None:
            out["age"] = self.age
        return out


def _int(doc: Mapping[str, object], field: str, low: int, high: int, default: int | None) -> int:
    value = doc.get(field, default)
    if value is None:
        raise InvalidRequest(field, "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(field, f"must be a whole number, got {shown(value)}")
    if not low <= value <= high:
        raise InvalidRequest(field, f"must be between {low} and {high}, got {shown(value)}")
    return value


def _choice(doc: Mapping[str, object], field: str, options: Sequence[str], default: str | None) -> str:
    value = doc.get(field, default)
    if value is None:
        raise InvalidRequest(field, f"is required (one of {', '.join(options)})")
    if not isinstance(value, str) or value.strip().lower() not in options:
        raise InvalidRequest(field, f"must be one of {', '.join(options)}, got {shown(value)}")
    return value.strip().lower()


def _words(doc: Mapping[str, object], field: str) -> list[str]:
    value = doc.get(field, [])
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InvalidRequest(field, "must be a list of names")
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or len(item) > 80:
            raise InvalidRequest(
                f"{field}[{i}]", f"must be a non-empty name of at most 80 characters, got {shown(item)}"
            )
        out.append(item.strip())
    return out


REQUEST_FIELDS = (
    "goal",
    "level",
    "days_per_week",
    "session_minutes",
    "equipment",
    "avoid",
    "injuries",
    "weeks",
    "body_mass_kg",
    "partner",
    "age",
)


def parse_request(doc: Mapping[str, object]) -> WorkoutRequest:
    """Validate a JSON-like request; raise ``InvalidRequest`` naming the field.

    Fields: goal (one of ``GOALS``), level (beginner / intermediate / expert), days_per_week
    (1-7), session_minutes (15-180), equipment (names of ``EQUIPMENT``; "body only" is always
    available), avoid (injury words of ``INJURIES``, exercise ids, or words of exercise names),
    weeks (1-12, default 4), body_mass_kg (30-300, required: session energy depends on it),
    partner (true when a training partner or spotter is there; default false, training alone),
    age (18-100, optional: an older beginner gets lower-impact, moderate training); injuries is
    read like avoid. Any other field is refused (``REQUEST_FIELDS``).
    """
    if not isinstance(doc, Mapping):
        raise InvalidRequest("request", f"must be an object, got {type(doc).__name__}")
    # A field the request does not know is refused, not ignored ("day_per_week" would otherwise
    # be a missing field's error at best, "equipement" a body-only plan without a word).
    unknown = [key for key in doc if key not in REQUEST_FIELDS]
    if unknown:
        raise InvalidRequest("request", f"unknown field {shown(unknown[0])}; known: {', '.join(REQUEST_FIELDS)}")
    equipment = {"body only"}
    for i, name in enumerate(_words(doc, "equipment")):
        key = name.lower()
        if key not in EQUIPMENT:
            raise InvalidRequest(f"equipment[{i}]", f"unknown equipment {shown(name)}; known: {', '.join(EQUIPMENT)}")
        equipment.add(key)
    injuries: list[str] = []
    avoid: list[str] = []
    for name in _words(doc, "avoid") + _words(doc, "injuries"):
        key = _INJURY_ALIASES.get(name.lower(), name.lower())
        if key in INJURIES:
            if key not in injuries:
                injuries.append(key)
        elif name not in avoid:
            avoid.append(name)
    mass = doc.get("body_mass_kg")
    if mass is None:
        raise InvalidRequest("body_mass_kg", "is required (session energy is MET x kg x hours)")
    # Compared before converting: an integer too large for a float compares exactly, where
    # float() would raise OverflowError; NaN compares false and is refused with the rest.
    if isinstance(mass, bool) or not isinstance(mass, int | float) or not 30 <= mass <= 300:
        raise InvalidRequest("body_mass_kg", f"must be a number between 30 and 300, got {shown(mass)}")
    partner = doc.get("partner", False)
    if not isinstance(partner, bool):
        raise InvalidRequest("partner", f"must be true or false, got {shown(partner)}")
    return WorkoutRequest(
        goal=_choice(doc, "goal", GOALS, None),
        level=_choice(doc, "level", LEVELS, "beginner"),
        days_per_week=_int(doc, "days_per_week", 1, 7, None),
        session_minutes=_int(doc, "session_minutes", 15, 180, 60),
        equipment=frozenset(equipment),
        injuries=tuple(injuries),
        avoid=tuple(avoid),
        weeks=_int(doc, "weeks", 1, 12, 4),
        body_mass_kg=float(mass),
        partner=partner,
        age=None if doc.get("age") is None else _int(doc, "age", 18, 100, None),
    )


_OLDER_INTENSITY = "50-65% 1RM (RPE 5-6)"


def prescription(request: WorkoutRequest) -> Prescription:
    """The goal's prescription, made moderate for an older beginner (see the module docstring)."""
    base = PRESCRIPTIONS[request.goal]
    if not request.older_beginner:
        return base
    return Prescription(
        sets=min(base.sets, 3),
        reps="10-15",
        rest_s=max(base.rest_s, 60),
        intensity=_OLDER_INTENSITY,
        categories=base.categories - _HEAVY_CATEGORIES,
        reps_range=(10, 15),
        rest_range_s=base.rest_range_s,
    )
