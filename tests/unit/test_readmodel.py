"""The read model's pure parts and its bookkeeping, without a store: what a flush takes (under the
log's guard), the checkpoint it may claim, and the projection of a session with its events."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from mca import readmodel
from mca.catalog import CATALOG, result_routes
from mca.projection import session_document, session_events, snapshot
from mca.readmodel import SETTLE_WAIT_SECONDS, ReadModel
from protocol.entries import Accepted, Decided, Entry, Finished, Planned, Registered, Settled
from protocol.ledger import Ledger
from protocol.model import Assignment, Decision
from tests.unit.helpers import OK, PLAN, WELLNESS

#: The built-in task types route no results: every result document goes to ``results``.
ROUTES = result_routes(CATALOG)
#: A store nobody listens on: these tests never write (the client connects lazily).
NOWHERE = "mongodb://127.0.0.1:1/unused?retryWrites=false"


class Fed:
    """A ledger and a read model fed as the replica feeds them: a touch per applied entry."""

    def __init__(self) -> None:
        self.ledger = Ledger()
        self.applied = 0
        self.model = ReadModel(NOWHERE, threading.RLock())

    def apply(self, *entries: Entry) -> None:
        for entry in entries:
            result = self.ledger.apply(entry)
            self.applied += 1
            agent_id = entry.agent_id if isinstance(entry, Registered) else ""
            self.model.touch(result.session_id or getattr(entry, "session_id", ""), agent_id)

    def take(self, now: float) -> readmodel.Batch:
        return self.model.take(self.ledger, self.applied, now)


def agents() -> tuple[Entry, ...]:
    return Registered("wpa", ("plan_workout",), 2, 1), Registered("npa", ("plan_meal",), 1, 1)


def plan(session_id: str) -> tuple[Assignment, ...]:
    return tuple(Assignment(f"{session_id}.{i}", a.agent_id, a.capability, a.demand) for i, a in enumerate(PLAN))


def run_through(session_id: str) -> tuple[Entry, ...]:
    """Everything after acceptance, up to and including the settle."""
    return (
        Planned(session_id, plan(session_id)),
        Decided(session_id, Decision.COMMIT, incarnations=(("wpa", 1), ("npa", 1))),
        Finished(session_id, f"{session_id}.0", OK),
        Finished(session_id, f"{session_id}.1", OK),
        Settled(session_id),
    )


def test_a_running_session_waits_and_holds_the_checkpoint_before_its_first_change() -> None:
    fed = Fed()
    fed.apply(*agents())
    batch = fed.take(now=0.0)
    assert sorted(d["_id"] for d in batch.agents) == ["npa", "wpa"] and batch.checkpoint == 2
    fed.apply(Accepted("k1", WELLNESS), Planned("s1", plan("s1")))  # entries 3, 4
    batch = fed.take(now=0.1)
    assert not batch and batch.checkpoint == 2  # s1 runs: not written, and the store lacks 3-4
    fed.apply(Accepted("k2", WELLNESS))  # entry 5: s2 starts
    fed.apply(*run_through("s1")[1:])  # entries 6-9: s1 ends and settles
    batch = fed.take(now=0.2)
    assert [r.session_id for r in batch.sessions] == ["s1"]
    assert batch.checkpoint == 4  # s2 first changed after the take at entry 4: that much is held
    batch = fed.take(now=0.3)
    assert not batch and batch.checkpoint == 4  # s2 still runs
    batch = fed.take(now=0.2 + SETTLE_WAIT_SECONDS)
    assert [r.session_id for r in batch.sessions] == ["s2"] and batch.checkpoint == fed.applied == 9


def test_many_entries_of_one_session_are_taken_once_as_one_snapshot() -> None:
    fed = Fed()
    fed.apply(*agents(), Accepted("k1", WELLNESS))
    for i, entry in enumerate(run_through("s1")):
        assert not fed.take(now=0.01 * i).sessions
        fed.apply(entry)
    batch = fed.take(now=0.1)
    assert len(batch.sessions) == 1 and batch.sessions[0] == fed.ledger.sessions["s1"]
    assert not fed.take(now=0.2).sessions  # written: nothing left to take


def test_a_failed_write_puts_its_sessions_back_with_their_marks() -> None:
    fed = Fed()
    fed.apply(*agents())
    fed.take(now=0.0)
    fed.apply(Accepted("k1", WELLNESS), *run_through("s1"))  # entries 3-8
    failed = fed.take(now=0.1)
    assert [r.session_id for r in failed.sessions] == ["s1"] and failed.checkpoint == 8
    fed.model.put_back(failed)
    # Back with its old mark: the store holds s1 only up to entry 2, whatever was taken since.
    assert fed.model._pending["s1"] == failed.taken["s1"] and failed.taken["s1"].since == 2
    fed.apply(Accepted("k2", WELLNESS))  # entry 9: another session starts meanwhile
    again = fed.take(now=0.2)
    assert [r.session_id for r in again.sessions] == ["s1"]  # no entry touched it: taken anyway
    assert again.checkpoint == 8  # s2 runs: the store will lack entry 9


def test_a_take_carries_at_most_a_chunk_and_asks_for_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readmodel, "SESSIONS_PER_TAKE", 2)
    fed = Fed()
    fed.apply(*agents())
    fed.take(now=0.0)
    for n in range(1, 6):
        fed.apply(Accepted(f"k{n}", WELLNESS), *run_through(f"s{n}"))
    taken: list[str] = []
    while True:
        batch = fed.take(now=1.0)
        taken += [r.session_id for r in batch.sessions]
        assert len(batch.sessions) <= 2
        if not batch.more:
            break
        assert batch.checkpoint == 2  # sessions left for the next chunk: the store lacks them
    assert sorted(taken) == ["s1", "s2", "s3", "s4", "s5"] and batch.checkpoint == fed.applied


def stages() -> Iterator[tuple[Ledger, tuple[Entry, ...]]]:
    """A ledger at each step of a session's life, with the entries still to come."""
    entries = (*agents(), Accepted("k1", WELLNESS), *run_through("s1"))
    for cut in range(3, len(entries)):
        ledger = Ledger()
        for entry in entries[:cut]:
            ledger.apply(entry)
        yield ledger, entries[cut:]


def test_a_snapshot_keeps_what_the_record_held_when_it_was_taken() -> None:
    """The writer projects snapshots outside the guard while the tick thread applies more."""
    for ledger, later in stages():
        record = ledger.sessions["s1"]
        copy = snapshot(record)
        assert copy == record
        then = session_document(record, ROUTES)
        for entry in later:
            ledger.apply(entry)
        assert session_document(copy, ROUTES) == then
        assert session_document(record, ROUTES) != then  # the record did move on


def test_a_session_document_embeds_its_events_in_seq_order() -> None:
    ledger, _ = list(stages())[-1]
    ledger.apply(Settled("s1"))
    record = ledger.sessions["s1"]
    document = session_document(record, ROUTES)
    full = session_events(record, ROUTES)
    assert document["version"] == len(record.events) == 6
    assert [e["seq"] for e in document["events"]] == [e["seq"] for e in full] == sorted(e["seq"] for e in full)
    assert document["events"] == [{k: v for k, v in e.items() if k not in ("_id", "session_id")} for e in full]
    names = [e["event"] for e in document["events"]]
    assert names[0] == "TaskAccepted" and names[-1] == "SessionSettled" and "TaskCompleted" in names
