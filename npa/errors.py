"""Typed errors of the NPA core: bad input names its field, an impossible request names conflicts."""

from __future__ import annotations

__all__ = ["Infeasible", "InvalidProfile"]


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
