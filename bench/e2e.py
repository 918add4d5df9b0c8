"""Benchmark: end-to-end coordinated two-agent tasks on the Ray deployment, against a raw gRPC
baseline measured in the same run, with the CPU each role of the cluster spends per task.

For each concurrency level it submits ``echo_pair`` tasks (two agents, full two-phase protocol)
through the SDK with ``wait=True`` and reports throughput (completed sessions per second) and
latency percentiles; the baseline is a plain gRPC unary call (the health check of a bare server
in its own process, TLS with client certificates like the cluster's listeners) at the same
concurrency, and the ratio says what coordination costs. First, the same server in plaintext and
with TLS says what TLS costs a raw call.

Where the time goes: before and after the tasks of a level (the baseline is measured outside
that window) it reads the CPU time (user + system) of every process of the cluster and charges
the difference to the process's role: the leader, the followers (summed), the agents, the stores
(SecantusDB and redis-server, with the actors that own them), the client (this process: the SDK
and the Ray driver), and Ray's own processes (GCS, raylet, dashboard, idle workers) as ``ray``.
Roles come from the deployment (the replicas' and agents' pids in their status; the store
servers are the children of the store actors); whatever else descends from this process is Ray.
Dividing by the tasks of the level gives ``cpu ms/task`` per role; a change that moves time from
one role to another shows up there even when the wall clock hides it on a 2-core machine.
First, the same reading over a few idle seconds says what the cluster burns doing nothing
(heartbeats, polls, Ray's own), in cores by role: at low concurrency that floor is spread over
few tasks and is part of each one's figure.

Each level also reports the sessions not completed (by reason), the submits that failed (by gRPC
status code, including the bench's own per-task timeout) and whether the leader changed. At the
end: the leader's resident memory, the cluster's, and the failover time (SIGKILL of the leader
to the next accepted submit).

``--soak N`` runs N tasks at one concurrency instead of the levels, after a warm-up of
``--soak-warm-up`` tasks (by default the ledger's retention window, 5,000 settled sessions: until
it is full, the replicated state is smaller and each record cheaper than for the rest of the
run), and prints, every tenth of the run, that tenth's throughput and percentiles, the
leader's RSS and the size of the leader's Raft journal (``raft-*.journal`` in the data folder):
growth there is a leak or missing compaction; and under each, that tenth's CPU per task by role
(which role's cost drifts), the machine's speed against the first tenth (``Yardstick``: the CPU
time of a fixed loop, so a drift every role shares can be told from the runtime's own), how its
cores were spent (busy, idle, stolen by the host) and the replicas that compacted their journal
in the tenth (``*`` marks the leader). A replica's CPU includes its compactions (forked children
it reaped).

    python bench/e2e.py [--tasks-per-level N] [--levels 1,8,32,64,256,1024] [--capacity 1024]
    python bench/e2e.py --soak 20000 [--soak-concurrency 64]
    python bench/e2e.py --levels 64 --profile /tmp/prof   # py-spy on leader, a follower, an agent

``--profile DIR`` samples the leader, one follower and one agent with py-spy during each level,
writes the collapsed stacks to DIR and prints each one's hottest functions (own time, and time
under the functions of this project), so a profile before and after a change is one command.

Everything listens on 127.0.0.1; every loop is bounded in count and in time. The machine is
shared and noisy: compare the ratios and the CPU split, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import multiprocessing.synchronize
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import psutil
import ray
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mca.config import AgentSpec, ClusterConfig, load
from mca.deploy import Deployment, deploy, teardown
from mca.embedded import free_ports
from mca.metrics import series_key
from mca.sdk import Client, RequestRejected
from mca.submissions import OVERLOADED
from mca.tls import Identity, Principal
from mca.topology import ReplicaAddress
from protocol.ledger import SETTLED_SESSIONS_KEPT

#: The order the roles are printed in; ``other`` (a descendant of this process that is not Ray,
#: e.g. multiprocessing's resource tracker) only when it spent anything.
ROLES = ("leader", "followers", "agents", "stores", "ray", "client", "other")
#: How long the cluster is watched doing nothing before the first level (``idle_line``).
IDLE_SECONDS = 3.0


def _baseline_server(port: int, plain_port: int, identity: Identity, ready: multiprocessing.synchronize.Event) -> None:
    """The raw gRPC baseline: TLS with client certificates like the cluster's listeners (the
    ratio compares like with like), and the same server in plaintext (what TLS costs)."""

    async def serve() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_secure_port(f"127.0.0.1:{port}", identity.server_credentials())
        server.add_insecure_port(f"127.0.0.1:{plain_port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()

    asyncio.run(serve())


# --- which process is what -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The cluster's processes by role at one moment, and who leads."""

    roles: dict[int, str]  # pid -> role
    leader: str  # replica id, "" while none leads
    term: int
    leader_pid: int
    batching: dict[str, int] = dataclasses.field(default_factory=dict)  # the leader's counters
    refused: int = 0  # submits the leader refused at the admission bound (RESOURCE_EXHAUSTED)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def cluster(deployment: Deployment, exclude: int) -> Cluster:
    """Map every process of the cluster to its role. ``exclude``: a child of this process that
    is not part of the cluster (the baseline server), left out with its descendants."""
    replicas, agents = deployment.statuses()
    roles: dict[int, str] = {}
    leader, term, leader_pid = "", max((r["term"] for r in replicas), default=0), 0
    batching: dict[str, int] = {}
    refused = 0
    forks: set[int] = set()
    for r in replicas:
        roles[r["pid"]] = "leader" if r["leader"] else "followers"
        # pysyncobj's compactions, forked: counted with their replica once it has reaped them.
        forks.update(p.pid for p in _descendants(r["pid"]))
        if r["leader"]:
            batching = dict(r.get("batching", {}))
            refused = r.get("metrics", {}).get(series_key("calls_refused_total", OVERLOADED), 0)
            leader, term, leader_pid = r["id"], r["term"], r["pid"]
    for a in agents:
        roles[a["pid"]] = "agents"
    stores = ray.get([s.status.remote() for s in deployment.stores.values()], timeout=10)
    for s in stores:  # the actor, and the server process it started
        roles[s["pid"]] = "stores"
        for p in _descendants(s["pid"]):
            roles[p.pid] = "stores"
    me = os.getpid()
    roles[me] = "client"
    skip = {exclude, *(p.pid for p in _descendants(exclude)), *forks}
    for p in _descendants(me):  # GCS, raylet, dashboard, workers: Ray starts them from the driver
        if p.pid in roles or p.pid in skip:
            continue
        try:
            command = " ".join(p.cmdline()).lower()
        except psutil.Error:
            continue
        roles[p.pid] = "ray" if "ray" in command or "gcs_server" in command else "other"
    return Cluster(roles, leader, term, leader_pid, batching, refused)


