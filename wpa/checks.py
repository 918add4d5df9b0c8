"""Workout plan checker, independent of the planner (it imports no planner code).

Theory of operation: ``check_workout_plan`` re-derives the rules from the request and the
exercise data and reports every ``Violation`` (an empty list means the plan passed):

- ``equipment``: every exercise's equipment is available ("body only" / none always is).
- ``level``: no exercise above the request's level, and for beginners no pull-up, chin-up, dip,
  muscle-up, handstand, pistol, jump or plyometric exercise (assisted and machine versions
  excepted): a beginner cannot do them for 3 x 10-15.
- ``safety``: no behind-the-neck press or pull-down for anyone; no exercise whose instructions
  require a partner or spotter unless the request has one (read from the instructions here
  with this module's own phrases, not the planner's list).
- ``injury``: no exercise loads an injured area (this module's own map, kept apart from the
  planner's on purpose) or matches an avoided id or word.
- ``order``: in each session no compound lifting exercise comes after an isolation one.
- ``rest``: no muscle (primary muscle of the data set: biceps and triceps are different muscles,
  so push / pull on consecutive days is fine) loaded by resistance work (anything but cardio
  and stretching) on two consecutive days, the week boundary included (>= 48 h of rest); and no
  cardio on the day before lower-body resistance work (all cardio of the data set is leg work).
- ``volume``: in every load week each major group (quadriceps, hamstrings, glutes, calves,
  chest, back, shoulders, arms, core) that the data can train for this request gets the goal's
  weekly sets, counted fractionally (primary muscle 1, secondary 0.5): hypertrophy 10-20, the
  other goals 2-20; a group the data cannot train must be named in the plan's notes.
- ``balance``: push (chest, shoulders, triceps) vs pull (back, biceps) sets within a factor of 3.
- ``energy``: each week's kcal is the sum of its sessions, the plan's weekly figure their mean,
  below the gross figure when one is given (net of rest), and a deload week burns less than
  every load week of its block.
- ``prescription``: rest within the goal's band for lifting exercises; weeks 1..n present.
- ``older``: a beginner aged 60 or more (when the request gives an age) gets no high-impact or
  vigorous move (this module's own list: running, jogging, sprints, rope jumping, skating,
  stairs, jumps, hops, bounds, burpees, skips; plyometrics, olympic lifts, strongman), and
  lifting at moderate effort: at least 10 reps a set, at most 65 % 1RM, at most RPE 6 (ACSM / AHA
  2007 and ACSM 2009 for older adults).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from wpa.exercises import Exercise
from wpa.model import WorkoutPlan
from wpa.request import MAJOR_GROUPS, WorkoutRequest

__all__ = ["Violation", "check_workout_plan"]


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken rule and where: ``week``, ``day`` (weekday 0-6), ``item`` (exercise id) when known."""

    rule: str
    detail: str
    week: int | None = None
    day: int | None = None
    item: str | None = None


