"""``mca top``'s arithmetic on two scrapes (``mca.top.view``): the leader and its term, tasks per
second from counter deltas (a new leader's reset included), latency quantiles interpolated in
the histogram's buckets as Prometheus does, agents' load, and a replica that cannot be read."""

from __future__ import annotations

import math

import pytest

from mca.exporter import Figures, render
from mca.top import Samples, quantile, samples_of, view


def scrape(replica: str, leader: bool, completed: int, latency: tuple[tuple[float, int], ...] = ()) -> Samples:
    none: tuple[tuple[str, str], ...] = ()
    counters = {"tasks_completed_total": {none: float(completed)}, "tasks_failed_total": {none: 1.0}} if leader else {}
    figures = Figures(
        replica, leader, 4, 100 + completed, 3, 9, counters, latency, 0.0, 2 if leader else None, {"echo-1": (3, 16)}
    )
    return samples_of(render(figures).decode())


def test_quantiles_interpolate_within_a_bucket() -> None:
    buckets = [(0.01, 10.0), (0.1, 20.0), (math.inf, 20.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.75, buckets) == pytest.approx(0.055)  # halfway between 10 and 20 samples
    assert quantile(0.5, [(0.01, 0.0), (math.inf, 0.0)]) is None  # nothing in the interval
    assert quantile(0.99, [(0.01, 1.0), (math.inf, 4.0)]) == pytest.approx(0.01)  # past the last bound


def test_the_view_reads_the_leaders_counters_over_the_interval() -> None:
    before = {
        "mca-1": scrape("mca-1", True, 100, ((0.01, 5), (0.1, 10), (math.inf, 10))),
        "mca-2": scrape("mca-2", False, 0),
    }
    after: dict[str, Samples | str] = {
        "mca-1": scrape("mca-1", True, 150, ((0.01, 15), (0.1, 30), (math.inf, 30))),
        "mca-2": scrape("mca-2", False, 0),
        "mca-3": "ConnectionRefusedError: [Errno 111] Connection refused",
    }
    v = view(before, after, 2.0)
    assert v.leader == "mca-1" and v.term == 4 and v.in_flight == 3 and v.read_model_lag == 2
    assert v.tasks_per_second["completed"] == 25.0 and v.tasks_per_second["failed"] == 0.0
    assert v.p50_seconds == pytest.approx(0.01) and v.p99_seconds == pytest.approx(
        0.0982
    )  # 19.8 of 20: 9.8 of the 10 in (0.01, 0.1]
    assert v.agents == {"echo-1": (3, 16)}
    lines = {line.replica: line for line in v.replicas}
    assert lines["mca-1"].leader and not lines["mca-2"].leader and lines["mca-2"].reachable
    assert not lines["mca-3"].reachable and "refused" in lines["mca-3"].error


def test_a_new_leaders_counters_start_from_zero_and_are_not_negative() -> None:
    before = {"mca-2": scrape("mca-2", True, 500)}  # the old leader, say, counted 500
    after = {"mca-2": scrape("mca-2", True, 20)}  # restarted: its counter began again
    assert view(before, after, 1.0).tasks_per_second["completed"] == 20.0


def test_no_leader_means_no_figures_but_the_replica_lines() -> None:
    v = view({}, {"mca-1": scrape("mca-1", False, 0)}, 1.0)
    assert v.leader == "" and v.tasks_per_second == {} and [line.replica for line in v.replicas] == ["mca-1"]
