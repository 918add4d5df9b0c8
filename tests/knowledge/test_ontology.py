"""The shipped ontologies as loaded in a real graph: hand-picked foods and exercises have the edges the
derivations promise, counts match the data, and loading again (or again with other data) is idempotent."""

from __future__ import annotations

import pytest

from knowledge.graph import FalkorGraph, GraphStore, count_edges, count_nodes
from npa.diet import allergens_of, conflicting_patterns
from npa.foods import load_foods
from npa.ontology import MAIN_NUTRIENTS, load_nutrition
from wpa.exercises import complements, load_exercises, progressions
from wpa.ontology import load_fitness


def related(graph: GraphStore, label: str, key: str, value: str, rel: str, target: str) -> set[str]:
    rows = graph.run(f"MATCH (a:{label} {{{key}: $v}})-[:{rel}]->(b:{target}) RETURN b.name AS name", {"v": value})
    return {str(r["name"]) for r in rows}


def test_every_food_and_exercise_is_a_node(loaded_graph: FalkorGraph) -> None:
    assert count_nodes(loaded_graph, "Food") == len(load_foods()) == 8463
    assert count_nodes(loaded_graph, "Exercise") == len(load_exercises()) == 873
    assert count_nodes(loaded_graph, "FoodGroup") == 25
    assert count_nodes(loaded_graph, "Nutrient") == len(MAIN_NUTRIENTS)
    assert count_nodes(loaded_graph, "DietaryPattern") == 8
    assert count_nodes(loaded_graph, "Level") == 3
    assert count_nodes(loaded_graph, "MuscleGroup") == 17


def test_edge_counts_match_the_derivations(loaded_graph: FalkorGraph) -> None:
    foods, exercises = load_foods(), load_exercises()
    assert count_edges(loaded_graph, "HAS_ALLERGEN") == sum(len(allergens_of(f)) for f in foods)
    food_conflicts = loaded_graph.run("MATCH (:Food)-[r:CONFLICTS_WITH]->() RETURN count(r) AS c")[0]["c"]
    assert food_conflicts == sum(len(conflicting_patterns(f)) for f in foods)
    assert count_edges(loaded_graph, "IN_GROUP") == 8463
    assert count_edges(loaded_graph, "COMPLEMENTS") == len(complements(exercises))
    assert count_edges(loaded_graph, "PROGRESSES_TO") == len(progressions(exercises))
    assert count_edges(loaded_graph, "AT_LEVEL") == 873


@pytest.mark.parametrize(
    ("ndb_no", "allergens", "conflicts"),
    [
        ("01001", {"milk"}, {"vegan", "dairy_free"}),  # Butter, salted
        ("01123", {"egg"}, {"vegan"}),  # Egg, whole, raw, fresh
        ("05062", set(), {"vegetarian", "vegan", "pescatarian"}),  # Chicken breast
        ("15076", {"fish"}, {"vegetarian", "vegan"}),  # Atlantic salmon
        ("16097", {"peanut"}, {"nut_free"}),  # Peanut butter: not milk
        ("12061", {"tree_nut"}, {"nut_free"}),  # Almonds
        ("08120", {"gluten"}, {"gluten_free"}),  # Oats (cross-contact)
        ("10219", set(), {"vegetarian", "vegan", "pescatarian", "halal", "kosher"}),  # Ground pork
        ("11124", set(), set()),  # Carrots
    ],
)
def test_hand_picked_foods_have_their_allergens_and_conflicts(
    loaded_graph: FalkorGraph, ndb_no: str, allergens: set[str], conflicts: set[str]
) -> None:
    assert related(loaded_graph, "Food", "ndb_no", ndb_no, "HAS_ALLERGEN", "Allergen") == allergens
    assert related(loaded_graph, "Food", "ndb_no", ndb_no, "CONFLICTS_WITH", "DietaryPattern") == conflicts


def test_food_groups_and_nutrient_amounts(loaded_graph: FalkorGraph) -> None:
    rows = loaded_graph.run(
        "MATCH (f:Food {ndb_no: '01001'})-[:IN_GROUP]->(g:FoodGroup) RETURN f.name AS name, g.name AS grp"
    )
    assert rows == [{"name": "Butter, salted", "grp": "Dairy and Egg Products"}]
    amounts = loaded_graph.run(
        "MATCH (f:Food {ndb_no: '05062'})-[c:CONTAINS]->(n:Nutrient) RETURN n.key AS k, c.amount_per_100g AS a"
    )
    chicken = {str(r["k"]): float(r["a"]) for r in amounts}
    assert chicken["protein_g"] == 22.5 and chicken["energy_kcal"] == 120.0
    assert set(chicken) <= set(MAIN_NUTRIENTS)


