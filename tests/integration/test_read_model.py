"""The durable read model agrees with the decision log: every session, plan, decision, result and
event the log holds is in the document store (real SecantusDB, through PyMongo's async client),
unique indexes hold, and a read model that fell behind is rebuilt from the log by a new leader.
It writes little: a session once, when it settles, with its events inside its document."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pymongo.errors import PyMongoError

from mca.catalog import CATALOG, ResultKind, TaskType, result_routes
from mca.embedded import EmbeddedCluster, free_ports
from mca.projection import (
    EVENTS,
    META,
    SESSIONS,
    log_identity,
    record_identity,
    session_document,
    session_events,
)
from mca.readmodel import (
    FORMAT,
    SETTLE_WAIT_SECONDS,
    Batch,
    History,
    ReadModel,
)
from mca.replica import Replica
from mca.sdk import Agent, Job, Output, Session
from mca.stores import StoreProcess, documents_url
from protocol.entries import Accepted, Decided, Entry, Finished, Planned, Registered, Settled
from protocol.ledger import Ledger, owned_key
from protocol.model import Decision, Outcome
from tests.integration.conftest import database_url
from tests.unit.helpers import PLAN, WELLNESS

#: Where results go in these tests' read models: the built-in task types route none, so every
#: result document is in ``results`` (what the replicas' and ``Fed``'s read models use too).
ROUTES = result_routes(CATALOG)


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
        async with cluster.client() as client:
            await asyncio.gather(*(client.submit(t, p, key=k, wait=True) for k, t, p in tasks))

    asyncio.run(main())


def caught_up(cluster: EmbeddedCluster) -> Replica:
    """The leader, once its read model has written everything its log holds. Asked afresh each
    time: three replicas in the test's process on two busy cores may elect another leader
    meanwhile (it happened in one run), and the new one's read model is the one that writes."""

    def done() -> bool:
        leader = cluster.leader()
        if leader is None or leader.read_model is None or leader.log is None:
            return False
        model = leader.read_model
        return model.checkpoint >= leader.log.applied_index and not model.error

    wait_for(done, "a leader whose read model has written everything its log holds")
    leader = cluster.leader()
    assert leader is not None
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
        assert sessions[session_id] == session_document(record, ROUTES), session_id
        by_id = sorted(session_events(record, ROUTES), key=lambda e: str(e["_id"]))
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
        async with cluster.client() as client:
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


def test_earlier_indexes_give_way_to_the_key_lookup_that_allows_reuse(documents: StoreProcess) -> None:
    """Earlier versions made (owner, key) unique, which lost the session of a key reused after
    its window, and kept an index on ``state`` that nothing queries and every write paid for; a
    store from then gets the lookup index without the uniqueness, and no index on state."""

    async def main() -> None:
        fed = Fed(database_url(documents, "read_model_key_index"))
        try:
            sessions = fed.model._db["coordination_sessions"]
            await sessions.create_index([("owner", 1), ("idempotency_key", 1)], unique=True)
            await sessions.create_index([("state", 1)])
            await fed.model.ensure_indexes()
            indexes = await sessions.index_information()
            keyed = [i for i in indexes.values() if [k for k, _ in i["key"]] == ["owner", "idempotency_key"]]
            assert len(keyed) == 1 and not keyed[0].get("unique", False)
            assert sorted(indexes) == sorted(["_id_", "owner_key"])
            await sessions.insert_many([{"_id": f"s{i}", "owner": "client:a", "idempotency_key": "k"} for i in (1, 2)])
            assert await sessions.count_documents({"owner": "client:a", "idempotency_key": "k"}) == 2
        finally:
            await fed.model.close()

    asyncio.run(main())


def test_a_late_write_of_an_older_version_changes_nothing(cluster: EmbeddedCluster) -> None:
    """A deposed leader flushing late must not overwrite what its successor wrote."""
    submit_all(cluster, [("rm-late", "echo", {"value": 2.0})])
    leader = caught_up(cluster)
    model = leader.read_model
    assert model is not None
    session_id = leader.ledger.by_key[owned_key("client:local", "rm-late")]
    current = session_document(leader.ledger.sessions[session_id], ROUTES)
    older = current | {"version": 2, "state": "negotiating"}
    cluster.run(model._write_versioned("coordination_sessions", [older]))
    sessions, _, _ = stored(cluster, leader)
    assert sessions[session_id] == current


