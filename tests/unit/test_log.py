"""The simulator's decision log implements the ``DecisionLog`` protocol the runtime's
pysyncobj log implements, and behaves like Raft's: only the current leader's batches are
applied, in order, each record of a batch in turn, and a lost leader leaves a prefix of its
unapplied batches, each whole or not at all."""

from __future__ import annotations

import random

from protocol.batching import CutWhen, GroupCommit
from protocol.defects import BATCH_REORDERED
from protocol.entries import Accepted, Batch, Finished, Registered, Settled
from protocol.events import Applied
from protocol.ledger import Ledger
from protocol.log import DecisionLog
from sim.raftmodel import SimDecisionLog
from tests.unit.helpers import OK, WELLNESS


def test_the_simulated_log_is_a_decision_log() -> None:
    log: DecisionLog = SimDecisionLog(Ledger())  # checked by mypy, exercised below
    assert isinstance(log, SimDecisionLog)
    log.term, log.leader = 1, "mca-1"
    assert log.append(Batch((Registered("npa", ("plan_meal",), 1, 1),)), term=1)
    assert log.apply_next() and not log.apply_next()
    assert log.ledger.agents["npa"].capabilities == ("plan_meal",)  # applied to its ledger, once
    assert not log.append(Batch((Registered("npa", ("plan_meal",), 1, 2),)), term=0)  # an old term
    assert log.ledger.agents["npa"].capacity == 1


def test_only_the_current_leader_appends_and_entries_apply_in_order() -> None:
    log = SimDecisionLog(Ledger())
    seen: list[Applied] = []
    log.subscribe(seen.append)
    log.term, log.leader = 2, "mca-1"
    register = Registered("npa", ("plan_meal",), 1, 1)
    assert not log.append(Batch((register,)), term=1)  # a deposed leader
    assert log.append(Batch((register, Accepted("k1", WELLNESS))), term=2)
    assert log.append(Batch((Accepted("k2", WELLNESS),)), term=2)
    while log.apply_next():
        pass
    assert [a.index for a in seen] == [1, 2, 3]  # one Applied per record, batches in order
    assert [type(e).__name__ for _, e in log.applied_entries()] == ["Registered", "Accepted", "Accepted"]
    assert log.ledger.sessions["s1"].idempotency_key == "k1"
    assert log.ledger.sessions["s2"].idempotency_key == "k2"


def test_a_lost_leader_leaves_a_prefix_of_its_unapplied_entries() -> None:
    log = SimDecisionLog(Ledger())
    log.term, log.leader = 1, "mca-1"
    batches = [Batch((Registered(f"a{i}", ("echo",), 1, 1), Registered(f"b{i}", ("echo",), 1, 1))) for i in range(5)]
    for batch in batches:
        log.append(batch, term=1)
    log.lose_leader(random.Random(3))
    assert 0 < len(log.pending) < len(batches)  # this seed keeps some, not all
    assert list(log.pending) == batches[: len(log.pending)]
    assert log.leader is None and not log.append(batches[0], term=1)


def test_group_commit_cuts_one_batch_per_turn_in_order_and_drops_a_deposed_terms_records() -> None:
    group = GroupCommit()
    a, b, c = (Registered(name, ("echo",), 1, 1) for name in "abc")
    assert group.cut() == (None, 0)
    assert group.add(a, term=3) and not group.add(b, term=3)  # only the first opens a batch
    assert group.cut() == (Batch((a, b), 3), 3)
    assert len(group) == 0
    group.add(a, term=3)
    assert group.add(c, term=4)  # a new term: the old leader's record is not carried over
    assert group.cut() == (Batch((c,), 4), 4)
    group.add(a, term=4)
    group.drop()
    assert group.cut() == (None, 0)


def test_the_planted_reorder_bug_reverses_a_batch() -> None:
    group = GroupCommit(frozenset({BATCH_REORDERED}))
    a, b = (Registered(name, ("echo",), 1, 1) for name in "ab")
    group.add(a, 1)
    group.add(b, 1)
    assert group.cut() == (Batch((b, a), 1), 1)


