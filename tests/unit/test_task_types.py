"""Task types as plugins: a third task type, from a plugin module named in cluster.yaml
(``tests/plugins/heating.py``, the example of docs/task-types.md), is accepted at the boundary,
its results go to its own collection under its own event in the pure projection and read as it
renders them, all without a line of it in ``mca``; a bad plugin entry is a ``ConfigError``
naming the entry; the shipped cluster.yaml gets the wellness plan from its plugin, with the
collections stored data has always used."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mca.catalog import CATALOG, RESERVED_COLLECTIONS, render_result, result_routes, task_from_request
from mca.commands import render_document
from mca.config import ClusterConfig, ConfigError, load
from mca.projection import OWN_COLLECTIONS, result_documents, session_document, session_events
from mca.readmodel import ReadModel
from mca.sdk import Session
from protocol.entries import Accepted, Decided, Finished, Planned, Registered, Settled
from protocol.errors import InvalidTask
from protocol.ledger import Ledger, SessionRecord
from protocol.model import Assignment, Decision, Outcome
from tests.plugins import heating
from tests.unit.test_config import GOOD
from wellness.tasks import WELLNESS_PLAN

ROOT = Path(__file__).resolve().parents[2]
HEATING = "tests.plugins.heating:TASK_TYPES"
ROOMS = {"rooms": {"kitchen": 21, "bedroom": 18.5}}
#: What a heating agent returns for ROOMS.
SCHEDULE = {"rooms": {"kitchen": {"from": "06:00", "celsius": 21}, "bedroom": {"from": "21:00", "celsius": 18.5}}}


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The loader puts the folder of cluster.yaml on the import path: keep that to one test."""
    monkeypatch.setattr(sys, "path", [*sys.path])
    yield
    sys.modules.pop("neighbour_plugins", None)


def with_plugins(folder: Path, *entries: str, extra: str = "") -> ClusterConfig:
    (folder / "cluster.yaml").write_text(GOOD + f"task_type_plugins: {json.dumps(list(entries))}\n" + extra)
    return load(folder / "cluster.yaml")


def test_a_plugin_task_type_joins_the_built_in_ones_and_is_checked_at_the_boundary(tmp_path: Path) -> None:
    catalog = with_plugins(tmp_path, HEATING).catalog
    assert set(catalog) == {"echo", "echo_pair", "heating_schedule"}
    assert catalog["heating_schedule"] is heating.HEATING_SCHEDULE
    task = task_from_request("heating_schedule", json.dumps(ROOMS), (), catalog)
    assert [s.capability for s in task.subtasks] == ["heating"]
    assert json.loads(task.subtasks[0].document) == ROOMS
    assert task.success_criteria == ("all_subtasks_ok", "documents_present")  # the plugin's defaults
    with pytest.raises(InvalidTask) as caught:
        task_from_request("heating_schedule", json.dumps({"rooms": {"kitchen": 40}}), (), catalog)
    assert caught.value.field == "payload.rooms.kitchen"
    # A cluster without the plugin does not know the task type.
    with pytest.raises(InvalidTask, match="unknown task type 'heating_schedule'"):
        task_from_request("heating_schedule", json.dumps(ROOMS), (), CATALOG)
    # The attribute may be one task type rather than a list of them.
    single = with_plugins(tmp_path, "tests.plugins.heating:HEATING_SCHEDULE").catalog
    assert single["heating_schedule"] is heating.HEATING_SCHEDULE


def heated(task_type: str = "heating_schedule") -> SessionRecord:
    """A completed session of one ``heating`` subtask whose result carries SCHEDULE."""
    task = task_from_request(task_type, json.dumps(ROOMS), (), {**CATALOG, **{t.name: t for t in heating.TASK_TYPES}})
    ledger = Ledger()
    for entry in (
        Registered("heater-1", ("heating",), 2, 1),
        Accepted("k1", task),
        Planned("s1", (Assignment("s1.0", "heater-1", "heating", 1),)),
        Decided("s1", Decision.COMMIT, incarnations=(("heater-1", 1),)),
        Finished("s1", "s1.0", Outcome(True, document=json.dumps(SCHEDULE))),
        Settled("s1"),
    ):
        ledger.apply(entry)
    return ledger.sessions["s1"]


def test_its_results_go_to_its_collection_under_its_event_in_the_pure_projection(tmp_path: Path) -> None:
    routes = result_routes(with_plugins(tmp_path, HEATING).catalog)
    assert routes == {"heating": ("heating_schedules", "HeatingScheduled")}
    record = heated()
    ((collection, document),) = result_documents(record, routes)
    assert collection == "heating_schedules"
    assert (document["_id"], document["capability"], json.loads(document["document"])) == ("s1.0", "heating", SCHEDULE)
    assert "HeatingScheduled" in [e["event"] for e in session_events(record, routes)]
    assert session_document(record, routes)["results"]["s1.0"]["document"] == "heating_schedules"
    # Where no task type names the capability: the runtime's catch-all, as before plugins.
    assert [c for c, _ in result_documents(record, {})] == ["results"]
    assert "ResultRecorded" in [e["event"] for e in session_events(record, {})]
    assert "HeatingScheduled" not in [e["event"] for e in session_events(record, {})]


def test_the_read_model_takes_its_routes_from_the_catalog_it_is_given(tmp_path: Path) -> None:
    catalog = with_plugins(tmp_path, HEATING).catalog
    model = ReadModel("mongodb://127.0.0.1:1/unused", threading.RLock(), catalog)  # connects lazily: never here
    assert model.routes == {"heating": ("heating_schedules", "HeatingScheduled")}
    assert {"heating_schedules", "results", *OWN_COLLECTIONS} == set(model.collections)
    assert ReadModel("mongodb://127.0.0.1:1/unused", threading.RLock()).routes == {}
    # What a plugin may not use is exactly the read model's own collections.
    assert set(OWN_COLLECTIONS) == RESERVED_COLLECTIONS


