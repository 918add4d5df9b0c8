"""The boundary checks of mca.catalog: result documents every replica and store can hold, and
payloads whose every fault (the cases an attacker of TaskService.Submit found) is an
``InvalidTask`` naming the field in a short message, never another exception."""

from __future__ import annotations

import json

import pytest

from mca import catalog
from mca.catalog import DOCUMENT_DEPTH_MAX, PAYLOAD_BYTES_MAX, check_document, numbers, task_from_request
from npa.errors import InvalidProfile
from npa.profile import parse_profile
from protocol.errors import InvalidTask
from wellness.tasks import WELLNESS_PLAN
from wpa.errors import InvalidRequest
from wpa.request import parse_request

#: The built-in task types and the wellness plugin's (as the shipped cluster.yaml loads them):
#: its payload, a profile and a training request, is the richest the boundary checks.
CATALOG = {**catalog.CATALOG, WELLNESS_PLAN.name: WELLNESS_PLAN}

PROFILE = {"sex": "female", "age": 30, "height_cm": 165, "weight_kg": 60}
TRAINING = {"goal": "strength", "days_per_week": 3}
#: A field of 60 KB, under the payload bound: what a message must not echo.
HUGE = "x" * 60_000


def test_a_plain_plan_document_is_accepted() -> None:
    assert check_document(json.dumps({"kind": "meal_plan", "days": [{"day": 1, "kcal": 1930.5}]})) == ""


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "not valid JSON"),
        ('{"kcal": NaN}', "not valid JSON"),
        ('{"kcal": Infinity}', "not valid JSON"),
        (json.dumps({"big": 2**63}), "does not fit in 64 bits"),
        (json.dumps({"small": -(2**63) - 1}), "does not fit in 64 bits"),
        ("[" * (DOCUMENT_DEPTH_MAX + 1) + "]" * (DOCUMENT_DEPTH_MAX + 1), "nested deeper"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper"),  # beyond Python's recursion limit: refused unparsed
        ('{"kcal": 1e400}', "out of range"),  # json.loads alone would read it as inf
        ('{"id": ' + "9" * 5_001 + "}", "does not fit in 64 bits"),  # json.loads alone: ValueError
    ],
)
def test_documents_no_store_could_hold_are_refused_with_the_reason(text: str, why: str) -> None:
    assert why in check_document(text)


def test_the_largest_integers_that_fit_are_accepted() -> None:
    assert check_document(json.dumps([2**63 - 1, -(2**63), True])) == ""


def refusal(task_type: str, payload: str) -> InvalidTask:
    """The error a submission is refused with; it must be short and sendable over gRPC."""
    with pytest.raises(InvalidTask) as caught:
        task_from_request(task_type, payload, (), CATALOG)
    message = str(caught.value)
    # Short: the field, what is wrong, a value cut to 40 characters and at most a list of the
    # accepted names (the longest, of restrictions, is 154 characters).
    assert len(message) < 300, message
    message.encode("utf-8")  # no lone surrogate: gRPC sends the message as UTF-8
    return caught.value


def wellness(profile: object = None, training: object = None) -> str:
    return json.dumps({"profile": PROFILE if profile is None else profile, "training": training or TRAINING})


def test_a_valid_wellness_payload_gives_documents_that_pass_the_boundary() -> None:
    task = task_from_request("wellness_plan", wellness(), (), CATALOG)
    assert [s.capability for s in task.subtasks] == ["workout_plan", "meal_plan"]
    assert all(check_document(s.document) == "" for s in task.subtasks)


def test_nesting_10000_deep_is_refused_before_parsing_not_a_recursion_error() -> None:
    error = refusal("echo", "[" * 10_000 + "]" * 10_000)
    assert (error.field, error.problem) == ("payload", f"nested deeper than {DOCUMENT_DEPTH_MAX} levels")
    deep = '{"profile": ' + '{"a":' * 5_000 + "1" + "}" * 5_001
    assert refusal("wellness_plan", deep).problem.startswith("nested deeper")


def test_nesting_up_to_the_bound_passes_and_brackets_inside_strings_do_not_count() -> None:
    levels = "[" * DOCUMENT_DEPTH_MAX + "]" * DOCUMENT_DEPTH_MAX
    assert check_document(levels) == ""
    assert "nested deeper" in refusal("echo", '{"a": ' + levels + "}").problem  # one level more
    task_from_request("echo", json.dumps({"a": 1.0, "[" * 100: 2.0, '"{[\\': 3.0}), ())


@pytest.mark.parametrize("digits", [20, 401, 5_001, 60_000])
def test_an_integer_too_long_is_refused_with_its_digit_count_not_its_digits(digits: int) -> None:
    payload = wellness({**PROFILE, "weight_kg": 0}).replace('"weight_kg": 0', f'"weight_kg": {"9" * digits}')
    error = refusal("wellness_plan", payload)
    assert error.field == "payload.profile.weight_kg"
    assert error.problem == f"an integer of {digits} digits does not fit in 64 bits"


def test_the_largest_64_bit_integers_pass_and_the_next_is_refused() -> None:
    task_from_request("echo", json.dumps({"a": 2**63 - 1, "b": -(2**63)}), ())
    assert refusal("echo", json.dumps({"a": 2**63})).field == "payload.a"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 400 + ".5"])
