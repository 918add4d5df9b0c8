"""The decision log on real pysyncobj: three replicas over TCP on 127.0.0.1 with an
authenticated transport apply the same batches (group commit) record by record in the same
order, survive the leader's death without losing an applied entry, refuse a deposed term's
appends, replay their journal after a restart, and keep out a replica with the wrong password."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pysyncobj import FAIL_REASON

from mca.raftlog import RaftDecisionLog, RaftSealer
from protocol.entries import Accepted, Batch, Entry, Registered
from protocol.log import DecisionLog
from protocol.model import SubtaskSpec, TaskSpec
from tests.integration.conftest import free_ports

TASK = TaskSpec("echo", (SubtaskSpec("echo"),), ("all_subtasks_ok",))


def one(record: Entry) -> Batch:
    return Batch((record,))


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    """Poll until ``condition`` holds; a bounded wait, not a timing assertion."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {seconds}s")


def leader_of(logs: list[RaftDecisionLog]) -> RaftDecisionLog:
    wait_for(lambda: sum(log.is_leader for log in logs) == 1)
    return next(log for log in logs if log.is_leader)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[RaftDecisionLog], list[str], Path]]:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(3)]
    logs = [RaftDecisionLog(a, [b for b in addresses if b != a], str(tmp_path), "s3cret") for a in addresses]
    yield logs, addresses, tmp_path
    for log in logs:
        log.close()


def test_every_replica_applies_the_same_entries_in_order(
    cluster: tuple[list[RaftDecisionLog], list[str], Path],
) -> None:
    logs, _, _ = cluster
    leader = leader_of(logs)
    conforms: DecisionLog = leader  # structural conformance, checked by mypy
    assert conforms.ledger is leader.ledger
    # Every connection seals with AES-GCM, not pysyncobj's Fernet.
    connections = [c for log in logs for c in log._sync._SyncObj__transport._connections.values()]
    assert connections and all(isinstance(c.encryptor, RaftSealer) for c in connections)
    leader.append(one(Registered("npa", ("echo",), 4, 1)), leader.term)
    for start in range(0, 300, 30):  # ten batches of thirty records
        batch = Batch(tuple(Accepted(f"k{i % 200}", TASK) for i in range(start, start + 30)))  # 100 repeated keys
        assert leader.append(batch, leader.term)
    wait_for(lambda: all(len(list(log.applied_entries())) == 301 for log in logs))
    orders = [list(log.applied_entries()) for log in logs]
    assert orders[0] == orders[1] == orders[2]
    for log in logs:
        assert len(log.ledger.sessions) == 200  # exactly-once submit on every replica


def test_the_leader_dies_and_nothing_applied_is_lost(cluster: tuple[list[RaftDecisionLog], list[str], Path]) -> None:
    logs, _, _ = cluster
    leader = leader_of(logs)
    old_term = leader.term
    leader.append(one(Registered("npa", ("echo",), 4, 1)), old_term)
    for i in range(100):
        leader.append(one(Accepted(f"before-{i}", TASK)), old_term)
    survivors = [log for log in logs if log is not leader]
    wait_for(lambda: all(len(log.ledger.sessions) == 100 for log in survivors))
    leader.close()
    logs.remove(leader)
    new_leader = leader_of(survivors)
    assert new_leader.term > old_term
    assert not new_leader.append(one(Accepted("stale", TASK)), old_term)  # fenced by term
    for i in range(50):
        assert new_leader.append(one(Accepted(f"after-{i}", TASK)), new_leader.term)
    wait_for(lambda: all(len(log.ledger.sessions) == 150 for log in survivors))
    assert "stale" not in survivors[0].ledger.by_key
    assert list(survivors[0].applied_entries()) == list(survivors[1].applied_entries())


def forty_sessions(logs: list[RaftDecisionLog]) -> tuple[RaftDecisionLog, RaftDecisionLog]:
    """An agent and forty sessions applied everywhere; the leader and a follower."""
    leader = leader_of(logs)
    leader.append(one(Registered("npa", ("echo",), 4, 1)), leader.term)
    for i in range(40):
        leader.append(one(Accepted(f"k{i}", TASK)), leader.term)
    wait_for(lambda: all(len(log.ledger.sessions) == 40 for log in logs))
    return leader, next(log for log in logs if log is not leader)


