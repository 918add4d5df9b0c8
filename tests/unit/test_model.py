"""Validation at the boundary: a malformed task is rejected with an error naming the field."""

from __future__ import annotations

import pytest

from protocol.errors import InvalidTask
from protocol.model import NAME_LENGTH_MAX, SUBTASKS_MAX, SubtaskSpec, TaskSpec, params, params_refusal

GOOD = TaskSpec("wellness", (SubtaskSpec("plan_workout"), SubtaskSpec("plan_meal", 2)), ("all_subtasks_ok",))


def test_good_tasks_pass_up_to_every_bound() -> None:
    GOOD.validate()
    at_bounds = TaskSpec("t" * 128, (SubtaskSpec("c" * 128, 1),) * SUBTASKS_MAX, ("all_subtasks_ok",))
    at_bounds.validate()  # raises InvalidTask if a bound is off by one
    assert len(at_bounds.subtasks) == SUBTASKS_MAX


@pytest.mark.parametrize(
    ("task", "field"),
    [
        (TaskSpec("", GOOD.subtasks, GOOD.success_criteria), "task_type"),
        (TaskSpec("x" * 129, GOOD.subtasks, GOOD.success_criteria), "task_type"),
        (TaskSpec("bad\x00type", GOOD.subtasks, GOOD.success_criteria), "task_type"),
        (TaskSpec("t", (), GOOD.success_criteria), "subtasks"),
        (TaskSpec("t", (SubtaskSpec("echo"),) * (SUBTASKS_MAX + 1), GOOD.success_criteria), "subtasks"),
        (TaskSpec("t", (SubtaskSpec(""),), GOOD.success_criteria), "subtasks[0].capability"),
        (TaskSpec("t", (SubtaskSpec("echo", 0),), GOOD.success_criteria), "subtasks[0].demand"),
        (TaskSpec("t", (SubtaskSpec("echo", True),), GOOD.success_criteria), "subtasks[0].demand"),
        (
            TaskSpec("t", (SubtaskSpec("echo", 1, (("x", float("nan")),)),), GOOD.success_criteria),
            "subtasks[0].inputs[x]",
        ),
        (TaskSpec("t", GOOD.subtasks, ()), "success_criteria"),
        (TaskSpec("t", GOOD.subtasks, ("make_it_nice",)), "success_criteria"),
    ],
)
def test_bad_tasks_name_the_field(task: TaskSpec, field: str) -> None:
    with pytest.raises(InvalidTask) as caught:
        task.validate()
    assert caught.value.field == field
    assert caught.value.status == "INVALID_ARGUMENT"
    assert field in str(caught.value)


def test_params_are_canonical() -> None:
    assert params({"b": 2, "a": 1}) == (("a", 1.0), ("b", 2.0))


@pytest.mark.parametrize("name", ["kcal", "x" * NAME_LENGTH_MAX])
def test_a_number_that_is_not_finite_is_refused_without_echoing_a_long_name(name: str) -> None:
    why = params_refusal("offers", ((name, float("inf")),))
    assert why.endswith("inf is not a finite number")
    assert (name in why) == (len(name) <= 40)  # a long name is cut, with its length said
    assert len(why) < 120
