"""A task type plugin: ``heating_schedule`` asks an agent with capability ``heating`` for a
heating schedule for the rooms of a house. Named in cluster.yaml as
``task_type_plugins: ["tests.plugins.heating:TASK_TYPES"]``; nothing in ``mca`` changes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mca.tasks import InvalidTask, ResultKind, SubtaskSpec, TaskType, field_path


def plan(payload: Mapping[str, Any]) -> tuple[SubtaskSpec, ...]:
    """``{"rooms": {"kitchen": 21, ...}}``: one ``heating`` subtask, the rooms its document."""
    rooms = payload.get("rooms")
    if not isinstance(rooms, dict) or not rooms:
        raise InvalidTask("payload.rooms", "required: an object of rooms and their temperatures in °C")
    for room, celsius in rooms.items():
        if isinstance(celsius, bool) or not isinstance(celsius, (int, float)) or not 5 <= celsius <= 30:
            raise InvalidTask(field_path("payload", "rooms", room), "must be a temperature from 5 to 30 °C")
    return (SubtaskSpec("heating", 1, document=json.dumps({"rooms": rooms})),)


def render(schedule: Any) -> str:
    """The agent's schedule (``{"rooms": {"kitchen": {"from": "06:00", "celsius": 21}}}``), a line per room."""
    rooms = schedule["rooms"]
    return "\n".join(f"{room}: {rooms[room]['celsius']} °C from {rooms[room]['from']}" for room in sorted(rooms))


HEATING_SCHEDULE = TaskType(
    "heating_schedule",
    "a heating schedule for the rooms of a house",
    plan,
    ("all_subtasks_ok", "documents_present"),
    results={"heating": ResultKind("heating_schedules", "HeatingScheduled", render)},
)

TASK_TYPES = [HEATING_SCHEDULE]