def restart(cluster: tuple[list[RaftDecisionLog], list[str], Path], log: RaftDecisionLog) -> RaftDecisionLog:
    """Close ``log`` and start its replica again on the same data folder."""
    logs, addresses, data = cluster
    index = logs.index(log)
    log.close()
    me = addresses[index]
    logs[index] = RaftDecisionLog(me, [a for a in addresses if a != me], str(data), "s3cret")
    return logs[index]


def test_a_restarted_replica_replays_its_journal(cluster: tuple[list[RaftDecisionLog], list[str], Path]) -> None:
    leader, follower = forty_sessions(cluster[0])
    restarted = restart(cluster, follower)
    wait_for(lambda: len(restarted.ledger.sessions) == 40)
    assert list(restarted.applied_entries()) == list(leader.applied_entries())


def test_a_journal_of_bare_records_or_unpickled_batches_still_applies(
    cluster: tuple[list[RaftDecisionLog], list[str], Path],
) -> None:
    """Journals written before group commit hold one record per entry, and those written before
    batches were appended pickled hold the batch object; both still replay."""
    logs, _, _ = cluster
    leader = leader_of(logs)
    leader._state._apply(Registered("npa", ("echo",), 4, 1), callback=None)  # as an old version did
    leader._state._apply(one(Registered("wpa", ("echo",), 4, 1)), callback=None)
    wait_for(lambda: all({"npa", "wpa"} <= set(log.ledger.agents) for log in logs))


def test_the_leader_applies_the_objects_it_appended_and_the_followers_equal_copies(
    cluster: tuple[list[RaftDecisionLog], list[str], Path],
) -> None:
    logs, _, _ = cluster
    leader = leader_of(logs)
    record = Registered("npa", ("echo",), 4, 1)
    assert leader.append(one(record), leader.term)
    wait_for(lambda: all(len(list(log.applied_entries())) == 1 for log in logs))
    for log in logs:
        [(_, applied)] = list(log.applied_entries())
        assert applied == record
        assert (applied is record) == (log is leader)  # no unpickled copy on the leader
    assert leader._state.own == {}  # nothing kept once applied


def test_an_append_pysyncobj_drops_is_not_kept(
    cluster: tuple[list[RaftDecisionLog], list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    logs, _, _ = cluster
    leader = leader_of(logs)
    heard: list[bool] = []

    def full(command: bytes, callback: Callable[[object, int], None], command_type: int | None = None) -> None:
        callback(None, FAIL_REASON.QUEUE_FULL)  # what pysyncobj does when its queue is full

    monkeypatch.setattr(leader._sync, "_applyCommand", full)
    assert leader.append(one(Registered("npa", ("echo",), 4, 1)), leader.term, heard.append)
    assert heard == [False]
    assert leader._state.own == {}


def test_a_replica_with_the_wrong_password_gets_nothing(tmp_path: Path) -> None:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(3)]
    logs = [
        RaftDecisionLog(a, [b for b in addresses if b != a], str(tmp_path), "right" if i < 2 else "wrong")
        for i, a in enumerate(addresses)
    ]
    try:
        good = logs[:2]
        leader = leader_of(good)
        leader.append(one(Registered("npa", ("echo",), 4, 1)), leader.term)
        leader.append(one(Accepted("k", TASK)), leader.term)
        wait_for(lambda: all(len(log.ledger.sessions) == 1 for log in good))
        time.sleep(0.5)  # give the intruder every chance to receive something
        assert logs[2].ledger.sessions == {} and not logs[2].is_leader
    finally:
        for log in logs:
            log.close()


def test_an_empty_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="password"):
        RaftDecisionLog("127.0.0.1:1", [], str(tmp_path), "")


def test_a_batch_of_a_term_older_than_the_latest_barrier_is_skipped_everywhere(
    cluster: tuple[list[RaftDecisionLog], list[str], Path],
) -> None:
    """pysyncobj forwards a command queued on a deposed leader to its successor, which appends it
    after its own barrier: such a batch must change nothing, on every replica alike."""
    logs, _, _ = cluster
    leader = leader_of(logs)
    fence = leader.term + 1  # a successor's barrier (its term is higher than any batch before it)
    barrier_done: list[bool] = []
    leader.barrier(fence, barrier_done.append)
    wait_for(lambda: barrier_done == [True])
    stale = Batch((Registered("ghost", ("echo",), 4, 1),), fence - 1)
    fresh = Batch((Registered("npa", ("echo",), 4, 1),), fence)
    leader._state._apply(stale, callback=None)  # as if forwarded after the barrier
    leader._state._apply(fresh, callback=None)
    wait_for(lambda: all("npa" in log.ledger.agents for log in logs))
    assert all("ghost" not in log.ledger.agents for log in logs)


