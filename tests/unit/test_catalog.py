"""The boundary checks of mca.catalog: result documents every replica and store can hold."""

from __future__ import annotations

import json

import pytest

from mca.catalog import DOCUMENT_DEPTH_MAX, check_document


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
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),  # deeper than Python's recursion limit
    ],
)
def test_documents_no_store_could_hold_are_refused_with_the_reason(text: str, why: str) -> None:
    assert why in check_document(text)


def test_the_largest_integers_that_fit_are_accepted() -> None:
    assert check_document(json.dumps([2**63 - 1, -(2**63), True])) == ""