# The rule's own definition of the major groups (the request's vocabulary, not planner logic).
_GROUPS: Mapping[str, frozenset[str]] = MAJOR_GROUPS
_PUSH = frozenset({"chest", "shoulders", "triceps"})
_PULL = frozenset({"lats", "middle back", "traps", "biceps"})
_LOWER = frozenset({"quadriceps", "hamstrings", "glutes", "calves", "adductors", "abductors"})
# Injury -> (muscles, categories, name words). Kept separate from wpa.request.INJURIES on purpose.
_INJURY: Mapping[str, tuple[frozenset[str], frozenset[str], tuple[str, ...]]] = {
    "knee": (frozenset({"quadriceps"}), frozenset({"plyometrics"}), ("squat", "lunge", "leg press", "jump", "step-up")),
    "shoulder": (frozenset({"shoulders"}), frozenset(), ("overhead", "military press", "upright row", "handstand")),
    "lower_back": (frozenset({"lower back"}), frozenset(), ("deadlift", "good morning", "hyperextension")),
    "wrist": (frozenset({"forearms"}), frozenset(), ("wrist",)),
    "elbow": (frozenset(), frozenset(), ("skullcrusher", "skull crusher")),
    "hip": (frozenset({"adductors", "abductors"}), frozenset(), ("lunge",)),
    "ankle": (frozenset({"calves"}), frozenset({"plyometrics"}), ("jump", "sprint")),
    "neck": (frozenset({"neck"}), frozenset(), ("shrug",)),
}
_LEVELS = ("beginner", "intermediate", "expert")
_REST_BANDS = {
    "strength": (120, 300),
    "hypertrophy": (60, 90),
    "endurance": (30, 60),
    "general_fitness": (45, 90),
    "fat_loss": (30, 60),
}
# Weekly fractional sets per major group in a load week (Schoenfeld et al. 2017; Pelland et al.
# 2024: about 10-20 for hypertrophy; ACSM: 2-4 sets per group 2-3 days a week otherwise).
_VOLUME = {
    "strength": (2.0, 20.0),
    "hypertrophy": (10.0, 20.0),
    "endurance": (2.0, 20.0),
    "general_fitness": (2.0, 20.0),
    "fat_loss": (2.0, 20.0),
}
_EXEMPT = frozenset({"cardio", "stretching"})
# The lifting categories each goal uses (NSCA: strength work for lifting goals; plyometrics only
# in fat-loss circuits; olympic lifts and strongman only for expert strength). Repeated here on
# purpose: a group counts as "trainable" only with exercises the goal allows, or powerlifting
# exercises when nothing else trains it (a band good morning for the hamstrings).
_GOAL_CATEGORIES = {
    "strength": frozenset({"strength", "powerlifting"}),
    "hypertrophy": frozenset({"strength"}),
    "endurance": frozenset({"strength"}),
    "general_fitness": frozenset({"strength"}),
    "fat_loss": frozenset({"strength", "plyometrics"}),
}
_HARD_FOR_BEGINNERS = re.compile(r"\b(pull-?ups?|chin-?ups?|dips?|muscle-?ups?|handstand|pistol|jumps?|jumping)\b")
_EASED = re.compile(r"\b(assisted|machine)\b")
_OLDER_AGE = 60
_IMPACT = re.compile(
    r"\b(run|running|jog|jogging|sprint\w*|rope jump\w*|jump rope|skating|stairs?|stairmaster|step mill|jump\w*"
    r"|hop|hops|hopping|bound|bounds|bounding|burpees?|skip|skips|skipping)\b"
)
_IMPACT_CATEGORIES = frozenset({"plyometrics", "olympic weightlifting", "strongman"})
_OLDER_REPS_MIN = 10
_OLDER_PCT_MAX = 65
_OLDER_RPE_MAX = 6
_BEHIND_NECK = re.compile(r"\bbehind (the )?neck\b")
# Instruction phrases that make a partner or spotter a requirement, not an option.
_NEEDS_PARTNER = re.compile(
    r"you will need a partner|need a partner for|and a partner|best performed with a partner|"
    r"your partner should provide|have (a|your) partner (place|hand you)|communicate with your partner|"
    r"best if you have a spotter|have a spotter help"
)


def _group(muscle: str) -> str | None:
    return next((g for g, ms in _GROUPS.items() if muscle in ms), None)


def _level_problem(ex: Exercise, level: str) -> str | None:
    allowed = _LEVELS[: _LEVELS.index(level) + 1]
    if ex.level not in allowed:
        return f"{ex.name!r} is {ex.level}, request is {level}"
    if level == "beginner":
        name = ex.name.lower()
        if ex.category == "plyometrics" or (_HARD_FOR_BEGINNERS.search(name) and not _EASED.search(name)):
            return f"{ex.name!r} is too hard for a beginner at these reps"
    return None


def _older(request: WorkoutRequest) -> bool:
    age = getattr(request, "age", None)
    return request.level == "beginner" and age is not None and age >= _OLDER_AGE


