"""The runtime's subcommands of ``mca``: up, down, status, submit, get, watch, agents, ask,
credentials, demo.

``up`` runs in the foreground (Ctrl-C stops everything) or, with ``--detach``, starts a Ray head
that outlives the command and records it in the data folder; ``down`` stops that head and
nothing else on the machine (``mca.rayhead``). The other commands talk gRPC to the replicas
named in cluster.yaml, like any client would, over TLS as the local operator (the credential
in the cluster's credential folder) or as whoever ``$MCA_IDENTITY`` names. ``credentials issue``
gives someone else a client credential of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from mca import rayhead
from mca.catalog import CATALOG, TaskType, render_result
from mca.config import ClusterConfig, ConfigError, load
from mca.sdk import Client, Event, RequestRejected, Session
from mca.stores import stop_store_orphans, write_secret
from mca.tls import IDENTITY_ENV, TLS_FOLDER, Authority, CredentialError, Identity, Principal, identity_from_env

if TYPE_CHECKING:
    from rich.console import Console

RAY_TOKEN = Path.home() / ".ray" / "auth_token"


def add_commands(sub: Any) -> None:
    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default="cluster.yaml", help="the cluster's topology (default cluster.yaml)")
        return p

    up = with_config(sub.add_parser("up", help="start the cluster: Ray, the MCA replicas, the agents"))
    up.add_argument("--detach", action="store_true", help="leave it running in the background (stop with mca down)")
    with_config(sub.add_parser("down", help="stop a cluster started with mca up --detach"))
    with_config(sub.add_parser("status", help="replicas, leader, agents, sessions in flight, dashboard"))
    with_config(sub.add_parser("agents", help="the registered agents and their status"))
    submit = with_config(sub.add_parser("submit", help="submit a task"))
    submit.add_argument("task_type")
    submit.add_argument(
        "payload", nargs="?", default="{}", help="a JSON object, or a file holding one (file.json or @file)"
    )
    submit.add_argument("--key", help="idempotency key (default: a new one); reuse it to retry safely")
    submit.add_argument("--wait", action="store_true", help="wait until the session is terminal")
    submit.add_argument("--out", help="write the session and its result documents (plans) to this JSON file")
    get = with_config(sub.add_parser("get", help="a session's state, outputs and result documents"))
    get.add_argument("session_id")
    get.add_argument("--out", help="write the session and its result documents to this JSON file")
    watch = with_config(sub.add_parser("watch", help="follow a session's events until it settles"))
    watch.add_argument("session_id")
    watch.add_argument("--after", type=int, default=0, help="resume after this sequence number")
    ask = with_config(sub.add_parser("ask", help="semantic search in an agent's own knowledge (needs mca up --detach)"))
    ask.add_argument("agent_id", help="e.g. npa-1 (foods) or wpa-1 (exercises)")
    ask.add_argument("question", help='e.g. "high-protein breakfast without dairy"')
    ask.add_argument("-k", type=int, default=5, help="how many answers (default 5)")
    for flag, what in (
        ("exclude-allergen", "foods: leave out foods with this allergen (milk, peanut, ...)"),
        ("diet", "foods: only foods compatible with this pattern (vegan, halal, ...)"),
        ("equipment", "exercises: using this equipment"),
        ("muscle", "exercises: working this muscle"),
        ("level", "exercises: at this level"),
    ):
        ask.add_argument(f"--{flag}", action="append", default=[], help=what)
    credentials = with_config(
        sub.add_parser("credentials", help="issue a client's TLS credential from this cluster's CA")
    )
    credentials.add_argument("action", choices=["issue"])
    credentials.add_argument("name", help="who it is for (the principal client:<name>); they own what they submit")
    role = credentials.add_mutually_exclusive_group()
    role.add_argument("--operator", action="store_true", help="an operator: reads and cancels every session")
    role.add_argument(
        "--monitor", action="store_true", help="a monitor: reads GET /metrics only (Prometheus; docs/monitoring.md)"
    )
    credentials.add_argument(
        "--out", help="folder to write ca.pem, cert.pem, key.pem to (default ./<name>-credentials)"
    )
    top = with_config(sub.add_parser("top", help="a live view: leader, tasks/s, latency, agents' load, lag"))
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    top.add_argument("--count", type=int, default=0, help="refresh this many times, then stop (default: until ^C)")
    demo = with_config(sub.add_parser("demo", help="start the cluster, run some tasks, print them, stop"))
    demo.add_argument("--tasks", type=int, default=20, help="how many two-agent tasks (default 20)")


def run(args: argparse.Namespace) -> int:
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"mca: {exc}", file=sys.stderr)
        return 2
    if args.command in RAY_COMMANDS:
        _ray_token()
    handlers = {
        "up": _up,
        "down": _down,
        "status": _status,
        "agents": _agents,
        "submit": _submit,
        "get": _get,
        "watch": _watch,
        "ask": _ask,
        "credentials": _credentials,
        "top": _top,
        "demo": _demo,
    }
    try:
        return handlers[args.command](config, args)
    except RequestRejected as exc:
        print(f"mca: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except CredentialError as exc:
        print(f"mca: {exc}", file=sys.stderr)
        return 2


#: The commands that start or reach Ray.
RAY_COMMANDS = frozenset({"up", "down", "status", "ask", "demo"})


def _ray_token() -> None:
    """Ray's token authentication, always on: a head started without a token file runs with
    none (anyone local could submit a job as us and read the CA key), and Ray turns it on by
    itself only for ``ray.init(address="auto")``. So: a token in ``~/.ray`` readable by us only,
    and ``RAY_AUTH_MODE=token`` for the head and this driver, set before Ray is imported."""
    RAY_TOKEN.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(RAY_TOKEN.parent, 0o700)
    if not RAY_TOKEN.exists():
        write_secret(RAY_TOKEN, secrets.token_hex(32))
    os.chmod(RAY_TOKEN, 0o600)
    os.environ["RAY_AUTH_MODE"] = "token"


def _identity(config: ClusterConfig) -> Identity:
    """Who ``mca`` is: the credential ``$MCA_IDENTITY`` names, else the local operator's (the
    machine that holds the cluster's credential folder)."""
    return identity_from_env() if os.environ.get(IDENTITY_ENV) else config.operator_identity()


