"""Metrics are counted in process and exported in batches: one ``inc(delta)`` per counter and tag
set that moved since the last flush, buffered latencies once, nothing when nothing changed, and
an exporter that fails never reaches the caller (without Ray: a fake exporter)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mca.metrics import Metrics, series_key
from protocol.entries import Accepted, Decided, Entry, Finished, Planned
from protocol.events import Applied
from protocol.model import Decision
from tests.unit.helpers import OK, PLAN, WELLNESS, ledger_with_agents


class FakeExporter:
    def __init__(self, fail: bool = False) -> None:
        self.incs: list[tuple[str, int, dict[str, str]]] = []
        self.observed: list[float] = []
        self.fail = fail

    def inc(self, name: str, delta: int, tags: dict[str, str]) -> None:
        if self.fail:
            raise RuntimeError("exporter down")
        self.incs.append((name, delta, tags))

    def observe(self, seconds: float) -> None:
        if self.fail:
            raise RuntimeError("exporter down")
        self.observed.append(seconds)


def test_counts_are_aggregated_in_process_and_keyed_as_before() -> None:
    exporter = FakeExporter()
    m = Metrics(exporter)
    for _ in range(5):
        m.count("tasks_submitted_total")
    m.count("votes_total", {"vote": "yes"})
    m.count("votes_total", {"vote": "yes"})
    m.count("votes_total", {"vote": "no"})
    assert m.counts == {"tasks_submitted_total": 5, "votes_total{vote=yes}": 2, "votes_total{vote=no}": 1}
    assert exporter.incs == []  # counting alone exports nothing
    assert series_key("decisions_total", {"decision": "commit"}) == "decisions_total{decision=commit}"


def test_a_flush_exports_each_delta_once_with_its_tags() -> None:
    exporter = FakeExporter()
    m = Metrics(exporter)
    for _ in range(3):
        m.count("tasks_submitted_total")
    m.count("votes_total", {"vote": "yes"})
    m.observe_commit_latency(0.02)
    m.observe_commit_latency(0.03)
    assert m.flush() == 4
    assert sorted(exporter.incs) == [("tasks_submitted_total", 3, {}), ("votes_total", 1, {"vote": "yes"})]
    assert exporter.observed == [0.02, 0.03]

    exporter.incs.clear()
    exporter.observed.clear()
    assert m.flush() == 0  # nothing changed: nothing exported
    assert exporter.incs == [] and exporter.observed == []

    m.count("tasks_submitted_total")
    m.count("tasks_submitted_total")
    assert m.flush() == 1  # only the counter that moved, by its delta
    assert exporter.incs == [("tasks_submitted_total", 2, {})]
    assert m.counts["tasks_submitted_total"] == 5  # the in-process figure is the total
    assert m.commit_latency == [0.02, 0.03]  # the window for mca status keeps what was exported


def test_a_failing_exporter_never_raises_and_the_delta_is_pushed_later() -> None:
    exporter = FakeExporter(fail=True)
    m = Metrics(exporter)
    m.count("tasks_completed_total")
    m.count("tasks_completed_total")
    m.observe_commit_latency(0.5)
    m.flush()  # does not raise
    assert exporter.incs == []

    exporter.fail = False
    m.count("tasks_completed_total")
    m.flush()
    assert exporter.incs == [("tasks_completed_total", 3, {})]  # nothing lost, nothing doubled
    assert exporter.observed == []  # a latency batch that failed is dropped, not retried


def test_without_an_exporter_nothing_is_buffered_and_no_thread_starts() -> None:
    m = Metrics()
    m.start(0.01)
    m.observe_commit_latency(0.1)
    m.count("leader_changes_total")
    assert m.flush() == 0
    assert m._thread is None
    assert m._pending_latency == []
    assert m.counts == {"leader_changes_total": 1}
    m.close()


def test_the_latency_window_stays_bounded() -> None:
    m = Metrics()
    for i in range(5000):
        m.observe_commit_latency(float(i))
    assert 1000 <= len(m.commit_latency) <= 2000
    assert m.commit_latency[-1] == 4999.0  # the newest samples are the ones kept


def test_the_thread_exports_periodically_and_close_flushes_the_rest() -> None:
    exporter = FakeExporter()
    m = Metrics(exporter)
    m.start(0.02)
    m.count("tasks_submitted_total")
    deadline = time.monotonic() + 5
    while not exporter.incs and time.monotonic() < deadline:
        time.sleep(0.01)
    assert exporter.incs == [("tasks_submitted_total", 1, {})]

    m.count("tasks_failed_total")
    m.close()
    assert ("tasks_failed_total", 1, {}) in exporter.incs
    assert not any(t.name == "metrics-export" for t in threading.enumerate())
    m.close()  # twice is fine


def test_counts_from_several_threads_are_not_lost() -> None:
    exporter = FakeExporter()
    m = Metrics(exporter)
    m.start(0.001)  # flushing while counting

    def work() -> None:
        for _ in range(2000):
            m.count("votes_total", {"vote": "yes"})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m.close()
    assert m.counts["votes_total{vote=yes}"] == 8000
    assert sum(delta for _, delta, _ in exporter.incs) == 8000


@pytest.mark.parametrize("bad", [KeyError("no such counter"), ValueError("value must be > 0")])
def test_any_exporter_error_is_contained(bad: Exception) -> None:
    class Broken(FakeExporter):
        def inc(self, name: str, delta: int, tags: dict[str, str]) -> None:
            raise bad

    m = Metrics(Broken())
    m.count("tasks_submitted_total")
    m.start(0.01)
    time.sleep(0.05)
    m.close()  # the final flush fails too, silently
    assert m.counts == {"tasks_submitted_total": 1}


def test_applied_entries_feed_the_counters_and_the_latency_export() -> None:
    exporter = FakeExporter()
    m = Metrics(exporter)
    ledger = ledger_with_agents()
    entries: list[Entry] = [
        Accepted("k1", WELLNESS),
        Planned("s1", PLAN),
        Decided("s1", Decision.COMMIT, incarnations=(("wpa", 1), ("npa", 1))),
        Finished("s1", "s1.0", OK),
        Finished("s1", "s1.1", OK),
    ]
    for i, (entry, now) in enumerate(zip(entries, (10.0, 10.1, 10.25, 10.3, 10.4), strict=True)):
        m.applied(Applied(i, entry, ledger.apply(entry)), ledger, now)
    assert m.counts == {
        "tasks_submitted_total": 1,
        "decisions_total{decision=commit}": 1,
        "tasks_completed_total": 1,
    }
    m.flush()
    assert sorted(exporter.incs) == [
        ("decisions_total", 1, {"decision": "commit"}),
        ("tasks_completed_total", 1, {}),
        ("tasks_submitted_total", 1, {}),
    ]
    assert exporter.observed == [pytest.approx(0.25)]


def test_the_commit_latency_histogram_is_cumulative_up_to_infinity() -> None:
    metrics = Metrics()
    for seconds in (0.004, 0.007, 0.3, 9.0):
        metrics.observe_commit_latency(seconds)
    buckets, total = metrics.latency_histogram()
    counts = dict(buckets)
    assert counts[0.005] == 1 and counts[0.01] == 2 and counts[0.25] == 2 and counts[0.5] == 3
    assert counts[5.0] == 3 and counts[float("inf")] == 4  # 9 s is past every bound
    assert total == pytest.approx(9.311)
    assert [c for _, c in buckets] == sorted(c for _, c in buckets)


def test_a_monitor_credential_is_issued_for_metrics_only(tmp_path: Path) -> None:
    from mca.cli import main
    from mca.tls import Identity, Principal

    config = tmp_path / "cluster.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\nmca:\n  replicas:\n    - {{id: mca-1, raft_port: 7101, task_port: 7100}}\n"
    )
    assert (
        main(["credentials", "issue", "prometheus", "--monitor", "--out", str(tmp_path / "p"), "--config", str(config)])
        == 0
    )
    assert Identity.load(tmp_path / "p").principal == Principal("monitor", "prometheus")
    with pytest.raises(SystemExit):  # one role at a time
        main(["credentials", "issue", "x", "--monitor", "--operator", "--config", str(config)])
