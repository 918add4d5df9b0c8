"""Exercise search that reads the question: muscle, equipment, level and category words become filters,
movement words ("curl", "press", "row") boosts.

Theory of operation. The sentence embedding of "hamstring curl" sits close to every curl (biceps
cable curls came back) and "chest press with a barbell" close to every barbell press. The data
knows better: each exercise has one primary muscle, its equipment, level, category, mechanic and
force. So a question is first parsed, with the fitness vocabulary, into an ``ExerciseQuery``
(pure, no I/O):

- muscle words ("hamstring", "quads", "pecs", "abs") and body regions ("legs", "arms", "upper
  body") become the primary muscles a hit must have: a hard filter in the index. When fewer than
  ``k`` exercises pass it, the search widens to any muscle worked (``muscles``) and ranks those
  whose primary muscle matches first;
- equipment words ("with a barbell", "dumbbells", "bodyweight", "no equipment") and level words
  ("beginner", "advanced") become hard filters, as the explicit ``mca ask`` flags are;
- category words ("stretch", "plyometric", "cardio", "olympic") become a category filter;
- the movement ("curl", "press", "squat", the stems of ``wpa.exercises.MOVEMENT_STEMS``) becomes a
  boost for names with the same movement, plus a small one for the movement's usual mechanic and
  force (a curl is an isolation pull); a stretch is pushed down unless a stretch was asked for.

``rank_exercises`` re-scores the index's top ``CANDIDATES`` hits (for the question with the
filter words removed): similarity + ``STEM_BOOST`` + ``PROFILE_BOOST`` x matches + ``WORD_BOOST`` x
the share of the question's remaining words in the name - ``STRETCH_PENALTY``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from knowledge.agent import IndexItem
from knowledge.vectors import Hit, VectorFilter
from wpa import ontology
from wpa.exercises import Exercise, movement_stem
from wpa.ontology import exercise_text

__all__ = [
    "CANDIDATES",
    "PROFILE_BOOST",
    "STEM_BOOST",
    "STRETCH_PENALTY",
    "WORD_BOOST",
    "ExerciseQuery",
    "exercise_items",
    "exercise_payload",
    "parse_exercise_question",
    "rank_exercises",
    "search_exercises",
]

CANDIDATES = 100
STEM_BOOST = 0.3
PROFILE_BOOST = 0.05
WORD_BOOST = 0.1
PRIMARY_BOOST = 0.3
STRETCH_PENALTY = 0.3

_LEGS = ("quadriceps", "hamstrings", "glutes", "calves", "adductors", "abductors")
_ARMS = ("biceps", "triceps", "forearms")
_BACK = ("lats", "middle back", "lower back", "traps")
# Phrases are matched longest first, then removed, so "lower back" never also reads as "back".
_MUSCLE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"lower[- ]back|erectors?|spinal erectors?", ("lower back",)),
    (r"(?:middle|mid|upper)[- ]back|rhomboids?", ("middle back",)),
    (r"inner thighs?|adductors?|groin", ("adductors",)),
    (r"outer thighs?|abductors?|hip abductors?", ("abductors",)),
    (r"upper[- ]body", ("chest", "shoulders", "biceps", "triceps", "lats", "middle back", "traps")),
    (r"lower[- ]body", _LEGS),
    (r"hamstrings?|hams", ("hamstrings",)),
    (r"quads?|quadriceps|thighs?", ("quadriceps",)),
    (r"glutes?|gluteus|butt|buttocks|bum", ("glutes",)),
    (r"calf|calves", ("calves",)),
    (r"chest|pecs?|pectorals?", ("chest",)),
    (r"shoulders?|delts?|deltoids?", ("shoulders",)),
    (r"biceps?|bicep", ("biceps",)),
    (r"triceps?|tricep", ("triceps",)),
    (r"forearms?|grip|wrists?", ("forearms",)),
    (r"lats?|latissimus", ("lats",)),
    (r"traps?|trapezius", ("traps",)),
    (r"neck", ("neck",)),
    (r"abs?|abdominals?|core|stomach|obliques?|belly|six[- ]pack", ("abdominals",)),
    (r"legs?", _LEGS),
    (r"arms?", _ARMS),
    (r"back", _BACK),
)
# Movements whose name holds a muscle word that is not the muscle asked for ("back squat").
_NOT_MUSCLE = r"back squats?|front squats?|back extensions?|leg press(?:es)?|good mornings?"
_EQUIPMENT_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"e-?z[- ]?(?:curl )?bar|curl bar", ("e-z curl bar",)),
    (r"barbells?", ("barbell",)),
    (r"dumbbells?|dumb bells?", ("dumbbell",)),
    (r"kettlebells?|kettle bells?", ("kettlebells",)),
    (r"cables?|pulleys?|cable machine", ("cable",)),
    (r"medicine balls?|med balls?", ("medicine ball",)),
    (r"(?:exercise|stability|swiss|physio) balls?", ("exercise ball",)),
    (r"foam rollers?|foam roll", ("foam roll",)),
    (r"resistance bands?|bands?", ("bands",)),
    (r"machines?|smith", ("machine",)),
    (r"body ?weight|body only|no equipment|without equipment|equipment[- ]free|at home", ("body only", "none")),
)
_LEVEL_WORDS: tuple[tuple[str, str], ...] = (
    (r"beginners?|novices?|easy|starter|simple", "beginner"),
    (r"intermediate", "intermediate"),
    (r"experts?|advanced|hard|difficult", "expert"),
)
_CATEGORY_WORDS: tuple[tuple[str, str], ...] = (
    (r"stretch(?:es|ing)?|mobility|flexibility|loosen", "stretching"),
    (r"plyometrics?|plyo|explosive", "plyometrics"),
    (r"cardio|conditioning|aerobic", "cardio"),
    (r"strongman", "strongman"),
    (r"olympic(?: weightlifting| lifts?)?|weightlifting", "olympic weightlifting"),
    (r"powerlifting", "powerlifting"),
)
# A movement's usual (mechanic, force): matched softly, as a tie-breaker among same-muscle hits.
_STEM_PROFILE: Mapping[str, tuple[str | None, str | None]] = {
    "curl": ("isolation", "pull"),
    "extension": ("isolation", "push"),
    "kickback": ("isolation", "push"),
    "fly": ("isolation", "push"),
    "raise": ("isolation", None),
    "shrug": ("isolation", "pull"),
    "press": ("compound", "push"),
    "bench press": ("compound", "push"),
    "leg press": ("compound", "push"),
    "push-up": ("compound", "push"),
    "dip": ("compound", "push"),
    "squat": ("compound", "push"),
    "lunge": ("compound", "push"),
    "row": ("compound", "pull"),
    "pulldown": ("compound", "pull"),
    "pull-up": ("compound", "pull"),
    "chin-up": ("compound", "pull"),
    "deadlift": ("compound", "pull"),
}
_STOP_WORDS = (
    "a an the for of in on with and or to me my i some any exercise exercises exercize workout workouts "
    "move moves movement training train that is are please give find show what which using use good best"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD_RE = re.compile(r"[a-z0-9]+")


def _word(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z])(?:{pattern})(?![a-z])")


@dataclass(frozen=True, slots=True)
class ExerciseQuery:
    """An exercise question read: the text to embed, hard filters, and the movement to boost."""

    text: str
    muscles: frozenset[str] = frozenset()  # primary muscles asked for (filter on ``primary``)
    equipment: frozenset[str] = frozenset()
    levels: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    stem: str | None = None
    words: frozenset[str] = frozenset()  # the question's content words, for name overlap
    worked: frozenset[str] = frozenset()  # explicit ``--muscle``: any muscle worked (filter on ``muscles``)

    def where(self, widen: bool = False) -> VectorFilter:
        """Hard filters; ``widen`` asks for the named muscles among all worked, not only the primary one."""
        must: dict[str, Sequence[str]] = {"kind": ["exercise"]}
        if self.muscles:
            must["muscles" if widen else "primary"] = sorted(self.muscles)
        if self.worked:
            must["muscles"] = sorted(self.worked | (self.muscles if widen else frozenset()))
        if self.equipment:
            must["equipment"] = sorted(self.equipment)
        if self.levels:
            must["level"] = sorted(self.levels)
        if self.categories:
            must["category"] = sorted(self.categories)
        return VectorFilter(must)

    def with_filters(
        self, equipment: Iterable[str] = (), muscles: Iterable[str] = (), levels: Iterable[str] = ()
    ) -> ExerciseQuery:
        """This query with explicit filters (``mca ask --equipment/--muscle/--level``) added."""
        return replace(
            self,
            equipment=self.equipment | frozenset(equipment),
            worked=self.worked | frozenset(muscles),
            levels=self.levels | frozenset(levels),
        )


def parse_exercise_question(question: str) -> ExerciseQuery:
    """Read ``question`` with the fitness vocabulary (see the module docstring)."""
    text = " ".join(question.lower().replace("\u2019", "'").split())
    stem = movement_stem(text)
    work = text
    equipment: set[str] = set()
    for pattern, values in _EQUIPMENT_WORDS:
        found = _word(pattern)
        if found.search(work):
            equipment.update(values)
            work = found.sub(" ", work)
    levels = {level for pattern, level in _LEVEL_WORDS if _word(pattern).search(work)}
    categories = {category for pattern, category in _CATEGORY_WORDS if _word(pattern).search(work)}
    muscles: set[str] = set()
    scan = _word(_NOT_MUSCLE).sub(" ", work)
    for pattern, names in _MUSCLE_WORDS:
        found = _word(pattern)
        if found.search(scan):
            muscles.update(names)
            scan = found.sub(" ", scan)
    # The movement is boosted on its own: its words ("pull", "up") must not also reward a "push-up".
    movement = set(_WORD_RE.findall(stem)) if stem else set()
    words = frozenset(w for w in _WORD_RE.findall(text) if w not in _STOP and w.rstrip("s") not in movement)
    residue = " ".join(w for w in _WORD_RE.findall(work) if w not in _STOP)
    return ExerciseQuery(
        text=residue or text,
        muscles=frozenset(muscles),
        equipment=frozenset(equipment),
        levels=frozenset(levels),
        categories=frozenset(categories),
        stem=stem,
        words=words,
    )


def exercise_payload(ex: Exercise) -> dict[str, object]:
    """What an exercise is indexed with: the filter fields plus mechanic and force for the re-ranking."""
    return ontology.exercise_payload(ex) | {"mechanic": ex.mechanic, "force": ex.force}


def exercise_items(exercises: Iterable[Exercise]) -> list[IndexItem]:
    """The WPA's index: one item per exercise, embedded as ``wpa.ontology.exercise_text``."""
    return [IndexItem(f"exercise:{ex.id}", exercise_text(ex), exercise_payload(ex)) for ex in exercises]