def _credentials(config: ClusterConfig, args: argparse.Namespace) -> int:
    role = "operator" if args.operator else "monitor" if args.monitor else "client"
    principal = Principal.parse(f"{role}:{args.name}")
    folder = config.tls_folder or config.data_dir / TLS_FOLDER
    if (folder / "ca.pem").exists() and not (folder / "ca.key").exists():
        print(f"mca: {folder} holds no CA key (your own PKI keeps it): issue {principal} there", file=sys.stderr)
        return 2
    out = Path(args.out or f"{args.name}-credentials")
    if out.exists() and any(out.iterdir()):
        print(f"mca: {out} exists and is not empty; choose another --out", file=sys.stderr)
        return 2
    identity = Authority.open(folder).issue(principal)
    identity.save(out)
    print(f"issued {principal}, valid until {identity.expires():%Y-%m-%d}, in {out}/ (key.pem is private: 0600)")
    if role == "monitor":
        print(f"use it: Prometheus tls_config with ca_file {out}/ca.pem, cert_file, key_file (docs/monitoring.md)")
    else:
        print(f"use it: Client(addresses, identity={str(out)!r}), or MCA_IDENTITY={out} mca submit ...")
    return 0


# --- starting and stopping --------------------------------------------------------------------


def _ray_init(config: ClusterConfig, address: str | None = None) -> None:
    import ray

    from mca.deploy import confine_ray_to_loopback

    if ipaddress.ip_address(config.bind).is_loopback:
        confine_ray_to_loopback()  # one machine: every Ray listener on 127.0.0.1 too

    if address:
        ray.init(address=address, namespace="mca", log_to_driver=False)
        return
    ray.init(
        namespace="mca",
        include_dashboard=True,
        dashboard_host=config.bind,
        dashboard_port=config.dashboard_port,
        _node_ip_address=config.bind,
        log_to_driver=False,
    )


def _up(config: ClusterConfig, args: argparse.Namespace) -> int:
    import ray

    from mca.deploy import deploy, teardown

    if args.detach:
        running = _running_head(config)
        if running is not None:
            print(
                f"mca: the cluster of {config.path} already runs (Ray head at {running.gcs_address}); "
                "stop it with: mca down",
                file=sys.stderr,
            )
            return 1
        head = _start_head(config)
        if head is None:
            return 1
        _ray_init(config, address=head.gcs_address)
        deploy(config, detached=True, spread=True)
        _wait_ready(config)
        _print_status(config)
        print(f"running in the background (Ray head at {head.gcs_address}); stop it with: mca down")
        return 0
    _ray_init(config)
    record = config.data_dir / FOREGROUND
    deployment = deploy(config, spread=True)
    record.write_text(json.dumps({"gcs_address": ray.get_runtime_context().gcs_address, "pid": os.getpid()}))
    try:
        _wait_ready(config)
        _print_status(config)
        print("Ctrl-C stops the cluster")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    finally:
        record.unlink(missing_ok=True)
        teardown(deployment)
        ray.shutdown()
    return 0


