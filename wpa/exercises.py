"""Free Exercise DB records and the two relations the planner and the knowledge graph use.

Theory of operation: ``exercises.json.gz`` (873 exercises, Unlicense) ships in ``wpa/data`` and is
read once through ``importlib.resources``, then cached. Every exercise has exactly one primary
muscle in this data set (checked on load), from 17 muscle names.

Two derived relations, both bounded so that they stay linear in the number of exercises:

- ``complements``: antagonist pairs, for supersets and for balancing a session. Two exercises
  complement each other when their primary muscles are an antagonist pair (``ANTAGONISTS``: chest
  / lats and middle back (horizontal and vertical push vs pull), shoulders / lats (overhead press
  vs pull-down), biceps / triceps, quadriceps / hamstrings, abdominals / lower back, adductors /
  abductors), they use the same equipment and category, and, where both have a force, their
  forces are opposite (push vs pull). Each exercise keeps at most ``_PAIRS_MAX`` partners, the
  nearest in level then by name, so the relation has at most 3 x 873 pairs.
- ``progressions``: easier -> harder variants of the same movement. Same primary muscle, same
  mechanic, the same movement stem (the first of ``MOVEMENT_STEMS`` found in the name: "squat",
  "press", "curl", "row", "push-up"...), and the next level up (beginner -> intermediate ->
  expert). Each exercise links to at most ``_PAIRS_MAX`` harder variants, preferring names that
  share the most words (a "Bodyweight Squat" steps up to a "Barbell Squat" or a "Pistol Squat"
  before a "Zercher Squat").
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

__all__ = [
    "ANTAGONISTS",
    "LEVELS",
    "MOVEMENT_STEMS",
    "Exercise",
    "complements",
    "load_exercises",
    "movement_stem",
    "progressions",
]

LEVELS: tuple[str, ...] = ("beginner", "intermediate", "expert")

# Antagonist muscle pairs (primary muscle names of the data set), both directions are used.
ANTAGONISTS: tuple[tuple[str, str], ...] = (
    ("chest", "lats"),
    ("chest", "middle back"),
    ("shoulders", "lats"),
    ("biceps", "triceps"),
    ("quadriceps", "hamstrings"),
    ("abdominals", "lower back"),
    ("adductors", "abductors"),
)

# Movement stems in priority order: the first found in a name is its stem. Spelling variants are
# normalised by ``movement_stem`` before lookup ("pushup", "push up" -> "push-up").
MOVEMENT_STEMS: tuple[str, ...] = (
    "push-up",
    "pull-up",
    "chin-up",
    "sit-up",
    "deadlift",
    "good morning",
    "squat",
    "lunge",
    "step-up",
    "leg press",
    "bench press",
    "press",
    "row",
    "pulldown",
    "curl",
    "extension",
    "kickback",
    "fly",
    "raise",
    "shrug",
    "dip",
    "crunch",
    "plank",
    "bridge",
    "thrust",
    "clean",
    "snatch",
    "jerk",
    "swing",
    "jump",
    "hop",
    "bound",
    "throw",
    "twist",
    "rollout",
    "stretch",
    "walk",
    "carry",
)

_PAIRS_MAX = 3


@dataclass(frozen=True, slots=True)
class Exercise:
    """One exercise of the Free Exercise DB (``equipment`` ``None`` means none listed)."""

    id: str
    name: str
    force: str | None
    level: str
    mechanic: str | None
    equipment: str | None
    primary_muscles: tuple[str, ...]
    secondary_muscles: tuple[str, ...]
    category: str
    instructions: tuple[str, ...]

    @property
    def primary(self) -> str:
        """The primary muscle (every exercise of this data set has exactly one)."""
        return self.primary_muscles[0]


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


@functools.cache
def load_exercises() -> tuple[Exercise, ...]:
    """Every exercise (873), in id order. Parsed once per process, then cached."""
    raw = resources.files("wpa").joinpath("data", "exercises.json.gz").read_bytes()
    docs = json.loads(gzip.decompress(raw).decode("utf-8"))
    out: list[Exercise] = []
    for doc in docs:
        primary = tuple(str(m) for m in doc["primaryMuscles"])
        if len(primary) != 1:
            raise ValueError(f"exercise {doc['id']!r} has {len(primary)} primary muscles; the planner expects one")
        out.append(
            Exercise(
                id=str(doc["id"]),
                name=str(doc["name"]),
                force=_optional_str(doc.get("force")),
                level=str(doc["level"]),
                mechanic=_optional_str(doc.get("mechanic")),
                equipment=_optional_str(doc.get("equipment")),
                primary_muscles=primary,
                secondary_muscles=tuple(str(m) for m in doc.get("secondaryMuscles", ())),
                category=str(doc["category"]),
                instructions=tuple(str(s) for s in doc.get("instructions", ())),
            )
        )
    out.sort(key=lambda e: e.id)
    return tuple(out)


_WORD_RE = re.compile(r"[a-z0-9]+")
_NORMALISE = (
    (re.compile(r"\bpush[ -]?ups?\b"), "push-up"),
    (re.compile(r"\bpull[ -]?ups?\b"), "pull-up"),
    (re.compile(r"\bchin[ -]?ups?\b"), "chin-up"),
    (re.compile(r"\bsit[ -]?ups?\b"), "sit-up"),
    (re.compile(r"\bstep[ -]?ups?\b"), "step-up"),
    (re.compile(r"\bpull[ -]?downs?\b"), "pulldown"),
    (re.compile(r"\bflyes\b|\bflys\b|\bflies\b"), "fly"),
)
_STEM_RES = tuple((stem, re.compile(r"\b" + re.escape(stem) + r"(e?s)?\b")) for stem in MOVEMENT_STEMS)


def movement_stem(name: str) -> str | None:
    """The movement stem of an exercise name (see ``MOVEMENT_STEMS``), or ``None``."""
    text = name.lower()
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    for stem, pattern in _STEM_RES:
        if pattern.search(text):
            return stem
    return None


def _words(name: str) -> frozenset[str]:
    return frozenset(_WORD_RE.findall(name.lower()))


def _nearest(source: Exercise, candidates: Iterable[Exercise], key_level: bool) -> list[Exercise]:
    """The ``_PAIRS_MAX`` candidates most like ``source``: level distance, shared words, id."""
    words = _words(source.name)
    level = LEVELS.index(source.level)

    def rank(other: Exercise) -> tuple[int, int, str]:
        distance = abs(LEVELS.index(other.level) - level) if key_level else 0
        return (distance, -len(words & _words(other.name)), other.id)

    return sorted(candidates, key=rank)[:_PAIRS_MAX]


def _opposite_force(a: str | None, b: str | None) -> bool:
    if a is None or b is None or a == "static" or b == "static":
        return True
    return a != b


def complements(exercises: Iterable[Exercise]) -> list[tuple[str, str]]:
    """Antagonist pairs ``(id_a, id_b)`` with ``id_a < id_b``, sorted; see the module docstring."""
    pool = tuple(exercises)
    by_muscle: dict[str, list[Exercise]] = {}
    for ex in pool:
        by_muscle.setdefault(ex.primary, []).append(ex)
    partners: dict[str, set[str]] = {}
    for a_muscle, b_muscle in ANTAGONISTS:
        for one, other in ((a_muscle, b_muscle), (b_muscle, a_muscle)):
            for ex in by_muscle.get(one, ()):
                candidates = [
                    o
                    for o in by_muscle.get(other, ())
                    if o.equipment == ex.equipment and o.category == ex.category and _opposite_force(ex.force, o.force)
                ]
                for o in _nearest(ex, candidates, key_level=True):
                    partners.setdefault(ex.id, set()).add(o.id)
    pairs = {(min(a, b), max(a, b)) for a, bs in partners.items() for b in bs}
    return sorted(pairs)


def progressions(exercises: Iterable[Exercise]) -> list[tuple[str, str]]:
    """Easier -> harder variant pairs ``(easier_id, harder_id)``, sorted; see the module docstring."""
    groups: dict[tuple[str, str | None, str], list[Exercise]] = {}
    for ex in exercises:
        stem = movement_stem(ex.name)
        if stem is None:
            continue
        groups.setdefault((ex.primary, ex.mechanic, stem), []).append(ex)
    pairs: set[tuple[str, str]] = set()
    for members in groups.values():
        for ex in members:
            level = LEVELS.index(ex.level)
            if level + 1 >= len(LEVELS):
                continue
            harder = [o for o in members if LEVELS.index(o.level) == level + 1]
            for o in _nearest(ex, harder, key_level=False):
                pairs.add((ex.id, o.id))
    return sorted(pairs)


def by_id(exercises: Iterable[Exercise]) -> Mapping[str, Exercise]:
    """An id -> exercise view (read-only)."""
    return MappingProxyType({ex.id: ex for ex in exercises})
