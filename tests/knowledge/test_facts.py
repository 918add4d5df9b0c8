"""Knowledge transactions: pure merges (confidence wins, plan slots union, conflicts returned) and shared facts
recorded through the versioned write path, including under concurrent writers."""

from __future__ import annotations

import threading

import pytest

from knowledge.errors import BadInput, VersionConflict
from knowledge.facts import (
    Fact,
    PlanItem,
    SharedFact,
    merge_fact,
    merge_plans,
    read_fact,
    record_shared_fact,
    write_fact,
)
from knowledge.graph import FalkorGraph, count_nodes
from knowledge.server import FalkorServer
from tests.knowledge.conftest import agent_graph, new_agent_id


def fact(value: float | str, confidence: float, source: str = "npa", unit: str | None = "kcal") -> Fact:
    return Fact("user:42", "weekly_training_expenditure", value, unit, confidence, source, "s1")


# --- pure merges -------------------------------------------------------------------------------


def test_merge_into_nothing_takes_the_incoming_fact() -> None:
    out = merge_fact(None, fact(2000.0, 0.5))
    assert (out.fact.value, out.changed, out.conflict) == (2000.0, True, None)


def test_higher_confidence_wins_and_the_loser_is_reported() -> None:
    current, incoming = fact(2000.0, 0.5), fact(2400.0, 0.8, "wpa")
    out = merge_fact(current, incoming)
    assert out.fact == incoming and out.changed
    assert out.conflict is not None and out.conflict.kept == incoming and out.conflict.rejected == current


def test_lower_confidence_loses_and_is_still_reported() -> None:
    current, incoming = fact(2000.0, 0.9), fact(2400.0, 0.3, "wpa")
    out = merge_fact(current, incoming)
    assert out.fact == current and not out.changed
    assert out.conflict is not None and out.conflict.rejected == incoming


def test_equal_confidence_keeps_the_value_already_held() -> None:
    current, incoming = fact(2000.0, 0.7), fact(2400.0, 0.7, "wpa")
    out = merge_fact(current, incoming)
    assert out.fact == current and not out.changed
    assert out.conflict is not None and "equal confidence" in out.conflict.reason


def test_agreement_is_not_a_conflict_and_keeps_the_strongest_support() -> None:
    out = merge_fact(fact(2000.0, 0.5), fact(2000.0, 0.9, "wpa"))
    assert (out.fact.confidence, out.changed, out.conflict) == (0.9, True, None)
    out = merge_fact(fact(2000.0, 0.9), fact(2000.0, 0.5, "wpa"))
    assert (out.fact.confidence, out.changed, out.conflict) == (0.9, False, None)


def test_a_different_unit_is_a_conflict_not_an_agreement() -> None:
    out = merge_fact(fact(2000.0, 0.9, unit="kcal"), fact(2000.0, 0.5, unit="kJ"))
    assert out.conflict is not None and out.fact.unit == "kcal"


def test_facts_about_different_things_do_not_merge() -> None:
    with pytest.raises(BadInput):
        merge_fact(fact(1.0, 0.5), Fact("user:43", "weekly_training_expenditure", 1.0, "kcal", 0.5, "npa"))


def test_non_conflicting_plans_merge_and_conflicts_are_returned() -> None:
    ours = [PlanItem(0, "Barbell_Squat", 5, 5), PlanItem(2, "Bent_Over_Barbell_Row", 4, 8)]
    theirs = [
        PlanItem(0, "Barbell_Squat", 5, 5),  # identical: kept once
        PlanItem(1, "Dumbbell_Lunges", 3, 12),  # new slot: merged in
        PlanItem(2, "Bent_Over_Barbell_Row", 3, 10),  # same slot, different prescription: conflict
    ]
    merged = merge_plans(ours, theirs)
    assert [i.slot for i in merged.items] == [
        (0, "Barbell_Squat"),
        (1, "Dumbbell_Lunges"),
        (2, "Bent_Over_Barbell_Row"),
    ]
    assert PlanItem(2, "Bent_Over_Barbell_Row", 4, 8) in merged.items  # ours stays
    assert len(merged.conflicts) == 1
    assert merged.conflicts[0].theirs == PlanItem(2, "Bent_Over_Barbell_Row", 3, 10)
    assert merge_plans(theirs, ours).conflicts[0].ours == PlanItem(2, "Bent_Over_Barbell_Row", 3, 10)


