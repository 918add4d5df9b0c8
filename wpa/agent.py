"""The workout planning agent (WPA) as an SDK agent: capability ``workout_plan``.

Theory of operation. When asked to prepare a subtask it plans at once (the planner is pure and
takes milliseconds): a request it cannot satisfy is a no vote naming the conflicting rules
(``Refuse``), a plan is kept for the subtask and its weekly energy expenditure is offered to the
session's negotiation. The coordinator records the offer in the decision log and gives it to the
meal-planning agent, which plans against it. ``execute`` returns the kept plan (or plans again,
deterministically, after a restart), checked by ``wpa.checks`` first: a plan that breaks a rule
fails the subtask instead of reaching the user.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from mca.sdk import Agent, Assignment, Job, Output, Refuse
from wpa.checks import check_workout_plan
from wpa.errors import Infeasible, InvalidRequest
from wpa.exercises import load_exercises
from wpa.model import WorkoutPlan
from wpa.plan import plan_workouts
from wpa.request import WorkoutRequest, parse_request

#: The negotiated parameter: the plan's weekly training energy, rounded to whole kcal so that
#: both agents report exactly the same figure.
EXPENDITURE = "weekly_expenditure_kcal"


class WorkoutPlanningAgent(Agent):
    capabilities = ("workout_plan",)

    def __init__(self, agent_id: str = "wpa", capacity: int = 4) -> None:
        self.agent_id = agent_id
        self.capacity = capacity
        self._plans: dict[str, tuple[WorkoutRequest, WorkoutPlan]] = {}

    def offers(self, assignment: Assignment) -> Mapping[str, float]:
        _, plan = self._plan(assignment.subtask_id, assignment.document)
        return {EXPENDITURE: float(round(plan.weekly_expenditure_kcal))}

    async def execute(self, job: Job) -> Output:
        kept = self._plans.pop(job.subtask_id, None)
        if kept is None:  # a restart lost it: the planner is deterministic, plan again
            kept = await asyncio.to_thread(self._plan, job.subtask_id, json.dumps(job.document))
            self._plans.pop(job.subtask_id, None)
        request, plan = kept
        exercises = {e.id: e for e in load_exercises()}
        violations = check_workout_plan(request, plan, exercises)
        if violations:
            raise RuntimeError("the workout plan breaks rules: " + "; ".join(str(v) for v in violations[:5]))
        sessions = sum(len(w.sessions) for w in plan.weeks)
        values = {EXPENDITURE: float(round(plan.weekly_expenditure_kcal)), "workout_sessions": float(sessions)}
        return Output(values, plan.to_dict())

    def _plan(self, subtask_id: str, document: str) -> tuple[WorkoutRequest, WorkoutPlan]:
        kept = self._plans.get(subtask_id)
        if kept is not None:
            return kept
        try:
            request = parse_request(json.loads(document or "null"))
            plan = plan_workouts(request)
        except (InvalidRequest, Infeasible, ValueError) as exc:
            raise Refuse(str(exc)) from exc
        self._plans[subtask_id] = (request, plan)
        return request, plan