def test_its_results_render_through_the_registry(tmp_path: Path) -> None:
    catalog = with_plugins(tmp_path, HEATING).catalog
    session = Session(
        "s1",
        "completed",
        documents={"s1.0": SCHEDULE, "s1.1": {"value": 2}},
        capabilities={"s1.0": "heating", "s1.1": "echo"},
    )
    assert render_document(session, "s1.0", catalog) == "bedroom: 18.5 °C from 21:00\nkitchen: 21 °C from 06:00"
    assert json.loads(render_document(session, "s1.1", catalog)) == {"value": 2}  # no renderer: JSON
    assert json.loads(render_document(session, "s1.0", CATALOG)) == SCHEDULE  # a cluster without the plugin
    # A document the renderer cannot read (it comes from an agent) is shown as JSON, with why.
    text = render_result(catalog, "heating", {"rooms": {"hall": {}}})
    assert text.startswith("(not readable as heating: KeyError") and json.loads(text.partition("\n")[2])


NEIGHBOUR = """
from mca.tasks import ResultKind, SubtaskSpec, TaskType


def plan(payload):
    return (SubtaskSpec("heating"),)


ECHO = TaskType("echo", "named like a built-in task type", plan)
NOT_A_TASK_TYPE = "heating_schedule"
NONE = []
OWN_COLLECTION = TaskType("x", "results in the read model's own", plan, results={"heating": ResultKind("events", "X")})
BAD_CRITERIA = TaskType("y", "a criterion the protocol does not know", plan, ("sometimes",))
OTHER_ROUTE = TaskType("z", "heating results elsewhere", plan, results={"heating": ResultKind("heat", "Heated")})
"""
#: A plugin entry and the start of the error it gives (each names the entry by its index).
BAD_ENTRIES = [
    (["nowhere.at_all:TASK_TYPES"], "task_type_plugins[0]: cannot import module 'nowhere.at_all'"),
    (["tests.plugins.heating:NOPE"], "task_type_plugins[0]: module 'tests.plugins.heating' has no attribute 'NOPE'"),
    (["tests.plugins.heating"], "task_type_plugins[0]: 'tests.plugins.heating' is not module:attribute"),
    (
        [HEATING, "tests.plugins.heating:HEATING_SCHEDULE"],
        "task_type_plugins[1]: tests.plugins.heating:HEATING_SCHEDULE declares task type 'heating_schedule', "
        "which task_type_plugins[0] (tests.plugins.heating:TASK_TYPES) declares too",
    ),
    (["neighbour_plugins:ECHO"], "task_type_plugins[0]: neighbour_plugins:ECHO declares task type 'echo', which is"),
    (["neighbour_plugins:NOT_A_TASK_TYPE"], "task_type_plugins[0]: neighbour_plugins:NOT_A_TASK_TYPE: is str, not"),
    (["neighbour_plugins:NONE"], "task_type_plugins[0]: neighbour_plugins:NONE holds no task type"),
    (
        ["neighbour_plugins:OWN_COLLECTION"],
        "task_type_plugins[0]: neighbour_plugins:OWN_COLLECTION: task type 'x': results['heating'].collection: "
        "'events' is one of the read model's own",
    ),
    (
        ["neighbour_plugins:BAD_CRITERIA"],
        "task_type_plugins[0]: neighbour_plugins:BAD_CRITERIA: task type 'y': default_criteria: unknown criterion",
    ),
    (
        [HEATING, "neighbour_plugins:OTHER_ROUTE"],
        "task_type_plugins: task types 'heating_schedule' and 'z' put the results of capability 'heating' in",
    ),
]


@pytest.mark.parametrize(("entries", "error"), BAD_ENTRIES)
@pytest.mark.usefixtures("isolated_imports")
def test_a_bad_plugin_entry_is_a_config_error_naming_it(tmp_path: Path, entries: list[str], error: str) -> None:
    # A plugin may live next to cluster.yaml, as an agent may: its folder is on the import path.
    (tmp_path / "neighbour_plugins.py").write_text(NEIGHBOUR)
    with pytest.raises(ConfigError) as caught:
        with_plugins(tmp_path, *entries)
    assert str(caught.value).startswith(error), caught.value


def test_a_simple_task_type_may_not_take_a_plugins_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"task_types\.heating_schedule: is built in or a plugin's"):
        with_plugins(tmp_path, HEATING, extra="task_types:\n  heating_schedule: [heating]\n")


def test_the_shipped_cluster_yaml_gets_the_wellness_plan_from_its_plugin() -> None:
    catalog = load(ROOT / "cluster.yaml").catalog
    assert catalog["wellness_plan"] is WELLNESS_PLAN
    # The collections and events the read model has always used: stored data stays valid.
    assert result_routes(catalog) == {
        "meal_plan": ("meal_plans", "MealPlanGenerated"),
        "workout_plan": ("workout_plans", "WorkoutPlanGenerated"),
    }


def test_the_docs_show_the_plugin_these_tests_load() -> None:
    docs = (ROOT / "docs" / "task-types.md").read_text()
    source = (ROOT / "tests" / "plugins" / "heating.py").read_text()
    assert f"```python\n{source}```" in docs, "docs/task-types.md must show tests/plugins/heating.py as it is"