def cpu_seconds(pids: dict[int, str]) -> dict[int, float]:
    """User + system CPU seconds of each process still alive; a replica's include its reaped
    children (pysyncobj compacts its journal in a forked child: the replica's work)."""
    times: dict[int, float] = {}
    for pid, role in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        times[pid] = t.user + t.system
        if role in ("leader", "followers"):
            times[pid] += t.children_user + t.children_system
    return times


@dataclasses.dataclass(frozen=True)
class Snapshot:
    cluster: Cluster
    cpu: dict[int, float]


def snapshot(deployment: Deployment, exclude: int) -> Snapshot:
    c = cluster(deployment, exclude)
    return Snapshot(c, cpu_seconds(c.roles))


def cpu_by_role(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per role between two snapshots. A process that appeared in between counts
    from zero; one that disappeared is lost (its last seconds cannot be read any more); a
    process's role is the one it has at the end (a follower that took over is the leader)."""
    spent: dict[str, float] = dict.fromkeys(ROLES, 0.0)
    for pid, seconds in after.cpu.items():
        role = after.cluster.roles.get(pid) or before.cluster.roles.get(pid, "other")
        spent[role] += max(0.0, seconds - before.cpu.get(pid, 0.0))
    return spent


def idle_line(deployment: Deployment, exclude: int, seconds: float = IDLE_SECONDS) -> str:
    """Cores each role keeps busy while no task runs: the floor under ``cpu ms/task``."""
    before = snapshot(deployment, exclude)
    time.sleep(seconds)
    spent = cpu_by_role(before, snapshot(deployment, exclude))
    cores = {role: s / seconds for role, s in spent.items()}
    return f"idle for {seconds:.0f} s, cores busy: " + _by_role(cores, 2, shown_from=1e-12)


def cpu_line(spent: dict[str, float], tasks: int) -> str:
    per = {role: 1000 * s / max(tasks, 1) for role, s in spent.items()}
    return "cpu ms/task: " + _by_role(per, 1, shown_from=0.05)


def _by_role(figures: dict[str, float], digits: int, shown_from: float) -> str:
    """``role figure`` for every role (``other`` only from ``shown_from`` on), then the total."""
    shown = [f"{role} {figures[role]:.{digits}f}" for role in ROLES if role != "other" or figures[role] >= shown_from]
    return " ".join(shown) + f" total {sum(figures.values()):.{digits}f}"


def batching_line(before: Cluster, after: Cluster, tasks: int) -> str:
    """How much each hop batched during a level (the leader's counters; empty if it changed)."""
    if before.leader != after.leader or not after.batching:
        return ""
    d = {k: after.batching.get(k, 0) - before.batching.get(k, 0) for k in after.batching}

    def per(a: str, b: str) -> str:
        return f"{d[a] / d[b]:.1f}" if d.get(b) else "-"

    return (
        f"batching: {per('records', 'entries')} records/Raft entry, {per('messages_out', 'calls_out')} messages"
        f"/call to agents ({per('answers', 'calls_out')} answers in the reply), {per('messages_in', 'calls_in')}"
        f"/call from agents; append to apply {d.get('apply_wait_us', 0) / 1000 / max(d['entries'], 1):.1f} ms; "
        f"per task: {d['records'] / max(tasks, 1):.1f} records, {d['messages_out'] / max(tasks, 1):.1f} messages to"
        f" agents and {(d['answers'] + d.get('messages_in', 0)) / max(tasks, 1):.1f} from them"
    )


def refusals(before: Cluster, after: Cluster) -> str:
    """Submits refused RESOURCE_EXHAUSTED at the admission bound (the SDK backs off and retries
    them, so they are no errors): the leader's count, when one replica led throughout."""
    if before.leader != after.leader:
        return "refused at the admission bound: (leader changed)"
    return f"refused at the admission bound: {after.refused - before.refused}"


def leader_change(before: Cluster, after: Cluster) -> str:
    if before.leader == after.leader and before.term == after.term:
        return f"leader {after.leader or 'none'} unchanged (term {after.term})"
    return f"LEADER CHANGED {before.leader or 'none'} -> {after.leader or 'none'} (term {before.term} -> {after.term})"


def rss_mib(pid: int) -> float:
    if pid <= 0:  # no leader at that moment
        return 0.0
    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return 0.0


def journal_mib(config: ClusterConfig, replica_id: str) -> float:
    """How much of ``replica_id``'s Raft journal holds entries (pysyncobj names it after the
    Raft address). The file itself is a memory map that doubles when full and never shrinks:
    after a compaction pysyncobj rewrites the kept entries from the start, so its size is the
    high-water mark, and the used part (the offset in its header) is what compaction bounds."""
    from pysyncobj.journal import LAST_RECORD_OFFSET_OFFSET

    raft = next((r.raft for r in config.replicas if r.replica_id == replica_id), "")
    path = Path(config.data_dir) / f"raft-{raft.replace(':', '_')}.journal"
    try:
        with path.open("rb") as f:
            f.seek(LAST_RECORD_OFFSET_OFFSET)
            return int.from_bytes(f.read(4), "little") / 2**20
    except OSError:
        return 0.0


def _cluster_memory() -> float:
    total = 0
    for p in psutil.process_iter(["cmdline", "memory_info"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "ray" in cmd and p.info["memory_info"] is not None:
            total += p.info["memory_info"].rss
    return total / 2**20


# --- load ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    """What became of the submits: latencies of the completed ones, the rest counted by cause."""

    latencies: list[float] = dataclasses.field(default_factory=list)
    not_completed: Counter[str] = dataclasses.field(default_factory=Counter)
    errors: Counter[str] = dataclasses.field(default_factory=Counter)

    @property
    def completed(self) -> int:
        return len(self.latencies)

    def problems(self) -> str:
        not_completed = sum(self.not_completed.values())
        line = f"not completed: {not_completed}"
        if not_completed:
            line += f" {dict(self.not_completed.most_common(5))}"
        line += f"; submit errors: {sum(self.errors.values())}"
        return line + (f" {dict(self.errors)}" if self.errors else "")


def task_runner(client: Client, tally: Tally, timeout: float) -> Callable[[int], Awaitable[None]]:
    """One coordinated task, its outcome recorded in ``tally``; never raises, never hangs."""
    stamp = time.time_ns()

    async def task(i: int) -> None:
        t = time.perf_counter()
        try:
            s = await asyncio.wait_for(
                client.submit("echo_pair", {"value": i}, key=f"bench-{stamp}-{i}", wait=True), timeout
            )
        except RequestRejected as exc:  # the SDK's form of a gRPC status (after its retries)
            tally.errors[exc.code] += 1
            return
        except grpc.aio.AioRpcError as exc:
            tally.errors[exc.code().name] += 1
            return
        except TimeoutError:
            tally.errors["BENCH_TIMEOUT"] += 1
            return
        if s.state != "completed":
            tally.not_completed[s.reason[:60] or s.state] += 1
            return
        tally.latencies.append(time.perf_counter() - t)

    return task


async def run_bounded(
    call: Callable[[int], Awaitable[None]], total: int, concurrency: int, seconds: float, first: int = 0
) -> tuple[float, int]:
    """Run ``call(first) .. call(first + total - 1)``, ``concurrency`` at a time, for at most
    ``seconds``; return the wall time and how many were cut off by that deadline."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    started = time.perf_counter()
    pending = {asyncio.ensure_future(one(first + i)) for i in range(total)}
    _, late = await asyncio.wait(pending, timeout=seconds)
    for f in late:
        f.cancel()
    if late:
        await asyncio.wait(late, timeout=10)
    return time.perf_counter() - started, len(late)


class Profiler:
    """py-spy on the leader, a follower and an agent for the length of one level."""

    def __init__(self, out: Path, now: Cluster, level: int) -> None:
        self._out = out
        self._runs: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        picks = {"leader": now.leader_pid}
        for pid, role in sorted(now.roles.items()):
            if role in ("followers", "agents") and role not in picks:
                picks[role] = pid
        py_spy = Path(sys.executable).with_name("py-spy")
        out.mkdir(parents=True, exist_ok=True)
        for role, pid in picks.items():
            if not pid:
                continue
            path = out / f"c{level}-{role}.txt"
            command = [str(py_spy), "record", "--pid", str(pid), "--rate", "97", "--gil", "--format", "raw"]
            command += ["--output", str(path), "--nonblocking"]
            self._runs.append(
                (role, path, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            )

    def stop(self) -> list[str]:
        """Stop sampling; one line per sampled process with its hottest functions."""
        lines = []
        for role, path, run in self._runs:
            run.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
            try:
                run.wait(30)
            except subprocess.TimeoutExpired:
                run.kill()
                continue
            lines.append(f"{'':>13}profile {role} ({path}): {hottest(path)}")
        return lines


def hottest(path: Path, top: int = 8) -> str:
    """The functions with the most samples in a py-spy raw profile: own time (the leaf frame)."""
    own: Counter[str] = Counter()
    total = 0
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return "no samples"
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        leaf = stack.rsplit(";", 1)[-1]
        name, _, where = leaf.partition(" (")
        own[f"{name} {where.rsplit('/', 1)[-1].split(':')[0].rstrip(')')}"] += n
    if not total:
        return "no samples"
    return ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in own.most_common(top))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _run_levels(
    config: ClusterConfig, deployment: Deployment, baseline: str, baseline_pid: int, args: argparse.Namespace
) -> None:
    levels = [int(x) for x in args.levels.split(",")]
    head = f"{'tasks/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{'concurrency':>11} {head} | {head.replace('tasks/s', ' grpc/s')} | {'ratio':>6}")
    identity = config.operator_identity()
    async with Client(config.task_addresses, identity) as client, identity.channel(baseline) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        blat: list[float] = []
        berrors: Counter[str] = Counter()

        async def ping(i: int) -> None:
            t = time.perf_counter()
            try:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=args.task_timeout)
            except grpc.aio.AioRpcError as exc:  # counted like the tasks' errors, and shown
                berrors[exc.code().name] += 1
                return
            blat.append(time.perf_counter() - t)

        await run_bounded(task_runner(client, Tally(), args.task_timeout), 20, 4, args.run_seconds)  # warm up
        for c in levels:
            total = min(max(args.tasks_per_level, 4 * c), args.max_tasks)
            tally = Tally()
            stream = client._submissions._link  # the SDK's SubmitStream: how much each write carried
            writes_before = (stream.written, stream.carried)
            before = await asyncio.to_thread(snapshot, deployment, baseline_pid)
            profiler = Profiler(Path(args.profile), before.cluster, c) if args.profile else None
            took, late = await run_bounded(task_runner(client, tally, args.task_timeout), total, c, args.run_seconds)
            after = await asyncio.to_thread(snapshot, deployment, baseline_pid)
            profiled = profiler.stop() if profiler is not None else []
            blat.clear()
            berrors.clear()
            btook, _ = await run_bounded(ping, total, c, args.run_seconds)
            rate, brate = tally.completed / took, len(blat) / btook
            print(
                f"{c:>11} {rate:>9.0f} {_pct(tally.latencies, 0.5):>8.1f} {_pct(tally.latencies, 0.99):>8.1f} | "
                f"{brate:>9.0f} {_pct(blat, 0.5):>8.1f} {_pct(blat, 0.99):>8.1f} | {rate / max(brate, 1e-9):>6.3f}"
            )
            print(f"{'':>13}{cpu_line(cpu_by_role(before, after), total)}  ({total} tasks)")
            cut = f"; cut off by the {args.run_seconds:.0f} s deadline: {late}" if late else ""
            print(
                f"{'':>13}{tally.problems()}{cut}; {refusals(before.cluster, after.cluster)}; "
                f"{leader_change(before.cluster, after.cluster)}"
            )
            if berrors:  # the plain server failing too says the limit is gRPC's, not the runtime's
                print(f"{'':>13}raw gRPC calls failed at the same concurrency: {dict(berrors)}")
            batched = batching_line(before.cluster, after.cluster, total)
            written, carried = stream.written - writes_before[0], stream.carried - writes_before[1]
            submits = f"{carried / written:.1f} submits/stream write from the client" if written else ""
            if batched or submits:
                print(f"{'':>13}{'; '.join(x for x in (batched, submits) if x)}")
            for line in profiled:
                print(line)


async def _tls_cost(identity: Identity, tls: str, plain: str, calls: int = 2000) -> None:
    """Raw gRPC unary calls to the same server with TLS (client certificates) and in plaintext,
    one after the other, on channels already connected: what TLS costs a call."""
    line = []
    for c in (1, 64):
        rates = []
        for channel in (grpc.aio.insecure_channel(plain), identity.channel(tls)):
            async with channel:
                stub = health_pb2_grpc.HealthStub(channel)
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=30)  # handshake done

                async def ping(i: int, stub: Any = stub) -> None:
                    await stub.Check(health_pb2.HealthCheckRequest(), timeout=30)

                took, _ = await run_bounded(ping, calls, c, 120.0)
                rates.append(calls / took)
        line.append(f"{c} in flight: {rates[0]:.0f} plaintext, {rates[1]:.0f} TLS ({rates[1] / rates[0]:.2f}x)")
    print("raw gRPC calls/s, " + "; ".join(line))


def machine_jiffies() -> list[int]:
    """The machine's ``cpu`` line of ``/proc/stat`` (user, nice, system, idle, iowait, irq,
    softirq, steal: clock ticks summed over the cores); empty where there is none."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return []


def cores_line(before: list[int], after: list[int], seconds: float) -> str:
    """How the machine's cores were spent between two ``machine_jiffies`` readings: busy (our
    processes and anyone else's), idle, and stolen by the host (a shared machine's neighbours:
    our processes got none of that time, and their CPU times do not show it)."""
    if len(before) < 8 or len(after) < 8 or seconds <= 0:
        return "cores: -"
    d = [a - b for a, b in zip(after, before, strict=True)]
    hz = os.sysconf("SC_CLK_TCK")
    idle, stolen = d[3] + d[4], d[7]
    busy = sum(d) - idle - stolen
    return f"cores busy {busy / hz / seconds:.2f} idle {idle / hz / seconds:.2f} stolen {stolen / hz / seconds:.2f}"


class Yardstick:
    """The machine's own speed through a run. Every ``PERIOD`` s a thread times a fixed piece of
    pure-Python work in its own CPU time (``time.thread_time``: waiting for a core or the GIL
    does not count), so a reading rises only when the same instructions cost more: a busier
    host, caches shared with its other guests, a slower clock. The soak prints each tenth's
    median against the first tenth's: a drift in every role's CPU per task that the yardstick
    shares is the machine's, not the runtime's."""

    PERIOD = 0.25

    def __init__(self) -> None:
        self._samples: list[float] = []
        self._taken = 0
        self._first = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yardstick", daemon=True)
        self._thread.start()

    @staticmethod
    def _work() -> int:
        total = 0
        for i in range(20_000):  # about 1 ms here: shorter than a GIL switch interval
            total += i * i % 7
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.PERIOD):
            started = time.thread_time()
            self._work()
            self._samples.append(time.thread_time() - started)

    def ratio(self) -> float:
        """The median reading since the last call, against the first call's (1.0 on the first;
        0.0 when there was no reading)."""
        window, self._taken = self._samples[self._taken :], len(self._samples)
        if not window:
            return 0.0
        median = sorted(window)[len(window) // 2]
        self._first = self._first or median
        return median / self._first

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def _soak(config: ClusterConfig, deployment: Deployment, baseline_pid: int, args: argparse.Namespace) -> None:
    """``args.soak`` tasks kept ``args.soak_concurrency`` in flight, reported every tenth of
    them settled (completed or not), while the load goes on."""
    n, c = args.soak, args.soak_concurrency
    tenth = max(1, n // 10)
    print(f"soak: {n} tasks at concurrency {c}, a line every {tenth} settled")
    head = f"{'settled':>7} {'tasks/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'leader RSS MiB':>15} {'journal MiB':>12}"
    print(head + "  not completed or failed")
    async with Client(config.task_addresses, config.operator_identity()) as client:
        # Warm up to the steady state first: until the ledger holds its full retention window
        # of settled sessions it is smaller, and each applied record cheaper, than for the rest
        # of the run, so a cold first tenth made a flat run look like a drift.
        if args.soak_warm_up > 0:
            warm = Tally()
            runner = task_runner(client, warm, args.task_timeout)
            took, _ = await run_bounded(runner, args.soak_warm_up, c, args.run_seconds)
            print(
                f"warm-up: {args.soak_warm_up} tasks ({warm.completed / max(took, 1e-9):.0f}/s, p50 "
                f"{_pct(warm.latencies, 0.5):.1f} ms, p99 {_pct(warm.latencies, 0.99):.1f} ms), not counted below"
            )
        start = await asyncio.to_thread(snapshot, deployment, baseline_pid)
        tally = Tally()
        run = asyncio.ensure_future(run_bounded(task_runner(client, tally, args.task_timeout), n, c, args.run_seconds))

        def settled() -> int:
            return tally.completed + sum(tally.not_completed.values()) + sum(tally.errors.values())

        last = start  # CPU by role per tenth: which role's cost per task drifts with the run
        yardstick = Yardstick()
        journals = {r.replica_id: journal_mib(config, r.replica_id) for r in config.replicas}
        jiffies = machine_jiffies()

        async def report(since: float, seen: int, problems: int) -> tuple[float, int, int]:
            nonlocal last, journals, jiffies
            now = time.perf_counter()
            window = tally.latencies[seen:]
            who = await asyncio.to_thread(cluster, deployment, baseline_pid)
            taken = await asyncio.to_thread(snapshot, deployment, baseline_pid)
            bad = settled() - tally.completed
            print(
                f"{settled():>7} {len(window) / max(now - since, 1e-9):>8.0f} {_pct(window, 0.5):>8.1f} "
                f"{_pct(window, 0.99):>8.1f} {rss_mib(who.leader_pid):>15.0f} "
                f"{journal_mib(config, who.leader):>12.1f}  {bad - problems or ''}"
            )
            # A replica whose journal shrank compacted in this tenth (the leader's, or a follower's).
            now_journals = {r: journal_mib(config, r) for r in journals}
            compacted = [r + ("*" if r == who.leader else "") for r, j in now_journals.items() if j < journals[r]]
            journals = now_journals
            now_jiffies = machine_jiffies()
            print(
                f"{'':>8}{cpu_line(cpu_by_role(last, taken), max(len(window), 1))}; "
                f"compacted: {', '.join(compacted) or '-'}\n{'':>8}machine: yardstick x{yardstick.ratio():.2f}, "
                f"{cores_line(jiffies, now_jiffies, now - since)}"
            )
            jiffies = now_jiffies
            last = taken
            return now, len(tally.latencies), bad

        mark, since, seen, problems = tenth, time.perf_counter(), 0, 0
        while not run.done():  # ends with the run, itself bounded by --run-seconds
            await asyncio.wait({run}, timeout=0.2)
            if settled() >= mark:
                since, seen, problems = await report(since, seen, problems)
                mark = (settled() // tenth + 1) * tenth  # one line even if several tenths passed
        took, late = run.result()
        if settled() > mark - tenth:  # the last, partial tenth
            await report(since, seen, problems)
        end = await asyncio.to_thread(snapshot, deployment, baseline_pid)
        yardstick.stop()
    print(
        f"soak: {tally.completed} completed in {took:.0f} s ({tally.completed / took:.0f}/s), "
        f"p50 {_pct(tally.latencies, 0.5):.1f} ms, p99 {_pct(tally.latencies, 0.99):.1f} ms"
        + (f"; cut off by the {args.run_seconds:.0f} s deadline: {late}" if late else "")
    )
    print(f"soak: {cpu_line(cpu_by_role(start, end), max(tally.completed, 1))}")
    print(
        f"soak: {tally.problems()}; {refusals(start.cluster, end.cluster)}; {leader_change(start.cluster, end.cluster)}"
    )


async def _failover(addresses: list[str], identity: Identity, leader_pid: int) -> float | None:
    """Seconds from SIGKILL of the leader to the next accepted submit (None: none in 30 s)."""
    async with Client(addresses, identity, retry_seconds=30) as client:
        os.kill(leader_pid, signal.SIGKILL)
        killed = time.perf_counter()
        try:
            await asyncio.wait_for(client.submit("echo_pair", {"value": 1}, wait=False), 40)
        except (RequestRejected, grpc.aio.AioRpcError, TimeoutError):
            return None
        return time.perf_counter() - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks-per-level", type=int, default=200, help="at least; a level runs 4 x its concurrency")
    parser.add_argument("--max-tasks", type=int, default=4096, help="at most, per level")
    parser.add_argument("--levels", default="1,8,32,64,256,1024")
    parser.add_argument("--capacity", type=int, default=1024, help="of each echo agent (high: it does not throttle)")
    parser.add_argument("--soak", type=int, default=0, help="run N tasks at one concurrency instead of the levels")
    parser.add_argument("--soak-concurrency", type=int, default=64)
    parser.add_argument(
        "--soak-warm-up",
        type=int,
        default=SETTLED_SESSIONS_KEPT,
        help="tasks before the soak's first tenth (default: the ledger's retention window)",
    )
    parser.add_argument("--task-timeout", type=float, default=120.0, help="seconds for one task, then it counts")
    parser.add_argument("--profile", default="", help="folder: py-spy the leader, a follower and an agent")
    parser.add_argument("--run-seconds", type=float, default=900.0, help="at most, per level (or for the soak)")
    args = parser.parse_args()

    base = load(Path(__file__).resolve().parent.parent / "cluster.yaml")
    ports = free_ports(10)
    replicas = tuple(
        ReplicaAddress(f"mca-{i + 1}", f"127.0.0.1:{ports[2 * i]}", f"127.0.0.1:{ports[2 * i + 1]}") for i in range(3)
    )
    agents = tuple(AgentSpec(f"echo-{i}", "mca.agents:EchoAgent", args.capacity) for i in (1, 2))
    stores = dataclasses.replace(base.stores, documents_port=ports[7], redis_port=ports[8])
    config = dataclasses.replace(
        base, data_dir=Path(tempfile.mkdtemp(prefix="mca-bench-")), replicas=replicas, agents=agents, stores=stores
    )

    port = ports[6]
    spawn = multiprocessing.get_context("spawn")  # gRPC does not survive fork()
    ready = spawn.Event()
    serving = config.identity(Principal("replica", "baseline"))
    baseline = spawn.Process(target=_baseline_server, args=(port, ports[9], serving, ready), daemon=True)
    baseline.start()
    ready.wait(30)
    baseline_pid = baseline.pid or -1

    ray.init(include_dashboard=True, dashboard_host="127.0.0.1", _node_ip_address="127.0.0.1", log_to_driver=False)
    deployment = deploy(config)
    try:
        time.sleep(2.0)  # election, registration
        print(f"coordinated two-agent tasks (echo_pair) vs raw gRPC unary, {os.cpu_count()} cores")
        print(idle_line(deployment, baseline_pid))
        if args.soak:
            asyncio.run(_soak(config, deployment, baseline_pid, args))
        else:
            asyncio.run(_tls_cost(config.operator_identity(), f"127.0.0.1:{port}", f"127.0.0.1:{ports[9]}"))
            asyncio.run(_run_levels(config, deployment, f"127.0.0.1:{port}", baseline_pid, args))
        now = cluster(deployment, baseline_pid)
        print(f"leader {now.leader} RSS: {rss_mib(now.leader_pid):.0f} MiB")
        print(f"cluster memory (Ray head, dashboard, 3 replicas, 2 agents): {_cluster_memory():.0f} MiB")
        if now.leader_pid:
            took = asyncio.run(_failover(config.task_addresses, config.operator_identity(), now.leader_pid))
            shown = f"{took * 1000:.0f} ms" if took is not None else "no submit accepted within 30 s"
            print(f"failover: SIGKILL of the leader to the next accepted submit: {shown}")
        else:
            print("failover: not measured (no leader)")
    finally:
        teardown(deployment)
        ray.shutdown()
        baseline.terminate()
        baseline.join(10)
        # Journals, snapshots and the stores' files: about 500 MiB after a long run. Kept, with
        # the stores' logs, when the run failed.
        if sys.exc_info()[0] is None:
            shutil.rmtree(config.data_dir, ignore_errors=True)
        else:
            print(f"the cluster's data and logs are kept in {config.data_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
