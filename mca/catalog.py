"""The task types a cluster accepts, and the boundary check that turns a client's request into
a ``TaskSpec`` (or an ``InvalidTask`` naming the field, before anything is appended)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from protocol.errors import InvalidTask
from protocol.model import SubtaskSpec, TaskSpec, params

#: Largest payload accepted, in bytes of UTF-8 JSON.
PAYLOAD_BYTES_MAX = 64 * 1024


@dataclass(frozen=True)
class TaskType:
    name: str
    description: str
    subtasks: Callable[[Mapping[str, float]], tuple[SubtaskSpec, ...]]
    default_criteria: tuple[str, ...] = ("all_subtasks_ok",)


def _echo(inputs: Mapping[str, float]) -> tuple[SubtaskSpec, ...]:
    return (SubtaskSpec("echo", 1, params(inputs)),)


def _echo_pair(inputs: Mapping[str, float]) -> tuple[SubtaskSpec, ...]:
    return (SubtaskSpec("echo", 1, params(inputs)), SubtaskSpec("echo", 1, params(inputs)))


CATALOG: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType("echo", "one agent with capability 'echo' returns the payload's numbers", _echo),
        TaskType("echo_pair", "two 'echo' subtasks committed together (a two-agent task)", _echo_pair),
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
    inputs: dict[str, float] = {}
    for name, value in document.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidTask(f"payload.{name}", "must be a finite number")
        inputs[name] = float(value)
    task = TaskSpec(task_type, kind.subtasks(inputs), success_criteria or kind.default_criteria)
    task.validate()
    return task