def test_a_new_leader_rebuilds_a_read_model_that_fell_behind(cluster: EmbeddedCluster) -> None:
    submit_all(cluster, [(f"rm-rebuild-{i}", "echo", {"value": float(i)}) for i in range(5)])
    leader = caught_up(cluster)
    model = leader.read_model
    assert model is not None
    lost = leader.ledger.by_key[owned_key("client:local", "rm-rebuild-0")]

    async def lose_documents(m: ReadModel) -> None:
        # The store lost writes (say, restored from an old backup): a session is gone and the
        # checkpoint is behind. Only the log can say what is missing.
        await m._db["coordination_sessions"].delete_one({"_id": lost})  # its events with it
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


# --- what a flush writes: one writer, a ledger fed by hand, flushes at chosen times ----------


class Fed:
    """A ledger and a read model fed as the replica feeds them (a touch per applied entry), with
    no Raft: the test says when a flush happens and what time it is."""

    def __init__(self, url: str, settled_kept: int | None = None, catalog: Mapping[str, TaskType] = CATALOG) -> None:
        self.ledger = Ledger(settled_kept=settled_kept)
        self.log: list[Entry] = []
        self.model = ReadModel(url, threading.RLock(), catalog)

    @property
    def applied(self) -> int:
        return len(self.log)

    def entries(self, start: int) -> list[tuple[int, Entry]]:
        return [(index, entry) for index, entry in enumerate(self.log, start=1) if index > start]

    def apply(self, *entries: Entry) -> None:
        for entry in entries:
            result = self.ledger.apply(entry)
            self.log.append(entry)
            self.model.retire(result.retired)
            agent_id = entry.agent_id if isinstance(entry, Registered) else ""
            self.model.touch(result.session_id or getattr(entry, "session_id", ""), agent_id)

    async def flush(self, now: float) -> Batch:
        return await self.model.flush(lambda: self.ledger, lambda: self.applied, now)


AGENTS: tuple[Entry, ...] = (Registered("wpa", ("plan_workout",), 2, 1), Registered("npa", ("plan_meal",), 1, 1))
PLANNED: tuple[Entry, ...] = (Accepted("k1", WELLNESS), Planned("s1", PLAN))
#: The rest of s1's life, each result with a document (stored in ``results``, one per subtask).
TO_SETTLED: tuple[Entry, ...] = (
    Decided("s1", Decision.COMMIT, incarnations=(("wpa", 1), ("npa", 1))),
    Finished("s1", "s1.0", Outcome(True, (("value", 1.0),), document='{"plan": "workout"}')),
    Finished("s1", "s1.1", Outcome(True, (("value", 2.0),), document='{"plan": "meal"}')),
    Settled("s1"),
)


async def assert_store_holds_s1(fed: Fed) -> None:
    record = fed.ledger.sessions["s1"]
    assert (await fed.model.sessions())["s1"] == session_document(record, ROUTES)
    events = await fed.model.events_of("s1")
    assert events == session_events(record, ROUTES)  # the same fields as ever, in seq order
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert {e["seq"] for e in events} == set(range(1, len(record.events) + 1))


