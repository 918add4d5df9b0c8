"""Typed errors of the WPA core: bad input names its field, an impossible request names conflicts.

A message quotes a caller's value only through ``shown`` (``protocol.errors``), which keeps it
short whatever the value."""

from __future__ import annotations

from protocol.errors import SHOWN_CHARS_MAX, shown

__all__ = ["SHOWN_CHARS_MAX", "Infeasible", "InvalidRequest", "shown"]


class InvalidRequest(ValueError):
    """A request field is missing or out of range; ``field`` is its dotted path."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"request field {field!r}: {why}")
        self.field = field
        self.why = why


class Infeasible(ValueError):
    """No plan satisfies the hard rules; ``conflicts`` names the rules and inputs that clash."""

    def __init__(self, conflicts: tuple[str, ...], detail: str = "") -> None:
        text = "no workout plan satisfies these together: " + "; ".join(conflicts)
        super().__init__(text + (f" ({detail})" if detail else ""))
        self.conflicts = conflicts