def _start_head(config: ClusterConfig) -> rayhead.Head | None:
    """``ray start --head`` as the leader of a new process session (how ``down`` finds every
    process of this head, and no other); the head recorded in the data folder."""
    from mca.deploy import RAY_LOOPBACK_ENV

    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    loopback = RAY_LOOPBACK_ENV if ipaddress.ip_address(config.bind).is_loopback else {}
    starter = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            f"--node-ip-address={config.bind}",
            f"--dashboard-host={config.bind}",
            f"--dashboard-port={config.dashboard_port}",
            "--include-dashboard=true",
            "--disable-usage-stats",
        ],
        stdout=subprocess.DEVNULL,
        env=os.environ | loopback,
        start_new_session=True,
    )
    status = starter.wait()
    if status != 0:
        print(f"mca: ray start --head failed (exit status {status})", file=sys.stderr)
        return None
    head = rayhead.head_of(rayhead.snapshot(), starter.pid)
    if head is None:
        print("mca: ray start --head succeeded, but no GCS server of it runs", file=sys.stderr)
        return None
    rayhead.save(config.data_dir, head)
    # Ray points every plain ray.init() on the machine at the head it started last; ours is
    # reached through the record only, so other drivers do not join it by accident.
    rayhead.forget_current_cluster(head.gcs_address)
    return head


def _running_head(config: ClusterConfig) -> rayhead.Head | None:
    """The head ``mca up --detach`` recorded for this config, if it still runs; a stale record
    is removed."""
    head = rayhead.load(config.data_dir)
    if head is None:
        return None
    if any(rayhead.cluster_processes(rayhead.snapshot(), head, os.getpid())):
        return head
    rayhead.forget(config.data_dir)
    return None


#: Where a foreground ``mca up`` records its Ray cluster while it runs (``mca down`` stops only a
#: detached head; this is for ``status`` and ``ask``).
FOREGROUND = "ray-foreground.json"


def _ray_address(config: ClusterConfig) -> str | None:
    """Where this config's Ray cluster is: the recorded detached head, else the one a foreground
    ``mca up`` recorded while it runs; None when neither runs. Never Ray's "auto", which takes
    whatever cluster it finds on the machine, another user's included (whose actors we would
    then call and whose replies we would unpickle)."""
    head = _running_head(config)
    if head is not None:
        return head.gcs_address
    record = config.data_dir / FOREGROUND
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        running = json.loads(record.read_text())
        if psutil.pid_exists(int(running["pid"])) and psutil.Process(int(running["pid"])).uids().real == os.getuid():
            return str(running["gcs_address"])
    return None


def _down(config: ClusterConfig, args: argparse.Namespace) -> int:
    import ray

    from mca.deploy import attach, teardown

    head = rayhead.load(config.data_dir)
    if head is None:
        print(f"nothing to stop: no Ray head is recorded for {config.path} (mca up --detach records it)")
        return 0
    rounds = rayhead.cluster_processes(rayhead.snapshot(), head, os.getpid())
    if not any(rounds):
        rayhead.forget(config.data_dir)
        rayhead.forget_current_cluster(head.gcs_address)
        print(f"nothing to stop: the Ray head of {config.path} ({head.gcs_address}) is gone; removed its record")
        return 0
    if rounds[-1]:  # its GCS server runs: stop our actors first (the store actors stop their servers)
        try:
            _ray_init(config, address=head.gcs_address)
            teardown(attach(config))
        except (ConnectionError, ValueError, ray.exceptions.RayError) as exc:
            why = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            print(f"mca: the actors did not stop one by one ({why}); stopping their processes", file=sys.stderr)
        finally:
            ray.shutdown()
    stopped = rayhead.stop(rayhead.cluster_processes(rayhead.snapshot(), head, os.getpid()))
    if config.stores.embedded:
        stop_store_orphans(config.data_dir)  # a server whose actor was killed outright
    rayhead.forget(config.data_dir)
    rayhead.forget_current_cluster(head.gcs_address)
    print(f"stopped the Ray head at {head.gcs_address} ({stopped} processes)")
    return 0


