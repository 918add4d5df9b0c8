"""Workout plan generation: a split by days per week, exercises by rule, a progression over weeks.

Theory of operation:

1. **Pool.** The 873 exercises are filtered once per request: equipment available ("body only"
   always; an exercise without listed equipment counts as body only), level allowed (beginner ->
   beginner; intermediate -> beginner or intermediate; expert -> all), category fitting the goal
   (``PRESCRIPTIONS``; olympic weightlifting and strongman are added for strength at expert level),
   injuries and avoided ids / words excluded (``wpa.request.INJURIES``), and exercises that do
   not suit the person removed (``wpa.request.unsuitable``: pull-ups, dips, jumps for beginners,
   behind-the-neck positions for everyone, partner exercises for people training alone; for
   beginners aged 60 or more also running, jogging, stairs, rope jumping and hops, with the moderate
   prescription of ``wpa.request.prescription``: 10-15 reps at 50-65 % 1RM). A
   major group that the goal's categories cannot train but a powerlifting-category exercise can
   (a band good morning is the only hamstring exercise with bands alone) gets those exercises.
2. **Split** by days per week (``SPLITS``), chosen so that no muscle group is loaded on two
   consecutive days, across the week boundary too (>= 48 h): 1-3 days full body on alternate days
   (Mon / Wed / Fri), 4 upper / lower (Mon Tue Thu Fri), 5 push / pull / legs / upper / lower
   (Mon Tue Wed Fri Sat), 6 push / pull / legs twice, 7 the same plus a Sunday conditioning day
   (cardio and stretching, which the rest rule exempts: low load). Core and lower back are only
   trained on full-body, lower and legs days by the slots (the volume fit may add them to another
   session when neither neighbouring day loads them).
3. **Session.** Each focus has an ordered list of slots (a primary muscle or a choice of them).
   The number of exercises is what fits in ``session_minutes``: 5 min warm-up, 5 min cool-down
   (sessions of 30 min or more), and per exercise ``sets x (40 s of work + rest) + 1 min``.
   Sessions of the same focus start at rotating slots (the second full-body day begins where the
   first stopped), so short sessions still cover every slot over the week. Each slot takes the
   best-ranked exercise of the pool: not yet used this week, compound first for the first
   slots, then a seeded random order (``random.Random(seed)``, so the same request and seed
   give the same plan). A session is then put in coaching order (``_session_order``): compound
   before isolation, large muscles before small, calves and abdominals last.
4. **Volume, balance and coverage.** Weekly sets per major group (``MAJOR_GROUPS``: quadriceps,
   hamstrings, glutes, calves, chest, back, shoulders, arms, core) are counted fractionally
   (primary 1, secondary 0.5) and brought into the goal's band (``VOLUME``: hypertrophy 10-20,
   others at least 2 and at most 20) by ``_fit_volume``: a set more or less on an exercise, an
   exercise added to a session whose neighbouring days do not load that muscle, or a swap,
   always within the session's minutes, the 48 h rest and the push / pull balance: push (chest,
   shoulders, triceps) and pull (lats, middle back, traps, biceps) sets within a factor of 3
   (``_rebalance`` swaps exercises first). If the week still breaks a rule (a group the pool
   can train below its band, a group above 20, push / pull), sets per exercise drop one at a
   time (down to 2, so more exercises fit) and the week is rebuilt; if that still fails,
   ``Infeasible`` names days per week, session minutes and each rule broken with the groups
   concerned. Groups the pool cannot train are named in the notes.
5. **Cardio** (fat loss, endurance, general fitness, and the conditioning day) fills the time
   left, 10-20 min, but never on the day before a session with lower-body resistance work:
   every cardio exercise of the data set loads the quadriceps or hamstrings. Its minutes are
   fixed from the load week, so a deload week (fewer sets) never gains cardio.
6. **Progression** over weeks in 4-week blocks, the 4th week a deload (sets x 0.6, intensity -10
   points): beginners progress linearly (+ intensity within each block: low, middle, top of the
   goal's %1RM band); intermediate and expert use daily undulation (the second session of the
   same focus in a week is 5 points lighter) and, from the second block on, swap each exercise
   for a harder variant (``wpa.exercises.progressions``) when the level allows it, the variant
   is in the pool and the week keeps its volume band and push / pull balance.
7. **Energy** per exercise: MET x body mass (kg) x hours with a MET per exercise type (``MET``,
   Compendium of Physical Activities, Ainsworth et al. 2011); warm-up and cool-down at 02101
   stretching, 2.3 MET. Session, week and plan figures are *net*: (MET - 1) x kg x h, the energy
   above what the person would spend at rest anyway, which is what may be added to a meal
   target whose BMR already counts rest. ``weekly_expenditure_gross_kcal`` keeps the gross one.
"""

