"""Typed errors of the NPA core: bad input names its field, an impossible request names conflicts.

A message quotes a caller's value only through ``shown`` (``protocol.errors``), which keeps it
short whatever the value."""

from __future__ import annotations

from protocol.errors import SHOWN_CHARS_MAX, shown

__all__ = ["SHOWN_CHARS_MAX", "Infeasible", "InvalidProfile", "shown"]


class InvalidProfile(ValueError):
    """A profile field is missing or out of range; ``field`` is its dotted path."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"profile field {field!r}: {why}")
        self.field = field
        self.why = why


class Infeasible(ValueError):
    """No plan satisfies the hard constraints; ``conflicts`` names the constraints that clash."""

    def __init__(self, conflicts: tuple[str, ...], detail: str = "") -> None:
        text = "no meal plan satisfies these constraints together: " + "; ".join(conflicts)
        super().__init__(text + (f" ({detail})" if detail else ""))
        self.conflicts = conflicts