def _wait_ready(config: ClusterConfig, seconds: float = 60.0) -> None:
    """Until a leader answers and every configured agent is registered."""

    async def ready() -> None:
        wanted = {a.agent_id for a in config.agents}
        deadline = time.monotonic() + seconds
        async with Client(config.task_addresses, _identity(config), retry_seconds=seconds) as client:
            while time.monotonic() < deadline:
                try:
                    if wanted <= {a.agent_id for a in await client.agents()}:
                        return
                except RequestRejected:
                    pass
                await asyncio.sleep(0.2)
        raise SystemExit(f"mca: the cluster did not become ready within {seconds:.0f}s")

    asyncio.run(ready())


# --- looking at it ----------------------------------------------------------------------------


def _print_status(config: ClusterConfig) -> None:
    async def gather() -> Any:
        async with Client(config.task_addresses, _identity(config)) as client:
            return await client.agents()

    agents = asyncio.run(gather())
    print(f"MCA replicas (gRPC TaskService): {', '.join(config.task_addresses)}")
    try:
        import ray

        from mca.deploy import attach

        if ray.is_initialized():
            replicas, _ = attach(config).statuses()
            for r in replicas:
                role = "leader" if r["leader"] else "follower"
                line = f"  {r['id']:<8} {role:<9} term {r['term']:<3} sessions {r['sessions']:<5}"
                print(f"{line} in flight {r['in_flight']}")
                if r["leader"] and r["metrics"]:
                    print("    " + ", ".join(f"{k}={v}" for k, v in sorted(r["metrics"].items())))
                if r["leader"] and r.get("read_model") is not None:
                    lag = r["applied"] - r["read_model"]
                    error = f"; store error: {r['read_model_error']}" if r.get("read_model_error") else ""
                    print(f"    read model at entry {r['read_model']} of {r['applied']} (behind by {lag}){error}")
    except Exception as exc:  # status without Ray still shows the agents
        print(f"  (replica details need the Ray cluster: {exc})")
    print("agents:")
    for a in agents:
        print(f"  {a.agent_id:<12} {a.status:<10} load {a.load}/{a.capacity}  {', '.join(a.capabilities)}")
    stores = config.stores
    if stores.embedded:
        print(f"stores: documents (SecantusDB) {config.bind}:{stores.documents_port}, ", end="")
        print(f"redis + FalkorDB {config.bind}:{stores.redis_port} (password in {config.data_dir / 'redis.secret'})")
    print(f"Ray dashboard: http://{config.bind}:{config.dashboard_port}  (token: {RAY_TOKEN})")


def _status(config: ClusterConfig, args: argparse.Namespace) -> int:
    address = _ray_address(config)
    if address is not None:
        with contextlib.suppress(ConnectionError, ValueError):
            _ray_init(config, address=address)  # replica details come from Ray when it runs
    _print_status(config)
    return 0


def _agents(config: ClusterConfig, args: argparse.Namespace) -> int:
    async def main() -> None:
        async with Client(config.task_addresses, _identity(config)) as client:
            for a in await client.agents():
                print(f"{a.agent_id}\t{a.status}\t{a.load}/{a.capacity}\t{','.join(a.capabilities)}")

    asyncio.run(main())
    return 0