def test_a_compaction_writes_a_quick_snapshot_that_a_restarted_replica_loads(
    cluster: tuple[list[RaftDecisionLog], list[str], Path],
) -> None:
    """A follower compacts its journal into a snapshot in a forked child, gzipped at the quick
    level (``_QuickSerializer``); after a restart it has every session again, though its journal
    no longer holds the entries that made them."""
    _, follower = forty_sessions(cluster[0])
    sync = follower._sync
    sync._SyncObj__conf.logCompactionSplit = False  # compact now, not in this replica's slot
    sync.forceLogCompaction()
    wait_for(lambda: len(sync._SyncObj__raftLog) < 10)  # the snapshot replaced the entries
    dump = Path(sync._SyncObj__conf.fullDumpFile).read_bytes()
    assert dump[:2] == b"\x1f\x8b" and dump[8] == 4  # gzip, "fastest" (level 1; 9 writes 2)
    restarted = restart(cluster, follower)
    wait_for(lambda: len(restarted.ledger.sessions) == 40)
    assert restarted.ledger.agents.keys() == {"npa"}


def test_a_forked_child_of_a_replica_runs_at_the_lowest_priority(
    cluster: tuple[list[RaftDecisionLog], list[str], Path],
) -> None:
    """pysyncobj compacts in a forked child; at the parent's priority it competed with the
    replicas for two cores. The child's niceness is its exit code here."""
    pid = os.fork()
    if pid == 0:  # the child: leave at once, saying how nice it is
        os._exit(os.nice(0))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 19


def test_applying_a_burst_leaves_the_tick_free_between_entries(
    cluster: tuple[list[RaftDecisionLog], list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pysyncobj sends heartbeats and reads its sockets between applies, not only after all the
    entries a majority holds: with no time budget each tick applies one entry, so the tick callbacks
    (which run after the heartbeat is sent) see every count in between, and the burst is still
    applied whole, in order, everywhere."""
    monkeypatch.setattr("mca.raftlog.APPLY_SECONDS_PER_TICK", 0.0)
    logs, _, _ = cluster
    leader = leader_of(logs)
    leader.subscribe(lambda applied: time.sleep(0.005))  # a leader that steps slowly
    seen_by_ticks: set[int] = set()
    leader._sync.addOnTickCallback(lambda: seen_by_ticks.add(leader.applied_index))
    before = leader.applied_index
    burst = 40
    for i in range(burst):
        assert leader.append(one(Accepted(f"burst-{i}", TASK)), leader.term)
    wait_for(lambda: all(log.applied_index == before + burst for log in logs))
    between = {n for n in seen_by_ticks if before < n < before + burst}
    assert len(between) >= burst // 2, sorted(between)
    orders = [list(log.applied_entries()) for log in logs]
    assert orders[0] == orders[1] == orders[2]
    assert [getattr(r, "idempotency_key", None) for _, r in orders[0][-burst:]] == [f"burst-{i}" for i in range(burst)]


def test_an_append_goes_into_the_log_on_the_appending_thread_while_the_tick_thread_waits(
    cluster: tuple[list[RaftDecisionLog], list[str], Path],
) -> None:
    """The tick thread is not woken to add and send an entry: the appender does it while the
    tick thread waits for its sockets (it may be inside a tick now and then: then it queues)."""
    logs, _, _ = cluster
    leader = leader_of(logs)
    sync = leader._sync
    in_log_at_return = 0
    for i in range(20):
        before = sync._SyncObj__getCurrentLogIndex()
        assert leader.append(one(Registered(f"a{i}", ("echo",), 1, 1)), leader.term)
        in_log_at_return += sync._SyncObj__getCurrentLogIndex() == before + 1  # pysyncobj's private index
        time.sleep(0.02)  # the tick thread back to waiting
    assert in_log_at_return >= 15
    wait_for(lambda: all(len(log.ledger.agents) == 20 for log in logs))