def test_a_session_is_written_once_when_it_settles(documents: StoreProcess) -> None:
    async def main() -> None:
        fed = Fed(database_url(documents, "read_model_once"))
        try:
            await fed.model.ensure_indexes()
            fed.apply(*AGENTS)
            await fed.flush(now=0.0)
            assert await fed.model.stored_checkpoint() == 2
            for i, entry in enumerate((*PLANNED, *TO_SETTLED[:-1])):
                fed.apply(entry)
                await fed.flush(now=0.1 * (i + 1))
                # Running: nothing written, and the lag says the store lacks s1's entries.
                assert fed.model.written[SESSIONS] == 0
                assert fed.model.checkpoint == 2 and fed.model.lag(fed.applied) == fed.applied - 2
            fed.apply(TO_SETTLED[-1])
            await fed.flush(now=1.0)
            assert fed.model.written[SESSIONS] == 1  # six entries about s1, one document write
            assert fed.model.lag(fed.applied) == 0 and await fed.model.stored_checkpoint() == fed.applied
            await assert_store_holds_s1(fed)
            stored = await fed.model.results_of("s1", "results")  # the helpers' capabilities go there
            assert [d["document"] for d in stored] == [{"plan": "workout"}, {"plan": "meal"}]
            names = [e["event"] for e in await fed.model.events_of("s1")]
            assert names.count("ResultRecorded") == 2 and {"TaskCompleted", "SessionSettled"} <= set(names)
            written = dict(fed.model.written)
            await fed.flush(now=2.0)
            assert fed.model.written == written  # nothing changed: nothing sent
        finally:
            await fed.model.close()

    asyncio.run(main())


def test_results_go_to_the_collection_their_task_type_names(documents: StoreProcess) -> None:
    """A task type (a plugin's, as cluster.yaml's task_type_plugins loads it) that names a
    collection and an event for capability plan_workout gets s1.0's document there, under that
    event; plan_meal, which no task type names, still goes to ``results``."""
    workouts = TaskType(
        "t", "a plugin's task type", lambda _: (), results={"plan_workout": ResultKind("workouts", "Worked")}
    )

    async def main() -> None:
        fed = Fed(database_url(documents, "read_model_routes"), catalog={**CATALOG, "t": workouts})
        try:
            assert fed.model.routes == {"plan_workout": ("workouts", "Worked")}
            await fed.model.ensure_indexes()
            fed.apply(*AGENTS, *PLANNED, *TO_SETTLED)
            await fed.flush(now=0.0)
            assert [d["_id"] for d in await fed.model.results_of("s1", "workouts")] == ["s1.0"]
            assert [d["_id"] for d in await fed.model.results_of("s1", "results")] == ["s1.1"]
            names = [e["event"] for e in await fed.model.events_of("s1")]
            assert names.count("Worked") == 1 and names.count("ResultRecorded") == 1
            stored = (await fed.model.sessions())["s1"]
            assert stored == session_document(fed.ledger.sessions["s1"], fed.model.routes)
            assert stored["results"]["s1.0"]["document"] == "workouts"
        finally:
            await fed.model.close()

    asyncio.run(main())


def test_a_long_session_is_written_while_it_runs_and_again_when_it_settles(documents: StoreProcess) -> None:
    async def main() -> None:
        fed = Fed(database_url(documents, "read_model_long"))
        try:
            await fed.model.ensure_indexes()
            fed.apply(*AGENTS, *PLANNED)
            await fed.flush(now=0.0)
            assert fed.model.written[SESSIONS] == 0
            await fed.flush(now=SETTLE_WAIT_SECONDS)  # it has waited long enough: show it
            assert fed.model.written[SESSIONS] == 1 and fed.model.lag(fed.applied) == 0
            await assert_store_holds_s1(fed)
            assert (await fed.model.sessions())["s1"]["settled"] is False
            fed.apply(*TO_SETTLED)
            await fed.flush(now=SETTLE_WAIT_SECONDS + 0.1)  # settled: written at once, replacing
            assert fed.model.written[SESSIONS] == 2
            await assert_store_holds_s1(fed)
        finally:
            await fed.model.close()

    asyncio.run(main())