def test_the_pipeline_holds_records_back_while_it_is_full_and_lets_them_go_as_batches_apply() -> None:
    group = GroupCommit(depth=1)
    a, b, c = (Registered(name, ("echo",), 1, 1) for name in "abc")
    assert group.add(a, 1)
    assert group.cut() == (Batch((a,), 1), 1)
    group.appended()
    assert not group.add(b, 1) and not group.add(c, 1)  # the pipeline is full: no cut scheduled
    assert group.cut() == (None, 0)
    assert group.settled()  # the first batch applied, and records wait
    assert group.cut() == (Batch((b, c), 1), 1)  # everything that queued meanwhile, in one batch
    group.appended()
    group.drop()  # leadership lost: nothing of ours is on the way any more
    assert group.add(a, 2) and group.on_the_way == 0


def test_a_burst_is_cut_into_batches_of_bounded_size_in_order() -> None:
    group = GroupCommit(depth=2, size=2)
    records = [Registered(f"r{i}", ("echo",), 1, 1) for i in range(5)]
    assert group.add(records[0], 1)
    for r in records[1:]:
        assert not group.add(r, 1)  # one cut is scheduled for the whole burst
    assert group.cut() == (Batch(tuple(records[:2]), 1), 1)
    group.appended()
    assert group.ready()  # three more wait and the pipeline has room: cut again
    assert group.cut() == (Batch(tuple(records[2:4]), 1), 1)
    group.appended()
    assert not group.ready() and group.cut() == (None, 0)  # the pipeline is full
    assert group.settled()  # a batch applied: the last record goes
    assert group.cut() == (Batch((records[4],), 1), 1)
    group.appended()
    assert not group.ready() and len(group) == 0


def test_lazy_records_wait_in_their_place_for_the_next_record_that_is_not_lazy() -> None:
    group = GroupCommit()
    settled, result, accepted = Settled("s1"), Finished("s2", "s2.0", OK), Accepted("k3", WELLNESS)
    assert group.add(settled, 1, lazy=True) is CutWhen.DUE  # alone: the host's timer is due
    assert group.add(result, 1, lazy=True) is None
    assert group.add(accepted, 1) is CutWhen.IDLE  # company: cut when the loop goes idle
    assert group.add(Accepted("k4", WELLNESS), 1) is None  # that cut is already scheduled
    assert group.cut() == (Batch((settled, result, accepted, Accepted("k4", WELLNESS)), 1), 1)
    assert not group.expire()  # the lazy records' timer finds nothing waiting


def test_a_lazy_record_alone_goes_when_its_time_is_up_or_once_the_pipeline_has_room() -> None:
    group = GroupCommit(depth=1)
    assert group.add(Settled("s1"), 1, lazy=True) is CutWhen.DUE
    assert not group.ready()  # lazy records alone are never cut for the asking
    assert group.expire()  # the timer: it goes alone
    assert group.cut() == (Batch((Settled("s1"),), 1), 1)
    group.appended()
    assert group.add(Settled("s2"), 1, lazy=True) is CutWhen.DUE
    assert not group.settled()  # room again, but the lazy record still waits for company
    group.appended()
    assert not group.expire()  # time is up while the pipeline is full: it waits for room
    assert group.settled()  # and goes then
    assert group.cut() == (Batch((Settled("s2"),), 1), 1)


def test_a_record_that_is_not_lazy_opens_no_cut_while_the_pipeline_is_full() -> None:
    group = GroupCommit(depth=1)
    group.add(Settled("s1"), 1, lazy=True)
    group.appended()  # (some earlier batch) on its way
    assert group.add(Accepted("k2", WELLNESS), 1) is None
    assert group.settled()
    assert group.cut() == (Batch((Settled("s1"), Accepted("k2", WELLNESS)), 1), 1)
    group.add(Settled("s3"), 1, lazy=True)
    group.add(Accepted("k4", WELLNESS), 2)  # a new term: the old leader's lazy record is gone
    assert group.cut() == (Batch((Accepted("k4", WELLNESS),), 2), 2)
