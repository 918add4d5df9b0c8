"""Theory of operation: the Ray head of ``mca up --detach``, and stopping that head only.

``ray stop`` stops every Ray process on the machine, whoever started it. So ``mca up --detach``
runs ``ray start --head`` as the leader of a new process session: every process the head starts
(GCS server, raylet, dashboard, monitors, the Ray client server) and every worker the raylet
forks inherits that session id. ``up`` writes a record in the data folder (``ray-head.json``):
the session id, the GCS address and the session directory, read from the command lines of the
session's raylet (``--gcs-address``) and GCS server (``--session-dir``). The other commands
reach the head through that record; ``up`` also removes Ray's machine-wide "latest cluster" file
when it names this head, so a plain ``ray.init()`` elsewhere does not join it by accident.

``mca down`` takes a snapshot of the machine's processes and picks ours (``cluster_processes``,
a pure function of the snapshot): the members of the recorded session plus their descendants
(a store server started in a session of its own is still a child of its actor's worker). The
pick is empty, and the record stale, unless a process of that session still names the recorded
session directory in its flags: a session id is a pid, reused once all its members are gone.
``down`` then asks our actors to stop (through the recorded GCS address, never ``auto``, which
may find another cluster) and signals our processes as ``ray stop`` does, in three rounds:
raylet, then the rest, then the GCS server; SIGTERM, and SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from mca.tls import private_folder

#: The record of a running head, in the config's data folder.
RECORD_NAME = "ray-head.json"

#: The flags by which a Ray process names its session directory (Ray 2.60: GCS server, raylet,
#: dashboard, log monitor, agents), and the one by which the raylet names its GCS.
SESSION_DIR_FLAGS = ("--session-dir=", "--session_dir=")
GCS_ADDRESS_FLAG = "--gcs-address="


@dataclass(frozen=True)
class Head:
    """A Ray head started by ``mca up --detach``."""

    sid: int  # the process session of ``ray start`` and everything it started
    gcs_address: str  # host:port, what ``ray.init(address=...)`` takes
    session_dir: str  # /tmp/ray/session_<time>_<pid>: unique to this head


@dataclass(frozen=True)
class Proc:
    """One process of a snapshot: what ``cluster_processes`` needs to know of it."""

    pid: int
    ppid: int
    sid: int
    cmdline: tuple[str, ...]
    started: float = 0.0  # psutil's create_time: a pid reused meanwhile is not this process

    @property
    def program(self) -> str:
        return os.path.basename(self.cmdline[0]) if self.cmdline else ""

    def flag(self, prefixes: Iterable[str]) -> str | None:
        """The value of the first argument that starts with one of ``prefixes``."""
        for arg in self.cmdline:
            for prefix in prefixes:
                if arg.startswith(prefix):
                    return arg[len(prefix) :]
        return None


def record_path(data_dir: Path) -> Path:
    return data_dir / RECORD_NAME


def load(data_dir: Path) -> Head | None:
    """The recorded head, or None when there is none (or the record is unreadable: it is then
    removed, since nothing can be stopped through it)."""
    path = record_path(data_dir)
    try:
        raw = json.loads(path.read_text())
        return Head(int(raw["sid"]), str(raw["gcs_address"]), str(raw["session_dir"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None


def save(data_dir: Path, head: Head) -> None:
    path = record_path(data_dir)
    private_folder(data_dir)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(asdict(head)) + "\n")
    os.replace(temporary, path)


def forget(data_dir: Path) -> None:
    record_path(data_dir).unlink(missing_ok=True)


def head_of(processes: Sequence[Proc], sid: int) -> Head | None:
    """The head running in session ``sid`` (just started by ``ray start``): the GCS address its
    raylet connects to, the session directory its GCS server writes to."""
    members = [p for p in processes if p.sid == sid]
    address = next((a for p in members if p.program == "raylet" and (a := p.flag([GCS_ADDRESS_FLAG]))), None)
    session_dir = next((d for p in members if p.program == "gcs_server" and (d := p.flag(SESSION_DIR_FLAGS))), None)
    if address is None or session_dir is None:
        return None
    return Head(sid, address, session_dir)


def cluster_processes(processes: Sequence[Proc], head: Head, me: int | None = None) -> tuple[list[Proc], ...]:
    """The processes to stop for ``head``, in the order to stop them: (raylets, the rest, GCS
    servers). Empty when no process of the recorded session names its session directory (the
    head is gone, and the session id may be someone else's by now). ``me`` (this process) and
    its ancestors are never picked."""
    members = [p for p in processes if p.sid == head.sid]
    if not any(p.flag(SESSION_DIR_FLAGS) == head.session_dir for p in members):
        return [], [], []
    children: dict[int, list[Proc]] = {}
    for p in processes:
        children.setdefault(p.ppid, []).append(p)
    picked: dict[int, Proc] = {}
    todo = list(members)
    while todo:
        p = todo.pop()
        if p.pid not in picked:
            picked[p.pid] = p
            todo.extend(children.get(p.pid, []))
    by_pid = {p.pid: p for p in processes}
    spared = set()
    pid = me
    while pid is not None and pid not in spared and pid > 0:
        spared.add(pid)
        parent = by_pid.get(pid)
        pid = parent.ppid if parent is not None else None
    chosen = sorted((p for p in picked.values() if p.pid not in spared), key=lambda p: p.pid)
    raylets = [p for p in chosen if p.program == "raylet"]
    gcs = [p for p in chosen if p.program == "gcs_server"]
    rest = [p for p in chosen if p.program not in ("raylet", "gcs_server")]
    return raylets, rest, gcs


def snapshot() -> list[Proc]:
    """Every process of this machine we can see (one that ends meanwhile is left out)."""
    found = []
    for process in psutil.process_iter(["ppid", "cmdline", "create_time"]):
        with contextlib.suppress(psutil.Error, OSError):
            info = process.info
            cmdline, started = tuple(info["cmdline"] or ()), info["create_time"] or 0.0
            found.append(Proc(process.pid, info["ppid"] or 0, os.getsid(process.pid), cmdline, started))
    return found


def stop(rounds: Sequence[Sequence[Proc]], grace_seconds: float = 5.0) -> int:
    """Stop the processes of each round in turn: SIGTERM, then SIGKILL to those still running
    after ``grace_seconds``. Returns how many were running."""
    total = 0
    for procs in rounds:
        processes = []
        for p in procs:
            with contextlib.suppress(psutil.Error):  # gone meanwhile, or not ours to signal
                process = psutil.Process(p.pid)
                if p.started and process.create_time() != p.started:
                    continue  # ended since the snapshot, and its pid given to another process
                process.terminate()
                processes.append(process)
        total += len(processes)
        _, alive = psutil.wait_procs(processes, timeout=grace_seconds)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(alive, timeout=grace_seconds)
    return total


def forget_current_cluster(gcs_address: str) -> None:
    """Remove Ray's "latest cluster" file (/tmp/ray/ray_current_cluster) if it names
    ``gcs_address``: a plain ``ray.init()`` elsewhere on the machine would otherwise join this
    head while it runs, and fail to connect once it is gone."""
    with contextlib.suppress(Exception):  # Ray's private helpers: best effort, never fatal
        from ray._common.utils import get_ray_address_file

        path = Path(get_ray_address_file(None))
        if path.read_text().strip() == gcs_address:
            path.unlink()