def test_allergens_conflict_with_patterns(loaded_graph: FalkorGraph) -> None:
    assert related(loaded_graph, "Allergen", "name", "milk", "CONFLICTS_WITH", "DietaryPattern") == {
        "vegan",
        "dairy_free",
    }
    assert related(loaded_graph, "Allergen", "name", "wheat", "CONFLICTS_WITH", "DietaryPattern") == {"gluten_free"}


def test_a_planner_query_two_hops_dairy_free_high_protein(loaded_graph: FalkorGraph) -> None:
    rows = loaded_graph.run(
        "MATCH (f:Food)-[c:CONTAINS]->(:Nutrient {key: 'protein_g'}) WHERE c.amount_per_100g > $min "
        "AND NOT (f)-[:CONFLICTS_WITH]->(:DietaryPattern {name: 'dairy_free'}) "
        "AND NOT (f)-[:HAS_ALLERGEN]->(:Allergen {name: 'milk'}) RETURN f.ndb_no AS id",
        {"min": 20.0},
    )
    ids = {str(r["id"]) for r in rows}
    assert "05062" in ids and "15076" not in ids  # chicken breast yes; salmon has 19.84 g
    assert "01009" not in ids  # cheddar (24.9 g protein) is dairy


def test_a_push_exercise_complements_a_pull_exercise(loaded_graph: FalkorGraph) -> None:
    rows = loaded_graph.run(
        "MATCH (a:Exercise {id: $a})-[:COMPLEMENTS]-(b:Exercise) RETURN b.id AS id, a.force AS fa, b.force AS fb",
        {"a": "Barbell_Bench_Press_-_Medium_Grip"},
    )
    partners = {str(r["id"]): (r["fa"], r["fb"]) for r in rows}
    assert partners["Bent_Over_Barbell_Row"] == ("push", "pull")


def test_exercise_targets_requires_and_progressions(loaded_graph: FalkorGraph) -> None:
    roles = loaded_graph.run(
        "MATCH (:Exercise {id: 'Barbell_Squat'})-[t:TARGETS]->(m:MuscleGroup) RETURN m.name AS m, t.role AS role"
    )
    by_role = {(str(r["m"]), str(r["role"])) for r in roles}
    assert ("quadriceps", "primary") in by_role
    assert any(role == "secondary" for _, role in by_role)
    assert related(loaded_graph, "Exercise", "id", "Dumbbell_Lunges", "REQUIRES", "Equipment") == {"dumbbell"}
    harder = loaded_graph.run(
        "MATCH (:Exercise {id: 'Barbell_Squat'})-[:PROGRESSES_TO]->(h:Exercise) RETURN h.id AS id, h.level AS lv"
    )
    assert {"Barbell_Full_Squat"} <= {str(r["id"]) for r in harder}
    assert {str(r["lv"]) for r in harder} == {"intermediate"}


def test_reloading_is_a_no_op_and_forcing_it_changes_no_count(loaded_graph: FalkorGraph) -> None:
    before = (count_nodes(loaded_graph), count_edges(loaded_graph))
    again = load_nutrition(loaded_graph)
    assert not again.loaded
    forced = load_fitness(loaded_graph, force=True)
    assert forced.loaded
    assert (count_nodes(loaded_graph), count_edges(loaded_graph)) == before


def test_a_new_version_replaces_the_old_content(falkor_graph: FalkorGraph) -> None:
    exercises = load_exercises()
    first = load_fitness(falkor_graph, exercises[:100])
    assert first.loaded and count_nodes(falkor_graph, "Exercise") == 100
    second = load_fitness(falkor_graph, exercises[50:120])
    assert second.loaded and second.version != first.version
    assert count_nodes(falkor_graph, "Exercise") == 70  # the 50 no longer shipped are gone, not lingering
    marker = falkor_graph.run("MATCH (o:Ontology {name: 'fitness'}) RETURN o.version AS v")
    assert marker == [{"v": second.version}]
