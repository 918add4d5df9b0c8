"""Versioned facts: optimistic writes, pure semantic merges, and facts shared by other agents.

Theory of operation: a fact is one (subject, predicate) -> value with a unit, a confidence in
[0, 1] and its provenance (the agent it came from, the coordination session, a free note such as
the decision-log entry). It is stored as a ``Fact`` node keyed by ``subject|predicate`` whose
``version`` starts at 1 and grows by one per accepted write.

Writes are optimistic: the writer says which version its change is based on (``0`` = "I believe
it does not exist yet"). The check and the write are one Cypher statement, so they are atomic:
FalkorDB runs each query alone on the graph; in Neo4j the statement first takes the node's write
lock (``SET f._lock``, the documented idiom against lost updates) and then compares versions,
and creation goes through ``MERGE`` under a uniqueness constraint. A stale base raises
``VersionConflict`` and changes nothing; the caller re-reads, merges, retries.

Merges are pure functions (no I/O), so they are unit-tested alone:

- ``merge_fact``: the higher confidence wins; on equal confidence the value already held stays
  (first writer wins, deterministic). When the values differ the loser is returned as a
  ``FactConflict`` so the caller can log or escalate it; nothing is silently dropped.
- ``merge_plans``: workout plan items are keyed by (day, exercise); items on only one side merge,
  identical items are kept once, and the same key with different sets/reps is a ``PlanConflict``
  (our item stays in the merged plan, both are reported).

Sharing: another agent's fact arrives through the coordinator (a decision-log entry) as a
``SharedFact``; ``record_shared_fact`` merges it into the receiving agent's own graph through the
same versioned path, retrying a bounded number of times on ``VersionConflict``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from knowledge.errors import BadInput, VersionConflict
from knowledge.graph import GraphStore
from knowledge.validate import MAX_TEXT_CHARS, check_agent_id, check_value

__all__ = [
    "Fact",
    "FactConflict",
    "FactMerge",
    "PlanConflict",
    "PlanItem",
    "PlanMerge",
    "RecordOutcome",
    "SharedFact",
    "StoredFact",
    "merge_fact",
    "merge_plans",
    "read_fact",
    "record_shared_fact",
    "write_fact",
]

FactValue = str | int | float | bool
_NAME_CHARS_MAX = 256  # subjects and predicates are identifiers, not prose


@dataclass(frozen=True, slots=True)
class Fact:
    """One piece of knowledge with its confidence and provenance."""

    subject: str
    predicate: str
    value: FactValue
    unit: str | None
    confidence: float
    source_agent: str
    session_id: str | None = None
    provenance: str | None = None

    @property
    def key(self) -> str:
        return f"{self.subject}|{self.predicate}"

    def check(self) -> None:
        """Raise ``BadInput`` unless every field is storable and in range."""
        for name in ("subject", "predicate"):
            text = getattr(self, name)
            if not isinstance(text, str) or not text.strip() or len(text) > _NAME_CHARS_MAX or "|" in text:
                raise BadInput(f"fact {name} must be 1-{_NAME_CHARS_MAX} characters without '|'")
        if self.value is None or isinstance(self.value, list | tuple | dict):
            raise BadInput("fact value must be text, a number or a boolean")
        check_value("fact.value", self.value)
        check_value("fact.unit", self.unit)
        check_value("fact.session_id", self.session_id)
        check_value("fact.provenance", self.provenance)
        if (
            isinstance(self.confidence, bool)
            or not isinstance(self.confidence, int | float)
            or not math.isfinite(self.confidence)
            or not 0.0 <= self.confidence <= 1.0
        ):
            raise BadInput(f"confidence must be a number in [0, 1], not {self.confidence!r}")
        check_agent_id(self.source_agent)

    def props(self) -> dict[str, object]:
        return {
            "key": self.key,
            "subject": self.subject,
            "predicate": self.predicate,
            "value": self.value,
            "unit": self.unit,
            "confidence": float(self.confidence),
            "source_agent": self.source_agent,
            "session_id": self.session_id,
            "provenance": self.provenance,
        }


@dataclass(frozen=True, slots=True)
class SharedFact:
    """A fact one agent shares with another through the coordinator (carried by a decision-log entry).

    Example: the WPA shares ``SharedFact("user:42", "weekly_training_expenditure", 2100.0, "kcal",
    "wpa", 0.8, "s17", "decision-log entry 1234")``; the NPA records it with ``record_shared_fact``.
    """

    subject: str
    predicate: str
    value: FactValue
    unit: str | None
    source_agent: str
    confidence: float
    session_id: str
    provenance: str | None = None

    def as_fact(self) -> Fact:
        fact = Fact(
            self.subject,
            self.predicate,
            self.value,
            self.unit,
            self.confidence,
            self.source_agent,
            self.session_id,
            self.provenance,
        )
        fact.check()
        return fact


@dataclass(frozen=True, slots=True)
class StoredFact:
    fact: Fact
    version: int


@dataclass(frozen=True, slots=True)
class FactConflict:
    """Two values for the same (subject, predicate): ``kept`` won, ``rejected`` lost (and why)."""

    key: str
    kept: Fact
    rejected: Fact
    reason: str


@dataclass(frozen=True, slots=True)
class FactMerge:
    """The result of ``merge_fact``: the fact to store, whether it differs from the current one, any conflict."""

    fact: Fact
    changed: bool
    conflict: FactConflict | None


def merge_fact(current: Fact | None, incoming: Fact) -> FactMerge:
    """Merge ``incoming`` into ``current`` (pure): the higher confidence wins, a tie keeps ``current``."""
    if current is None:
        return FactMerge(incoming, True, None)
    if current.key != incoming.key:
        raise BadInput(f"cannot merge facts about different things: {current.key} and {incoming.key}")
    if current.value == incoming.value and current.unit == incoming.unit:
        # Agreement: keep the value, remember the strongest support for it.
        if incoming.confidence > current.confidence:
            return FactMerge(incoming, True, None)
        return FactMerge(current, False, None)
    if incoming.confidence > current.confidence:
        reason = f"confidence {incoming.confidence:g} > {current.confidence:g}"
        return FactMerge(incoming, True, FactConflict(current.key, incoming, current, reason))
    reason = (
        f"confidence {current.confidence:g} > {incoming.confidence:g}"
        if current.confidence > incoming.confidence
        else f"equal confidence {current.confidence:g}: the value already held stays"
    )
    return FactMerge(current, False, FactConflict(current.key, current, incoming, reason))


def read_fact(store: GraphStore, subject: str, predicate: str) -> StoredFact | None:
    """The stored fact and its version, or ``None``."""
    rows = store.run("MATCH (f:Fact {key: $key}) RETURN properties(f) AS p", {"key": f"{subject}|{predicate}"})
    if not rows:
        return None
    p = rows[0]["p"]
    fact = Fact(
        subject=str(p["subject"]),
        predicate=str(p["predicate"]),
        value=p["value"],
        unit=p.get("unit"),
        confidence=float(p["confidence"]),
        source_agent=str(p["source_agent"]),
        session_id=p.get("session_id"),
        provenance=p.get("provenance"),
    )
    return StoredFact(fact, int(p["version"]))


# Create: MERGE under the key (unique in Neo4j); ``_new`` tells a creation from a find.
_CREATE = (
    "MERGE (f:Fact {key: $key}) ON CREATE SET f += $props, f.version = 1, f._new = true "
    "WITH f, f._new AS created, f.version AS found REMOVE f._new RETURN created, found"
)
# Update: lock, compare, write only when the version matches (FOREACH over a 0- or 1-element list).
_UPDATE = (
    "MATCH (f:Fact {key: $key}) SET f._lock = true REMOVE f._lock WITH f, f.version AS found "
    "FOREACH (hit IN CASE WHEN found = $expected THEN [1] ELSE [] END | SET f += $props, f.version = found + 1) "
    "RETURN found"
)


def write_fact(store: GraphStore, fact: Fact, expected_version: int) -> int:
    """Store ``fact`` if the stored version is ``expected_version`` (0: absent); return the new version."""
    fact.check()
    if isinstance(expected_version, bool) or not isinstance(expected_version, int) or expected_version < 0:
        raise BadInput(f"expected version must be a non-negative integer, not {expected_version!r}")
    props = fact.props()
    if expected_version == 0:
        rows = store.run(_CREATE, {"key": fact.key, "props": props})
        found = int(rows[0]["found"]) if rows else 0
        if rows and rows[0]["created"] is True:
            return 1
        raise VersionConflict(fact.key, 0, found)
    rows = store.run(_UPDATE, {"key": fact.key, "expected": expected_version, "props": props})
    found = int(rows[0]["found"]) if rows else 0
    if found != expected_version:
        raise VersionConflict(fact.key, expected_version, found)
    return expected_version + 1


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What ``record_shared_fact`` did: the fact now held, its version, and any conflict it resolved."""

    fact: Fact
    version: int
    changed: bool
    conflict: FactConflict | None
    attempts: int