def test_numbers_a_float_cannot_hold_are_refused_naming_the_field(literal: str) -> None:
    error = refusal("echo", f'{{"a": 1, "b": [2, {literal}]}}')
    assert error.field == "payload.b[1]"
    assert "send a finite number" in error.problem or "is out of range" in error.problem


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("{", "not valid JSON: Expecting property name"),
        ('{"a": 1} x', "not valid JSON: Extra data"),
        ('"' + 'a\\"' * 20_000, "not valid JSON: Unterminated string"),  # a naive string scan is quadratic
        ('"' + "\\" * 60_000, "not valid JSON: Unterminated string"),
        ("[1, 2]", "must be a JSON object, got an array"),
        ('"' + HUGE + '"', "must be a JSON object, got a string"),
        ("null", "must be a JSON object, got null"),
        ("7", "must be a JSON object, got a number"),
    ],
)
def test_text_that_is_not_a_json_object_is_refused_without_echoing_it(payload: str, problem: str) -> None:
    error = refusal("echo", payload)
    assert error.field == "payload"
    assert error.problem.startswith(problem)


def test_a_payload_over_the_bound_is_refused_before_it_is_parsed() -> None:
    assert refusal("echo", "[" * (PAYLOAD_BYTES_MAX + 1)).problem == f"larger than {PAYLOAD_BYTES_MAX} bytes"
    assert refusal("echo", "\ud800" * PAYLOAD_BYTES_MAX).problem.startswith("larger than")  # counted, not raised


@pytest.mark.parametrize(
    "payload",
    [
        '{"a": "\\ud800"}',  # a lone surrogate as an escape: valid JSON grammar, not text
        '{"a": "x\\udc00"}',
        '{"a": "\ud800"}',  # the raw code point (a Python caller; gRPC refuses such bytes itself)
    ],
)
def test_lone_surrogates_are_refused_naming_the_field(payload: str) -> None:
    error = refusal("echo", payload)
    assert error.field == "payload.a"
    assert "lone surrogate" in error.problem


def test_a_lone_surrogate_in_a_key_or_a_profile_word_is_refused_and_a_pair_is_text() -> None:
    assert "lone surrogate" in refusal("echo", '{"\\ud800": 1}').problem
    error = refusal("wellness_plan", wellness({**PROFILE, "dislikes": ["ok", "\ud800"]}))
    assert error.field == "payload.profile.dislikes[1]"
    task = task_from_request("wellness_plan", wellness({**PROFILE, "dislikes": ["\U0001f600"]}), (), CATALOG)
    assert "\\ud83d\\ude00" in task.subtasks[1].document  # the pair, one character, escaped as JSON


@pytest.mark.parametrize(
    ("profile", "training", "field"),
    [
        ({**PROFILE, "weight_kg": HUGE}, None, "payload.profile.weight_kg"),
        ({**PROFILE, "age": HUGE}, None, "payload.profile.age"),
        ({**PROFILE, "sex": HUGE}, None, "payload.profile.sex"),
        ({**PROFILE, "dislikes": [HUGE]}, None, "payload.profile.dislikes[0]"),
        ({**PROFILE, "restrictions": [HUGE]}, None, "payload.profile.restrictions[0].name"),
        ({**PROFILE, "restrictions": [{"name": "egg", "type": HUGE}]}, None, "payload.profile.restrictions[0].type"),
        (None, {**TRAINING, "goal": HUGE}, "payload.training.goal"),
        (None, {**TRAINING, "days_per_week": HUGE}, "payload.training.days_per_week"),
        (None, {**TRAINING, "equipment": [HUGE]}, "payload.training.equipment[0]"),
        (None, {**TRAINING, "avoid": [HUGE]}, "payload.training.avoid[0]"),
        (None, {**TRAINING, "body_mass_kg": HUGE}, "payload.training.body_mass_kg"),
    ],
)
def test_a_60_kb_field_gives_a_short_error_naming_it_that_does_not_echo_it(
    profile: object, training: object, field: str
) -> None:
    error = refusal("wellness_plan", wellness(profile, training))
    assert error.field == field
    assert HUGE[:41] not in str(error) and "60000 characters" in str(error)
    assert len(str(error).partition("; known: ")[0]) < 200


def test_a_60_kb_array_or_key_is_described_not_printed() -> None:
    error = refusal("wellness_plan", wellness({**PROFILE, "restrictions": [[HUGE]]}))
    assert error.field == "payload.profile.restrictions[0]" and "an array of 1 items" in error.problem
    error = refusal("echo", json.dumps({HUGE: "not a number"}))
    assert error.field.startswith("payload['xxx") and error.field.endswith("(60000 characters)]")
    assert refusal("wellness_plan", json.dumps({HUGE: 1})).field.startswith("payload['xxx")


def test_a_restriction_type_is_named_within_its_list() -> None:
    error = refusal("wellness_plan", wellness({**PROFILE, "restrictions": [{"name": "egg", "type": None}]}))
    assert error.field == "payload.profile.restrictions[0].type"


def test_an_unknown_task_type_is_quoted_cut_short() -> None:
    assert "(60000 characters)" in refusal(HUGE, "{}").problem


def test_numbers_built_in_code_refuses_an_integer_no_float_can_hold() -> None:
    with pytest.raises(InvalidTask) as caught:
        numbers({"a": 10**400})
    assert caught.value.field == "payload.a"


@pytest.mark.parametrize(
    "value",
    [10**400, -(10**400), 10**5_000, float("nan"), float("inf"), [HUGE] * 1000],
    ids=["1e400", "-1e400", "1e5000", "nan", "inf", "array"],  # str(10**5_000) would raise
)
def test_the_domain_parsers_refuse_what_no_float_can_hold_with_their_typed_error(value: object) -> None:
    with pytest.raises(InvalidProfile) as profile_error:
        parse_profile({**PROFILE, "weight_kg": value})
    with pytest.raises(InvalidRequest) as request_error:
        parse_request({**TRAINING, "body_mass_kg": value})
    with pytest.raises(InvalidRequest) as days_error:
        parse_request({**TRAINING, "body_mass_kg": 70, "days_per_week": value})
    for error in (profile_error.value, request_error.value, days_error.value):
        assert len(str(error)) < 200, error
