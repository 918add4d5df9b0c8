"""Theory of operation: ``mca top``, a live view of the cluster from the replicas' ``/metrics``.

Every ``interval`` seconds it scrapes ``GET /metrics`` of every replica (``mca.exporter``: HTTPS
with the caller's certificate, an operator's or a monitor's) and shows, from two consecutive
scrapes: the leader and its term, tasks per second (the leader's completed, failed and
cancelled counters over the interval), sessions in flight, the commit latency's p50 and p99
over the interval (from the histogram's buckets, interpolated within a bucket as Prometheus's
``histogram_quantile`` does), each agent's load against its capacity, the read model's lag, and
a line per replica (term, applied records, reachable or why not). A replica that cannot be
reached is shown as such; the view goes on with the others.

``view`` is pure (two scrapes in, a ``TopView`` out) and tested without a cluster; ``scrape``
and ``run`` are the effects.
"""

from __future__ import annotations

import contextlib
import math
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from mca.tls import REPLICA, Identity
from mca.topology import ReplicaAddress

#: A scrape: (series name, sorted labels) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ENDS = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class ReplicaLine:
    replica: str
    reachable: bool
    leader: bool = False
    term: int = 0
    applied: int = 0
    error: str = ""


@dataclass(frozen=True)
class TopView:
    replicas: tuple[ReplicaLine, ...]
    leader: str = ""
    term: int = 0
    #: per outcome, over the interval (from the leader's counters)
    tasks_per_second: Mapping[str, float] = field(default_factory=dict)
    in_flight: int = 0
    p50_seconds: float | None = None
    p99_seconds: float | None = None
    #: agent -> (load, capacity), the leader's view
    agents: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    read_model_lag: int | None = None


def samples_of(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def view(before: Mapping[str, Samples | str], after: Mapping[str, Samples | str], seconds: float) -> TopView:
    """The view from two scrapes ``seconds`` apart, each: replica id -> its samples, or the
    reason it could not be read."""
    lines = []
    leader = ""
    for replica, got in after.items():
        if isinstance(got, str):
            lines.append(ReplicaLine(replica, False, error=got))
            continue
        me = (("replica", replica),)
        is_leader = got.get(("mca_leader", me), 0.0) == 1.0
        leader = replica if is_leader else leader
        lines.append(
            ReplicaLine(
                replica,
                True,
                is_leader,
                int(got.get(("mca_term", me), 0)),
                int(got.get(("mca_applied_records", me), 0)),
            )
        )
    if not leader:
        return TopView(tuple(lines))
    got_now, got_then = after[leader], before.get(leader)
    now: Samples = got_now if isinstance(got_now, dict) else {}
    earlier: Samples = got_then if isinstance(got_then, dict) else {}
    me = (("replica", leader),)

    def delta(name: str, labels: tuple[tuple[str, str], ...] = me) -> float:
        a, b = earlier.get((name, labels), 0.0), now.get((name, labels), 0.0)
        return b - a if b >= a else b  # a reset (a new leader counts from zero)

    rates = {end: delta(f"mca_tasks_{end}_total") / seconds for end in ENDS} if seconds > 0 else {}
    buckets = sorted(
        (_bound(dict(labels)["le"]), delta(name, labels))
        for (name, labels) in now
        if name == "mca_commit_latency_seconds_bucket" and dict(labels).get("replica") == leader
    )
    agents = {}
    for (name, labels), value in now.items():
        tags = dict(labels)
        if name == "mca_agent_capacity" and tags.get("replica") == leader:
            load = now.get(("mca_agent_load", labels), 0.0)
            agents[tags["agent"]] = (int(load), int(value))
    lag = now.get(("mca_read_model_lag_records", me))
    return TopView(
        tuple(lines),
        leader,
        int(now.get(("mca_term", me), 0)),
        rates,
        int(now.get(("mca_sessions_in_flight", me), 0)),
        quantile(0.5, buckets),
        quantile(0.99, buckets),
        dict(sorted(agents.items())),
        None if lag is None else int(lag),
    )


def _bound(text: str) -> float:
    return math.inf if text == "+Inf" else float(text)


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile``: cumulative (upper bound, count) pairs, ``+Inf`` last; None when
    no sample fell in the interval. Within a bucket, linear; in the last one, its lower bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower


class Scraper:
    """``GET /metrics`` of replicas as ``identity`` (its key written once to a private temporary
    folder: ``ssl`` loads keys only from files)."""

    def __init__(self, identity: Identity, timeout: float = 2.0) -> None:
        self._context = ssl.create_default_context(cadata=identity.ca.decode())
        self._folder = tempfile.TemporaryDirectory(prefix="mca-top-")
        folder = Path(self._folder.name)
        identity.save(folder / "identity")
        self._context.load_cert_chain(folder / "identity" / "cert.pem", folder / "identity" / "key.pem")
        self._timeout = timeout

    def scrape(self, address: str) -> Samples | str:
        """The samples, or why they could not be read (one short line)."""
        host, port = address.rsplit(":", 1)
        try:
            with (
                socket.create_connection((host, int(port)), timeout=self._timeout) as raw,
                self._context.wrap_socket(raw, server_hostname=REPLICA) as tls,
            ):
                tls.sendall(b"GET /metrics HTTP/1.0\r\nHost: replica.mca\r\n\r\n")
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
        except (OSError, ssl.SSLError) as exc:
            return f"{type(exc).__name__}: {exc}"[:80]
        head, _, body = answer.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1:2]
        if status != [b"200"]:
            return (body.decode("utf-8", "replace").strip() or f"HTTP {status}")[:80]
        return samples_of(body.decode())

    def all(self, replicas: tuple[ReplicaAddress, ...]) -> dict[str, Samples | str]:
        return {
            r.replica_id: self.scrape(r.metrics) if r.metrics else "no metrics_port in cluster.yaml" for r in replicas
        }

    def close(self) -> None:
        self._folder.cleanup()