def record_shared_fact(store: GraphStore, shared: SharedFact, attempts_max: int = 5) -> RecordOutcome:
    """Merge a fact shared by another agent into this agent's graph (read, merge, versioned write, retry)."""
    incoming = shared.as_fact()
    last: VersionConflict | None = None
    for attempt in range(1, attempts_max + 1):
        stored = read_fact(store, incoming.subject, incoming.predicate)
        outcome = merge_fact(stored.fact if stored else None, incoming)
        version = stored.version if stored else 0
        if not outcome.changed:
            return RecordOutcome(outcome.fact, version, False, outcome.conflict, attempt)
        try:
            version = write_fact(store, outcome.fact, version)
        except VersionConflict as exc:
            last = exc  # someone wrote in between: merge against their value
            continue
        return RecordOutcome(outcome.fact, version, True, outcome.conflict, attempt)
    if last is None:
        raise BadInput("attempts_max must be at least 1")
    raise last


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One exercise in a weekly workout plan."""

    day: int
    exercise_id: str
    sets: int
    reps: int

    @property
    def slot(self) -> tuple[int, str]:
        return (self.day, self.exercise_id)


@dataclass(frozen=True, slots=True)
class PlanConflict:
    slot: tuple[int, str]
    ours: PlanItem
    theirs: PlanItem


@dataclass(frozen=True, slots=True)
class PlanMerge:
    items: tuple[PlanItem, ...]
    conflicts: tuple[PlanConflict, ...]


def _check_plan(name: str, items: Sequence[PlanItem]) -> dict[tuple[int, str], PlanItem]:
    out: dict[tuple[int, str], PlanItem] = {}
    for item in items:
        if not 0 <= item.day <= 6 or item.sets < 1 or item.reps < 1:
            raise BadInput(f"{name}: {item} needs day 0-6 and positive sets and reps")
        if not item.exercise_id or len(item.exercise_id) > MAX_TEXT_CHARS:
            raise BadInput(f"{name}: an item needs an exercise id")
        if item.slot in out and out[item.slot] != item:
            raise BadInput(f"{name}: two different items for day {item.day}, {item.exercise_id}")
        out[item.slot] = item
    return out


def merge_plans(ours: Sequence[PlanItem], theirs: Sequence[PlanItem]) -> PlanMerge:
    """Union of two plans by (day, exercise) slot (pure); different items in one slot are conflicts, ours kept."""
    mine, other = _check_plan("ours", ours), _check_plan("theirs", theirs)
    merged = dict(mine)
    conflicts: list[PlanConflict] = []
    for slot, item in other.items():
        held = merged.get(slot)
        if held is None:
            merged[slot] = item
        elif held != item:
            conflicts.append(PlanConflict(slot, held, item))
    return PlanMerge(tuple(sorted(merged.values(), key=lambda i: i.slot)), tuple(conflicts))
