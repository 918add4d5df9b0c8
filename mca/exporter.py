"""Theory of operation: each replica's figures for Prometheus, over HTTPS with client certificates.

A replica with a ``metrics`` address serves ``GET /metrics`` in the Prometheus text format
(``prometheus_client`` writes it). The listener is like every other of the cluster: TLS with
the replica's certificate, a client certificate from the cluster's CA required at the
handshake, and only an ``operator`` or a ``monitor`` principal (``mca credentials issue
prometheus --monitor``) gets the figures; anyone else is answered 403. Prometheus scrapes it
with ``tls_config`` (the CA, the monitor's certificate and key, ``server_name: replica.mca``;
``docs/monitoring.md``).

Every series carries the ``replica`` label. Counters that describe the cluster's work (tasks,
votes, decisions, latency) are counted by the leader only, so a cluster figure is not counted
three times, and start from zero on a new leader: sum them over replicas with ``increase()`` or
``rate()``, which take counter resets in their stride. Gauges (leader, term, sessions in flight,
read-model lag, each agent's load) are each replica's view now.

The server runs on a thread of its own (``ThreadingHTTPServer``); what it reads of the replica
comes from ``collect``, which the replica answers under its log's guard, so a scrape never sees
an entry half applied and costs the event loop nothing.
"""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from mca.tls import CredentialError, Identity, Principal

log = logging.getLogger(__name__)

#: Who may read the figures.
READERS = frozenset({"operator", "monitor"})
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Figures:
    """One replica's figures at one moment."""

    replica: str
    leader: bool
    term: int
    applied: int
    in_flight: int
    sessions: int
    #: counter series name (without the ``mca_`` prefix) -> labels -> value
    counters: Mapping[str, Mapping[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    #: commit latency: cumulative counts per upper bound (``+Inf`` last), and the sum of seconds
    latency_buckets: tuple[tuple[float, int], ...] = ()
    latency_sum: float = 0.0
    read_model_lag: int | None = None
    #: agent id -> (load, capacity)
    agents: Mapping[str, tuple[int, int]] = field(default_factory=dict)


class _Collector:
    """``prometheus_client``'s collector interface over ``collect()``."""

    def __init__(self, collect: Callable[[], Figures]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        f = self._collect()
        replica = [f.replica]

        def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"mca_{name}", text, labels=["replica"])
            family.add_metric(replica, value)
            return family

        yield gauge("leader", "1 while this replica leads", 1.0 if f.leader else 0.0)
        yield gauge("term", "this replica's Raft term", f.term)
        yield gauge("applied_records", "records of the log this replica has applied", f.applied)
        yield gauge("sessions_in_flight", "sessions not yet ended, in this replica's ledger", f.in_flight)
        yield gauge("sessions_kept", "sessions the ledger holds (retention keeps it bounded)", f.sessions)
        if f.read_model_lag is not None:
            yield gauge("read_model_lag_records", "applied records the document store is behind", f.read_model_lag)
        per_agent = ["replica", "agent"]
        load = GaugeMetricFamily("mca_agent_load", "capacity an agent's sessions hold", labels=per_agent)
        capacity = GaugeMetricFamily("mca_agent_capacity", "an agent's registered capacity", labels=per_agent)
        for agent, (held, total) in sorted(f.agents.items()):
            load.add_metric([f.replica, agent], held)
            capacity.add_metric([f.replica, agent], total)
        yield load
        yield capacity
        for name, series in sorted(f.counters.items()):
            keys = sorted({k for labels in series for k, _ in labels})
            counter = CounterMetricFamily(
                f"mca_{name.removesuffix('_total')}", name.replace("_", " "), labels=["replica", *keys]
            )
            for labels, value in sorted(series.items()):
                given = dict(labels)
                counter.add_metric([f.replica, *(given.get(k, "") for k in keys)], value)
            yield counter
        if f.latency_buckets:
            histogram = HistogramMetricFamily(
                "mca_commit_latency_seconds", "acceptance to applied commit decision", labels=["replica"]
            )
            buckets = [("+Inf" if bound == float("inf") else f"{bound:g}", count) for bound, count in f.latency_buckets]
            histogram.add_metric(replica, buckets, f.latency_sum)
            yield histogram


def render(figures: Figures) -> bytes:
    """The Prometheus text of ``figures``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(lambda: figures))
    return generate_latest(registry)


class MetricsServer:
    """``GET /metrics`` on ``address`` (host:port; port 0 picks one), TLS as ``identity``."""

    def __init__(self, address: str, identity: Identity, collect: Callable[[], Figures]) -> None:
        host, _, port = address.rpartition(":")
        context = identity.ssl_server_context()
        handler = type("_Handler", (_Handler,), {"collect": staticmethod(collect)})
        self._server = http.server.ThreadingHTTPServer((host, int(port)), handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self.address = f"{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="mca-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    collect: Callable[[], Figures]
    server_version = "mca-metrics"
    sys_version = ""

    def do_GET(self) -> None:  # the name http.server dispatches to
        principal = _principal(self.connection)
        if principal is None or principal.role not in READERS:
            who = principal or "this certificate"
            self._answer(403, f"{who} may not read metrics (for: operator, monitor)\n".encode())
            return
        if self.path.split("?", 1)[0] != "/metrics":
            self._answer(404, b"only /metrics is served here\n")
            return
        try:
            body = render(self.collect())
        except Exception:  # a bug in collecting must not kill the server thread
            log.exception("collecting the metrics failed")
            self._answer(500, b"collecting the metrics failed (logged)\n")
            return
        self._answer(200, body, CONTENT_TYPE)

    def _answer(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        log.debug("metrics %s: " + format, self.address_string(), *args)


def _principal(connection: Any) -> Principal | None:
    """The principal the peer's certificate names (its common name), or None."""
    try:
        cert = connection.getpeercert()
        names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
        return Principal.parse(names[0]) if len(names) == 1 else None
    except (AttributeError, CredentialError, ValueError):
        return None
