"""The simulator's decision log implements the ``DecisionLog`` protocol the runtime's
pysyncobj log will implement, and behaves like Raft's: only the current leader's appends are
applied, in order, and a lost leader leaves a prefix of its unapplied entries."""

from __future__ import annotations

import random

from protocol.entries import Accepted, Registered
from protocol.events import Applied
from protocol.ledger import Ledger
from protocol.log import DecisionLog
from sim.world import SimDecisionLog
from tests.unit.helpers import WELLNESS


def test_the_simulated_log_is_a_decision_log() -> None:
    log: DecisionLog = SimDecisionLog(Ledger())  # checked by mypy, exercised below
    seen: list[Applied] = []
    log.subscribe(seen.append)
    assert log.ledger.sessions == {}


def test_only_the_current_leader_appends_and_entries_apply_in_order() -> None:
    log = SimDecisionLog(Ledger())
    seen: list[Applied] = []
    log.subscribe(seen.append)
    log.term, log.leader = 2, "mca-1"
    assert not log.append(Registered("npa", ("plan_meal",), 1, 1), term=1)  # a deposed leader
    assert log.append(Registered("npa", ("plan_meal",), 1, 1), term=2)
    assert log.append(Accepted("k1", WELLNESS), term=2)
    while log.apply_next() is not None:
        pass
    assert [a.index for a in seen] == [1, 2]
    assert [i for i, _ in log.applied_entries()] == [1, 2]
    assert log.ledger.sessions["s1"].idempotency_key == "k1"


def test_a_lost_leader_leaves_a_prefix_of_its_unapplied_entries() -> None:
    log = SimDecisionLog(Ledger())
    log.term, log.leader = 1, "mca-1"
    entries = [Registered(f"a{i}", ("echo",), 1, 1) for i in range(5)]
    for entry in entries:
        log.append(entry, term=1)
    log.lose_leader(random.Random(3))
    assert list(log.pending) == entries[: len(log.pending)]
    assert log.leader is None and not log.append(entries[0], term=1)
