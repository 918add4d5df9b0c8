"""The workout plan value: frozen, JSON-serialisable, readable as text.

Theory of operation: a ``WorkoutPlan`` holds everything the checker and the NPA need without the
planner: per exercise its id and primary muscle, the prescription (sets, reps, rest, intensity)
and its MET value; per session the weekday, focus, minutes and kcal; per week the phase (load or
deload) and kcal; and ``weekly_expenditure_kcal`` for the negotiation with the NPA.

Energy figures (session, week, ``weekly_expenditure_kcal``) are net of rest: (MET - 1) x kg x h,
what training adds to a day whose BMR already counts rest; ``met`` per exercise is the gross
Compendium value, and ``weekly_expenditure_gross_kcal`` the gross weekly mean (0 in documents
written before it existed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

__all__ = ["WEEKDAYS", "PlannedExercise", "Session", "Week", "WorkoutPlan", "render_text"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class PlannedExercise:
    id: str
    name: str
    primary_muscle: str
    sets: int
    reps: str
    rest_s: int
    intensity: str
    met: float

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "primary_muscle": self.primary_muscle,
            "sets": self.sets,
            "reps": self.reps,
            "rest_s": self.rest_s,
            "intensity": self.intensity,
            "met": self.met,
        }

    @staticmethod
    def from_dict(doc: Mapping[str, object]) -> PlannedExercise:
        return PlannedExercise(
            id=str(doc["id"]),
            name=str(doc["name"]),
            primary_muscle=str(doc["primary_muscle"]),
            sets=int(cast(int, doc["sets"])),
            reps=str(doc["reps"]),
            rest_s=int(cast(int, doc["rest_s"])),
            intensity=str(doc["intensity"]),
            met=float(cast(float, doc["met"])),
        )


@dataclass(frozen=True, slots=True)
class Session:
    """One training day: ``weekday`` is 0 (Monday) to 6."""

    weekday: int
    focus: str
    exercises: tuple[PlannedExercise, ...]
    minutes: float
    kcal: float

    def to_dict(self) -> dict[str, object]:
        return {
            "weekday": self.weekday,
            "day": WEEKDAYS[self.weekday],
            "focus": self.focus,
            "minutes": self.minutes,
            "kcal": self.kcal,
            "exercises": [e.to_dict() for e in self.exercises],
        }

    @staticmethod
    def from_dict(doc: Mapping[str, object]) -> Session:
        return Session(
            weekday=int(cast(int, doc["weekday"])),
            focus=str(doc["focus"]),
            exercises=tuple(
                PlannedExercise.from_dict(e) for e in cast(Sequence[Mapping[str, object]], doc["exercises"])
            ),
            minutes=float(cast(float, doc["minutes"])),
            kcal=float(cast(float, doc["kcal"])),
        )


@dataclass(frozen=True, slots=True)
class Week:
    week: int
    phase: str
    sessions: tuple[Session, ...]
    kcal: float

    def to_dict(self) -> dict[str, object]:
        return {
            "week": self.week,
            "phase": self.phase,
            "kcal": self.kcal,
            "sessions": [s.to_dict() for s in self.sessions],
        }

    @staticmethod
    def from_dict(doc: Mapping[str, object]) -> Week:
        return Week(
            week=int(cast(int, doc["week"])),
            phase=str(doc["phase"]),
            sessions=tuple(Session.from_dict(s) for s in cast(Sequence[Mapping[str, object]], doc["sessions"])),
            kcal=float(cast(float, doc["kcal"])),
        )


@dataclass(frozen=True, slots=True)
class WorkoutPlan:
    """A multi-week plan; ``weekly_expenditure_kcal`` is the mean of the weeks (net, (MET - 1) x kg x h)."""

    goal: str
    level: str
    split: str
    progression: str
    body_mass_kg: float
    seed: int
    weeks: tuple[Week, ...]
    weekly_expenditure_kcal: float
    notes: tuple[str, ...] = ()
    weekly_expenditure_gross_kcal: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": "workout_plan",
            "version": 1,
            "goal": self.goal,
            "level": self.level,
            "split": self.split,
            "progression": self.progression,
            "body_mass_kg": self.body_mass_kg,
            "seed": self.seed,
            "weekly_expenditure_kcal": self.weekly_expenditure_kcal,
            "weekly_expenditure_gross_kcal": self.weekly_expenditure_gross_kcal,
            "notes": list(self.notes),
            "weeks": [w.to_dict() for w in self.weeks],
        }

    @staticmethod
    def from_dict(doc: Mapping[str, object]) -> WorkoutPlan:
        if doc.get("kind") != "workout_plan" or doc.get("version") != 1:
            raise ValueError("not a version-1 workout plan document (kind 'workout_plan', version 1)")
        return WorkoutPlan(
            goal=str(doc["goal"]),
            level=str(doc["level"]),
            split=str(doc["split"]),
            progression=str(doc["progression"]),
            body_mass_kg=float(cast(float, doc["body_mass_kg"])),
            seed=int(cast(int, doc["seed"])),
            weeks=tuple(Week.from_dict(w) for w in cast(Sequence[Mapping[str, object]], doc["weeks"])),
            weekly_expenditure_kcal=float(cast(float, doc["weekly_expenditure_kcal"])),
            notes=tuple(str(n) for n in cast(Sequence[str], doc["notes"])),
            weekly_expenditure_gross_kcal=float(cast(float, doc.get("weekly_expenditure_gross_kcal", 0.0))),
        )


def render_text(plan: WorkoutPlan) -> str:
    """A readable table per week and day (for the CLI)."""
    lines = [
        f"{plan.goal} plan, {plan.level}, split {plan.split}, progression {plan.progression}; "
        f"about {plan.weekly_expenditure_kcal:.0f} kcal/week above rest "
        f"({plan.weekly_expenditure_gross_kcal:.0f} gross) at {plan.body_mass_kg:g} kg"
    ]
    lines.extend(f"note: {n}" for n in plan.notes)
    for week in plan.weeks:
        lines.append("")
        lines.append(f"Week {week.week} ({week.phase}, {week.kcal:.0f} kcal)")
        for s in week.sessions:
            lines.append(f"  {WEEKDAYS[s.weekday]} {s.focus}: {s.minutes:.0f} min, {s.kcal:.0f} kcal")
            for e in s.exercises:
                lines.append(
                    f"    {e.name[:40]:<40} {e.sets} x {e.reps:<6} rest {e.rest_s:>3}s"
                    f"  {e.intensity}  [{e.primary_muscle}]"
                )
    return "\n".join(lines)