def table(v: TopView) -> object:
    """The view as a ``rich`` renderable."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    total = sum(v.tasks_per_second.values())
    p50 = "-" if v.p50_seconds is None else f"{v.p50_seconds * 1000:.1f} ms"
    p99 = "-" if v.p99_seconds is None else f"{v.p99_seconds * 1000:.1f} ms"
    outcomes = ", ".join(f"{k} {r:.1f}" for k, r in v.tasks_per_second.items() if r)
    lag = "-" if v.read_model_lag is None else str(v.read_model_lag)
    head = Text.from_markup(
        f"leader [bold]{v.leader or 'none'}[/] term {v.term} | tasks/s [bold]{total:.1f}[/]"
        + (f" ({outcomes})" if outcomes else "")
        + f" | in flight {v.in_flight}\ncommit p50 {p50} p99 {p99} | read-model lag {lag}"
    )
    agents = Table("agent", "load", "capacity", "", box=None)
    for agent, (load, capacity) in v.agents.items():
        filled = round(20 * load / capacity) if capacity else 0
        agents.add_row(agent, str(load), str(capacity), "#" * filled + "." * (20 - filled))
    replicas = Table("replica", "role", "term", "applied", box=None)
    for line in v.replicas:
        role = "leader" if line.leader else "follower" if line.reachable else f"unreachable: {line.error}"
        replicas.add_row(line.replica, role, str(line.term), str(line.applied))
    return Group(head, agents, replicas)


def run(
    replicas: tuple[ReplicaAddress, ...],
    identity: Identity,
    interval: float = 1.0,
    count: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Refresh the view every ``interval`` seconds, ``count`` times (0: until interrupted)."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    scraper = Scraper(identity)
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    try:
        with live or contextlib.nullcontext():
            before, then = scraper.all(replicas), time.monotonic()
            shown = 0
            while count == 0 or shown < count:
                sleep(interval)
                after, now = scraper.all(replicas), time.monotonic()
                shown_view = table(view(before, after, now - then))
                if live is not None:
                    live.update(shown_view, refresh=True)  # type: ignore[arg-type]
                else:  # a file or a pipe: one view per interval, one after the other
                    console.print(shown_view)
                before, then = after, now
                shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        scraper.close()
