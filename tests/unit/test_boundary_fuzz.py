"""Fuzzing the JSON boundary: whatever text or JSON value a client submits, ``task_from_request``
(for every task type) and the domain parsers end in a valid task or their typed error, with a
short message gRPC can send, never another exception.

Runs are bounded (``SETTINGS``); a failure prints the example and how to reproduce it
(``--hypothesis-seed``), and the examples hypothesis keeps replay first on the next run."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mca import catalog
from mca.catalog import check_document, task_from_request
from npa.errors import InvalidProfile
from npa.profile import ACTIVITY_FACTORS, RESTRICTION_NAMES, parse_profile
from protocol.errors import InvalidTask
from protocol.model import TaskSpec
from wellness.tasks import WELLNESS_PLAN
from wpa.errors import InvalidRequest
from wpa.exercises import LEVELS
from wpa.request import EQUIPMENT, GOALS, parse_request

SETTINGS = settings(max_examples=200, deadline=None)
#: Every task type of the shipped cluster.yaml: the built-in ones and the wellness plugin's.
CATALOG = {**catalog.CATALOG, WELLNESS_PLAN.name: WELLNESS_PLAN}
#: Longest message the boundary may answer with (the real ones stay under 300 characters).
MESSAGE_LENGTH_MAX = 500

# Text as clients may send it, lone surrogates included (hypothesis never draws them itself).
characters = st.characters() | st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
texts = st.text(characters, max_size=12) | st.text(characters, min_size=41, max_size=80)
# Integers up to 400 digits: json.dumps cannot write more than 4,300 (tokens below go further).
integers = st.integers() | st.integers(min_value=-(10**400), max_value=10**400)
scalars = st.none() | st.booleans() | integers | st.floats() | texts
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(texts, children, max_size=6),
    max_leaves=20,
)
# What replaces a valid field now and then: small, so that drawing it stays cheap.
junk = scalars | st.lists(scalars, max_size=3) | st.dictionaries(texts, scalars, max_size=3)
words = st.text(st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")), min_size=1, max_size=12)

# Pieces of JSON (and of almost-JSON) to glue together: what a hand-crafted attack looks like.
TOKENS = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    '"',
    "\\",
    " ",
    "\n",
    '"a"',
    '"profile"',
    '"training"',
    '"weight_kg"',
    '"body_mass_kg"',
    "0",
    "1",
    "-",
    ".",
    "e",
    "1.5",
    "-0",
    "1e400",
    "-1e400",
    "1e-400",
    "NaN",
    "Infinity",
    "-Infinity",
    "true",
    "null",
    '"\\ud800"',
    '"\\udfff"',
    '"\\ud83d\\ude00"',
    "\ud800",
    "9" * 20,
    "9" * 401,
    "9" * 5_001,
    "[" * 70,
    "]" * 70,
    '{"a":' * 70,
]
jsonish = st.lists(st.sampled_from(TOKENS) | st.text(characters, max_size=3), max_size=60).map("".join)


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly (9 in 10) a valid value of a field, so that a payload often gets past it to the
    next field and to the end; sometimes anything."""
    # (one_of has no weights, and hypothesis leans to its simpler branches: a draw decides.)
    return st.integers(0, 9).flatmap(lambda i: junk if i == 5 else valid)


restrictions = st.lists(
    either(
        st.sampled_from(RESTRICTION_NAMES)
        | st.fixed_dictionaries(
            {"name": either(st.sampled_from(RESTRICTION_NAMES))},
            optional={
                "type": either(st.sampled_from(["allergy", "preference", "ethical"])),
                "severity": either(st.sampled_from(["strict", "moderate", "preference"])),
            },
        )
    ),
    max_size=2,
)
profiles = st.fixed_dictionaries(
    {
        "sex": either(st.sampled_from(["female", "male"])),
        "age": either(st.integers(18, 100)),
        "height_cm": either(st.floats(150, 200)),  # with the weight below, a BMI of 13.75-53
        "weight_kg": either(st.floats(55, 120) | st.integers(55, 120)),
    },
    optional={
        "activity": either(st.sampled_from(sorted(ACTIVITY_FACTORS))),
        "goal": either(st.sampled_from(["lose", "maintain", "gain"])),
        "rate_kg_per_week": either(st.floats(0.1, 0.5)),
        "restrictions": either(restrictions),
        "dislikes": either(st.lists(words | texts, max_size=3)),
        "meals_per_day": either(st.integers(2, 6)),
        "days": either(st.integers(1, 14)),
    },
)
trainings = st.fixed_dictionaries(
    {"goal": either(st.sampled_from(GOALS)), "days_per_week": either(st.integers(1, 7))},
    optional={
        "level": either(st.sampled_from(LEVELS)),
        "session_minutes": either(st.integers(15, 180)),
        "equipment": either(st.lists(st.sampled_from(EQUIPMENT), max_size=3)),
        "avoid": either(st.lists(st.sampled_from(["knee", "back"]) | words | texts, max_size=3)),
        "weeks": either(st.integers(1, 12)),
        "body_mass_kg": either(st.floats(30, 300)),
    },
)
wellness_payloads = st.fixed_dictionaries({"profile": either(profiles), "training": either(trainings)})


def short(message: str) -> None:
    assert len(message) < MESSAGE_LENGTH_MAX, message
    message.encode("utf-8")  # gRPC sends status messages as UTF-8: no lone surrogate


def submit(task_type: str, payload: str) -> TaskSpec | None:
    """The task, or None when refused; any exception but ``InvalidTask`` fails the test."""
    try:
        task = task_from_request(task_type, payload, (), CATALOG)
    except InvalidTask as exc:
        short(str(exc))
        return None
    for subtask in task.subtasks:  # what the boundary builds passes the boundary downstream
        assert not subtask.document or check_document(subtask.document) == ""
    return task


@SETTINGS
@given(st.sampled_from(sorted(CATALOG)), jsonish)
def test_any_jsonish_text_is_a_task_or_invalid_task(task_type: str, text: str) -> None:
    submit(task_type, text)


@SETTINGS
@given(st.sampled_from(sorted(CATALOG)), json_values, st.booleans())
def test_any_json_value_is_a_task_or_invalid_task(task_type: str, value: Any, ascii_only: bool) -> None:
    # ensure_ascii=False leaves lone surrogates raw in the text instead of escaping them.
    submit(task_type, json.dumps(value, ensure_ascii=ascii_only))
    if not isinstance(value, dict):
        submit(task_type, json.dumps({"profile": value, "training": value, "a": value}))


@SETTINGS
@given(wellness_payloads)
def test_any_near_valid_wellness_payload_is_a_task_or_invalid_task(payload: dict[str, Any]) -> None:
    submit("wellness_plan", json.dumps(payload))


@SETTINGS
@given(st.one_of(profiles, json_values), st.one_of(trainings, json_values))
def test_the_domain_parsers_raise_only_their_typed_error(profile: Any, training: Any) -> None:
    # Called directly, as the agents do, without the catalog's JSON checks in front.
    try:
        parse_profile(profile)
    except InvalidProfile as exc:
        short(str(exc))
    try:
        parse_request(training)
    except InvalidRequest as exc:
        short(str(exc))


@SETTINGS
@given(jsonish | json_values.map(json.dumps))
def test_check_document_answers_every_text_shortly(text: str) -> None:
    short(check_document(text))
