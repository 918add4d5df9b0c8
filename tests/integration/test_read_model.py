"""The durable read model agrees with the decision log: every session, plan, decision, result and
event the log holds is in the document store (real SecantusDB, through PyMongo's async client),
unique indexes hold, and a read model that fell behind is rebuilt from the log by a new leader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from mca.embedded import EmbeddedCluster
from mca.readmodel import ReadModel, session_document, session_events
from mca.replica import Replica
from mca.sdk import Agent, Client, Job, Output, Session
from mca.stores import StoreProcess
from tests.integration.conftest import database_url


class Echo(Agent):
    capabilities = ("echo",)
    capacity = 8

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id

    async def execute(self, job: Job) -> Mapping[str, float] | Output:
        if job.inputs.get("fail"):
            raise RuntimeError("asked to fail")
        value = 2 * job.inputs.get("value", 0.0)
        if job.inputs.get("with_document"):
            return Output({"value": value}, {"doubled": value, "by": self.agent_id, "subtask": job.subtask_id})
        return {"value": value}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, documents: StoreProcess) -> Iterator[EmbeddedCluster]:
    url = database_url(documents, "read_model_test")
    data = tmp_path_factory.mktemp("cluster")
    with EmbeddedCluster(str(data), [Echo("echo-1"), Echo("echo-2")], documents_url=url) as c:
        wait_for(lambda: (leader := c.leader()) is not None and len(leader.ledger.agents) == 2, "leader and agents")
        yield c


def wait_for(condition: Any, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def submit_all(cluster: EmbeddedCluster, tasks: list[tuple[str, str, dict[str, float]]]) -> None:
    async def main() -> None:
        async with Client(cluster.task_addresses) as client:
            await asyncio.gather(*(client.submit(t, p, key=k, wait=True) for k, t, p in tasks))

    asyncio.run(main())


def caught_up(cluster: EmbeddedCluster) -> Replica:
    """The leader, once its read model has written everything its log holds."""
    leader = cluster.leader()
    assert leader is not None and leader.read_model is not None and leader.log is not None
    log, model = leader.log, leader.read_model
    wait_for(lambda: model.checkpoint >= log.applied_index and not model.error, "the read model to catch up")
    return leader


def stored(cluster: EmbeddedCluster, leader: Replica) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]], int]:
    model = leader.read_model
    assert model is not None

    async def read() -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]], int]:
        sessions = await model.sessions()
        events = {sid: await model.events_of(sid) for sid in sessions}
        return sessions, events, await model.stored_checkpoint()

    return cluster.run(read())


def assert_agrees_with_log(cluster: EmbeddedCluster, leader: Replica) -> None:
    sessions, events, checkpoint = stored(cluster, leader)
    ledger = leader.ledger
    assert leader.log is not None and checkpoint >= leader.log.applied_index
    assert set(sessions) == set(ledger.sessions)
    for session_id, record in ledger.sessions.items():
        assert sessions[session_id] == session_document(record), session_id
        by_id = sorted(session_events(record), key=lambda e: str(e["_id"]))
        assert sorted(events[session_id], key=lambda e: str(e["_id"])) == by_id, session_id


def test_every_session_and_event_is_in_the_read_model(cluster: EmbeddedCluster) -> None:
    tasks = [(f"rm-{i}", "echo_pair", {"value": float(i)}) for i in range(20)]
    tasks.append(("rm-fail", "echo_pair", {"fail": 1.0}))
    submit_all(cluster, tasks)
    leader = caught_up(cluster)
    assert_agrees_with_log(cluster, leader)
    sessions, events, _ = stored(cluster, leader)
    done = next(d for d in sessions.values() if d["idempotency_key"] == "rm-3")
    assert done["state"] == "completed" and done["decision"] == "commit"
    assert [r["output"] for r in done["results"].values()] == [{"value": 6.0}, {"value": 6.0}]
    assert {v["agent_id"] for v in done["votes"]} == {"echo-1", "echo-2"}
    names = [e["event"] for e in events[done["_id"]]]
    assert names[:2] == ["TaskAccepted", "CoordinationStarted"] and "TaskCompleted" in names
    failed = next(d for d in sessions.values() if d["idempotency_key"] == "rm-fail")
    assert failed["state"] == "failed" and "asked to fail" in failed["reason"]
    assert "TaskFailed" in [e["event"] for e in events[failed["_id"]]]


def test_a_result_document_is_kept_once_per_subtask(cluster: EmbeddedCluster) -> None:
    async def main() -> Session:
        async with Client(cluster.task_addresses) as client:
            return await client.submit("echo_pair", {"value": 4, "with_document": 1}, key="rm-doc", wait=True)

    session = asyncio.run(main())
    assert session.state == "completed", session
    assert sorted(d["doubled"] for d in session.documents.values()) == [8.0, 8.0]
    leader = caught_up(cluster)
    model = leader.read_model
    assert model is not None
    stored = cluster.run(model.results_of(session.session_id, "results"))
    assert [d["_id"] for d in stored] == sorted(session.documents)
    assert all(d["document"] == session.documents[d["_id"]] for d in stored)
    names = [e["event"] for e in cluster.run(model.events_of(session.session_id))]
    assert names.count("ResultRecorded") == 2 and names.count("TaskCompleted") == 1
    assert_agrees_with_log(cluster, leader)


def test_agents_and_their_registrations_are_recorded(cluster: EmbeddedCluster) -> None:
    leader = caught_up(cluster)
    model = leader.read_model
    assert model is not None
    agents = cluster.run(model.agents())
    assert set(agents) == {"echo-1", "echo-2"}
    assert agents["echo-1"]["capabilities"] == ["echo"] and agents["echo-1"]["capacity"] == 8
    registered = cluster.run(model.events_of("agent:echo-1"))
    assert [e["event"] for e in registered] == ["AgentRegistered"]
    assert registered[0]["seq"] == leader.ledger.agents["echo-1"].incarnation


def test_unique_indexes_refuse_a_second_session_with_the_same_key(
    cluster: EmbeddedCluster, documents: StoreProcess
) -> None:
    submit_all(cluster, [("rm-unique", "echo", {"value": 1.0})])
    caught_up(cluster)

    async def insert_twin() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_url(documents, "read_model_test"))
        try:
            db = client.get_default_database()
            await db["coordination_sessions"].insert_one({"_id": "twin", "idempotency_key": "rm-unique"})
        finally:
            await client.close()

    with pytest.raises(DuplicateKeyError):
        cluster.run(insert_twin())


def test_a_late_write_of_an_older_version_changes_nothing(cluster: EmbeddedCluster) -> None:
    """A deposed leader flushing late must not overwrite what its successor wrote."""
    submit_all(cluster, [("rm-late", "echo", {"value": 2.0})])
    leader = caught_up(cluster)
    model = leader.read_model
    assert model is not None
    session_id = leader.ledger.by_key["rm-late"]
    current = session_document(leader.ledger.sessions[session_id])
    older = current | {"version": 2, "state": "negotiating"}
    cluster.run(model._write_versioned("coordination_sessions", [older]))
    sessions, _, _ = stored(cluster, leader)
    assert sessions[session_id] == current


def test_a_new_leader_rebuilds_a_read_model_that_fell_behind(cluster: EmbeddedCluster) -> None:
    submit_all(cluster, [(f"rm-rebuild-{i}", "echo", {"value": float(i)}) for i in range(5)])
    leader = caught_up(cluster)
    model = leader.read_model
    assert model is not None
    lost = leader.ledger.by_key["rm-rebuild-0"]

    async def lose_documents(m: ReadModel) -> None:
        # The store lost writes (say, restored from an old backup): a session is gone and the
        # checkpoint is behind. Only the log can say what is missing.
        await m._db["coordination_sessions"].delete_one({"_id": lost})
        await m._db["events"].delete_many({"session_id": lost})
        await m._db["meta"].update_one({"_id": "checkpoint"}, {"$set": {"applied": 1}})

    cluster.run(lose_documents(model))
    cluster.stop_replica(leader)
    wait_for(lambda: cluster.leader() is not None, "a new leader")
    new_leader = caught_up(cluster)
    assert new_leader is not leader
    assert_agrees_with_log(cluster, new_leader)
    sessions, _, _ = stored(cluster, new_leader)
    assert sessions[lost]["state"] == "completed"


def test_a_cluster_started_afresh_on_an_old_store_rebuilds_it(
    tmp_path_factory: pytest.TempPathFactory, documents: StoreProcess
) -> None:
    """Session ids restart at s1 in a new log: the old projection must not survive beside it."""
    url = database_url(documents, "read_model_afresh")

    def run_cluster(keys: list[str]) -> dict[str, Any]:
        data = tmp_path_factory.mktemp("afresh")
        with EmbeddedCluster(str(data), [Echo("echo-1"), Echo("echo-2")], documents_url=url) as c:
            wait_for(lambda: (leader := c.leader()) is not None and len(leader.ledger.agents) == 2, "agents")
            submit_all(c, [(k, "echo", {"value": 1.0}) for k in keys])
            leader = caught_up(c)
            sessions, _, _ = stored(c, leader)
            assert {d["idempotency_key"] for d in sessions.values()} == set(keys)
            return sessions

    run_cluster(["old-1", "old-2", "old-3"])
    fresh = run_cluster(["new-1"])  # the same store, a new decision log
    assert list(fresh) == ["s1"] and fresh["s1"]["idempotency_key"] == "new-1"
