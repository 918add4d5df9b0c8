"""The simulated clock: events at one time run in the order they were scheduled, a timer set
again or cancelled never fires stale, a clock jump brings a node's timers forward, and every
typed event writes the tagged tuple the trace digests were first taken over."""

from __future__ import annotations

from dataclasses import fields
from typing import get_args

from protocol.messages import Cancel
from protocol.timers import Lease, RegisterRetry
from sim.schedule import Apply, ClientSubmit, Clock, Deliver, Elect, Fire, Heal, Scheduled


def drain(clock: Clock) -> list[tuple[float, Scheduled]]:
    out = []
    while (entry := clock.pop()) is not None:
        when, _, event = entry
        clock.now = max(clock.now, when)
        out.append((when, event))
    return out


def test_events_at_one_time_run_in_scheduling_order() -> None:
    clock = Clock()
    clock.at(1.0, Heal())
    clock.at(0.5, Elect())
    clock.at(1.0, Apply())
    assert [e for _, e in drain(clock)] == [Elect(), Heal(), Apply()]


def test_a_timer_set_again_or_cancelled_does_not_fire_stale() -> None:
    clock = Clock()
    key = Lease("s1", "t1")
    clock.set_timer("a1", key, 1.0)
    clock.set_timer("a1", key, 2.0)  # replaces the first
    clock.set_timer("a1", RegisterRetry(), 3.0)
    clock.cancel_timer("a1", RegisterRetry())
    fired = [(when, e) for when, e in drain(clock) if isinstance(e, Fire) and clock.fire(e)]
    assert [(when, e.key) for when, e in fired] == [(2.0, key)]


def test_a_clock_jump_brings_the_nodes_timers_forward() -> None:
    clock = Clock()
    clock.set_timer("a1", Lease("s1", "t1"), 2.0)
    clock.set_timer("a2", Lease("s2", "t1"), 2.0)
    clock.jump("a1", 1.5)
    assert clock.local("a1") == 1.5 and clock.local("a2") == 0.0
    fired = [(when, e.node) for when, e in drain(clock) if isinstance(e, Fire) and clock.fire(e)]
    assert fired == [(0.5, "a1"), (2.0, "a2")]


def test_every_event_traces_as_its_tagged_tuple() -> None:
    message = Cancel("c1", "s1")
    assert Deliver("c1", "mca", message).trace() == ("deliver", "c1", "mca", message)
    assert ClientSubmit("c1", 3).trace() == ("submit", "c1", 3, "retry")
    assert ClientSubmit("c1", 3, repeat=True).trace() == ("submit", "c1", 3, "repeat")
    assert Apply().trace() == ("apply",)
    kinds = get_args(Scheduled)
    tags = {kind(*["x"] * len(fields(kind))).trace()[0] for kind in kinds}
    assert len(tags) == len(kinds)  # one tag per kind