def test_a_first_write_replaces_an_older_session_and_keeps_a_newer_one(documents: StoreProcess) -> None:
    """A writer's first write of a session is an insert; against a stored session it falls back
    to the versioned replace: a new leader overwrites its predecessor's older version, and a
    deposed leader flushing late cannot overwrite its successor's newer one."""

    async def main() -> None:
        url = database_url(documents, "read_model_versions")
        before, leader, deposed = Fed(url), Fed(url), Fed(url)
        try:
            await leader.model.ensure_indexes()
            for fed in (before, leader, deposed):
                fed.apply(*AGENTS, *PLANNED)
            await before.flush(now=0.0)
            await before.flush(now=SETTLE_WAIT_SECONDS)  # s1 running, written by an earlier leader
            assert before.model.written[SESSIONS] == 1
            leader.apply(*TO_SETTLED)
            await leader.flush(now=0.0)
            assert leader.model.written[SESSIONS] == 2  # the insert collided; the replace won
            await assert_store_holds_s1(leader)
            deposed.apply(TO_SETTLED[0])  # a version between the two
            await deposed.flush(now=0.0)
            await deposed.flush(now=SETTLE_WAIT_SECONDS)  # late
            assert deposed.model.written[SESSIONS] == 2  # the insert collided; the replace lost
            await assert_store_holds_s1(leader)
            assert await leader.model.stored_checkpoint() == leader.applied  # the checkpoint only grows
        finally:
            for fed in (before, leader, deposed):
                await fed.model.close()

    asyncio.run(main())


def test_a_write_that_fails_is_written_later(documents: StoreProcess) -> None:
    async def main() -> None:
        (nobody,) = free_ports(1)
        fed = Fed(documents_url("127.0.0.1", nobody, "read_model_retry"))
        store = ReadModel(database_url(documents, "read_model_retry"), threading.RLock())
        try:
            fed.apply(*AGENTS, *PLANNED, *TO_SETTLED)
            with pytest.raises(PyMongoError):
                await fed.flush(now=0.0)  # the store is away
            assert fed.model.lag(fed.applied) == fed.applied
            fed.model._db = store._db  # it is back
            await fed.flush(now=0.1)  # nothing touched s1 since: it was kept pending
            assert fed.model.lag(fed.applied) == 0
            await assert_store_holds_s1(fed)
            assert set(await fed.model.agents()) == {"wpa", "npa"}
        finally:
            await fed.model.close()
            await store.close()

    asyncio.run(main())


def test_a_store_in_the_old_layout_is_re_projected_in_place(documents: StoreProcess) -> None:
    """Format 1 kept a document per event; a session the log no longer holds (retention) has its
    history only there, so the store is converted in place, not emptied."""

    async def main() -> None:
        fed = Fed(database_url(documents, "read_model_format_1"))
        db = fed.model._db
        try:
            fed.apply(*AGENTS, *PLANNED, *TO_SETTLED)
            record = fed.ledger.sessions["s1"]
            old = {k: v for k, v in session_document(record, ROUTES).items() if k != "events"}
            gone = {"_id": "s0", "version": 1, "idempotency_key": "k0", "state": "initialized"}
            await db[SESSIONS].insert_many([old, gone])
            gone_event = {"seq": 1, "event": "TaskAccepted", "kind": "accepted", "state": "initialized", "detail": ""}
            gone_events = [{"_id": "s0:1:TaskAccepted", "session_id": "s0", **gone_event}]
            await db[EVENTS].insert_many([*session_events(record, ROUTES), *gone_events])
            await db[META].insert_one({"_id": "checkpoint", "applied": fed.applied, "log": log_identity(fed.entries)})
            await fed.model.ensure_indexes()
            await fed.model.catch_up(fed.ledger, lambda: fed.applied, fed.entries)
            assert fed.model.lag(fed.applied) == fed.applied  # caught up in the old layout only
            await fed.flush(now=0.0)
            assert fed.model.lag(fed.applied) == 0
            await assert_store_holds_s1(fed)  # its events now inside its document
            assert await fed.model.events_of("s0") == gone_events  # read from where format 1 put them
            meta = await db[META].find_one({"_id": "checkpoint"})
            assert meta is not None and meta["format"] == FORMAT and meta["applied"] == fed.applied
        finally:
            await fed.model.close()

    asyncio.run(main())