def _submit(config: ClusterConfig, args: argparse.Namespace) -> int:
    try:
        text = read_payload(args.payload)
    except OSError as exc:
        print(f"mca: payload: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        print(f"mca: payload: not valid JSON: {exc}", file=sys.stderr)
        return 2

    async def main() -> Session:
        from rich.console import Console

        async with Client(config.task_addresses, _identity(config)) as client:
            session = await client.submit(args.task_type, payload, key=args.key)
            if args.wait and session.state not in TERMINAL:
                # Follow it as `mca watch` does (live bars on a terminal), then read the outcome.
                await show_events(client.watch(session.session_id), Console(stderr=True))
                session = await client.get(session.session_id)
            return session

    return _show(config, asyncio.run(main()), args.out)


def _get(config: ClusterConfig, args: argparse.Namespace) -> int:
    async def main() -> Session:
        async with Client(config.task_addresses, _identity(config)) as client:
            return await client.get(args.session_id)

    return _show(config, asyncio.run(main()), args.out)


def _show(config: ClusterConfig, session: Session, out: str | None) -> int:
    """Print a session and its result documents as its task type renders them; ``out``: write
    them as JSON too. Exit status 1 when the session failed."""
    _print_session(session)
    for subtask_id in sorted(session.documents):
        print(f"\n{subtask_id}:\n{render_document(session, subtask_id, config.catalog)}")
    if out:
        Path(out).write_text(json.dumps(_session_json(session), indent=2))
        print(f"\nwritten to {out}")
    return 0 if session.state != "failed" else 1


#: The states a session ends in.
TERMINAL = ("completed", "failed", "cancelled")


def read_payload(argument: str) -> str:
    """The payload text: inline JSON, or the content of the file ``argument`` (or ``@argument``) names."""
    if argument.startswith("@"):
        return Path(argument[1:]).read_text()
    if not argument.lstrip().startswith("{") and Path(argument).is_file():
        return Path(argument).read_text()
    return argument


def render_document(session: Session, subtask_id: str, catalog: Mapping[str, TaskType] = CATALOG) -> str:
    """A result document for people, as the task type that names its subtask's capability
    renders it (``ResultKind.render``: the wellness plugin prints plans as tables); JSON otherwise."""
    capability = session.capabilities.get(subtask_id, "")
    return render_result(catalog, capability, session.documents[subtask_id])


def _session_json(s: Session) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "state": s.state,
        "reason": s.reason,
        "parameters": s.parameters,
        "outputs": s.outputs,
        "documents": s.documents,
        "capabilities": s.capabilities,
    }


def _print_session(s: Session) -> None:
    print(f"{s.session_id}  {s.state}{'  (' + s.reason + ')' if s.reason else ''}")
    for sub, output in sorted(s.outputs.items()):
        print(f"  {sub}: {', '.join(f'{k}={v:g}' for k, v in output.items())}")


def _ask(config: ClusterConfig, args: argparse.Namespace) -> int:
    import ray

    from mca.deploy import NAMESPACE, agent_actor_name

    if args.agent_id not in {a.agent_id for a in config.agents}:
        print(f"mca: agent_id: {args.agent_id!r} is not in {config.path}", file=sys.stderr)
        return 2
    filters = {
        "exclude_allergens": args.exclude_allergen,
        "diets": args.diet,
        "equipment": args.equipment,
        "muscles": args.muscle,
        "levels": args.level,
    }
    address = _ray_address(config)
    if address is None:
        print(f"mca: no cluster of {config.path} runs under Ray here (start it with mca up)", file=sys.stderr)
        return 1
    try:
        _ray_init(config, address=address)
        actor = ray.get_actor(agent_actor_name(args.agent_id), namespace=NAMESPACE)
        hits: list[dict[str, Any]] = ray.get(
            actor.ask.remote(args.question, args.k, {k: tuple(v) for k, v in filters.items() if v})
        )
    except (ConnectionError, ValueError, TypeError, ray.exceptions.RayError) as exc:
        print(f"mca: {args.agent_id} cannot answer: {str(exc).splitlines()[-1]}", file=sys.stderr)
        return 1
    for hit in hits:
        print(f"{hit['score']:.3f}  {hit.get('name', hit['key'])}")
    return 0


def _top(config: ClusterConfig, args: argparse.Namespace) -> int:
    from mca import top

    if args.interval <= 0 or args.count < 0:
        print("mca: --interval must be above 0 and --count at least 0", file=sys.stderr)
        return 2
    if not any(r.metrics for r in config.replicas):
        print(f"mca: no replica of {config.path} has a metrics_port: mca top reads GET /metrics", file=sys.stderr)
        return 2
    top.run(config.replicas, _identity(config), args.interval, args.count)
    return 0


def _watch(config: ClusterConfig, args: argparse.Namespace) -> int:
    from rich.console import Console

    async def main() -> str:
        async with Client(config.task_addresses, _identity(config)) as client:
            return await show_events(client.watch(args.session_id, after_seq=args.after), Console())

    state = asyncio.run(main())
    return 0 if state in ("completed", "") else 1


