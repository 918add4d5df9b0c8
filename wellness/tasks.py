"""Theory of operation: the ``wellness_plan`` task type, a plugin of the runtime.

cluster.yaml names it (``task_type_plugins: ["wellness.tasks:TASK_TYPES"]``) and ``mca.config``
imports it; nothing in ``mca`` imports this module (docs/task-types.md shows how to write one).
It holds everything the runtime needs to know of wellness plans:

* the payload ``{"profile": {...}, "training": {...}}`` is checked here, at the boundary, with
  the domain's own parsers (``npa.profile``, ``wpa.request``), so a bad field is an
  ``INVALID_ARGUMENT`` naming it (``payload.profile.age: ...``) and nothing is appended; the
  task becomes a ``workout_plan`` subtask and a ``meal_plan`` subtask, each handed its part as a
  JSON document;
* its success criteria: both plans present and built on the same weekly energy figure
  (``outputs_agree``);
* where the plans go in the read model (``workout_plans`` and ``meal_plans``, with the events
  ``WorkoutPlanGenerated`` and ``MealPlanGenerated``: the names the read model has always
  used, so stored data stays valid) and how ``mca submit`` prints them (tables per week and per
  day);
* the example payloads ``mca demo`` submits (``examples/profiles``).

The domain cores are imported inside the functions that use them: loading the nutrition
planner pulls in scipy (a second or more), which ``mca status`` and the other commands that
only read cluster.yaml should not pay for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mca.tasks import InvalidTask, ResultKind, SubtaskSpec, TaskType, field_path

#: The example people of ``mca demo``: a strict vegan with a peanut allergy, someone with only
#: body-weight equipment and a bad knee who wants to lose weight, and a halal strength trainee.
EXAMPLE_PROFILES = Path(__file__).resolve().parent.parent / "examples" / "profiles"


def parse_wellness(payload: Mapping[str, Any]) -> tuple[SubtaskSpec, ...]:
    """``{"profile": {...}, "training": {...}}``: a workout plan (capability ``workout_plan``)
    and a meal plan (``meal_plan``) built together. The workout agent offers its weekly energy
    expenditure in its vote; the decision log records it as a negotiated parameter, and the meal
    agent plans with it. Both report it, and ``outputs_agree`` fails a session whose plans used
    different figures. The profile and the training request are validated here, at the
    boundary, so a bad field is an INVALID_ARGUMENT naming it and nothing is appended."""
    # The domain cores load at the first wellness submit, not when cluster.yaml is read (see the
    # module notes).
    from npa.errors import InvalidProfile
    from npa.profile import parse_profile
    from wpa.errors import InvalidRequest
    from wpa.request import parse_request

    unknown = sorted(set(payload) - {"profile", "training"})
    if unknown:
        raise InvalidTask(field_path("payload", unknown[0]), "unknown; a wellness plan takes 'profile' and 'training'")
    for part in ("profile", "training"):
        if not isinstance(payload.get(part), dict):
            raise InvalidTask(f"payload.{part}", "required: a JSON object")
    try:
        profile = parse_profile(payload["profile"])
    except InvalidProfile as exc:
        raise InvalidTask(f"payload.profile.{exc.field}", exc.why) from exc
    # The workout's energy depends on body mass, and its rules on age (older beginners): the
    # profile's, unless the training says otherwise.
    training = {"body_mass_kg": profile.weight_kg, "age": profile.age} | dict(payload["training"])
    try:
        request = parse_request(training)
    except InvalidRequest as exc:
        raise InvalidTask(f"payload.training.{exc.field}", exc.why) from exc
    return (
        SubtaskSpec("workout_plan", 1, document=json.dumps(request.to_dict())),
        SubtaskSpec("meal_plan", 1, document=json.dumps(profile.to_dict())),
    )


def render_meal_plan(document: Any) -> str:
    """A meal plan day by day: meal, portion in household measures and grams, kcal, protein;
    goal vs. actual per day; the grocery list."""
    from npa.model import MealPlan, render_text

    return render_text(MealPlan.from_dict(document))


def render_workout_plan(document: Any) -> str:
    """A workout plan week by week: sessions, exercises, sets and reps, energy."""
    from wpa.model import WorkoutPlan, render_text

    return render_text(WorkoutPlan.from_dict(document))


def examples() -> Mapping[str, Mapping[str, Any]]:
    """The example payloads by name (the files of ``examples/profiles``; none outside a checkout)."""
    return {f.stem: json.loads(f.read_text()) for f in sorted(EXAMPLE_PROFILES.glob("*.json"))}


WELLNESS_PLAN = TaskType(
    "wellness_plan",
    "a workout plan and a meal plan for one person, the meal plan fed by the workouts' energy",
    parse_wellness,
    ("all_subtasks_ok", "documents_present", "outputs_agree"),
    results={
        "workout_plan": ResultKind("workout_plans", "WorkoutPlanGenerated", render_workout_plan),
        "meal_plan": ResultKind("meal_plans", "MealPlanGenerated", render_meal_plan),
    },
    examples=examples,
)

#: What cluster.yaml names: ``task_type_plugins: ["wellness.tasks:TASK_TYPES"]``.
TASK_TYPES = (WELLNESS_PLAN,)
