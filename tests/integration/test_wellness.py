"""The coordinated wellness task through gRPC on real components: the MCA plans it into a
workout subtask and a meal subtask, runs the two-phase protocol with the real WPA and NPA
agents, negotiates the workout's weekly energy into the meal plan (recorded in the decision log),
and completes only with both plans consistent; the plans land in the read model (real
SecantusDB) as ``workout_plans`` and ``meal_plans`` with their events, where the wellness
plugin (``wellness.tasks``) routes them. Bad profiles are
rejected at the boundary naming the field; an infeasible request fails the session and releases
both reservations."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from knowledge.facts import read_fact
from knowledge.graph import FalkorGraph
from knowledge.server import FalkorServer
from mca.catalog import CATALOG
from mca.embedded import EmbeddedCluster
from mca.sdk import RequestRejected, Session
from mca.stores import StoreProcess
from npa.agent import NutritionPlanningAgent
from npa.checks import check_meal_plan
from npa.foods import load_foods
from npa.model import MealPlan
from npa.profile import parse_profile
from tests.integration.conftest import database_url
from wellness.tasks import WELLNESS_PLAN
from wpa.agent import WorkoutPlanningAgent

PROFILES = Path(__file__).resolve().parents[2] / "examples" / "profiles"


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, documents: StoreProcess, redis_server: FalkorServer
) -> Iterator[EmbeddedCluster]:
    agents = [WorkoutPlanningAgent("wpa-1"), NutritionPlanningAgent("npa-1")]
    url = database_url(documents, "wellness_test")
    data = str(tmp_path_factory.mktemp("wellness"))
    # Each agent gets its own graph and ACL user on the real FalkorDB server, loads its ontology
    # and embeds its items with the real model before it registers.
    # The task type comes from its plugin, as cluster.yaml's task_type_plugins gives it to `mca up`.
    catalog = {**CATALOG, WELLNESS_PLAN.name: WELLNESS_PLAN}
    with EmbeddedCluster(data, agents, documents_url=url, graphs=redis_server, catalog=catalog) as c:
        deadline = time.monotonic() + 20
        while not ((leader := c.leader()) is not None and len(leader.ledger.agents) == 2):
            if time.monotonic() > deadline:
                raise AssertionError("the cluster did not elect a leader and register both agents")
            time.sleep(0.05)
        yield c


def submit(cluster: EmbeddedCluster, payload: dict[str, Any], key: str) -> Session:
    async def main() -> Session:
        async with cluster.client() as client:
            return await client.submit("wellness_plan", payload, key=key, wait=True)

    return asyncio.run(main())


def test_a_vegan_with_a_peanut_allergy_gets_both_plans_built_on_one_energy_figure(cluster: EmbeddedCluster) -> None:
    payload = json.loads((PROFILES / "vegan_peanut_allergy.json").read_text())
    session = submit(cluster, payload, "wellness-vegan")
    assert session.state == "completed", session
    negotiated = session.parameters["weekly_expenditure_kcal"]
    assert negotiated > 0
    plans = {d["kind"]: d for d in session.documents.values()}
    assert set(plans) == {"meal_plan", "workout_plan"}
    # The meal plan was built for the workout plan's energy, as the decision log recorded it.
    assert plans["meal_plan"]["training_kcal_per_week"] == negotiated
    assert round(plans["workout_plan"]["weekly_expenditure_kcal"]) == negotiated
    # Checked again here, independently of the agent: no peanut, nothing animal, calories in range.
    profile = parse_profile(payload["profile"])
    meal_plan = MealPlan.from_dict(plans["meal_plan"])
    assert check_meal_plan(profile, meal_plan, {f.ndb_no: f for f in load_foods()}) == []


def test_the_plans_are_in_the_read_model_with_their_events(cluster: EmbeddedCluster) -> None:
    payload = json.loads((PROFILES / "bodyweight_knee.json").read_text())
    session = submit(cluster, payload, "wellness-knee")
    assert session.state == "completed", session
    leader = cluster.leader()
    assert leader is not None and leader.read_model is not None and leader.log is not None
    model, log = leader.read_model, leader.log
    deadline = time.monotonic() + 20
    while model.checkpoint < log.applied_index and time.monotonic() < deadline:
        time.sleep(0.05)
    meals = cluster.run(model.results_of(session.session_id, "meal_plans"))
    workouts = cluster.run(model.results_of(session.session_id, "workout_plans"))
    assert len(meals) == 1 and len(workouts) == 1
    assert meals[0]["document"] == session.documents[meals[0]["_id"]]
    assert workouts[0]["document"]["goal"] == "fat_loss"
    names = [e["event"] for e in cluster.run(model.events_of(session.session_id))]
    assert {"MealPlanGenerated", "WorkoutPlanGenerated", "ParametersNegotiated", "TaskCompleted"} <= set(names)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p["profile"].update(age=7), "payload.profile.age"),
        (lambda p: p["profile"].update(restrictions=[{"name": "peanut", "type": "allergy", "severity": "lots"}]),
         "payload.profile.restrictions[0].severity"),
        (lambda p: p["training"].update(days_per_week=9), "payload.training.days_per_week"),
        (lambda p: p["training"].update(equipment=["jetpack"]), "payload.training.equipment[0]"),
        (lambda p: p.pop("training"), "payload.training"),
        (lambda p: p.update(extra=1), "payload.extra"),
    ],
)  # fmt: skip
def test_bad_profiles_are_rejected_naming_the_field(cluster: EmbeddedCluster, change: Any, field: str) -> None:
    payload = json.loads((PROFILES / "vegan_peanut_allergy.json").read_text())
    change(payload)
    leader = cluster.leader()
    assert leader is not None and leader.log is not None
    before = leader.log.applied_index
    with pytest.raises(RequestRejected) as caught:
        submit(cluster, payload, f"wellness-bad-{field}")
    assert caught.value.code == "INVALID_ARGUMENT" and caught.value.message.startswith(field), caught.value
    assert leader.log.applied_index == before  # nothing appended


def test_an_infeasible_workout_fails_the_session_and_releases_both(cluster: EmbeddedCluster) -> None:
    payload = json.loads((PROFILES / "vegan_peanut_allergy.json").read_text())
    payload["training"].update(days_per_week=1, session_minutes=15)  # too short to train every group
    session = submit(cluster, payload, "wellness-infeasible")
    assert session.state == "failed", session
    assert "wpa-1" in session.reason or "workout" in session.reason, session.reason
    # Both agents get their release (the session settles) and hold nothing for it any more.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        leader = cluster.leader()
        reserved = [h.participant.reserved() for h in cluster.hosts if h.participant is not None]
        if leader is not None and leader.ledger.load() == {} and reserved == [0, 0]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"reservations left: MCA view {leader and leader.ledger.load()}, agents {reserved}")


def agent(cluster: EmbeddedCluster, agent_id: str) -> Any:
    return next(h.agent for h in cluster.hosts if h.agent.agent_id == agent_id)


def test_the_negotiated_expenditure_is_a_shared_fact_in_the_npas_own_graph(
    cluster: EmbeddedCluster, redis_server: FalkorServer
) -> None:
    payload = json.loads((PROFILES / "halal_strength.json").read_text())
    session = submit(cluster, payload, "wellness-fact")
    assert session.state == "completed", session
    graph = FalkorGraph.connect(redis_server.host, redis_server.port, "kg:npa-1", password=redis_server.admin_password)
    try:
        stored = read_fact(graph, f"session:{session.session_id}", "weekly_training_expenditure")
    finally:
        graph.close()
    assert stored is not None
    assert stored.fact.value == session.parameters["weekly_expenditure_kcal"] and stored.fact.unit == "kcal"
    assert stored.fact.session_id == session.session_id and "decision log" in (stored.fact.provenance or "")


def test_people_and_planners_can_search_the_agents_knowledge(cluster: EmbeddedCluster) -> None:
    npa = agent(cluster, "npa-1")
    foods = npa.search("high-protein breakfast without dairy", k=5, exclude_allergens=("milk",))
    assert len(foods) == 5 and all("milk" not in f["allergens"] for f in foods), foods
    wpa = agent(cluster, "wpa-1")
    moves = wpa.search("leg exercise with dumbbells", k=5, equipment=("dumbbell",))
    assert len(moves) == 5 and all(m["equipment"] == ["dumbbell"] or "dumbbell" in m["equipment"] for m in moves)
    # The graph's own answer agrees with the checker's derivation for a strict peanut allergy.
    profile = parse_profile({"sex": "female", "age": 30, "height_cm": 165, "weight_kg": 60, "restrictions": ["peanut"]})
    ruled_out = npa.ruled_out(profile)
    peanut_butter = next(f.ndb_no for f in load_foods() if f.description.lower().startswith("peanut butter"))
    assert peanut_butter in ruled_out
