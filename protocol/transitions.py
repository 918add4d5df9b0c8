"""Theory of operation: what a row of a transition table holds, and how a table is drawn.

The coordinator and participant tables map (state, input) to a ``Move``: the next state and the
name of the machine's method that performs the transition's effects. ``IGNORE`` names no
method: the input is a late, duplicated or outlived one that changes nothing, listed so that
the row still says it is expected (an input missing from a row is a bug). A machine resolves
every name once, when its module is imported, so a typo in a table fails at once.

``mermaid`` renders a table as a Mermaid ``stateDiagram-v2``. ``IGNORE`` rows are self-loops
that do nothing and are left out; every other move is an edge labelled ``input / action``,
the inputs that share one (from, to, action) edge joined by commas. docs/protocol.md carries
the rendering, and a unit test keeps it equal to the tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Generic, TypeVar

S = TypeVar("S", bound=StrEnum)  # the machine's state (a phase, a holding)
In = TypeVar("In", bound=StrEnum)  # its input (a classified event)

#: The action of a move that does nothing: a late or repeated input, or a timer that outlived
#: its purpose. Only ever a self-loop (a unit test holds the tables to it).
IGNORE: Final = "ignore"


@dataclass(frozen=True)
class Move(Generic[S]):
    """Where an input leads, and the machine's method (by name) that acts on it."""

    to: S
    action: str

    @property
    def ignored(self) -> bool:
        return self.action == IGNORE


def action_names(table: Mapping[S, Mapping[In, Move[S]]]) -> frozenset[str]:
    """The method names a table relies on (``IGNORE`` is not one)."""
    return frozenset(m.action for row in table.values() for m in row.values() if not m.ignored)


def mermaid(table: Mapping[S, Mapping[In, Move[S]]], start: S) -> str:
    """The table as a Mermaid ``stateDiagram-v2`` (``IGNORE`` self-loops left out)."""
    lines = ["stateDiagram-v2", f"    [*] --> {start.value}"]
    for state, row in table.items():
        edges: dict[tuple[str, str], list[str]] = {}
        for inp, move in row.items():
            if not move.ignored:
                edges.setdefault((move.to.value, move.action.lstrip("_")), []).append(inp.value)
        lines += [f"    {state.value} --> {to} : {', '.join(ins)} / {action}" for (to, action), ins in edges.items()]
        if not row:
            lines.append(f"    {state.value} --> [*]")
    return "\n".join(lines) + "\n"
