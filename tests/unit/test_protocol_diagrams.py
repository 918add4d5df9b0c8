"""The state diagrams in docs/protocol.md are drawn from the transition tables: a table change
without a docs update fails here. Run this module to rewrite the docs from the tables:

    .venv/bin/python -m tests.unit.test_protocol_diagrams
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from protocol import coordinator_table, participant_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
REGENERATE = ".venv/bin/python -m tests.unit.test_protocol_diagrams"

#: marker name in the docs -> the table's drawing
DIAGRAMS: dict[str, Callable[[], str]] = {
    "coordinator-diagram": coordinator_table.diagram,
    "participant-diagram": participant_table.diagram,
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:begin -->\n)(.*?)(<!-- {name}:end -->)", re.DOTALL)


def _fenced(drawing: str) -> str:
    return f"```mermaid\n{drawing}```\n"


@pytest.mark.parametrize("name", sorted(DIAGRAMS))
def test_the_docs_carry_the_tables_drawing(name: str) -> None:
    found = _block(name).search(DOCS.read_text(encoding="utf-8"))
    assert found is not None, f"docs/protocol.md lacks the <!-- {name}:begin/end --> markers"
    assert found.group(2) == _fenced(DIAGRAMS[name]()), (
        f"docs/protocol.md's {name} is not the table's drawing; rewrite it with `{REGENERATE}`"
    )


def test_ignored_moves_are_not_drawn_and_every_other_move_is() -> None:
    drawing = coordinator_table.diagram()
    assert "ignore" not in drawing
    assert "    preparing --> deciding : all_yes / decide_commit\n" in drawing
    assert "    done --> [*]\n" in drawing  # the empty row: an end state


def regenerate() -> None:
    """Rewrite every diagram block of docs/protocol.md from the tables."""
    text = DOCS.read_text(encoding="utf-8")
    for name, draw in DIAGRAMS.items():
        fenced = _fenced(draw())
        text, count = _block(name).subn(lambda m: m.group(1) + fenced + m.group(3), text)  # noqa: B023 (used at once)
        if count != 1:
            raise SystemExit(f"docs/protocol.md needs exactly one <!-- {name}:begin/end --> block, found {count}")
    DOCS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    regenerate()
