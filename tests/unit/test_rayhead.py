"""``mca down`` stops the Ray head ``mca up --detach`` recorded and nothing else on the machine:
the pick from a process snapshot, the stale record, and real processes stopped (no Ray here)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mca import rayhead
from mca.rayhead import Head, Proc
from tests.unit.test_config import GOOD

RAY = "/venv/lib/python3.11/site-packages/ray"
OURS = "/tmp/ray/session_2026-01-01_10-00-00_000001_100"
THEIRS = "/tmp/ray/session_2026-01-01_09-00-00_000002_900"


def ray_processes(sid: int, session_dir: str, port: int, first_pid: int) -> list[Proc]:
    """What ``ray start --head`` leaves running (Ray 2.60 command lines, shortened), started by
    ``ray start`` (pid ``sid``, gone) and reparented to init, plus workers and agents the raylet
    forked (renamed by setproctitle: their command line no longer names the session)."""
    gcs, raylet, logs = f"127.0.0.1:{port}", first_pid + 1, f"{session_dir}/logs"
    return [
        Proc(first_pid, 1, sid, ("/ray/gcs/gcs_server", f"--log_dir={logs}",
             f"--gcs_server_port={port}", "--node-ip-address=127.0.0.1", f"--session-dir={session_dir}")),
        Proc(raylet, 1, sid, ("/ray/raylet/raylet", f"--session_dir={session_dir}", f"--gcs-address={gcs}")),
        Proc(first_pid + 2, 1, sid, ("python", "-u", f"{RAY}/dashboard/dashboard.py", f"--session-dir={session_dir}")),
        Proc(first_pid + 3, 1, sid, ("python", "-u", f"{RAY}/_private/log_monitor.py", f"--session-dir={session_dir}")),
        Proc(first_pid + 4, 1, sid, ("python", "-u", f"{RAY}/autoscaler/_private/monitor.py", f"--logs-dir={logs}")),
        Proc(first_pid + 5, 1, sid, ("python", "-m", "ray.util.client.server", f"--address={gcs}", "--port=10001")),
        Proc(first_pid + 6, raylet, sid, ("ray::DashboardAgent",)),
        Proc(first_pid + 7, raylet, sid, ("ray::StoreActor",)),
        Proc(first_pid + 8, raylet, sid, ("ray::ReplicaActor",)),
    ]  # fmt: skip


def machine() -> list[Proc]:
    """Our head (session 100), another one (session 900, the same GCS port: ours is gone in
    some tests), a shell of the user's reading our logs, and what our actors started."""
    ours = ray_processes(100, OURS, 6379, 1000)
    theirs = ray_processes(900, THEIRS, 6380, 9000)
    user = [
        Proc(50, 1, 50, ("-bash",)),
        Proc(51, 50, 50, ("tail", "-f", f"{OURS}/logs/raylet.out")),
        Proc(52, 50, 50, ("mca", "down")),
    ]
    stores = [
        Proc(1100, 1007, 100, ("/venv/bin/python", "/venv/bin/secantusd-py", "--auth")),
        Proc(1101, 1007, 1101, ("redis-server", "/data/redis/falkordb.conf")),  # a session of its own
        Proc(1102, 1, 100, ("ray::AgentActor",)),  # a worker whose raylet died: init's child now
    ]
    return ours + theirs + user + stores


def pids(rounds: tuple[list[Proc], ...]) -> list[list[int]]:
    return [[p.pid for p in procs] for procs in rounds]


def test_the_head_is_read_from_the_gcs_server_of_the_new_session() -> None:
    assert rayhead.head_of(machine(), 100) == Head(100, "127.0.0.1:6379", OURS)
    assert rayhead.head_of(machine(), 900) == Head(900, "127.0.0.1:6380", THEIRS)
    assert rayhead.head_of(machine(), 50) is None  # no GCS server in the user's session


