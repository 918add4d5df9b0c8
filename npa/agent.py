"""The nutrition planning agent (NPA) as an SDK agent: capability ``meal_plan``.

Theory of operation. Preparing checks the profile (a bad one is a no vote naming the field);
the meal plan itself waits for ``execute``, because it depends on the negotiated parameter the
decision log hands over on commit: the workout plan's weekly energy expenditure
(``weekly_expenditure_kcal``), which raises the energy target. The plan is solved off the event
loop (a mixed-integer program of a few hundred milliseconds), checked by ``npa.checks``
(a plan that breaks a rule fails the subtask), and returned with the expenditure it was built
for, so the session can check that both plans agree. An infeasible profile fails the subtask
with the constraints that conflict.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from mca.sdk import Agent, Assignment, Job, Output, Refuse
from npa.checks import check_meal_plan
from npa.errors import InvalidProfile
from npa.foods import load_foods
from npa.model import MealPlan
from npa.plan import plan_meals
from npa.profile import Profile, parse_profile

EXPENDITURE = "weekly_expenditure_kcal"


class NutritionPlanningAgent(Agent):
    capabilities = ("meal_plan",)

    def __init__(self, agent_id: str = "npa", capacity: int = 2) -> None:
        self.agent_id = agent_id
        self.capacity = capacity

    def offers(self, assignment: Assignment) -> Mapping[str, float]:
        try:
            parse_profile(json.loads(assignment.document or "null"))
        except (InvalidProfile, ValueError) as exc:
            raise Refuse(str(exc)) from exc
        return {}

    async def execute(self, job: Job) -> Output:
        profile = parse_profile(job.document)
        training = job.parameters.get(EXPENDITURE, 0.0)
        plan = await asyncio.to_thread(_plan_and_check, profile, training)
        summary = plan.days[0].totals if plan.days else {}
        values = {
            EXPENDITURE: training,
            "meal_kcal_target": plan.targets.energy_kcal,
            "meal_days": float(len(plan.days)),
            "meal_kcal_day_one": float(summary.get("energy_kcal", 0.0)),
        }
        return Output(values, plan.to_dict())


def _plan_and_check(profile: Profile, training_kcal_per_week: float) -> MealPlan:
    plan = plan_meals(profile, training_kcal_per_week=training_kcal_per_week)
    violations = check_meal_plan(profile, plan, {f.ndb_no: f for f in load_foods()})
    if violations:
        raise RuntimeError("the meal plan breaks rules: " + "; ".join(str(v) for v in violations[:5]))
    return plan