from __future__ import annotations

import functools
import random  # noqa: TID251 - only seeded random.Random(seed) instances, never the global generator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from wpa.errors import Infeasible, InvalidRequest
from wpa.exercises import LEVELS, Exercise, load_exercises, progressions
from wpa.model import PlannedExercise, Session, Week, WorkoutPlan
from wpa.request import INJURIES, MAJOR_GROUPS, VOLUME, WorkoutRequest, prescription, unsuitable

__all__ = ["FOCUS_SLOTS", "MET", "SPLITS", "met_of", "plan_workouts"]

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
        ("quadriceps",),
        ("chest",),
        ("lats", "middle back"),
        ("hamstrings",),
        ("shoulders",),
        ("glutes",),
        ("abdominals",),
        ("triceps",),
        ("biceps",),
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

# MET values per exercise type, Compendium of Physical Activities (Ainsworth et al. 2011, codes
# as listed there). Lifting is intermittent: the Compendium's resistance codes already average
# work and rest, so they apply to the whole exercise time.
MET: Mapping[str, tuple[float, str]] = {
    "resistance": (3.5, "02054 resistance (weight) training, multiple exercises, 8-15 reps, varied resistance"),
    "resistance_vigorous": (5.0, "02052 resistance (weight) training, squats, slow or explosive effort"),
    "calisthenics": (3.8, "02022 calisthenics (push-ups, sit-ups, pull-ups, lunges), moderate effort"),
    "plyometrics": (8.0, "02020 calisthenics (e.g. jumping jacks), vigorous effort"),
    "circuit": (4.3, "02035 circuit training, moderate effort"),
    "cycling": (7.0, "02010 bicycling, stationary, general"),
    "elliptical": (5.0, "02048 elliptical trainer, moderate effort"),
    "rowing": (4.8, "02071 rowing, stationary, general, moderate effort"),
    "stairs": (9.0, "02065 stair-treadmill ergometer, general"),
    "walking": (4.3, "17200 walking, 3.5 mph, level, brisk"),
    "jogging": (7.0, "12020 jogging, general"),
    "running": (8.3, "12030 running, 5 mph (12 min/mile)"),
    "rope": (8.8, "15552 rope jumping, slow pace, < 100 skips/min"),
    "stretching": (2.3, "02101 stretching, mild"),
}
# Cardio exercise name word -> MET key; the first match wins, machine cycling otherwise.
_CARDIO_MET: tuple[tuple[str, str], ...] = (
    ("walking", "walking"),
    ("jogging", "jogging"),
    ("running", "running"),
    ("sprint", "running"),
    ("elliptical", "elliptical"),
    ("rowing", "rowing"),
    ("stair", "stairs"),
    ("step mill", "stairs"),
    ("rope", "rope"),
    ("bike", "cycling"),
    ("bicycl", "cycling"),
)
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
_PCT_OLDER = (50, 65)  # an older beginner: moderate loads (wpa.request docstring)
_COMPOUND_SLOTS = 4
_CARDIO_GOALS = frozenset({"fat_loss", "endurance", "general_fitness"})
_CARDIO_MIN = (10.0, 20.0)
_SETS_MAX = 5  # sets of one exercise in one session; beyond that a second exercise is better
_LOWER = frozenset({"quadriceps", "hamstrings", "glutes", "calves", "adductors", "abductors"})
# Coaching order inside a session, after compound before isolation: large muscles first.
_MUSCLE_ORDER = (
    "quadriceps",
    "hamstrings",
    "glutes",
    "chest",
    "lats",
    "middle back",
    "lower back",
    "shoulders",
    "traps",
    "triceps",
    "biceps",
    "adductors",
    "abductors",
    "forearms",
    "neck",
    "calves",
    "abdominals",
)
_NOT_LIFTING = frozenset({"stretching", "cardio"})
# Equipment whose load can be set as a %1RM; bands, balls and body weight get an RPE.
_LOADED = frozenset({"barbell", "dumbbell", "cable", "machine", "kettlebells", "e-z curl bar"})


