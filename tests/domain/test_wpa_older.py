"""Older beginners (60 and over) get low-impact, moderate training, on named cases; the age comes from the profile."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mca.catalog import CATALOG, task_from_request
from protocol.errors import InvalidTask
from wellness.tasks import TASK_TYPES
from wpa.checks import check_workout_plan
from wpa.errors import InvalidRequest
from wpa.exercises import Exercise, load_exercises
from wpa.model import PlannedExercise, WorkoutPlan
from wpa.plan import MET, plan_workouts
from wpa.request import WorkoutRequest, parse_request, unsuitable

MACHINES = ["machine", "dumbbell", "cable"]
WITH_WELLNESS = {**CATALOG, **{t.name: t for t in TASK_TYPES}}


@pytest.fixture(scope="module")
def exercises() -> dict[str, Exercise]:
    return {e.id: e for e in load_exercises()}


def request(**fields: object) -> WorkoutRequest:
    doc: dict[str, object] = {
        "goal": "fat_loss",
        "level": "beginner",
        "days_per_week": 3,
        "session_minutes": 75,  # time left for cardio after the lifting
        "equipment": MACHINES,
        "body_mass_kg": 80,
    } | fields
    return parse_request(doc)


def items(plan: WorkoutPlan, exercises: dict[str, Exercise], category: str | None = None) -> list[tuple[str, str]]:
    """(exercise name, category) of every planned item, optionally of one category."""
    out = []
    for week in plan.weeks:
        for session in week.sessions:
            for item in session.exercises:
                ex = exercises[item.id]
                if category is None or ex.category == category:
                    out.append((ex.name, ex.category))
    return out


def test_a_68_year_old_beginner_walks_or_cycles_and_lifts_moderately(exercises: dict[str, Exercise]) -> None:
    older = request(age=68)
    plan = plan_workouts(older)
    assert check_workout_plan(older, plan, exercises) == []
    cardio = {name for name, _ in items(plan, exercises, "cardio")}
    assert cardio, "a fat-loss week has cardio"
    assert cardio <= {"Walking, Treadmill", "Bicycling, Stationary", "Recumbent Bike"}, cardio
    for week in plan.weeks:
        for session in week.sessions:
            for item in session.exercises:
                ex = exercises[item.id]
                if ex.category in {"cardio", "stretching"}:
                    continue
                assert item.reps == "10-15"
                assert item.sets <= 3
                assert "RPE 7" not in item.intensity and "RPE 8" not in item.intensity, item.intensity
                if "% 1RM" in item.intensity:
                    assert int(item.intensity.split("%")[0]) <= 65, item.intensity
    assert any("older beginner (age 68)" in n for n in plan.notes)


def test_the_same_request_at_35_keeps_the_goals_prescription(exercises: dict[str, Exercise]) -> None:
    # The rule bites only with the age: at 35 the fat-loss beginner gets 12-15 reps up to 70 % 1RM
    # and jogs or runs.
    young = request(age=35)
    plan = plan_workouts(young)
    assert check_workout_plan(young, plan, exercises) == []
    cardio = {name for name, _ in items(plan, exercises, "cardio")}
    assert cardio & {"Jogging, Treadmill", "Trail Running/Walking", "Running, Treadmill"}, cardio
    lifts = [i for w in plan.weeks for s in w.sessions for i in s.exercises if i.reps[0].isdigit() and "-" in i.reps]
    assert {i.reps for i in lifts} == {"12-15"}
    assert any("70% 1RM" in i.intensity for i in lifts)
    assert unsuitable("Running, Treadmill", "Running_Treadmill", "cardio", "beginner", False) is None
    assert unsuitable("Running, Treadmill", "Running_Treadmill", "cardio", "beginner", False, older=True)


def test_an_older_strength_beginner_lifts_10_to_15_reps_not_4_to_6(exercises: dict[str, Exercise]) -> None:
    young, older = request(goal="strength", age=40), request(goal="strength", age=72)
    young_plan, older_plan = plan_workouts(young), plan_workouts(older)
    assert check_workout_plan(older, older_plan, exercises) == []
    first_young = young_plan.weeks[0].sessions[0].exercises[0]
    first_older = older_plan.weeks[0].sessions[0].exercises[0]
    assert (first_young.reps, first_young.sets) == ("4-6", 4)
    assert (first_older.reps, first_older.sets) == ("10-15", 3)
    # Moderate loads: no compound lift is counted as vigorous (02052, 5.0 MET) for the older one.
    assert MET["resistance_vigorous"][0] in {i.met for w in young_plan.weeks for s in w.sessions for i in s.exercises}
    assert MET["resistance_vigorous"][0] not in {
        i.met for w in older_plan.weeks for s in w.sessions for i in s.exercises
    }
    assert older_plan.weekly_expenditure_kcal < young_plan.weekly_expenditure_kcal


@pytest.mark.parametrize(
    ("age", "level", "older"),
    [(None, "beginner", False), (59, "beginner", False), (60, "beginner", True), (85, "beginner", True),
     (70, "intermediate", False)],
)  # fmt: skip
def test_who_counts_as_an_older_beginner(age: int | None, level: str, older: bool) -> None:
    assert request(age=age, level=level).older_beginner is older


@pytest.mark.parametrize("age", [17, 101, "sixty", 65.5, True, [60]])
def test_a_bad_age_is_named(age: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        request(age=age)
    assert caught.value.field == "age"


def test_age_round_trips_and_is_absent_when_not_given() -> None:
    older = request(age=66)
    assert older.to_dict()["age"] == 66
    assert parse_request(older.to_dict()) == older
    assert "age" not in request().to_dict()


def test_the_checker_catches_what_an_older_beginner_should_not_get(exercises: dict[str, Exercise]) -> None:
    older = request(age=70, weeks=1)
    plan = plan_workouts(older)
    week = plan.weeks[0]
    first = week.sessions[0]
    lift = next(i for i in first.exercises if exercises[i.id].category not in {"cardio", "stretching"})

    def rules_with(item: PlannedExercise) -> set[str]:
        day = dataclasses.replace(first, exercises=(item, *(i for i in first.exercises if i is not lift)))
        bad = dataclasses.replace(plan, weeks=(dataclasses.replace(week, sessions=(day, *week.sessions[1:])),))
        return {v.rule for v in check_workout_plan(older, bad, exercises)}

    assert "older" not in rules_with(lift)
    run = exercises["Running_Treadmill"]
    assert "older" in rules_with(dataclasses.replace(lift, id=run.id, name=run.name, primary_muscle=run.primary))
    assert "older" in rules_with(dataclasses.replace(lift, reps="4-6"))
    assert "older" in rules_with(dataclasses.replace(lift, intensity="80% 1RM (RPE 8)"))
    assert "older" in rules_with(dataclasses.replace(lift, intensity="RPE 7, body weight"))
    # The same running item is fine for a 30-year-old beginner (not an older-beginner finding).
    young = dataclasses.replace(older, age=30)
    item = dataclasses.replace(lift, id=run.id, name=run.name, primary_muscle=run.primary)
    day = dataclasses.replace(first, exercises=(item, *(i for i in first.exercises if i is not lift)))
    bad = dataclasses.replace(plan, weeks=(dataclasses.replace(week, sessions=(day, *week.sessions[1:])),))
    assert "older" not in {v.rule for v in check_workout_plan(young, bad, exercises)}


PROFILE = {"sex": "female", "age": 67, "height_cm": 160, "weight_kg": 64, "goal": "maintain"}
TRAINING = {"goal": "general_fitness", "level": "beginner", "days_per_week": 3, "equipment": MACHINES}


def workout_document(profile: dict[str, object], training: dict[str, object]) -> dict[str, object]:
    payload = json.dumps({"profile": profile, "training": training})
    task = task_from_request("wellness_plan", payload, (), WITH_WELLNESS)
    document = json.loads(next(s.document for s in task.subtasks if s.capability == "workout_plan"))
    assert isinstance(document, dict)
    return document


def test_the_wellness_task_passes_the_profiles_age_to_the_workout() -> None:
    document = workout_document(PROFILE, TRAINING)
    assert document["age"] == 67
    assert parse_request(document).older_beginner
    # The training's own age, when given, wins (as body mass does).
    assert workout_document(PROFILE, {**TRAINING, "age": 45})["age"] == 45


def test_a_bad_training_age_is_an_invalid_argument_naming_it() -> None:
    with pytest.raises(InvalidTask) as caught:
        workout_document(PROFILE, {**TRAINING, "age": 150})
    assert caught.value.field == "payload.training.age"
