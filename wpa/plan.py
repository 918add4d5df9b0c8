"""Workout plan generation: a split by days per week, exercises by rule, a progression over weeks.

Theory of operation:

1. **Pool.** The 873 exercises are filtered once per request: equipment available ("body only"
   always; an exercise without listed equipment counts as body only), level allowed (beginner ->
   beginner; intermediate -> beginner or intermediate; expert -> all), category fitting the goal
   (``PRESCRIPTIONS``; olympic weightlifting and strongman are added for strength at expert level),
   injuries and avoided ids / words excluded (``wpa.request.INJURIES``).
2. **Split** by days per week (``SPLITS``), chosen so that no muscle group is loaded on two
   consecutive days, across the week boundary too (>= 48 h): 1-3 days full body on alternate days
   (Mon / Wed / Fri), 4 upper / lower (Mon Tue Thu Fri), 5 push / pull / legs / upper / lower
   (Mon Tue Wed Fri Sat), 6 push / pull / legs twice, 7 the same plus a Sunday conditioning day
   (cardio and stretching, which the rest rule exempts: low load). Core and lower back are only
   trained on full-body, lower and legs days.
3. **Session.** Each focus has an ordered list of slots (a primary muscle or a choice of them).
   The number of exercises is what fits in ``session_minutes``: 5 min warm-up, 5 min cool-down
   (sessions of 30 min or more), and per exercise ``sets x (40 s of work + rest) + 1 min``.
   Sessions of the same focus start at rotating slots (the second full-body day begins where the
   first stopped), so short sessions still cover every slot over the week. Each slot takes the
   best-ranked exercise of the pool: not yet used this week, compound first for the first
   slots, then a seeded random order (``random.Random(seed)``, so the same request and seed
   give the same plan). Fat loss, endurance and general fitness end with a cardio block
   when time is left and a cardio exercise is available.
4. **Balance and coverage.** Push (chest, shoulders, triceps) and pull (lats, middle back,
   traps, biceps) exercises stay within a factor of 3 (swaps, ``_rebalance``). Every major group
   (chest, back, shoulders, arms, legs, core) that the pool can train must be trained each week;
   if the sessions are too short, sets drop one at a time (down to 2) and the week is rebuilt,
   and if that still fails, ``Infeasible`` names days per week, session minutes and the groups
   missing.
5. **Progression** over weeks in 4-week blocks, the 4th week a deload (sets x 0.6, intensity -10
   points): beginners progress linearly (+ intensity within each block: low, middle, top of the
   goal's %1RM band); intermediate and expert use daily undulation (the second session of the
   same focus in a week is 5 points lighter) and, from the second block on, swap each exercise
   for a harder variant (``wpa.exercises.progressions``) when the level allows it and the
   variant is in the pool.
6. **Energy** per exercise: MET x body mass (kg) x hours (Compendium of Physical Activities,
   Ainsworth et al. 2011; codes in ``MET``); warm-up and cool-down at 02101 stretching, 2.3 MET.
"""

from __future__ import annotations

import functools
import random  # noqa: TID251 - only seeded random.Random(seed) instances, never the global generator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from wpa.errors import Infeasible, InvalidRequest
from wpa.exercises import LEVELS, Exercise, load_exercises, progressions
from wpa.model import PlannedExercise, Session, Week, WorkoutPlan
from wpa.request import INJURIES, MAJOR_GROUPS, PRESCRIPTIONS, WorkoutRequest

__all__ = ["FOCUS_SLOTS", "MET", "SPLITS", "plan_workouts"]

SPLITS: Mapping[int, tuple[tuple[str, int], ...]] = {
    1: (("full body", 0),),
    2: (("full body", 0), ("full body", 3)),
    3: (("full body", 0), ("full body", 2), ("full body", 4)),
    4: (("upper", 0), ("lower", 1), ("upper", 3), ("lower", 4)),
    5: (("push", 0), ("pull", 1), ("legs", 2), ("upper", 4), ("lower", 5)),
    6: (("push", 0), ("pull", 1), ("legs", 2), ("push", 3), ("pull", 4), ("legs", 5)),
    7: (("push", 0), ("pull", 1), ("legs", 2), ("push", 3), ("pull", 4), ("legs", 5), ("conditioning", 6)),
}
_SPLIT_NAMES = {
    1: "full body",
    2: "full body",
    3: "full body",
    4: "upper/lower",
    5: "push/pull/legs + upper/lower",
    6: "push/pull/legs x2",
    7: "push/pull/legs x2 + conditioning",
}

