"""The command line's own logic: payloads from inline JSON or files, result documents rendered for
people (as JSON unless a task type renders them: tests/unit/test_task_types.py), and watching."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.console import Console

from mca.commands import read_payload, render_document, show_events
from mca.sdk import Event, Session


def test_a_payload_is_inline_json_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"value": 3}')
    assert read_payload('{"value": 1}') == '{"value": 1}'
    assert read_payload(str(tmp_path / "p.json")) == '{"value": 3}'
    assert read_payload("@" + str(tmp_path / "p.json")) == '{"value": 3}'
    with pytest.raises(FileNotFoundError):
        read_payload("@" + str(tmp_path / "missing.json"))


def test_documents_no_task_type_renders_are_shown_as_json() -> None:
    session = Session("s1", "completed", documents={"s1.0": {"doubled": 8}}, capabilities={"s1.0": "echo"})
    assert json.loads(render_document(session, "s1.0")) == {"doubled": 8}


async def _events(items: list[Event]) -> AsyncIterator[Event]:
    for item in items:
        yield item


WATCHED = [
    Event("s1", 1, "accepted", "initialized", "echo"),
    Event("s1", 2, "committed", "executing", ""),
    Event("s1", 2, "progress", "executing", "half way", "s1.0", 0.5),
    Event("s1", 3, "finished", "executing", "s1.0 ok"),
    Event("s1", 4, "settled", "completed", ""),
]


def test_watch_prints_plain_lines_to_a_file() -> None:
    out = io.StringIO()
    state = asyncio.run(show_events(_events(WATCHED), Console(file=out, force_terminal=False, width=100)))
    text = out.getvalue()
    assert state == "completed"
    assert "  1  accepted" in text and "progress   s1.0" in text and " 50%  half way" in text
    assert text.rstrip().endswith("session completed") and "\x1b[" not in text  # no escape codes


def test_watch_draws_a_bar_per_running_subtask_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    state = asyncio.run(show_events(_events(WATCHED), console))
    text = out.getvalue()
    assert state == "completed"
    assert "s1.0" in text and "50%" in text and "half way" in text  # the bar and its note
    assert "progress   s1.0" not in text  # a bar, not a line
