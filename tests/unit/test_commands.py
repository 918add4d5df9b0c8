"""The command line's own logic: payloads from inline JSON or files, and plans rendered for people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mca.commands import read_payload, render_document

PROFILES = Path(__file__).resolve().parents[2] / "examples" / "profiles"


def test_a_payload_is_inline_json_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"value": 3}')
    assert read_payload('{"value": 1}') == '{"value": 1}'
    assert read_payload(str(tmp_path / "p.json")) == '{"value": 3}'
    assert read_payload("@" + str(tmp_path / "p.json")) == '{"value": 3}'
    with pytest.raises(FileNotFoundError):
        read_payload("@" + str(tmp_path / "missing.json"))


def test_every_example_profile_is_a_wellness_payload() -> None:
    from mca.catalog import task_from_request

    files = sorted(PROFILES.glob("*.json"))
    assert len(files) >= 3
    for f in files:
        task = task_from_request("wellness_plan", read_payload(str(f)), ())
        assert [s.capability for s in task.subtasks] == ["workout_plan", "meal_plan"], f


def test_documents_that_are_not_plans_are_shown_as_json() -> None:
    assert json.loads(render_document({"doubled": 8})) == {"doubled": 8}