def _older_problem(ex: Exercise, reps: str, intensity: str) -> str | None:
    """What an older beginner should not be given (see the module docstring), or ``None``."""
    if ex.category in _IMPACT_CATEGORIES or _IMPACT.search(ex.name.lower()):
        return f"{ex.name!r} is high-impact or vigorous for an older beginner"
    if ex.category in _EXEMPT:
        return None
    low = re.match(r"\s*(\d+)", reps)
    if low is not None and int(low.group(1)) < _OLDER_REPS_MIN:
        return f"{reps} reps of {ex.name!r}: an older beginner lifts at least {_OLDER_REPS_MIN} reps"
    pct = re.search(r"(\d+)\s*% 1RM", intensity)
    if pct is not None and int(pct.group(1)) > _OLDER_PCT_MAX:
        return f"{intensity} for {ex.name!r}: an older beginner lifts at most {_OLDER_PCT_MAX}% 1RM"
    rpe = re.search(r"RPE (\d+)(?:-(\d+))?", intensity)
    if rpe is not None and int(rpe.group(2) or rpe.group(1)) > _OLDER_RPE_MAX:
        return f"{intensity} for {ex.name!r}: an older beginner trains at most RPE {_OLDER_RPE_MAX}"
    return None


def _safety_problem(ex: Exercise, request: WorkoutRequest) -> str | None:
    if _BEHIND_NECK.search(ex.name.lower()):
        return f"{ex.name!r} puts the shoulder behind the neck under load"
    if not request.partner and _NEEDS_PARTNER.search(" ".join(ex.instructions).lower()):
        return f"{ex.name!r} needs a partner or spotter; the person trains alone"
    return None


def _trainable(request: WorkoutRequest, exercises_by_id: Mapping[str, Exercise]) -> set[str]:
    categories = _GOAL_CATEGORIES[request.goal] | {"powerlifting"}
    if request.goal == "strength" and request.level == "expert":
        categories = categories | {"olympic weightlifting", "strongman"}
    out: set[str] = set()
    for ex in exercises_by_id.values():
        if ex.category not in categories or (ex.equipment or "body only") not in request.equipment:
            continue
        if _level_problem(ex, request.level) or _safety_problem(ex, request) or _injured(ex, request):
            continue
        if _older(request) and _older_problem(ex, "", ""):
            continue
        g = _group(ex.primary_muscles[0])
        if g:
            out.add(g)
    return out


def _injured(ex: Exercise, request: WorkoutRequest) -> str | None:
    name = ex.name.lower()
    for injury in request.injuries:
        muscles, categories, words = _INJURY.get(injury, (frozenset(), frozenset(), ()))
        if ex.primary_muscles[0] in muscles or ex.category in categories or any(w in name for w in words):
            return injury
    for word in request.avoid:
        if ex.id.lower() == word.lower() or word.lower() in name:
            return word
    return None


def _credit(ex: Exercise) -> dict[str, float]:
    """Sets credited per group for one set: 1 for the primary muscle's group, 0.5 for others hit."""
    primary = _group(ex.primary_muscles[0])
    out = {g: 0.5 for m in ex.secondary_muscles if (g := _group(m)) is not None and g != primary}
    if primary is not None:
        out[primary] = 1.0
    return out


