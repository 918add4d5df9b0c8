"""The workout planning agent (WPA): workout plans from the Free Exercise DB (pure core).

``wpa.exercises`` parses the exercises and derives complements and progressions,
``wpa.request`` validates requests, ``wpa.plan`` builds multi-week plans, ``wpa.checks`` checks
plans independently of the planner. No I/O besides reading the shipped data.
"""

from wpa.checks import Violation, check_workout_plan
from wpa.errors import Infeasible, InvalidRequest
from wpa.exercises import Exercise, complements, load_exercises, progressions
from wpa.model import WorkoutPlan, render_text
from wpa.plan import plan_workouts
from wpa.request import WorkoutRequest, parse_request

__all__ = [
    "Exercise",
    "Infeasible",
    "InvalidRequest",
    "Violation",
    "WorkoutPlan",
    "WorkoutRequest",
    "check_workout_plan",
    "complements",
    "load_exercises",
    "parse_request",
    "plan_workouts",
    "progressions",
    "render_text",
]
