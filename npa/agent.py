"""The nutrition planning agent (NPA) as an SDK agent: capability ``meal_plan``.

Theory of operation. Preparing checks the profile (a bad one is a no vote naming the field);
the meal plan itself waits for ``execute``, because it depends on the negotiated parameter the
decision log hands over on commit: the workout plan's weekly energy expenditure
(``weekly_expenditure_kcal``), which raises the energy target. The plan is solved off the event
loop (a mixed-integer program of a few hundred milliseconds), checked by ``npa.checks``
(a plan that breaks a rule fails the subtask), and returned with the expenditure it was built
for, so the session can check that both plans agree. An infeasible profile fails the subtask
with the constraints that conflict.

Knowledge. With a graph store (the embedded default gives each agent its own FalkorDB graph and
ACL user, see ``mca.sdk.Context``) the agent loads the nutrition ontology into its graph and
indexes its candidate foods in its own vector index at start. Planning asks the graph which foods
the profile's strict restrictions rule out (``HAS_ALLERGEN``, ``CONFLICTS_WITH``) and rejects a
plan that holds one, a second opinion beside ``npa.checks``; the negotiated expenditure is
recorded in the graph as a fact shared through the coordinator, with the session as provenance.
``search`` answers questions such as "high-protein breakfast without dairy": ``npa.search`` reads
the allergen, diet, meal and nutrient words, filters in the index and ranks by nutrient per 100 kcal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from knowledge.agent import AgentKnowledge, open_with
from knowledge.facts import SharedFact, record_shared_fact
from mca.sdk import Agent, Assignment, Context, Job, Output, Refuse
from npa.checks import check_meal_plan
from npa.diet import ALLERGENS, PATTERNS
from npa.errors import InvalidProfile
from npa.foods import load_foods
from npa.model import MealPlan
from npa.ontology import load_nutrition
from npa.plan import plan_meals
from npa.pool import candidate_pool
from npa.profile import Profile, parse_profile
from npa.search import food_items, search_foods

EXPENDITURE = "weekly_expenditure_kcal"


class NutritionPlanningAgent(Agent):
    capabilities = ("meal_plan",)

    def __init__(self, agent_id: str = "npa", capacity: int = 2) -> None:
        self.agent_id = agent_id
        self.capacity = capacity
        self.knowledge: AgentKnowledge | None = None

    def setup(self, context: Context) -> None:
        if not context.graph_url:
            return  # planning needs no store; knowledge is what the deployment gives
        knowledge = open_with(self.agent_id, context.graph_url, context.graph_key, context.data_dir)
        load_nutrition(knowledge.graph)  # idempotent: a no-op when this ontology version is loaded
        knowledge.index(food_items(candidate_pool()))  # role and nutrients per 100 kcal ride in the payload
        self.knowledge = knowledge

    def search(
        self, question: str, k: int = 5, exclude_allergens: tuple[str, ...] = (), diets: tuple[str, ...] = ()
    ) -> list[dict[str, object]]:
        """Foods of this agent's pool for ``question`` (see ``npa.search``); the flags add hard filters."""
        if self.knowledge is None:
            raise RuntimeError(f"agent {self.agent_id} runs without a knowledge store")
        hits = search_foods(self.knowledge.search, question, k, exclude_allergens=exclude_allergens, diets=diets)
        return [{"key": h.key, "score": round(h.score, 3), **h.payload} for h in hits]

    def ruled_out(self, profile: Profile) -> set[str]:
        """The foods (NDB numbers) this agent's graph says the strict restrictions exclude."""
        if self.knowledge is None:
            return set()
        strict = profile.strict()
        allergens = sorted(strict & set(ALLERGENS))
        patterns = sorted(strict & set(PATTERNS))
        graph = self.knowledge.graph
        rows = graph.run(
            "MATCH (f:Food)-[:HAS_ALLERGEN]->(a:Allergen) WHERE a.name IN $names RETURN f.ndb_no AS id",
            {"names": allergens},
        )
        rows += graph.run(
            "MATCH (f:Food)-[:CONFLICTS_WITH]->(p:DietaryPattern) WHERE p.name IN $names RETURN f.ndb_no AS id",
            {"names": patterns},
        )
        return {str(r["id"]) for r in rows}

    def offers(self, assignment: Assignment) -> Mapping[str, float]:
        try:
            parse_profile(json.loads(assignment.document or "null"))
        except (InvalidProfile, ValueError) as exc:
            raise Refuse(str(exc)) from exc
        return {}

    async def execute(self, job: Job) -> Output:
        profile = parse_profile(job.document)
        training = job.parameters.get(EXPENDITURE, 0.0)
        job.progress(0.1, f"planning {profile.days} days for {training:.0f} kcal of weekly training")
        plan = await asyncio.to_thread(_plan_and_check, profile, training)
        job.progress(0.9, "plan checked; asking the knowledge graph")
        if self.knowledge is not None:
            await asyncio.to_thread(self._second_opinion, job, profile, plan, training)
        summary = plan.days[0].totals if plan.days else {}
        values = {
            EXPENDITURE: training,
            "meal_kcal_target": plan.targets.energy_kcal,
            "meal_days": float(len(plan.days)),
            "meal_kcal_day_one": float(summary.get("energy_kcal", 0.0)),
        }
        return Output(values, plan.to_dict())

    def _second_opinion(self, job: Job, profile: Profile, plan: MealPlan, training: float) -> None:
        """Ask the graph too, and record the shared expenditure there (runs in a worker thread)."""
        if self.knowledge is None:
            return
        excluded = self.ruled_out(profile)
        planned = {item.ndb_no for day in plan.days for meal in day.meals for item in meal.items}
        clash = sorted(planned & excluded)
        if clash:
            raise RuntimeError(f"the knowledge graph rules out planned foods {clash[:5]} for this profile")
        shared = SharedFact(
            subject=f"session:{job.session_id}",
            predicate="weekly_training_expenditure",
            value=training,
            unit="kcal",
            source_agent="coordinator",
            confidence=0.9,
            session_id=job.session_id,
            provenance=f"negotiated parameter {EXPENDITURE} in the decision log, subtask {job.subtask_id}",
        )
        record_shared_fact(self.knowledge.graph, shared)


def _plan_and_check(profile: Profile, training_kcal_per_week: float) -> MealPlan:
    plan = plan_meals(profile, training_kcal_per_week=training_kcal_per_week)
    violations = check_meal_plan(profile, plan, {f.ndb_no: f for f in load_foods()})
    if violations:
        raise RuntimeError("the meal plan breaks rules: " + "; ".join(str(v) for v in violations[:5]))
    return plan