_LEGS_SLOTS: tuple[tuple[str, ...], ...] = (
    ("quadriceps",),
    ("hamstrings",),
    ("glutes",),
    ("abdominals",),
    ("calves",),
    ("lower back",),
    ("quadriceps", "glutes"),
    ("adductors", "abductors"),
)
FOCUS_SLOTS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "full body": (
        ("quadriceps", "glutes"),
        ("chest",),
        ("lats", "middle back"),
        ("hamstrings", "glutes"),
        ("shoulders",),
        ("abdominals",),
        ("biceps",),
        ("triceps",),
        ("calves",),
        ("lower back",),
    ),
    "upper": (
        ("chest",),
        ("lats",),
        ("shoulders",),
        ("middle back",),
        ("triceps",),
        ("biceps",),
        ("chest",),
        ("traps",),
        ("forearms",),
    ),
    "lower": _LEGS_SLOTS,
    "legs": _LEGS_SLOTS,
    "push": (("chest",), ("shoulders",), ("triceps",), ("chest",), ("shoulders",), ("triceps",)),
    "pull": (("lats",), ("middle back",), ("biceps",), ("traps",), ("lats",), ("forearms",)),
    "conditioning": (),
}

# MET values, Compendium of Physical Activities (Ainsworth et al. 2011, codes as listed there).
MET: Mapping[str, tuple[float, str]] = {
    "resistance_moderate": (
        3.5,
        "02054 resistance (weight) training, multiple exercises, 8-15 reps, varied resistance",
    ),
    "resistance_vigorous": (5.0, "02052 resistance (weight) training, squats, slow or explosive effort"),
    "circuit": (8.0, "02040 circuit training, kettlebells, some aerobic movement with minimal rest, vigorous"),
    "plyometrics": (8.0, "02030 calisthenics (e.g. jumping jacks), vigorous effort"),
    "cardio": (7.0, "02010 bicycling, stationary, general (machine cardio)"),
    "stretching": (2.3, "02101 stretching, mild"),
}
_WORK_S = 40
_WARMUP_MIN = 5.0
_COOLDOWN_MIN = 5.0
_PCT = {
    "strength": (80, 88),
    "hypertrophy": (67, 80),
    "endurance": (50, 65),
    "general_fitness": (65, 75),
    "fat_loss": (60, 70),
}
_COMPOUND_SLOTS = 4
_CARDIO_GOALS = frozenset({"fat_loss", "endurance", "general_fitness"})
_CARDIO_MIN = (10.0, 20.0)


def _met_key(goal: str, ex: Exercise) -> str:
    if ex.category == "cardio":
        return "cardio"
    if ex.category == "stretching":
        return "stretching"
    if ex.category == "plyometrics":
        return "plyometrics"
    if goal in {"fat_loss", "endurance"}:
        return "circuit"
    return "resistance_vigorous" if goal == "strength" else "resistance_moderate"


def _excluded(ex: Exercise, request: WorkoutRequest) -> bool:
    name = ex.name.lower()
    for injury in request.injuries:
        rule = INJURIES[injury]
        if ex.primary in rule.muscles or ex.category in rule.categories or any(k in name for k in rule.keywords):
            return True
    for word in request.avoid:
        w = word.lower()
        if ex.id.lower() == w or w in name:
            return True
    return False


def _pool(request: WorkoutRequest) -> tuple[Exercise, ...]:
    allowed_levels = LEVELS[: LEVELS.index(request.level) + 1]
    categories = set(PRESCRIPTIONS[request.goal].categories) | {"stretching"}
    if request.goal == "strength" and request.level == "expert":
        categories |= {"olympic weightlifting", "strongman"}
    out = []
    for ex in load_exercises():
        equipment = ex.equipment or "body only"
        if equipment not in request.equipment or ex.level not in allowed_levels or ex.category not in categories:
            continue
        if _excluded(ex, request):
            continue
        out.append(ex)
    return tuple(out)


