"""Runtime metrics of a replica, derived from what it applies and hears while it leads.

``Metrics`` keeps the figures in memory (``mca status``, tests); ``RayMetrics`` also exports them
through ``ray.util.metrics``, so they appear in the Ray dashboard's metrics view. Only the leader
records, so a cluster-wide figure is not counted three times; a new leader starts from zero.

    tasks_submitted_total, tasks_completed_total, tasks_failed_total, tasks_cancelled_total,
    votes_total{vote=yes|no}, decisions_total{decision=commit|abort}, leader_changes_total,
    commit_latency_seconds (from the task's acceptance to its applied commit decision)

Counting is on the leader's hot path (once per protocol message, once per applied entry), so it
costs an integer add under a lock and nothing else. Exporting is batched, off that path: a
``flush`` (every ``FLUSH_SECONDS`` on a daemon thread of its own, started by ``start``) pushes,
per counter and tag set, the delta since the last successful push as one ``inc(delta)``, and
hands over the latency observations buffered since. A counter that did not move is not pushed.
The exporter is an ``Exporter``: anything with ``inc`` and ``observe``; ``ray.util.metrics`` in
a Ray actor, a fake in the unit tests. What the exporter raises is logged and never reaches the
caller: figures must not break the replica. A delta that failed to export is pushed again on the
next flush (the last exported value only moves on success); buffered latencies are bounded and
dropped on failure, since a histogram sample is not worth memory. ``close()`` stops the thread
and pushes what is left; a process that dies without it loses at most one interval of figures.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import threading
from typing import Any, Protocol

from protocol.entries import Accepted, Decided
from protocol.events import Applied
from protocol.ledger import Ledger
from protocol.session_table import SessionState

_ENDS = {
    SessionState.COMPLETED.value: "tasks_completed_total",
    SessionState.FAILED.value: "tasks_failed_total",
    SessionState.CANCELLED.value: "tasks_cancelled_total",
}

#: Seconds between two exports of the batching thread.
FLUSH_SECONDS = 1.0
#: Upper bounds of the commit latency histogram, in seconds (Ray's export and ``mca.exporter``).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Latency samples kept for ``mca status`` and tests: a window, not a history.
LATENCY_WINDOW = 1000
#: Latency samples buffered for the exporter between two flushes; past it the oldest are dropped
#: (an exporter that keeps failing, or a flush thread starved of the GIL, must not grow memory).
PENDING_MAX = 10_000

_log = logging.getLogger(__name__)

Tags = tuple[tuple[str, str], ...]


class Exporter(Protocol):
    """Where the figures go in batches: one ``inc`` per counter and tag set that moved, one
    ``observe`` per latency sample buffered since the previous flush."""

    def inc(self, name: str, delta: int, tags: dict[str, str]) -> None: ...

    def observe(self, seconds: float) -> None: ...


def series_key(name: str, tags: dict[str, str] | None = None) -> str:
    """The key a counter has in ``Metrics.counts``: ``decisions_total{decision=commit}``."""
    if not tags:
        return name
    return name + "".join(f"{{{k}={v}}}" for k, v in sorted(tags.items()))


class Metrics:
    def __init__(self, exporter: Exporter | None = None) -> None:
        self._lock = threading.Lock()  # counted from the tick thread and the event loop
        self.counts: dict[str, int] = {}
        self.commit_latency: list[float] = []
        self._accepted_at: dict[str, float] = {}
        self._exporter = exporter
        # Per key of ``counts``: the counter's name and tags (kept so the export need not parse
        # the key back), and the value the exporter has acknowledged.
        self._series: dict[str, tuple[str, Tags]] = {}
        self._exported: dict[str, int] = {}
        self._pending_latency: list[float] = []
        # The histogram since this replica started: a count per bucket (the last: past every
        # bound) and the sum, for ``mca.exporter``.
        self._latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._flush_lock = threading.Lock()  # one flush at a time (the thread, close(), a test)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    # --- the hot path ---------------------------------------------------------------------

    def count(self, name: str, tags: dict[str, str] | None = None) -> None:
        key = series_key(name, tags)
        with self._lock:
            if key not in self._series:
                self._series[key] = (name, tuple(sorted((tags or {}).items())))
            self.counts[key] = self.counts.get(key, 0) + 1

    def observe_commit_latency(self, seconds: float) -> None:
        with self._lock:
            window = self.commit_latency
            window.append(seconds)
            if len(window) > 2 * LATENCY_WINDOW:  # trimmed now and then, not on every sample
                del window[:-LATENCY_WINDOW]
            if self._exporter is not None:
                self._pending_latency.append(seconds)
            self._latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum += seconds

    def series(self) -> dict[str, dict[tuple[tuple[str, str], ...], int]]:
        """Every counter by name, then by its tags: a copy, for ``mca.exporter``."""
        out: dict[str, dict[tuple[tuple[str, str], ...], int]] = {}
        with self._lock:
            for key, value in self.counts.items():
                name, tags = self._series[key]
                out.setdefault(name, {})[tags] = value
        return out

    def latency_histogram(self) -> tuple[tuple[tuple[float, int], ...], float]:
        """The commit latency histogram: (upper bound, cumulative count) up to ``inf``, and the sum."""
        with self._lock:
            counts, total = list(self._latency_counts), self._latency_sum
        cumulative = list(itertools.accumulate(counts))
        return tuple(zip((*LATENCY_BUCKETS, float("inf")), cumulative, strict=True)), total

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

    # --- the batched export ---------------------------------------------------------------

    def flush(self) -> int:
        """Push to the exporter what changed since the last flush; return the number of exporter
        calls made. Never raises: a failure is logged (once until the exporter works again)."""
        exporter = self._exporter
        if exporter is None:
            return 0
        with self._flush_lock:
            with self._lock:  # a snapshot: the counting threads wait for a dict copy, no more
                counts = dict(self.counts)
                series = dict(self._series)
                latencies, self._pending_latency = self._pending_latency, []
            del latencies[:-PENDING_MAX]
            calls, failed = 0, False
            for key, value in counts.items():
                delta = value - self._exported.get(key, 0)
                if delta < 0:  # the figures were reset: count on from the new value
                    self._exported[key] = value
                if delta <= 0:
                    continue
                name, tags = series[key]
                calls += 1
                try:
                    exporter.inc(name, delta, dict(tags))
                except Exception:
                    failed = self._failed(failed, f"counter {key}")
                else:
                    self._exported[key] = value
            for seconds in latencies:
                calls += 1
                try:
                    exporter.observe(seconds)
                except Exception:
                    failed = self._failed(failed, "commit latency")
                    break  # the rest of this batch is dropped (see the module docstring)
            self._failing = failed
            return calls

    def _failed(self, already: bool, what: str) -> bool:
        if not already and not self._failing:  # log a broken exporter once, not once a second
            _log.warning("exporting metrics failed (%s); will retry", what, exc_info=True)
        return True

    def start(self, interval: float = FLUSH_SECONDS) -> None:
        """Flush every ``interval`` seconds on a daemon thread until ``close()``."""
        if self._thread is not None or self._exporter is None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(interval,), name="metrics-export", daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.flush()
            except Exception:  # flush does not raise; the thread must outlive a bug in it anyway
                _log.exception("metrics flush failed")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the export thread and push what is left. Safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.flush()


class RayExporter:
    """The ``Exporter`` that feeds ``ray.util.metrics`` (the metric names README lists)."""

    COUNTERS: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("tasks_submitted_total", ()),
        ("tasks_completed_total", ()),
        ("tasks_failed_total", ()),
        ("tasks_cancelled_total", ()),
        ("votes_total", ("vote",)),
        ("decisions_total", ("decision",)),
        ("leader_changes_total", ()),
        ("calls_refused_total", ("reason",)),
    )

    def __init__(self, replica_id: str) -> None:
        from ray.util import metrics

        tags = {"replica": replica_id}
        self._counters: dict[str, Any] = {}
        for name, keys in self.COUNTERS:
            counter = metrics.Counter(f"mca_{name}", description=name.replace("_", " "), tag_keys=("replica", *keys))
            counter.set_default_tags(tags)
            self._counters[name] = counter
        self._latency = metrics.Histogram(
            "mca_commit_latency_seconds",
            description="acceptance to applied commit decision",
            boundaries=list(LATENCY_BUCKETS),
            tag_keys=("replica",),
        )
        self._latency.set_default_tags(tags)

    def inc(self, name: str, delta: int, tags: dict[str, str]) -> None:
        self._counters[name].inc(delta, tags=tags or None)

    def observe(self, seconds: float) -> None:
        self._latency.observe(seconds)


class RayMetrics(Metrics):
    """``Metrics`` that are also exported through ``ray.util.metrics`` (inside a Ray actor),
    in batches every ``FLUSH_SECONDS`` from a daemon thread."""

    def __init__(self, replica_id: str, interval: float = FLUSH_SECONDS) -> None:
        super().__init__(RayExporter(replica_id))
        self.start(interval)