def _stem_matches(asked: str, name: str) -> bool:
    have = movement_stem(name)
    if have is None:
        return False
    # "press" asked matches a "bench press" or "leg press"; "bench press" asked needs a bench press.
    return have == asked or asked in have.split()


def _boost(query: ExerciseQuery, hit: Hit) -> float:
    name = str(hit.payload.get("name", ""))
    boost = 0.0
    if query.stem is not None and _stem_matches(query.stem, name):
        boost += STEM_BOOST
        mechanic, force = _STEM_PROFILE.get(query.stem, (None, None))
        if mechanic is not None and hit.payload.get("mechanic") == mechanic:
            boost += PROFILE_BOOST
        if force is not None and hit.payload.get("force") == force:
            boost += PROFILE_BOOST
    if query.words:
        named = set(_WORD_RE.findall(name.lower()))
        named |= {w.rstrip("s") for w in named}
        shared = sum(1 for w in query.words if w in named or w.rstrip("s") in named)
        boost += WORD_BOOST * shared / len(query.words)
    primary = hit.payload.get("primary")
    if query.muscles and isinstance(primary, list) and set(primary) & query.muscles:
        boost += PRIMARY_BOOST  # only differs between hits when the search was widened
    if hit.payload.get("category") == "stretching" and "stretching" not in query.categories:
        boost -= STRETCH_PENALTY
    return boost