@functools.cache
def _harder() -> Mapping[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for easier, harder in progressions(load_exercises()):
        found.setdefault(easier, []).append(harder)
    return {k: tuple(v) for k, v in found.items()}


@dataclass(frozen=True, slots=True)
class _Slot:
    exercise: Exercise
    minutes: float


def _per_exercise_minutes(sets: int, rest_s: int) -> float:
    return sets * (_WORK_S + rest_s) / 60.0 + 1.0


def _select(
    focus: str,
    pool: Sequence[Exercise],
    order: Mapping[str, float],
    used_week: set[str],
    count: int,
    wants_compound: bool,
    offset: int = 0,
) -> list[Exercise]:
    """Fill the focus's slots in order, starting at ``offset`` (cyclic): when only a few exercises
    fit, the second and third session of the same focus train the slots the first one left out."""
    lifting = [e for e in pool if e.category not in {"stretching", "cardio"}]
    chosen: list[Exercise] = []
    slots = FOCUS_SLOTS[focus]
    rotated = [slots[(offset + k) % len(slots)] for k in range(len(slots))] if slots else []
    for index, muscles in enumerate(rotated):
        if len(chosen) >= count:
            break
        options = [e for e in lifting if e.primary in muscles and e not in chosen]
        if not options:
            continue

        def rank(e: Exercise, index: int = index) -> tuple[int, int, float]:
            compound_first = 0 if (not wants_compound or index >= _COMPOUND_SLOTS or e.mechanic == "compound") else 1
            return (int(e.id in used_week), compound_first, order[e.id])

        best = min(options, key=rank)
        chosen.append(best)
        used_week.add(best.id)
    return chosen


def _groups_of(exercises: Iterable[Exercise]) -> set[str]:
    return {g for e in exercises for g, muscles in MAJOR_GROUPS.items() if e.primary in muscles}


def plan_workouts(request: WorkoutRequest, *, seed: int = 0) -> WorkoutPlan:
    """A ``request.weeks``-week plan; raises ``Infeasible`` naming conflicts. Deterministic in (request, seed)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidRequest("seed", f"must be an integer, got {seed!r}")
    prescription = PRESCRIPTIONS[request.goal]
    pool = _pool(request)
    rng = random.Random(seed)
    order = {e.id: rng.random() for e in pool}
    pool_by_id = {e.id: e for e in pool}
    trainable = _groups_of(e for e in pool if e.category not in {"stretching", "cardio"})
    if not trainable:
        raise Infeasible(
            (
                "equipment " + ", ".join(sorted(request.equipment)),
                "level " + request.level,
                "avoid " + ", ".join(request.injuries + request.avoid),
            ),
            "no exercise left to plan",
        )
    split = SPLITS[request.days_per_week]
    wants_compound = request.goal in {"strength", "hypertrophy", "general_fitness"}
    cardio = sorted((e for e in pool if e.category == "cardio"), key=lambda e: order[e.id])
    stretches = sorted((e for e in pool if e.category == "stretching"), key=lambda e: order[e.id])

    base: list[list[Exercise]] = []
    sets = prescription.sets
    for attempt_sets in range(prescription.sets, 1, -1):
        sets = attempt_sets
        minutes_each = _per_exercise_minutes(sets, prescription.rest_s)
        overhead = _WARMUP_MIN + (_COOLDOWN_MIN if request.session_minutes >= 30 else 0.0)
        count = max(1, int((request.session_minutes - overhead) // minutes_each))
        used_week: set[str] = set()
        base = []
        occurrences: dict[str, int] = {}
        for focus, _ in split:
            offset = occurrences.get(focus, 0) * count
            occurrences[focus] = occurrences.get(focus, 0) + 1
            base.append(_select(focus, pool, order, used_week, count, wants_compound, offset))
        _rebalance(base, pool, order)
        missing = trainable - _groups_of(e for day in base for e in day)
        if not missing:
            break
    else:
        raise Infeasible(
            (
                f"days_per_week={request.days_per_week}",
                f"session_minutes={request.session_minutes}",
                "every major muscle group each week (missing: " + ", ".join(sorted(missing)) + ")",
            ),
            f"only {count} exercise(s) of {sets} sets fit in a session",
        )
    untrainable = set(MAJOR_GROUPS) - trainable
    harder = _harder()
    allowed_levels = LEVELS[: LEVELS.index(request.level) + 1]
    undulating = request.level != "beginner"
    low, high = _PCT[request.goal]
    weeks: list[Week] = []
    current = [list(day) for day in base]
    for week_no in range(1, request.weeks + 1):
        block, in_block = divmod(week_no - 1, 4)
        deload = request.weeks >= 4 and in_block == 3
        if in_block == 0 and block > 0 and undulating:
            current = [[_progress(e, harder, pool_by_id, allowed_levels, day) for e in day] for day in current]
        sessions: list[Session] = []
        seen_focus: dict[str, int] = {}
        for (focus, weekday), exercises in zip(split, current, strict=True):
            nth = seen_focus.get(focus, 0)
            seen_focus[focus] = nth + 1
            if deload:
                pct, week_sets = low - 10, max(1, round(sets * 0.6))
            else:
                step = min(in_block, 2)
                pct = round(low + (high - low) * step / 2) - (5 if undulating and nth % 2 == 1 else 0)
                week_sets = sets
            rpe = "RPE 5-6" if deload else ("RPE 8" if pct >= 80 else "RPE 7")
            intensity = f"{pct}% 1RM ({rpe})"
            planned: list[PlannedExercise] = []
            minutes = _WARMUP_MIN
            kcal = MET["stretching"][0] * request.body_mass_kg * _WARMUP_MIN / 60.0
            for ex in exercises:
                met = MET[_met_key(request.goal, ex)][0]
                ex_min = _per_exercise_minutes(week_sets, prescription.rest_s)
                minutes += ex_min
                kcal += met * request.body_mass_kg * ex_min / 60.0
                # %1RM means nothing for body-weight work: effort (RPE) and a harder variant instead.
                shown = intensity if (ex.equipment or "body only") != "body only" else f"{rpe}, body weight"
                planned.append(
                    PlannedExercise(
                        ex.id, ex.name, ex.primary, week_sets, prescription.reps, prescription.rest_s, shown, met
                    )
                )
            if focus == "conditioning" or (request.goal in _CARDIO_GOALS and cardio):
                left = request.session_minutes - minutes - (_COOLDOWN_MIN if request.session_minutes >= 30 else 0.0)
                if focus == "conditioning":
                    left = request.session_minutes - minutes - _COOLDOWN_MIN
                if cardio and left >= _CARDIO_MIN[0]:
                    ex = cardio[(week_no + weekday) % len(cardio)]
                    block_min = float(min(left, _CARDIO_MIN[1] if focus != "conditioning" else left))
                    met = MET["cardio"][0]
                    minutes += block_min
                    kcal += met * request.body_mass_kg * block_min / 60.0
                    planned.append(
                        PlannedExercise(
                            ex.id, ex.name, ex.primary, 1, f"{block_min:.0f} min", 0, "moderate (RPE 5-6)", met
                        )
                    )
            if request.session_minutes >= 30 and stretches:
                ex = stretches[(week_no * 7 + weekday) % len(stretches)]
                minutes += _COOLDOWN_MIN
                kcal += MET["stretching"][0] * request.body_mass_kg * _COOLDOWN_MIN / 60.0
                planned.append(
                    PlannedExercise(ex.id, ex.name, ex.primary, 1, "2 x 30 s", 0, "easy", MET["stretching"][0])
                )
            sessions.append(Session(weekday, focus, tuple(planned), round(minutes, 1), round(kcal, 1)))
        weeks.append(
            Week(week_no, "deload" if deload else "load", tuple(sessions), round(sum(s.kcal for s in sessions), 1))
        )
    notes = [
        "energy: MET x body mass x hours (Compendium 2011: "
        + ", ".join(code.split(" ")[0] for _, code in MET.values())
        + ")",
        "beginners: add load when every set reaches the top of the rep range"
        if not undulating
        else "undulating: the second session of a focus each week is 5 points lighter",
    ]
    if untrainable:
        notes.append("not trained (no exercise left after equipment / injuries): " + ", ".join(sorted(untrainable)))
    return WorkoutPlan(
        goal=request.goal,
        level=request.level,
        split=_SPLIT_NAMES[request.days_per_week],
        progression="linear" if not undulating else "undulating + block",
        body_mass_kg=request.body_mass_kg,
        seed=seed,
        weeks=tuple(weeks),
        weekly_expenditure_kcal=round(sum(w.kcal for w in weeks) / len(weeks), 1),
        notes=tuple(notes),
    )


_PUSH = frozenset({"chest", "shoulders", "triceps"})
_PULL = frozenset({"lats", "middle back", "traps", "biceps"})
_BALANCE_MAX = 3.0  # push vs pull exercises within a factor of 3 (NSCA: balance agonists and antagonists)


def _rebalance(week: list[list[Exercise]], pool: Sequence[Exercise], order: Mapping[str, float]) -> None:
    """Swap push exercises for pull ones (or the reverse) until neither side has 3x the other.

    Few exercises per session and a rotating slot order can leave a week lopsided (body-only
    pools have many push-ups and few pulls). Each swap replaces the last exercise of the heavier
    side, on the day that has most of that side, with the best-ranked exercise of the other side
    not yet in that day; it stops when no swap is possible.
    """
    lifting = [e for e in pool if e.category not in {"stretching", "cardio"}]
    for _ in range(sum(len(day) for day in week)):
        push = sum(1 for day in week for e in day if e.primary in _PUSH)
        pull = sum(1 for day in week for e in day if e.primary in _PULL)
        if (push <= _BALANCE_MAX * pull and pull <= _BALANCE_MAX * push) or not (push and pull):
            return
        heavy, light = (_PUSH, _PULL) if push > pull else (_PULL, _PUSH)
        day = max(week, key=lambda d: sum(1 for e in d if e.primary in heavy))
        used = {e.id for d in week for e in d}
        options = sorted(
            (e for e in lifting if e.primary in light and e not in day),
            key=lambda e: (e.id in used, order[e.id]),
        )
        if not options:
            return
        index = max(i for i, e in enumerate(day) if e.primary in heavy)
        day[index] = options[0]


def _progress(
    ex: Exercise,
    harder: Mapping[str, tuple[str, ...]],
    pool_by_id: Mapping[str, Exercise],
    allowed_levels: Sequence[str],
    day: Sequence[Exercise],
) -> Exercise:
    for other_id in harder.get(ex.id, ()):
        other = pool_by_id.get(other_id)
        if other is not None and other.level in allowed_levels and other not in day:
            return other
    return ex