def test_a_checkpoint_older_than_the_kept_records_re_projects_everything_the_ledger_holds(
    documents: StoreProcess,
) -> None:
    """A log keeps a window of its records (retention): a new leader whose store is behind that
    window cannot tell what changed, so it writes every session and agent the ledger holds."""

    async def main() -> None:
        fed = Fed(database_url(documents, "read_model_window"))
        try:
            first = AGENTS[0]
            fed.apply(*AGENTS, *PLANNED, *TO_SETTLED)
            await fed.model.ensure_indexes()
            kept_from = fed.applied  # only the last record is still kept
            window = [(index, entry) for index, entry in fed.entries(0) if index >= kept_from]
            await fed.model.catch_up(
                fed.ledger,
                lambda: fed.applied,
                lambda start: [(i, e) for i, e in window if i > start],
                lambda: History(kept_from, first),
            )
            assert fed.model.log_id == record_identity(first)  # named by its first record, not the window's
            await fed.flush(now=0.0)
            await assert_store_holds_s1(fed)
            assert set(await fed.model.agents()) == {"wpa", "npa"}
        finally:
            await fed.model.close()

    asyncio.run(main())


def test_a_session_retired_before_it_was_written_still_reaches_the_store(documents: StoreProcess) -> None:
    """The ledger retires the oldest settled sessions, maybe before the writer took them (the
    store was slow or down): their last version is kept for the writer, and the store gets it."""

    async def main() -> None:
        fed = Fed(database_url(documents, "read_model_retired"), settled_kept=1)
        try:
            await fed.model.ensure_indexes()
            fed.apply(*AGENTS, *PLANNED, *TO_SETTLED)
            s1 = fed.ledger.sessions["s1"]
            later = (
                Accepted("k2", WELLNESS),
                Decided("s2", Decision.ABORT, "no room"),
                Settled("s2"),
            )
            fed.apply(*later)  # s2 settles: s1 retires, never written
            assert "s1" not in fed.ledger.sessions and fed.ledger.retired("s1")
            await fed.flush(now=0.0)
            stored = await fed.model.sessions()
            assert stored["s1"] == session_document(s1, ROUTES) and stored["s2"]["state"] == "failed"
            assert fed.model.lag(fed.applied) == 0
        finally:
            await fed.model.close()

    asyncio.run(main())


def test_a_key_reused_after_its_window_is_a_second_document(documents: StoreProcess) -> None:
    """Past the dedup window a key names a new task (a new session): the store keeps both
    sessions under the same (owner, key), the retired one as its history."""

    async def main() -> None:
        fed = Fed(database_url(documents, "read_model_key_reuse"), settled_kept=1)
        try:
            await fed.model.ensure_indexes()
            fed.apply(*AGENTS, *PLANNED, *TO_SETTLED)
            await fed.flush(now=0.0)
            fed.apply(Accepted("k2", WELLNESS), Decided("s2", Decision.ABORT, "no room"), Settled("s2"))
            assert fed.ledger.retired("s1")  # and "k1" is forgotten: the next "k1" is a new task
            fed.apply(Accepted("k1", WELLNESS), Decided("s3", Decision.ABORT, "no room"), Settled("s3"))
            await fed.flush(now=1.0)
            stored = await fed.model.sessions()
            assert stored["s3"] == session_document(fed.ledger.sessions["s3"], ROUTES)
            assert stored["s1"]["idempotency_key"] == stored["s3"]["idempotency_key"] == "k1"
            assert fed.model.lag(fed.applied) == 0
        finally:
            await fed.model.close()

    asyncio.run(main())


def test_a_document_the_store_cannot_hold_does_not_stop_the_writer(documents: StoreProcess) -> None:
    """A NUL in an output name (the boundary refuses it; this is the writer's own defence): the
    session is stored as its identity and the reason, and the checkpoint moves on."""
    unstorable = Finished("s1", "s1.0", Outcome(True, (("a\x00b", 1.0),)))

    async def main() -> None:
        fed = Fed(database_url(documents, "read_model_unstorable"))
        try:
            await fed.model.ensure_indexes()
            fed.apply(*AGENTS, *PLANNED, TO_SETTLED[0], unstorable, *TO_SETTLED[2:])
            await fed.flush(now=1.0)
            assert await fed.model.stored_checkpoint() == fed.applied and not fed.model.error
            stored = (await fed.model.sessions())["s1"]
            assert "not storable" in stored["error"] and stored["version"] == len(fed.ledger.sessions["s1"].events)
        finally:
            await fed.model.close()

    asyncio.run(main())