def check_workout_plan(
    request: WorkoutRequest, plan: WorkoutPlan, exercises_by_id: Mapping[str, Exercise]
) -> list[Violation]:
    """Every rule of the module docstring that ``plan`` breaks for ``request`` (empty: none)."""
    out: list[Violation] = []
    if [w.week for w in plan.weeks] != list(range(1, request.weeks + 1)):
        out.append(Violation("prescription", f"weeks {[w.week for w in plan.weeks]}, request asks {request.weeks}"))
    trainable = _trainable(request, exercises_by_id)
    older = _older(request)
    low, high = _REST_BANDS[request.goal]
    floor, ceiling = _VOLUME[request.goal]
    notes = " ".join(plan.notes).lower()
    for g in sorted(set(_GROUPS) - trainable):
        if g not in notes:
            out.append(Violation("volume", f"{g} cannot be trained for this request and the notes do not say so"))
    for week in plan.weeks:
        loaded: dict[int, set[str]] = {}
        cardio_days: set[int] = set()
        volume: dict[str, float] = dict.fromkeys(_GROUPS, 0.0)
        push = pull = 0
        for session in week.sessions:
            seen_isolation = False
            for item in session.exercises:
                where = (week.week, session.weekday, item.id)
                ex = exercises_by_id.get(item.id)
                if ex is None:
                    out.append(Violation("equipment", f"unknown exercise {item.id!r}", *where))
                    continue
                if (ex.equipment or "body only") not in request.equipment:
                    out.append(Violation("equipment", f"{ex.name!r} needs {ex.equipment}", *where))
                if (problem := _level_problem(ex, request.level)) is not None:
                    out.append(Violation("level", problem, *where))
                if (problem := _safety_problem(ex, request)) is not None:
                    out.append(Violation("safety", problem, *where))
                if older and (problem := _older_problem(ex, item.reps, item.intensity)) is not None:
                    out.append(Violation("older", problem, *where))
                injury = _injured(ex, request)
                if injury is not None:
                    out.append(Violation("injury", f"{ex.name!r} conflicts with {injury!r}", *where))
                if ex.category == "cardio":
                    cardio_days.add(session.weekday)
                if ex.category in _EXEMPT:
                    continue
                if ex.mechanic == "compound" and seen_isolation:
                    out.append(Violation("order", f"compound {ex.name!r} after an isolation exercise", *where))
                seen_isolation = seen_isolation or ex.mechanic != "compound"
                if not low <= item.rest_s <= high:
                    out.append(Violation("prescription", f"rest {item.rest_s} s outside {low}-{high} s", *where))
                loaded.setdefault(session.weekday, set()).add(ex.primary_muscles[0])
                for g, share in _credit(ex).items():
                    volume[g] += share * item.sets
                push += item.sets if ex.primary_muscles[0] in _PUSH else 0
                pull += item.sets if ex.primary_muscles[0] in _PULL else 0
        for day, muscles in loaded.items():
            following = loaded.get((day + 1) % 7, set())  # Sunday -> next Monday: weeks repeat
            for m in sorted(muscles & following):
                out.append(Violation("rest", f"{m} loaded on consecutive days", week.week, day))
        for day in sorted(cardio_days):
            legs = loaded.get((day + 1) % 7, set()) & _LOWER
            if legs:
                out.append(Violation("rest", f"cardio the day before {', '.join(sorted(legs))} work", week.week, day))
        sessions_kcal = round(sum(s.kcal for s in week.sessions), 1)
        if abs(sessions_kcal - week.kcal) > 0.2:
            out.append(Violation("energy", f"week kcal {week.kcal} but its sessions add to {sessions_kcal}", week.week))
        if week.phase == "deload":
            block = [w for w in plan.weeks if (w.week - 1) // 4 == (week.week - 1) // 4 and w.phase == "load"]
            if any(week.kcal >= w.kcal for w in block):
                out.append(Violation("energy", f"deload week {week.kcal} kcal, not below its load weeks", week.week))
            continue
        for g in sorted(trainable):
            if volume[g] < floor:
                out.append(Violation("volume", f"{g}: {volume[g]:g} sets this week (at least {floor:g})", week.week))
        for g, n in sorted(volume.items()):
            if n > ceiling:
                out.append(Violation("volume", f"{g}: {n:g} sets this week (at most {ceiling:g})", week.week))
        if push and pull and not 1 / 3 <= push / pull <= 3:
            out.append(Violation("balance", f"push {push} vs pull {pull} sets", week.week))
    if plan.weeks:
        mean = sum(w.kcal for w in plan.weeks) / len(plan.weeks)
        if abs(mean - plan.weekly_expenditure_kcal) > 0.2:
            out.append(Violation("energy", f"weekly figure {plan.weekly_expenditure_kcal}, weeks average {mean:.1f}"))
        gross = plan.weekly_expenditure_gross_kcal
        if gross and not plan.weekly_expenditure_kcal < gross:
            out.append(Violation("energy", f"net {plan.weekly_expenditure_kcal} kcal not below gross {gross}"))
    return out