def test_down_picks_our_head_its_workers_and_their_children_and_nothing_else() -> None:
    rounds = rayhead.cluster_processes(machine(), Head(100, "127.0.0.1:6379", OURS), me=52)
    # raylet first, GCS server last (as ray stop does); the other head and the shell are spared.
    assert pids(rounds) == [[1001], [1002, 1003, 1004, 1005, 1006, 1007, 1008, 1100, 1101, 1102], [1000]]


def test_a_record_whose_head_is_gone_picks_nothing() -> None:
    head = Head(100, "127.0.0.1:6379", OURS)
    gone = [p for p in machine() if p.sid != 100]
    assert pids(rayhead.cluster_processes(gone, head)) == [[], [], []]
    # Session id 100 given to someone else since: it names no session directory of ours.
    reused = [*gone, Proc(100, 50, 100, ("sleep", "60")), Proc(101, 100, 100, ("python", "job.py"))]
    assert pids(rayhead.cluster_processes(reused, head)) == [[], [], []]
    # Another head in the same session directory's place is not ours either.
    assert pids(rayhead.cluster_processes(machine(), Head(900, "127.0.0.1:6380", OURS))) == [[], [], []]


def test_down_never_picks_itself_or_its_parents() -> None:
    inside = [*machine(), Proc(1200, 1008, 100, ("python", "/venv/bin/mca", "down"))]
    rounds = rayhead.cluster_processes(inside, Head(100, "127.0.0.1:6379", OURS), me=1200)
    assert not {1200, 1008, 1001} & {p for procs in pids(rounds) for p in procs}


def test_the_record_round_trips_and_an_unreadable_one_is_removed(tmp_path: Path) -> None:
    head = Head(100, "127.0.0.1:6379", OURS)
    assert rayhead.load(tmp_path) is None
    rayhead.save(tmp_path, head)
    assert rayhead.load(tmp_path) == head
    rayhead.record_path(tmp_path).write_text("{not json")
    assert rayhead.load(tmp_path) is None and not rayhead.record_path(tmp_path).exists()


def test_stop_ends_the_processes_of_a_recorded_session_and_spares_the_others(tmp_path: Path) -> None:
    """Real processes: a session leader naming a session directory (as Ray's do) with a child,
    and a bystander in a session of its own with the same command line but another directory."""
    session_dir = str(tmp_path / "session_1")
    spawn_child = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"

    def leader(directory: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-c", spawn_child, f"--session-dir={directory}"]
        return subprocess.Popen(argv, start_new_session=True)

    ours, bystander = leader(session_dir), leader(str(tmp_path / "session_2"))
    try:
        head = Head(ours.pid, "127.0.0.1:1", session_dir)
        deadline = time.monotonic() + 10
        while len(picked := rayhead.cluster_processes(rayhead.snapshot(), head, os.getpid())[1]) < 2:
            assert time.monotonic() < deadline, "the child never showed up"
            time.sleep(0.05)
        assert rayhead.stop([picked], grace_seconds=5) == 2
        assert ours.wait(5) is not None and bystander.poll() is None
        assert rayhead.cluster_processes(rayhead.snapshot(), head) == ([], [], [])
    finally:
        for p in (ours, bystander):
            p.kill()
            p.wait()
        for proc in rayhead.snapshot():  # the bystander's child
            if proc.sid == bystander.pid:
                os.kill(proc.pid, 9)


@pytest.mark.parametrize("recorded", [False, True])
def test_down_with_nothing_running_says_so_and_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorded: bool
) -> None:
    from mca.config import load
    from mca.lifecycle import down as _down

    (tmp_path / "cluster.yaml").write_text(GOOD + f"data_dir: {tmp_path / 'data'}\n")
    config = load(tmp_path / "cluster.yaml")
    if recorded:  # a stale record: session 0 holds only kernel threads, naming no session directory
        rayhead.save(config.data_dir, Head(0, "127.0.0.1:1", str(tmp_path / "session_gone")))
    assert _down(config, argparse.Namespace()) == 0
    assert "nothing to stop" in capsys.readouterr().out
    assert rayhead.load(config.data_dir) is None