def met_of(goal: str, ex: Exercise, *, moderate: bool = False) -> tuple[float, str]:
    """The MET value and Compendium code of ``ex`` performed for ``goal``.

    ``moderate``: loads are moderate (an older beginner), so no lift counts as vigorous.
    """
    if ex.category == "cardio":
        name = ex.name.lower()
        key = next((k for word, k in _CARDIO_MET if word in name), "cycling")
        return MET[key]
    if ex.category == "stretching":
        return MET["stretching"]
    if ex.category == "plyometrics":
        return MET["plyometrics"]
    if goal in {"fat_loss", "endurance"}:
        return MET["circuit"]  # short rests, moderate loads: a moderate circuit, not 02040's 8 MET
    if (ex.equipment or "body only") == "body only":
        return MET["calisthenics"]
    if goal == "strength" and ex.mechanic == "compound" and not moderate:
        return MET["resistance_vigorous"]
    return MET["resistance"]


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
    return (
        unsuitable(ex.name, ex.id, ex.category, request.level, request.partner, older=request.older_beginner)
        is not None
    )


_GROUP_OF: Mapping[str, str] = {m: g for g, muscles in MAJOR_GROUPS.items() for m in muscles}


def _group_of(muscle: str) -> str | None:
    return _GROUP_OF.get(muscle)


def _pool(request: WorkoutRequest) -> tuple[tuple[Exercise, ...], tuple[str, ...]]:
    """The exercises this request may use, and the groups that needed the powerlifting fallback."""
    allowed_levels = LEVELS[: LEVELS.index(request.level) + 1]
    categories = set(prescription(request).categories) | {"stretching"}
    if request.goal == "strength" and request.level == "expert":
        categories |= {"olympic weightlifting", "strongman"}
    fitting = []
    for ex in load_exercises():
        equipment = ex.equipment or "body only"
        if equipment not in request.equipment or ex.level not in allowed_levels:
            continue
        if ex.category not in categories | {"powerlifting"} or _excluded(ex, request):
            continue
        fitting.append(ex)
    out = [e for e in fitting if e.category in categories]
    covered = {_group_of(e.primary) for e in out if e.category not in _NOT_LIFTING}
    fallback = sorted(
        {g for e in fitting if e.category == "powerlifting" and (g := _group_of(e.primary)) and g not in covered}
    )
    out.extend(e for e in fitting if e.category == "powerlifting" and _group_of(e.primary) in fallback)
    out.sort(key=lambda e: e.id)
    return tuple(out), tuple(fallback)


