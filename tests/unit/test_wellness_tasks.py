"""The wellness plan as a task type plugin (``wellness.tasks``): its example payloads (what
``mca demo`` submits) pass the boundary and plan into a workout and a meal subtask; a bad field
is named with its path in the payload; its results go where the read model has always put them
and are rendered by the domain's own tables. (The payload's boundary cases are in
test_catalog.py and test_boundary_fuzz.py, through the same plugin.)"""

from __future__ import annotations

import json

import pytest

from mca.catalog import CATALOG, check_document, result_routes, task_from_request
from protocol.errors import InvalidTask
from wellness.tasks import TASK_TYPES, WELLNESS_PLAN, examples, render_meal_plan, render_workout_plan

WITH_WELLNESS = {**CATALOG, **{t.name: t for t in TASK_TYPES}}


def test_every_example_is_a_wellness_payload_of_a_workout_and_a_meal_subtask() -> None:
    named = examples()
    assert len(named) >= 3
    for name, payload in named.items():
        task = task_from_request("wellness_plan", json.dumps(payload), (), WITH_WELLNESS)
        assert [s.capability for s in task.subtasks] == ["workout_plan", "meal_plan"], name
        assert all(check_document(s.document) == "" for s in task.subtasks)
        assert task.success_criteria == ("all_subtasks_ok", "documents_present", "outputs_agree")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p["profile"].update(age=7), "payload.profile.age"),
        (lambda p: p["training"].update(days_per_week=9), "payload.training.days_per_week"),
        (lambda p: p.pop("training"), "payload.training"),
        (lambda p: p.update(extra=1), "payload.extra"),
    ],
)  # fmt: skip
def test_a_bad_field_is_named_with_its_path(change: object, field: str) -> None:
    payload = next(iter(examples().values()))
    change(payload)  # type: ignore[operator]
    with pytest.raises(InvalidTask) as caught:
        task_from_request("wellness_plan", json.dumps(payload), (), WITH_WELLNESS)
    assert caught.value.field == field


def test_the_plans_keep_their_collections_events_and_tables() -> None:
    assert TASK_TYPES == (WELLNESS_PLAN,)
    assert result_routes(WITH_WELLNESS) == {
        "workout_plan": ("workout_plans", "WorkoutPlanGenerated"),
        "meal_plan": ("meal_plans", "MealPlanGenerated"),
    }
    assert WELLNESS_PLAN.results["meal_plan"].render is render_meal_plan
    assert WELLNESS_PLAN.results["workout_plan"].render is render_workout_plan
