"""``GET /metrics`` of each replica on a real cluster (TLS, pysyncobj, gRPC on 127.0.0.1): after
tasks run, the leader's Prometheus text counts them, the gauges say who leads and what each
agent holds, and the endpoint opens only to a monitor's or an operator's certificate."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mca import top
from mca.embedded import EmbeddedCluster
from mca.tls import REPLICA, Authority, Identity, Principal
from tests.integration.test_runtime import Echo

TASKS = 12


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(str(tmp_path_factory.mktemp("metrics")), [Echo("echo-1"), Echo("echo-2")]) as c:
        c.wait_ready(agents=2)

        async def work() -> None:
            async with c.client() as client:
                for i in range(TASKS):
                    await client.submit("echo_pair", {"value": i}, key=f"m{i}", wait=True)

        c.run(work(), timeout=60)
        yield c


def scrape(address: str, identity: Identity | None, folder: Path, ca: bytes = b"") -> tuple[int, str]:
    """GET /metrics over TLS, asking for any replica's certificate; showing ``identity``'s own
    (none: a client that trusts ``ca`` but shows no certificate)."""
    context = ssl.create_default_context(cadata=(identity.ca if identity else ca).decode())
    if identity is not None:
        where = folder / str(identity.principal).replace(":", "-")
        identity.save(where)
        context.load_cert_chain(where / "cert.pem", where / "key.pem")
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=REPLICA) as tls,
    ):
        tls.sendall(b"GET /metrics HTTP/1.0\r\nHost: replica.mca\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    if not answer:  # TLS 1.3: a refused certificate shows on the first read
        raise ConnectionError("closed without an answer")
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_leader_counts_the_tasks_and_every_replica_says_who_leads(cluster: EmbeddedCluster, tmp_path: Path) -> None:
    monitor = cluster.identity(Principal("monitor", "prometheus"))
    leader = cluster.leader()
    assert leader is not None
    me = leader.config.me.replica_id
    seen = {}
    for address in cluster.addresses:
        status, text = scrape(address.metrics, monitor, tmp_path)
        assert status == 200
        seen[address.replica_id] = samples(text)
    ours = seen[me]
    assert ours[("mca_leader", (("replica", me),))] == 1.0
    assert ours[("mca_tasks_submitted_total", (("replica", me),))] == TASKS
    assert ours[("mca_tasks_completed_total", (("replica", me),))] == TASKS
    assert ours[("mca_decisions_total", (("decision", "commit"), ("replica", me)))] == TASKS
    assert ours[("mca_commit_latency_seconds_count", (("replica", me),))] == TASKS
    assert ours[("mca_commit_latency_seconds_bucket", (("le", "+Inf"), ("replica", me)))] == TASKS
    assert ours[("mca_agent_capacity", (("agent", "echo-1"), ("replica", me)))] == Echo("echo-1").capacity
    assert ours[("mca_raft_records_total", (("replica", me),))] >= 3 * TASKS  # accepted, decided, finished
    for replica_id, figures in seen.items():
        if replica_id != me:
            assert figures[("mca_leader", (("replica", replica_id),))] == 0.0
            assert ("mca_tasks_completed_total", (("replica", replica_id),)) not in figures  # only the leader counts
            assert figures[("mca_term", (("replica", replica_id),))] == ours[("mca_term", (("replica", me),))]


def test_only_a_monitor_or_an_operator_may_read_and_no_certificate_gets_no_connection(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    address = cluster.addresses[0].metrics
    operator = cluster.identity(Principal("operator", "local"))
    assert scrape(address, operator, tmp_path)[0] == 200
    status, text = scrape(address, cluster.identity(Principal("client", "local")), tmp_path)
    assert status == 403 and "client:local may not read metrics" in text
    stranger = Authority.open(tmp_path / "other-ca").issue(Principal("monitor", "prometheus"))
    trusting = Identity(stranger.principal, operator.ca, stranger.cert, stranger.key)  # trusts our CA
    with pytest.raises((ssl.SSLError, ConnectionError)):
        scrape(address, trusting, tmp_path)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        scrape(address, None, tmp_path, ca=operator.ca)


def test_the_figures_render_while_tasks_run(cluster: EmbeddedCluster) -> None:
    leader = cluster.leader()
    assert leader is not None

    async def work() -> None:
        async with cluster.client() as client:
            await asyncio.gather(*(client.submit("echo_pair", {"value": i}, key=f"r{i}", wait=True) for i in range(8)))

    cluster.run(work(), timeout=60)
    figures = leader.views.figures()
    assert figures.leader and figures.counters["tasks_completed_total"][()] == TASKS + 8


def test_mca_top_shows_the_leader_and_the_tasks_of_the_interval(
    cluster: EmbeddedCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    leader = cluster.leader()
    assert leader is not None

    def tasks_meanwhile(seconds: float) -> None:  # the interval of mca top: tasks run in it
        async def work() -> None:
            async with cluster.client() as client:
                for i in range(5):
                    await client.submit("echo_pair", {"value": i}, key=f"top{i}", wait=True)

        cluster.run(work(), timeout=60)

    top.run(tuple(cluster.addresses), cluster.identity(Principal("operator", "local")), 0.1, 1, tasks_meanwhile)
    shown = capsys.readouterr().out
    assert f"leader {leader.config.me.replica_id}" in shown
    assert "tasks/s" in shown and "completed" in shown and "echo-1" in shown
    scraper = top.Scraper(cluster.identity(Principal("client", "local")))
    try:
        assert "may not read metrics" in str(scraper.scrape(cluster.addresses[0].metrics))
    finally:
        scraper.close()