async def show_events(events: AsyncIterator[Event], console: Console) -> str:
    """Print a session's events, a line each; on a terminal, each running subtask's progress as
    a live bar (``rich``) above them. Plain lines when the output is a file or a pipe. Returns
    the session's last state."""
    from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

    state = ""
    live = console.is_terminal
    columns = (
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
    )
    bars: dict[str, TaskID] = {}
    with Progress(*columns, console=console, disable=not live, transient=False) as progress:
        async for e in events:
            state = e.state
            if e.progress is None:
                progress.console.print(f"{e.seq:>3}  {e.kind:<10} {e.state:<12} {e.detail}", highlight=False)
                continue
            if not live:
                console.print(f"     progress   {e.subtask_id:<12} {e.progress:>4.0%}  {e.detail}", highlight=False)
                continue
            if e.subtask_id not in bars:
                bars[e.subtask_id] = progress.add_task(e.subtask_id, total=1.0, note="")
            progress.update(bars[e.subtask_id], completed=e.progress, note=e.detail[:60])
    if state:
        console.print(f"session {state}", style="bold green" if state == "completed" else "bold red", highlight=False)
    return state


def _demo_examples(config: ClusterConfig, task_type: TaskType, capabilities: set[str]) -> bool | None:
    """Submit the example payloads of ``task_type`` through gRPC in parallel and print how each
    went and the result documents of the first that completed. None (nothing submitted) when it
    has no examples or the cluster's agents lack a capability its subtasks need."""
    examples = dict(task_type.examples()) if task_type.examples is not None else {}
    if not examples:
        return None
    needed = {s.capability for payload in examples.values() for s in task_type.subtasks(payload)}
    if not needed <= capabilities:
        return None
    print(f"\n{len(examples)} example {task_type.name} tasks ({task_type.description}), through gRPC:")

    async def work() -> list[Session]:
        async with Client(config.task_addresses, _identity(config)) as client:
            submits = (
                client.submit(task_type.name, payload, key=f"demo-{name}-{time.time_ns()}", wait=True)
                for name, payload in examples.items()
            )
            return list(await asyncio.gather(*submits))

    started = time.monotonic()
    sessions = asyncio.run(work())
    print(f"{len(sessions)} {task_type.name} tasks in {time.monotonic() - started:.1f}s")
    for name, s in zip(examples, sessions, strict=True):
        negotiated = ", ".join(f"{k}={v:g}" for k, v in sorted(s.parameters.items()))
        print(
            f"  {name}: {s.session_id} {s.state}{', negotiated ' + negotiated if negotiated else ''}"
            f"{'  (' + s.reason + ')' if s.reason else ''}"
        )
    first = next((s for s in sessions if s.state == "completed"), None)
    if first is not None:
        print(f"\nthe results of {list(examples)[sessions.index(first)]} ({first.session_id}):")
        for subtask_id in sorted(first.documents):
            print(f"\n{render_document(first, subtask_id, config.catalog)}")
    return all(s.state == "completed" for s in sessions)


def _demo(config: ClusterConfig, args: argparse.Namespace) -> int:
    import ray

    from mca.deploy import deploy, teardown

    print("starting Ray, 3 MCA replicas and the agents of", config.path)
    _ray_init(config)
    deployment = deploy(config, spread=True)
    try:
        _wait_ready(config)
        _print_status(config)

        async def work() -> list[Session]:
            async with Client(config.task_addresses, _identity(config)) as client:
                started = time.monotonic()
                sessions = await asyncio.gather(
                    *(
                        client.submit("echo_pair", {"value": i}, key=f"demo-{time.time_ns()}-{i}", wait=True)
                        for i in range(args.tasks)
                    )
                )
                took = time.monotonic() - started
                print(f"\n{len(sessions)} two-agent tasks in {took:.2f}s:")
                first = sessions[0].session_id
                print(f"events of {first}:")
                async for e in client.watch(first):
                    print(f"  {e.seq:>3}  {e.kind:<10} {e.state:<12} {e.detail}")
                return list(sessions)

        sessions = asyncio.run(work())
        for s in sessions[:5]:
            _print_session(s)
        if len(sessions) > 5:
            print(f"  ... and {len(sessions) - 5} more")
        states = {st: sum(1 for s in sessions if s.state == st) for st in {s.state for s in sessions}}
        print("states:", ", ".join(f"{k}={v}" for k, v in sorted(states.items())))
        ok = states.get("completed") == len(sessions)
        # Then the examples of every task type the agents can serve (the wellness plugin's
        # three people, in the embedded default).
        capabilities = {c for a in config.agents for c in a.build().capabilities}
        for task_type in config.catalog.values():
            ok = _demo_examples(config, task_type, capabilities) is not False and ok
        return 0 if ok else 1
    finally:
        teardown(deployment)
        ray.shutdown()
