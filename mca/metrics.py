"""Runtime metrics of a replica, derived from what it applies and hears while it leads.

``Metrics`` keeps the figures in memory (``mca status``, tests); ``RayMetrics`` also exports them
through ``ray.util.metrics``, so they appear in the Ray dashboard's metrics view. Only the leader
records, so a cluster-wide figure is not counted three times; a new leader starts from zero.

    tasks_submitted_total, tasks_completed_total, tasks_failed_total, tasks_cancelled_total,
    votes_total{vote=yes|no}, decisions_total{decision=commit|abort}, leader_changes_total,
    commit_latency_seconds (from the task's acceptance to its applied commit decision)
"""

from __future__ import annotations

import threading
from typing import Any

from protocol.entries import Accepted, Decided
from protocol.events import Applied
from protocol.ledger import Ledger
from protocol.session_table import SessionState

_ENDS = {
    SessionState.COMPLETED.value: "tasks_completed_total",
    SessionState.FAILED.value: "tasks_failed_total",
    SessionState.CANCELLED.value: "tasks_cancelled_total",
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # counted from the tick thread and the event loop
        self.counts: dict[str, int] = {}
        self.commit_latency: list[float] = []
        self._accepted_at: dict[str, float] = {}

    def count(self, name: str, tags: dict[str, str] | None = None) -> None:
        key = name + "".join(f"{{{k}={v}}}" for k, v in sorted((tags or {}).items()))
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def observe_commit_latency(self, seconds: float) -> None:
        self.commit_latency.append(seconds)
        del self.commit_latency[:-1000]  # a window, not a history

    def applied(self, applied: Applied, ledger: Ledger, now: float) -> None:
        """Record what one applied entry means for the figures (on the leader)."""
        entry, result = applied.entry, applied.result
        if not result.applied:
            return
        if isinstance(entry, Accepted):
            self.count("tasks_submitted_total")
            self._accepted_at[result.session_id] = now
            return
        record = ledger.session(getattr(entry, "session_id", ""))
        if record is None:
            return
        if isinstance(entry, Decided):
            self.count("decisions_total", {"decision": result.decision.value if result.decision else "none"})
            accepted = self._accepted_at.get(record.session_id)
            if accepted is not None and record.state is SessionState.EXECUTING:
                self.observe_commit_latency(now - accepted)
        events = record.events
        if len(events) >= 2 and events[-1].state != events[-2].state and events[-1].state in _ENDS:
            self.count(_ENDS[events[-1].state])  # this entry ended the session
            self._accepted_at.pop(record.session_id, None)


class RayMetrics(Metrics):
    """``Metrics`` that are also exported through ``ray.util.metrics`` (inside a Ray actor)."""

    def __init__(self, replica_id: str) -> None:
        super().__init__()
        from ray.util import metrics

        tags = {"replica": replica_id}
        self._counters: dict[str, Any] = {}
        for name, keys in (
            ("tasks_submitted_total", ()),
            ("tasks_completed_total", ()),
            ("tasks_failed_total", ()),
            ("tasks_cancelled_total", ()),
            ("votes_total", ("vote",)),
            ("decisions_total", ("decision",)),
            ("leader_changes_total", ()),
        ):
            counter = metrics.Counter(f"mca_{name}", description=name.replace("_", " "), tag_keys=("replica", *keys))
            counter.set_default_tags(tags)
            self._counters[name] = counter
        self._latency = metrics.Histogram(
            "mca_commit_latency_seconds",
            description="acceptance to applied commit decision",
            boundaries=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
            tag_keys=("replica",),
        )
        self._latency.set_default_tags(tags)

    def count(self, name: str, tags: dict[str, str] | None = None) -> None:
        super().count(name, tags)
        self._counters[name].inc(1, tags=tags or None)

    def observe_commit_latency(self, seconds: float) -> None:
        super().observe_commit_latency(seconds)
        self._latency.observe(seconds)
