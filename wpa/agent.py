"""The workout planning agent (WPA) as an SDK agent: capability ``workout_plan``.

Theory of operation. When asked to prepare a subtask it plans at once (the planner is pure and
takes milliseconds): a request it cannot satisfy is a no vote naming the conflicting rules
(``Refuse``), a plan is kept for the subtask and its weekly energy expenditure is offered to the
session's negotiation: the net figure, (MET - 1) x kg x h, since the meal plan's BMR already
counts the resting energy of those hours. The coordinator records the offer in the decision log and gives it to the
meal-planning agent, which plans against it. ``execute`` returns the kept plan (or plans again,
deterministically, after a restart), checked by ``wpa.checks`` first: a plan that breaks a rule
fails the subtask instead of reaching the user.

Knowledge. With a graph store the agent loads the fitness ontology into its own graph and
indexes the exercises in its own vector index at start; ``search`` answers questions such as
"knee-friendly leg exercise with dumbbells": ``wpa.search`` turns muscle, equipment, level and
category words into filters applied in the index and boosts the movement asked for ("curl").
Before a plan leaves the agent, its graph confirms that no planned exercise
``REQUIRES`` equipment the person does not have (a second opinion beside ``wpa.checks``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from knowledge.agent import AgentKnowledge, open_with
from mca.sdk import Agent, Assignment, Context, Job, Output, Refuse
from wpa.checks import check_workout_plan
from wpa.errors import Infeasible, InvalidRequest
from wpa.exercises import load_exercises
from wpa.model import WorkoutPlan
from wpa.ontology import load_fitness
from wpa.plan import plan_workouts
from wpa.request import WorkoutRequest, parse_request
from wpa.search import exercise_items, search_exercises

#: The negotiated parameter: the plan's weekly training energy net of rest, rounded to whole
#: kcal so that both agents report exactly the same figure.
EXPENDITURE = "weekly_expenditure_kcal"
#: Plans made at prepare and kept for execute; the oldest go first (a plan dropped too early is
#: made again, deterministically, by execute).
PLANS_KEPT_MAX = 256


class WorkoutPlanningAgent(Agent):
    capabilities = ("workout_plan",)

    def __init__(self, agent_id: str = "wpa", capacity: int = 4) -> None:
        self.agent_id = agent_id
        self.capacity = capacity
        self._plans: dict[str, tuple[WorkoutRequest, WorkoutPlan]] = {}
        self.knowledge: AgentKnowledge | None = None

    def setup(self, context: Context) -> None:
        if not context.graph_url:
            return
        knowledge = open_with(self.agent_id, context.graph_url, context.graph_key, context.data_dir)
        load_fitness(knowledge.graph)
        knowledge.index(exercise_items(load_exercises()))  # mechanic and force ride in the payload
        self.knowledge = knowledge

    def search(
        self,
        question: str,
        k: int = 5,
        equipment: tuple[str, ...] = (),
        muscles: tuple[str, ...] = (),
        levels: tuple[str, ...] = (),
    ) -> list[dict[str, object]]:
        """Exercises for ``question`` (see ``wpa.search``); the flags add hard filters."""
        if self.knowledge is None:
            raise RuntimeError(f"agent {self.agent_id} runs without a knowledge store")
        hits = search_exercises(self.knowledge.search, question, k, equipment=equipment, muscles=muscles, levels=levels)
        return [{"key": h.key, "score": round(h.score, 3), **h.payload} for h in hits]

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
        missing = await asyncio.to_thread(self.needs_missing_equipment, request, plan)
        if missing:
            raise RuntimeError(f"the knowledge graph says {missing[:5]} need equipment the person lacks")
        sessions = sum(len(w.sessions) for w in plan.weeks)
        values = {EXPENDITURE: float(round(plan.weekly_expenditure_kcal)), "workout_sessions": float(sessions)}
        return Output(values, plan.to_dict())

    def needs_missing_equipment(self, request: WorkoutRequest, plan: WorkoutPlan) -> list[str]:
        """Planned exercises whose ``REQUIRES`` edge in this agent's graph names unavailable equipment."""
        if self.knowledge is None:
            return []
        ids = sorted({e.id for w in plan.weeks for s in w.sessions for e in s.exercises})
        rows = self.knowledge.graph.run(
            "MATCH (e:Exercise)-[:REQUIRES]->(q:Equipment) WHERE e.id IN $ids AND NOT q.name IN $have "
            "RETURN e.id AS id",
            {"ids": ids, "have": sorted(request.equipment)},
        )
        return sorted(str(r["id"]) for r in rows)

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
        while len(self._plans) > PLANS_KEPT_MAX:  # plans of sessions that aborted are never executed
            del self._plans[next(iter(self._plans))]
        return request, plan