@pytest.mark.parametrize(
    "items", [[PlanItem(7, "X", 3, 8)], [PlanItem(0, "X", 0, 8)], [PlanItem(0, "X", 3, 8), PlanItem(0, "X", 4, 8)]]
)
def test_malformed_plans_are_refused(items: list[PlanItem]) -> None:
    with pytest.raises(BadInput):
        merge_plans(items, [])


# --- sharing through the versioned path ----------------------------------------------------------


@pytest.fixture
def npa_graph(falkor: FalkorServer) -> FalkorGraph:
    return agent_graph(falkor, new_agent_id("npa"))


def test_the_npa_records_the_wpa_weekly_expenditure_with_provenance(npa_graph: FalkorGraph) -> None:
    shared = SharedFact(
        "user:42", "weekly_training_expenditure", 2100.0, "kcal", "wpa", 0.8, "s17", "decision-log entry 1234"
    )
    first = record_shared_fact(npa_graph, shared)
    assert (first.version, first.changed, first.conflict) == (1, True, None)
    stored = read_fact(npa_graph, "user:42", "weekly_training_expenditure")
    assert stored is not None
    assert (stored.fact.value, stored.fact.unit, stored.fact.source_agent) == (2100.0, "kcal", "wpa")
    assert (stored.fact.session_id, stored.fact.provenance, stored.fact.confidence) == (
        "s17",
        "decision-log entry 1234",
        0.8,
    )
    # The same share delivered twice (at-least-once delivery) changes nothing.
    again = record_shared_fact(npa_graph, shared)
    assert (again.version, again.changed) == (1, False)
    # A weaker, different estimate loses, and the conflict comes back to the caller.
    weaker = SharedFact("user:42", "weekly_training_expenditure", 1500.0, "kcal", "wpa", 0.4, "s18")
    lost = record_shared_fact(npa_graph, weaker)
    assert (lost.version, lost.changed) == (1, False)
    assert lost.conflict is not None and lost.conflict.rejected.value == 1500.0
    # A stronger one wins and bumps the version.
    stronger = SharedFact("user:42", "weekly_training_expenditure", 2300.0, "kcal", "wpa", 0.95, "s19")
    won = record_shared_fact(npa_graph, stronger)
    assert (won.version, won.changed, won.fact.value) == (2, True, 2300.0)
    assert won.conflict is not None and won.conflict.rejected.value == 2100.0
    npa_graph.drop()


def test_a_stale_write_changes_nothing(npa_graph: FalkorGraph) -> None:
    write_fact(npa_graph, fact(2000.0, 0.5), 0)
    write_fact(npa_graph, fact(2100.0, 0.6), 1)
    with pytest.raises(VersionConflict):
        write_fact(npa_graph, fact(9999.0, 1.0), 1)
    stored = read_fact(npa_graph, "user:42", "weekly_training_expenditure")
    assert stored is not None and (stored.fact.value, stored.version) == (2100.0, 2)
    npa_graph.drop()


def test_concurrent_writers_lose_no_update(falkor: FalkorServer) -> None:
    """Eight threads each add one to a counter fact through read-modify-write with retries: the total is exact."""
    creds = falkor.create_agent_user(new_agent_id("npa"))
    setup = FalkorGraph.connect(creds.host, creds.port, creds.graph_key, creds.username, creds.password)
    write_fact(setup, Fact("user:42", "counter", 0, None, 1.0, "npa"), 0)
    conflicts: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        graph = FalkorGraph.connect(creds.host, creds.port, creds.graph_key, creds.username, creds.password)
        try:
            for _ in range(10):
                for _attempt in range(200):  # bounded
                    stored = read_fact(graph, "user:42", "counter")
                    if stored is None:
                        raise AssertionError("counter vanished")
                    current = stored.fact.value
                    if not isinstance(current, int):
                        raise AssertionError(f"counter is {current!r}")
                    try:
                        write_fact(graph, Fact("user:42", "counter", current + 1, None, 1.0, "npa"), stored.version)
                        break
                    except VersionConflict:
                        conflicts.append(1)
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            graph.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    stored = read_fact(setup, "user:42", "counter")
    assert stored is not None and (stored.fact.value, stored.version) == (80, 81)
    assert conflicts, "eight threads on one key should have collided at least once"
    assert count_nodes(setup, "Fact") == 1
    setup.drop()
    setup.close()