def rank_exercises(query: ExerciseQuery, hits: Sequence[Hit], k: int) -> list[Hit]:
    """The ``k`` best of ``hits`` (the index's candidates) for ``query``; scores are the boosted ones."""
    scored = sorted(((h.score + _boost(query, h), h) for h in hits), key=lambda s: (-s[0], -s[1].score, s[1].key))
    return [Hit(h.key, round(s, 4), h.payload) for s, h in scored[:k]]


Search = Callable[[str, int, VectorFilter], list[Hit]]


def search_exercises(
    search: Search,
    question: str,
    k: int = 5,
    equipment: Iterable[str] = (),
    muscles: Iterable[str] = (),
    levels: Iterable[str] = (),
) -> list[Hit]:
    """Parse ``question``, fetch ``CANDIDATES`` hits that pass the filters, re-rank, keep ``k``.

    ``search(text, n, where)`` is the index's filtered vector search (``AgentKnowledge.search``).
    Named muscles filter on the primary muscle; if fewer than ``k`` pass, on any muscle worked.
    """
    query = parse_exercise_question(question).with_filters(equipment, muscles, levels)
    n = max(k, CANDIDATES)
    hits = search(query.text, n, query.where())
    if len(hits) < k and query.muscles:
        hits = search(query.text, n, query.where(widen=True))
    return rank_exercises(query, hits, k)
