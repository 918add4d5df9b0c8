"""The task types a cluster accepts, and the boundary check that turns a client's request into
a ``TaskSpec`` (or an ``InvalidTask`` naming the field, before anything is appended).

A task type turns the request's JSON payload into subtasks. Most take named numbers
(``numbers(payload)``); a type with structured input (the wellness plan's profile) validates it
itself and hands each subtask its part as a JSON document."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol.errors import InvalidTask
from protocol.model import SubtaskSpec, TaskSpec, params

#: Largest payload accepted, in bytes of UTF-8 JSON.
PAYLOAD_BYTES_MAX = 64 * 1024


@dataclass(frozen=True)
class TaskType:
    name: str
    description: str
    #: The payload (a parsed JSON object) to subtasks; raises ``InvalidTask`` naming the field.
    subtasks: Callable[[Mapping[str, Any]], tuple[SubtaskSpec, ...]]
    default_criteria: tuple[str, ...] = ("all_subtasks_ok",)


#: How deep a result document may nest (the document store refuses past 100 levels).
DOCUMENT_DEPTH_MAX = 64
_INT64 = (-(2**63), 2**63 - 1)


def check_document(text: str) -> str:
    """Why ``text`` cannot be a result document (empty: it can): it must be strict JSON (no
    NaN or Infinity), nest at most ``DOCUMENT_DEPTH_MAX`` levels and hold only integers that
    fit in 64 bits, so that every replica, the read model and every client can store it."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        value = json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError) as exc:
        return f"not valid JSON: {str(exc)[:120]}"
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > DOCUMENT_DEPTH_MAX:
            return f"nested deeper than {DOCUMENT_DEPTH_MAX} levels"
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, int) and not isinstance(item, bool) and not _INT64[0] <= item <= _INT64[1]:
            return f"integer {item} does not fit in 64 bits"
    return ""


def numbers(payload: Mapping[str, Any]) -> dict[str, float]:
    """A payload of named numbers, checked: every value a finite number."""
    inputs: dict[str, float] = {}
    for name, value in payload.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidTask(f"payload.{name}", "must be a finite number")
        inputs[name] = float(value)
    return inputs


def _echo(payload: Mapping[str, Any]) -> tuple[SubtaskSpec, ...]:
    return (SubtaskSpec("echo", 1, params(numbers(payload))),)


def _echo_pair(payload: Mapping[str, Any]) -> tuple[SubtaskSpec, ...]:
    inputs = params(numbers(payload))
    return (SubtaskSpec("echo", 1, inputs), SubtaskSpec("echo", 1, inputs))


def _wellness(payload: Mapping[str, Any]) -> tuple[SubtaskSpec, ...]:
    """``{"profile": {...}, "training": {...}}``: a workout plan (capability ``workout_plan``)
    and a meal plan (``meal_plan``) built together. The workout agent offers its weekly energy
    expenditure in its vote; the decision log records it as a negotiated parameter, and the meal
    agent plans with it. Both report it, and ``outputs_agree`` fails a session whose plans used
    different figures. The profile and the training request are validated here, at the
    boundary, so a bad field is an INVALID_ARGUMENT naming it and nothing is appended."""
    # The domain cores load only when this task type is used (a replica of an echo-only
    # cluster never imports them).
    from npa.errors import InvalidProfile
    from npa.profile import parse_profile
    from wpa.errors import InvalidRequest
    from wpa.request import parse_request

    unknown = sorted(set(payload) - {"profile", "training"})
    if unknown:
        raise InvalidTask(f"payload.{unknown[0]}", "unknown; a wellness plan takes 'profile' and 'training'")
    for part in ("profile", "training"):
        if not isinstance(payload.get(part), dict):
            raise InvalidTask(f"payload.{part}", "required: a JSON object")
    try:
        profile = parse_profile(payload["profile"])
    except InvalidProfile as exc:
        raise InvalidTask(f"payload.profile.{exc.field}", exc.why) from exc
    # The workout's energy depends on body mass: the profile's, unless the training says otherwise.
    training = {"body_mass_kg": profile.weight_kg} | dict(payload["training"])
    try:
        request = parse_request(training)
    except InvalidRequest as exc:
        raise InvalidTask(f"payload.training.{exc.field}", exc.why) from exc
    return (
        SubtaskSpec("workout_plan", 1, document=json.dumps(request.to_dict())),
        SubtaskSpec("meal_plan", 1, document=json.dumps(profile.to_dict())),
    )


CATALOG: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType("echo", "one agent with capability 'echo' returns the payload's numbers", _echo),
        TaskType("echo_pair", "two 'echo' subtasks committed together (a two-agent task)", _echo_pair),
        TaskType(
            "wellness_plan",
            "a workout plan and a meal plan for one person, the meal plan fed by the workouts' energy",
            _wellness,
            ("all_subtasks_ok", "documents_present", "outputs_agree"),
        ),
    )
}


def task_from_request(
    task_type: str, payload: str, success_criteria: tuple[str, ...], catalog: Mapping[str, TaskType] = CATALOG
) -> TaskSpec:
    """Validate a submission and build its task. Raises ``InvalidTask`` naming the field."""
    kind = catalog.get(task_type)
    if kind is None:
        known = ", ".join(sorted(catalog))
        shown = task_type if len(task_type) <= 64 else task_type[:64] + "..."
        raise InvalidTask("task_type", f"unknown task type {shown!r}; this cluster accepts: {known}")
    if len(payload.encode()) > PAYLOAD_BYTES_MAX:
        raise InvalidTask("payload", f"larger than {PAYLOAD_BYTES_MAX} bytes")
    try:
        document = json.loads(payload) if payload.strip() else {}
    except json.JSONDecodeError as exc:
        raise InvalidTask("payload", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(document, dict):
        raise InvalidTask("payload", "must be a JSON object")
    task = TaskSpec(task_type, kind.subtasks(document), success_criteria or kind.default_criteria)
    task.validate()
    return task
