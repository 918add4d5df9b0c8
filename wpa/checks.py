"""Workout plan checker, independent of the planner (it imports no planner code).

Theory of operation: ``check_workout_plan`` re-derives the rules from the request and the
exercise data and reports every ``Violation`` (an empty list means the plan passed):

- ``equipment``: every exercise's equipment is available ("body only" / none always is).
- ``level``: no exercise above the request's level.
- ``injury``: no exercise loads an injured area (this module's own map, kept apart from the
  planner's on purpose) or matches an avoided id or word.
- ``rest``: no muscle (primary muscle of the data set: biceps and triceps are different muscles,
  so push / pull on consecutive days is fine) loaded by resistance work (anything but cardio
  and stretching) on two consecutive days, the week boundary included (>= 48 h of rest).
- ``balance``: in every load week each major group the data can train for this request gets at
  least 2 sets, no single muscle more than 24 (NSCA / ACSM volume is about 10-20 sets per muscle
  a week; 24 leaves room for undulation); push (chest, shoulders, triceps) vs pull (back, biceps) sets within
  a factor of 3.
- ``prescription``: rest within the goal's band for lifting exercises; weeks 1..n present.
"""

from __future__ import annotations

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
_EXEMPT = frozenset({"cardio", "stretching"})
# The lifting categories each goal uses (NSCA: strength work for lifting goals; plyometrics only
# in fat-loss circuits; olympic lifts and strongman only for expert strength). Repeated here on
# purpose: a group counts as "trainable" only with exercises the goal allows.
_GOAL_CATEGORIES = {
    "strength": frozenset({"strength", "powerlifting"}),
    "hypertrophy": frozenset({"strength"}),
    "endurance": frozenset({"strength"}),
    "general_fitness": frozenset({"strength"}),
    "fat_loss": frozenset({"strength", "plyometrics"}),
}


def _group(muscle: str) -> str | None:
    return next((g for g, ms in _GROUPS.items() if muscle in ms), None)


def _trainable(request: WorkoutRequest, exercises_by_id: Mapping[str, Exercise]) -> set[str]:
    allowed = _LEVELS[: _LEVELS.index(request.level) + 1]
    out: set[str] = set()
    for ex in exercises_by_id.values():
        categories = _GOAL_CATEGORIES[request.goal]
        if request.goal == "strength" and request.level == "expert":
            categories = categories | {"olympic weightlifting", "strongman"}
        if ex.category not in categories or ex.level not in allowed:
            continue
        if (ex.equipment or "body only") not in request.equipment:
            continue
        if _injured(ex, request) is None:
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


def check_workout_plan(
    request: WorkoutRequest, plan: WorkoutPlan, exercises_by_id: Mapping[str, Exercise]
) -> list[Violation]:
    """Every rule of the module docstring that ``plan`` breaks for ``request`` (empty: none)."""
    out: list[Violation] = []
    if [w.week for w in plan.weeks] != list(range(1, request.weeks + 1)):
        out.append(Violation("prescription", f"weeks {[w.week for w in plan.weeks]}, request asks {request.weeks}"))
    allowed = _LEVELS[: _LEVELS.index(request.level) + 1]
    trainable = _trainable(request, exercises_by_id)
    low, high = _REST_BANDS[request.goal]
    for week in plan.weeks:
        loaded: dict[int, set[str]] = {}
        sets: dict[str, int] = {g: 0 for g in _GROUPS}
        per_muscle: dict[str, int] = {}
        push = pull = 0
        for session in week.sessions:
            for item in session.exercises:
                where = (week.week, session.weekday, item.id)
                ex = exercises_by_id.get(item.id)
                if ex is None:
                    out.append(Violation("equipment", f"unknown exercise {item.id!r}", *where))
                    continue
                if (ex.equipment or "body only") not in request.equipment:
                    out.append(Violation("equipment", f"{ex.name!r} needs {ex.equipment}", *where))
                if ex.level not in allowed:
                    out.append(Violation("level", f"{ex.name!r} is {ex.level}, request is {request.level}", *where))
                injury = _injured(ex, request)
                if injury is not None:
                    out.append(Violation("injury", f"{ex.name!r} conflicts with {injury!r}", *where))
                if ex.category in _EXEMPT:
                    continue
                if not low <= item.rest_s <= high:
                    out.append(Violation("prescription", f"rest {item.rest_s} s outside {low}-{high} s", *where))
                group = _group(ex.primary_muscles[0])
                loaded.setdefault(session.weekday, set()).add(ex.primary_muscles[0])
                per_muscle[ex.primary_muscles[0]] = per_muscle.get(ex.primary_muscles[0], 0) + item.sets
                if group is not None:
                    sets[group] += item.sets
                push += item.sets if ex.primary_muscles[0] in _PUSH else 0
                pull += item.sets if ex.primary_muscles[0] in _PULL else 0
        for day, groups in loaded.items():
            following = loaded.get((day + 1) % 7, set())  # Sunday -> next Monday: weeks repeat
            for g in sorted(groups & following):
                out.append(Violation("rest", f"{g} loaded on consecutive days", week.week, day))  # per muscle
        if week.phase == "deload":
            continue
        for g in sorted(trainable):
            if sets[g] < 2:
                out.append(Violation("balance", f"{g}: {sets[g]} sets this week (at least 2)", week.week))
        for muscle, n in sorted(per_muscle.items()):
            if n > 24:
                out.append(Violation("balance", f"{muscle}: {n} sets this week (at most 24)", week.week))
        if push and pull and not 1 / 3 <= push / pull <= 3:
            out.append(Violation("balance", f"push {push} vs pull {pull} sets", week.week))
    return out
