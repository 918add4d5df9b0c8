"""Typed errors of the NPA core: bad input names its field, an impossible request names conflicts.

A message quotes a caller's value only through ``shown``, which keeps it short whatever the
value."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import accumulate

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


#: Longest part of a caller's text quoted back in a message.
SHOWN_CHARS_MAX = 40


def shown(value: object) -> str:
    """A caller's value as an error message quotes it: short whatever the value. Text is cut to
    ``SHOWN_CHARS_MAX`` characters with its length said, so a 60 KB field cannot become a 60 KB
    error; an array or object is described, not printed; a huge integer gets its digit count
    (``repr`` of one over 4,300 digits raises ``ValueError``). The NPA and WPA cores and the mca
    catalog each keep a copy of this: the cores import nothing outside their own package."""
    if isinstance(value, str):
        # The cut counts the repr's escapes: 40 characters that each print as \\U000e0001 are 400.
        widths = accumulate(len(repr(c)) - 2 for c in value[: SHOWN_CHARS_MAX + 1])
        kept = sum(1 for width in widths if width <= SHOWN_CHARS_MAX)
        if kept == len(value):
            return repr(value)
        return f"{value[:kept]!r}... ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > 64:
        return f"an integer of about {abs(value).bit_length() * 0.30103:.0f} digits"
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return f"an object of {len(value)} fields"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} items"
    return f"a {type(value).__name__}"
