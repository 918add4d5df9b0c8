"""Input checks: every name spliced into Cypher and every value sent as a parameter passes here first.

Theory of operation: values go to the backends as parameters, so a quote or a ``})`` inside a
string is data, never syntax. What parameters cannot protect is a label or property name (they
must be written into the query text) and values the backends store badly: NaN and infinities
(FalkorDB's parameter header has no literal for them, Neo4j stores them but comparisons lie),
huge strings, nested maps. Checks raise ``BadInput`` before anything is sent, so a rejected
write leaves the graph unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from knowledge.errors import BadInput
from knowledge.schema import EDGES, NODES, EdgeKind, NodeKind

__all__ = [
    "MAX_LIST_ITEMS",
    "MAX_TEXT_CHARS",
    "Scalar",
    "Value",
    "check_agent_id",
    "check_edge",
    "check_node",
    "check_props",
    "check_rows",
    "check_value",
]

# Long enough for any food description (SR28's longest is about 200 characters) or exercise name,
# short enough that one bad row cannot bloat a graph or a FalkorDB query header.
MAX_TEXT_CHARS = 4096
MAX_LIST_ITEMS = 256
_INT_BOUND = 2**63  # both backends store 64-bit signed integers

Scalar = str | int | float | bool | None
Value = Scalar | list[str] | list[int] | list[float] | list[bool]

# Agent ids become Redis user names, graph keys and key prefixes: keep them to a plain alphabet so
# they cannot contain ACL pattern characters (*, ?, [) or separators.
_AGENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check_agent_id(agent_id: str) -> str:
    """Return ``agent_id`` if it is 1-63 characters of ``[a-z0-9_-]`` starting alphanumeric."""
    if not isinstance(agent_id, str) or _AGENT_ID.fullmatch(agent_id) is None:
        raise BadInput(f"agent id {agent_id!r} must match {_AGENT_ID.pattern}")
    return agent_id


def _check_scalar(where: str, value: object) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -_INT_BOUND <= value < _INT_BOUND:
            raise BadInput(f"{where}: integer {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadInput(f"{where}: {value} is not a finite number")
        return
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise BadInput(f"{where}: text of {len(value)} characters is over the limit of {MAX_TEXT_CHARS}")
        if "\x00" in value:
            raise BadInput(f"{where}: text contains a NUL character")
        return
    raise BadInput(f"{where}: values must be text, numbers, booleans or lists of them, not {type(value).__name__}")


def check_value(where: str, value: object) -> None:
    """Raise ``BadInput`` unless ``value`` is a storable scalar or a short flat list of them."""
    if isinstance(value, list | tuple):
        if len(value) > MAX_LIST_ITEMS:
            raise BadInput(f"{where}: list of {len(value)} items is over the limit of {MAX_LIST_ITEMS}")
        for item in value:
            if item is None or isinstance(item, list | tuple | dict):
                raise BadInput(f"{where}: list items must be non-null scalars")
            _check_scalar(where, item)
        return
    _check_scalar(where, value)


def check_props(where: str, allowed: frozenset[str], props: Mapping[str, object]) -> None:
    """Every key is in ``allowed`` and every value passes ``check_value``."""
    if not isinstance(props, Mapping):
        raise BadInput(f"{where}: properties must be a mapping")
    for name, value in props.items():
        if name not in allowed:
            raise BadInput(f"{where}: unknown property {name!r} (allowed: {', '.join(sorted(allowed))})")
        check_value(f"{where}.{name}", value)


def check_node(label: str, props: Mapping[str, object]) -> NodeKind:
    """The kind of ``label`` after checking ``props`` against it; the key property must be present and non-null."""
    kind = NODES.get(label) if isinstance(label, str) else None
    if kind is None:
        raise BadInput(f"unknown node label {label!r}")
    check_props(label, kind.properties, props)
    if props.get(kind.key) is None:
        raise BadInput(f"{label}: key property {kind.key!r} is missing")
    return kind


def check_edge(rel_type: str, from_label: str, to_label: str, props: Mapping[str, object]) -> EdgeKind:
    """The kind of ``rel_type`` after checking its endpoints and ``props``."""
    kind = EDGES.get(rel_type) if isinstance(rel_type, str) else None
    if kind is None:
        raise BadInput(f"unknown relationship type {rel_type!r}")
    if (from_label, to_label) not in kind.endpoints:
        raise BadInput(f"{rel_type} cannot join {from_label!r} to {to_label!r}")
    check_props(rel_type, kind.properties, props)
    return kind


def check_rows(where: str, rows: Sequence[Mapping[str, object]], allowed: frozenset[str]) -> None:
    """``check_props`` on each row of a batch."""
    for i, row in enumerate(rows):
        check_props(f"{where}[{i}]", allowed, row)