@functools.cache
def _harder() -> Mapping[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for easier, harder in progressions(load_exercises()):
        found.setdefault(easier, []).append(harder)
    return {k: tuple(v) for k, v in found.items()}


@dataclass(slots=True)
class _Item:
    """One exercise of the base week and its sets in a load week (mutable while the week is fitted)."""

    exercise: Exercise
    sets: int


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
    lifting = [e for e in pool if e.category not in _NOT_LIFTING]
    chosen: list[Exercise] = []
    chosen_ids: set[str] = set()
    slots = FOCUS_SLOTS[focus]
    rotated = [slots[(offset + k) % len(slots)] for k in range(len(slots))] if slots else []
    for index, muscles in enumerate(rotated):
        if len(chosen) >= count:
            break
        options = [e for e in lifting if e.primary in muscles and e.id not in chosen_ids]
        if not options:
            continue

        def rank(e: Exercise, index: int = index) -> tuple[int, int, float]:
            compound_first = 0 if (not wants_compound or index >= _COMPOUND_SLOTS or e.mechanic == "compound") else 1
            return (int(e.id in used_week), compound_first, order[e.id])

        best = min(options, key=rank)
        chosen.append(best)
        chosen_ids.add(best.id)
        used_week.add(best.id)
    return chosen


def _session_order(ex: Exercise) -> tuple[int, int]:
    """Compound before isolation, then large muscles before small (NSCA exercise order)."""
    muscle = _MUSCLE_ORDER.index(ex.primary) if ex.primary in _MUSCLE_ORDER else len(_MUSCLE_ORDER)
    return (0 if ex.mechanic == "compound" else 1, muscle)


def _contribution(ex: Exercise) -> Mapping[str, float]:
    """Sets credited per major group for one set of ``ex``: 1 to its primary group, 0.5 to others."""
    return _credit(ex.primary, ex.secondary_muscles)


@functools.cache
def _credit(primary_muscle: str, secondary_muscles: tuple[str, ...]) -> Mapping[str, float]:
    out: dict[str, float] = {}
    primary = _group_of(primary_muscle)
    for muscle in secondary_muscles:
        g = _group_of(muscle)
        if g is not None and g != primary:
            out[g] = 0.5
    if primary is not None:
        out[primary] = 1.0
    return out


def _volume(week: Iterable[Iterable[_Item]]) -> dict[str, float]:
    out = dict.fromkeys(MAJOR_GROUPS, 0.0)
    for day in week:
        for item in day:
            for g, share in _contribution(item.exercise).items():
                out[g] += share * item.sets
    return out


def _push_pull(week: Iterable[Iterable[_Item]]) -> tuple[int, int]:
    items = [i for day in week for i in day]
    return (
        sum(i.sets for i in items if i.exercise.primary in _PUSH),
        sum(i.sets for i in items if i.exercise.primary in _PULL),
    )


def _ratio_ok(push: float, pull: float) -> bool:
    return not (push and pull) or (push <= _BALANCE_MAX * pull and pull <= _BALANCE_MAX * push)


def _balanced(week: Iterable[Iterable[_Item]]) -> bool:
    return _ratio_ok(*_push_pull(week))


_PUSH_KEY, _PULL_KEY = "push sets", "pull sets"  # beside the group names in a volume change


@dataclass(frozen=True, slots=True)
class _Budget:
    """Minutes for lifting per session and the rest between sets: the limit on adding sets."""

    minutes: float
    rest_s: int

    def used(self, day: Sequence[_Item]) -> float:
        return sum(_per_exercise_minutes(i.sets, self.rest_s) for i in day)


def _fit_volume(
    week: list[list[_Item]],
    split: Sequence[tuple[str, int]],
    lifting: Sequence[Exercise],
    order: Mapping[str, float],
    budget: _Budget,
    band: tuple[float, float],
    trainable: set[str],
) -> None:
    """Bring weekly fractional sets per major group into ``band`` where the sessions allow.

    One change per round, so each is judged on the current volume: a group over the ceiling
    loses a set (down to 2 per exercise) or, failing that, an exercise; a group under the floor
    gains a set on one of its exercises, or an exercise in a session whose neighbouring days do
    not load that muscle, or an exercise of a group that can spare it is swapped for one of its
    own. A change is only made when it pushes no other trainable group out of the band, keeps
    push / pull within a factor of 3 and the session within its minutes. Bounded rounds: it
    stops when nothing changes.
    """
    low, high = band

    def fine_after(change: dict[str, float], vol: Mapping[str, float]) -> bool:
        # Push / pull balance comes first: volume never buys a lopsided week.
        was = _ratio_ok(vol[_PUSH_KEY], vol[_PULL_KEY])
        if was and not _ratio_ok(vol[_PUSH_KEY] + change[_PUSH_KEY], vol[_PULL_KEY] + change[_PULL_KEY]):
            return False
        for g, delta in change.items():
            if g in (_PUSH_KEY, _PULL_KEY):
                continue
            after = vol[g] + delta
            if delta < 0 and g in trainable and vol[g] >= low and after < low:
                return False
            if delta > 0 and after > high:
                return False
        return True

    def scaled(ex: Exercise, sets: float) -> dict[str, float]:
        out = {g: share * sets for g, share in _contribution(ex).items()}
        out[_PUSH_KEY] = sets if ex.primary in _PUSH else 0.0
        out[_PULL_KEY] = sets if ex.primary in _PULL else 0.0
        return out

    for _ in range(400):
        push, pull = _push_pull(week)
        vol = _volume(week) | {_PUSH_KEY: float(push), _PULL_KEY: float(pull)}
        over = sorted((g for g in MAJOR_GROUPS if vol[g] > high), key=lambda g: -vol[g])
        # The name breaks ties: ``trainable`` is a set, which iterates in hash order.
        under = sorted((g for g in trainable if vol[g] < low), key=lambda g: (vol[g], g))
        if not over and not under:
            return
        changed = bool(over) and _reduce(week, over[0], vol, fine_after, scaled)
        if not changed and under:
            changed = _raise(week, split, lifting, order, budget, under[0], vol, fine_after, scaled)
        if not changed:
            return


_FineAfter = Callable[[dict[str, float], Mapping[str, float]], bool]
_Scaled = Callable[[Exercise, float], dict[str, float]]


def _reduce(
    week: list[list[_Item]], group: str, vol: Mapping[str, float], fine_after: _FineAfter, scaled: _Scaled
) -> bool:
    """One set less (or one exercise less) for ``group``; True when something changed.

    Sets come off the group's own exercises first, then off exercises that reach it as a
    secondary muscle (presses and rows can put the arms over 20 sets on their own)."""
    muscles = MAJOR_GROUPS[group]
    items = sorted(
        ((item, day) for day in week for item in day if item.exercise.primary in muscles),
        key=lambda pair: -pair[0].sets,
    )
    helpers = sorted(
        (item for day in week for item in day if group in _contribution(item.exercise)),
        key=lambda i: (-_contribution(i.exercise)[group], -i.sets),
    )
    for item in helpers:
        if item.sets > 2 and fine_after(scaled(item.exercise, -1), vol):
            item.sets -= 1
            return True
    if len(items) > 1:
        for item, day in reversed(items):
            if fine_after(scaled(item.exercise, -item.sets), vol):
                day.remove(item)
                return True
    return False


def _raise(
    week: list[list[_Item]],
    split: Sequence[tuple[str, int]],
    lifting: Sequence[Exercise],
    order: Mapping[str, float],
    budget: _Budget,
    group: str,
    vol: Mapping[str, float],
    fine_after: _FineAfter,
    scaled: _Scaled,
) -> bool:
    """One set more, one exercise more, or a swap for ``group``; True when something changed."""
    muscles = MAJOR_GROUPS[group]
    spare = budget.minutes
    for day in week:
        for item in sorted(day, key=lambda i: i.sets):
            if (
                item.exercise.primary in muscles
                and item.sets < _SETS_MAX
                and budget.used(day) + (_WORK_S + budget.rest_s) / 60.0 <= spare
                and fine_after(scaled(item.exercise, 1), vol)
            ):
                item.sets += 1
                return True
    used = {i.exercise.id for day in week for i in day}
    loaded = {weekday: {i.exercise.primary for i in day} for day, (_, weekday) in zip(week, split, strict=True)}
    for day, (focus, weekday) in zip(week, split, strict=True):
        # Any muscle of the group that neither neighbouring day loads (core on a push day of push /
        # pull / legs when no legs day is next to it), the focus's own muscles included: an
        # earlier addition may have put one of them on a neighbouring day.
        resting = loaded.get((weekday - 1) % 7, set()) | loaded.get((weekday + 1) % 7, set())
        trains = set() if focus == "conditioning" else {m for m in muscles if m not in resting}
        if not trains:
            continue
        in_day = {i.exercise.id for i in day}
        options = sorted(
            (e for e in lifting if e.primary in trains and e.id not in in_day),
            key=lambda e: (e.id in used, e.mechanic != "compound", order[e.id]),
        )
        if not options:
            continue
        new = options[0]
        sets = 2 if not day else max(2, min(i.sets for i in day))
        if budget.used(day) + _per_exercise_minutes(sets, budget.rest_s) <= spare and fine_after(
            scaled(new, sets), vol
        ):
            day.append(_Item(new, sets))
            return True
        for old in sorted(day, key=lambda i: -vol.get(_group_of(i.exercise.primary) or "", 0.0)):
            if old.exercise.primary in muscles:
                continue
            change = scaled(old.exercise, -old.sets)
            for g, v in scaled(new, old.sets).items():
                change[g] = change.get(g, 0.0) + v
            if fine_after(change, vol):
                day[day.index(old)] = _Item(new, old.sets)
                return True
    return False


def _week_problems(goal: str, week: list[list[_Item]], trainable: set[str], band: tuple[float, float]) -> list[str]:
    """The rules a base week breaks, each named as ``Infeasible`` reports it (empty: none)."""
    low, high = band
    vol = _volume(week)
    out = []
    short = {g: vol[g] for g in sorted(trainable) if vol[g] < low}
    if short:
        rule = (
            f"{goal} volume >= {low:g} sets per major group a week" if low > 2 else "every major muscle group each week"
        )
        out.append(rule + " (short: " + ", ".join(f"{g} {v:g}" for g, v in short.items()) + ")")
    over = {g: v for g, v in vol.items() if v > high}
    if over:
        out.append(
            f"at most {high:g} sets per major group a week (over: "
            + ", ".join(f"{g} {v:g}" for g, v in over.items())
            + ")"
        )
    if not _balanced(week):
        push, pull = _push_pull(week)
        out.append(f"push / pull sets within a factor of 3 (push {push}, pull {pull})")
    return out


def _build_week(
    request: WorkoutRequest,
    pool: Sequence[Exercise],
    order: Mapping[str, float],
    sets: int,
    trainable: set[str],
) -> tuple[list[list[_Item]], int]:
    plan_rx = prescription(request)
    split = SPLITS[request.days_per_week]
    wants_compound = request.goal in {"strength", "hypertrophy", "general_fitness"}
    overhead = _WARMUP_MIN + (_COOLDOWN_MIN if request.session_minutes >= 30 else 0.0)
    budget = _Budget(request.session_minutes - overhead, plan_rx.rest_s)
    count = max(1, int(budget.minutes // _per_exercise_minutes(sets, plan_rx.rest_s)))
    used_week: set[str] = set()
    occurrences: dict[str, int] = {}
    week: list[list[_Item]] = []
    for focus, _ in split:
        offset = occurrences.get(focus, 0) * count
        occurrences[focus] = occurrences.get(focus, 0) + 1
        chosen = _select(focus, pool, order, used_week, count, wants_compound, offset)
        week.append([_Item(e, sets) for e in chosen])
    lifting = [e for e in pool if e.category not in _NOT_LIFTING]
    foci = [focus for focus, _ in split]
    for _ in range(3):  # balance and volume pull against each other at the margins: a few rounds
        _rebalance(week, foci, lifting, order)
        _fit_volume(week, split, lifting, order, budget, VOLUME[request.goal], trainable)
        if _balanced(week):
            break
    for day in week:
        day.sort(key=lambda i: _session_order(i.exercise))
    return week, count


def plan_workouts(request: WorkoutRequest, *, seed: int = 0) -> WorkoutPlan:
    """A ``request.weeks``-week plan; raises ``Infeasible`` naming conflicts. Deterministic in (request, seed)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidRequest("seed", f"must be an integer, got {seed!r}")
    plan_rx = prescription(request)
    pool, fallback = _pool(request)
    rng = random.Random(seed)
    order = {e.id: rng.random() for e in pool}
    pool_by_id = {e.id: e for e in pool}
    lifting = [e for e in pool if e.category not in _NOT_LIFTING]
    trainable = {g for e in lifting if (g := _group_of(e.primary)) is not None}
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
    low, high = VOLUME[request.goal]
    base: list[list[_Item]] = []
    broken: list[str] = []
    count = 0
    sets = plan_rx.sets
    for attempt_sets in range(plan_rx.sets, 1, -1):
        sets = attempt_sets
        base, count = _build_week(request, pool, order, sets, trainable)
        broken = _week_problems(request.goal, base, trainable, (low, high))
        if not broken:
            break
    else:
        raise Infeasible(
            (f"days_per_week={request.days_per_week}", f"session_minutes={request.session_minutes}", *broken),
            f"only {count} exercise(s) of {sets} sets fit in a session",
        )
    untrainable = set(MAJOR_GROUPS) - trainable
    overhead_end = _COOLDOWN_MIN if request.session_minutes >= 30 else 0.0
    cardio_minutes = _cardio_minutes(request, split, base, pool)
    cardio = sorted((e for e in pool if e.category == "cardio"), key=lambda e: order[e.id])
    stretches = sorted((e for e in pool if e.category == "stretching"), key=lambda e: order[e.id])
    harder = _harder()
    allowed_levels = LEVELS[: LEVELS.index(request.level) + 1]
    undulating = request.level != "beginner"
    pct_low, pct_high = _PCT_OLDER if request.older_beginner else _PCT[request.goal]
    kg = request.body_mass_kg
    weeks: list[Week] = []
    gross_total = 0.0
    current = base
    for week_no in range(1, request.weeks + 1):
        block, in_block = divmod(week_no - 1, 4)
        deload = request.weeks >= 4 and in_block == 3
        if in_block == 0 and block > 0 and undulating:
            current = _progress_week(current, harder, pool_by_id, allowed_levels, (low, high), trainable)
        sessions: list[Session] = []
        seen_focus: dict[str, int] = {}
        for (focus, weekday), items, extra in zip(split, current, cardio_minutes, strict=True):
            nth = seen_focus.get(focus, 0)
            seen_focus[focus] = nth + 1
            if deload:
                pct = pct_low - 10
            else:
                step = min(in_block, 2)
                pct = round(pct_low + (pct_high - pct_low) * step / 2) - (5 if undulating and nth % 2 == 1 else 0)
            rpe = "RPE 5-6" if deload or request.older_beginner else ("RPE 8" if pct >= 80 else "RPE 7")
            intensity = f"{pct}% 1RM ({rpe})"
            planned: list[PlannedExercise] = []
            minutes = _WARMUP_MIN
            gross = MET["stretching"][0] * kg * _WARMUP_MIN / 60.0
            for item in items:
                ex = item.exercise
                week_sets = max(1, round(item.sets * 0.6)) if deload else item.sets
                met = met_of(request.goal, ex, moderate=request.older_beginner)[0]
                ex_min = _per_exercise_minutes(week_sets, plan_rx.rest_s)
                minutes += ex_min
                gross += met * kg * ex_min / 60.0
                # %1RM means nothing for body-weight or band work: effort (RPE) and a harder
                # variant or band instead.
                equipment = ex.equipment or "body only"
                if equipment in _LOADED:
                    shown = intensity
                else:
                    shown = f"{rpe}, " + ("body weight" if equipment == "body only" else equipment)
                planned.append(
                    PlannedExercise(ex.id, ex.name, ex.primary, week_sets, plan_rx.reps, plan_rx.rest_s, shown, met)
                )
            if extra and cardio:
                ex = cardio[weekday % len(cardio)]  # the same each week: weeks differ by load only
                met = met_of(request.goal, ex, moderate=request.older_beginner)[0]
                minutes += extra
                gross += met * kg * extra / 60.0
                planned.append(
                    PlannedExercise(ex.id, ex.name, ex.primary, 1, f"{extra:.0f} min", 0, "moderate (RPE 5-6)", met)
                )
            if overhead_end and stretches:
                ex = stretches[(week_no * 7 + weekday) % len(stretches)]
                minutes += _COOLDOWN_MIN
                gross += MET["stretching"][0] * kg * _COOLDOWN_MIN / 60.0
                planned.append(
                    PlannedExercise(ex.id, ex.name, ex.primary, 1, "2 x 30 s", 0, "easy", MET["stretching"][0])
                )
            net = gross - kg * minutes / 60.0  # 1 MET = 1 kcal per kg per hour, spent at rest anyway
            gross_total += gross
            sessions.append(Session(weekday, focus, tuple(planned), round(minutes, 1), round(net, 1)))
        weeks.append(
            Week(week_no, "deload" if deload else "load", tuple(sessions), round(sum(s.kcal for s in sessions), 1))
        )
    notes = [
        "energy: net of rest, (MET - 1) x body mass x hours (Compendium 2011: "
        + ", ".join(code.split(" ")[0] for _, code in MET.values())
        + ")",
        "beginners: add load when every set reaches the top of the rep range"
        if not undulating
        else "undulating: the second session of a focus each week is 5 points lighter",
    ]
    if request.older_beginner:
        notes.append(
            f"older beginner (age {request.age}): low-impact moves only (walking or cycling for cardio, no jumps or"
            " running), 10-15 reps at moderate loads (50-65% 1RM, RPE 5-6)"
        )
    if fallback:
        notes.append("powerlifting-category exercises used for: " + ", ".join(fallback))
    if untrainable:
        notes.append(
            "not trained (no exercise fits the equipment, level, injuries or training alone): "
            + ", ".join(sorted(untrainable))
        )
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
        weekly_expenditure_gross_kcal=round(gross_total / len(weeks), 1),
    )


def _cardio_minutes(
    request: WorkoutRequest,
    split: Sequence[tuple[str, int]],
    base: Sequence[Sequence[_Item]],
    pool: Sequence[Exercise],
) -> list[float]:
    """Cardio minutes per session of the split, from the load week's time left (0: none).

    None on the day before lower-body resistance work: every cardio exercise of the data set
    loads the quadriceps or hamstrings, and tired legs the day before squats cost the squats.
    """
    if not any(e.category == "cardio" for e in pool):
        return [0.0] * len(split)
    rest_s = prescription(request).rest_s
    lower_days = {
        weekday
        for (_, weekday), items in zip(split, base, strict=True)
        if any(i.exercise.primary in _LOWER for i in items)
    }
    out: list[float] = []
    cooldown = _COOLDOWN_MIN if request.session_minutes >= 30 else 0.0
    for (focus, weekday), items in zip(split, base, strict=True):
        if focus != "conditioning" and (request.goal not in _CARDIO_GOALS or (weekday + 1) % 7 in lower_days):
            out.append(0.0)
            continue
        left = request.session_minutes - _WARMUP_MIN - cooldown
        left -= sum(_per_exercise_minutes(i.sets, rest_s) for i in items)
        if left < _CARDIO_MIN[0]:
            out.append(0.0)
        else:
            out.append(float(int(left if focus == "conditioning" else min(left, _CARDIO_MIN[1]))))
    return out


_PUSH = frozenset({"chest", "shoulders", "triceps"})
_PULL = frozenset({"lats", "middle back", "traps", "biceps"})
_BALANCE_MAX = 3.0  # push vs pull sets within a factor of 3 (NSCA: balance agonists and antagonists)


def _rebalance(
    week: list[list[_Item]], foci: Sequence[str], lifting: Sequence[Exercise], order: Mapping[str, float]
) -> None:
    """Swap push exercises for pull ones (or the reverse) until neither side has 3x the other's sets.

    Few exercises per session and a rotating slot order can leave a week lopsided (body-only
    pools have many push-ups and few pulls). Each swap replaces the last exercise of the heavier
    side, on the day that has most of that side among the days whose focus trains the lighter
    side (a push day never gets a row: the split's rest days depend on it), with the best-ranked
    exercise of the other side not yet in that day; it stops when no swap is possible.
    """
    for _ in range(sum(len(day) for day in week)):
        push, pull = _push_pull(week)
        if (push <= _BALANCE_MAX * pull and pull <= _BALANCE_MAX * push) or not (push and pull):
            return
        heavy, light = (_PUSH, _PULL) if push > pull else (_PULL, _PUSH)
        used = {i.exercise.id for d in week for i in d}
        swapped = False
        for day, focus in sorted(
            zip(week, foci, strict=True), key=lambda pair: -sum(1 for i in pair[0] if i.exercise.primary in heavy)
        ):
            trains = {m for slot in FOCUS_SLOTS[focus] for m in slot} & light
            heavy_here = [k for k, i in enumerate(day) if i.exercise.primary in heavy]
            if not trains or not heavy_here:
                continue
            in_day = {i.exercise.id for i in day}
            options = sorted(
                (e for e in lifting if e.primary in trains and e.id not in in_day),
                key=lambda e: (e.id in used, order[e.id]),
            )
            if options:
                index = heavy_here[-1]
                day[index] = _Item(options[0], day[index].sets)
                swapped = True
                break
        if not swapped and not _trim(week, heavy):
            return


def _trim(week: list[list[_Item]], heavy: frozenset[str]) -> bool:
    """One set (down to 2) or one exercise less on the heavier side, when no swap could help;
    an exercise goes only if its primary muscle keeps another exercise this week."""
    items = sorted((i for day in week for i in day if i.exercise.primary in heavy), key=lambda i: -i.sets)
    for item in items:
        if item.sets > 2:
            item.sets -= 1
            return True
    for day in week:
        for item in reversed(day):
            others = [i for d in week for i in d if i is not item and i.exercise.primary == item.exercise.primary]
            if item.exercise.primary in heavy and others:
                day.remove(item)
                return True
    return False


def _progress_week(
    week: list[list[_Item]],
    harder: Mapping[str, tuple[str, ...]],
    pool_by_id: Mapping[str, Exercise],
    allowed_levels: Sequence[str],
    band: tuple[float, float],
    trainable: set[str],
) -> list[list[_Item]]:
    """Each exercise swapped for a harder variant where the week keeps its volume band and balance."""
    out = [[_Item(i.exercise, i.sets) for i in day] for day in week]
    low, high = band
    before = _volume(week)
    for day in out:
        for k, item in enumerate(day):
            for other_id in harder.get(item.exercise.id, ()):
                other = pool_by_id.get(other_id)
                if other is None or other.level not in allowed_levels or any(i.exercise.id == other_id for i in day):
                    continue
                day[k] = _Item(other, item.sets)
                vol = _volume(out)
                ok = _balanced(out) and all(vol[g] <= high for g in MAJOR_GROUPS)
                if ok and all(vol[g] >= low for g in trainable if before[g] >= low):
                    break
                day[k] = item
        day.sort(key=lambda i: _session_order(i.exercise))
    return out
