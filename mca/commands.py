"""The runtime's subcommands of ``mca``: up, down, status, submit, get, watch, agents, ask,
top, credentials, demo.

The arguments and the dispatch are here, with the commands that talk to a running cluster:
they call the replicas named in cluster.yaml over gRPC, like any client would, over TLS as the
local operator (the credential in the cluster's credential folder) or as whoever
``$MCA_IDENTITY`` names. ``up``, ``down`` and ``status`` (Ray's side) are in ``mca.lifecycle``;
``top`` reads the replicas' ``GET /metrics`` (``mca.top``). ``credentials issue`` gives someone
else a credential of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mca.catalog import CATALOG, TaskType, render_result
from mca.config import ClusterConfig, ConfigError, load
from mca.lifecycle import (
    caller_identity,
    down,
    print_status,
    ray_address,
    ray_init,
    ray_token,
    status,
    up,
    wait_ready,
)
from mca.sdk import Client, Event, RequestRejected, Session
from mca.tls import TLS_FOLDER, Authority, CredentialError, Principal

if TYPE_CHECKING:
    from rich.console import Console


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
        ray_token()
    handlers = {
        "up": up,
        "down": down,
        "status": status,
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


def _agents(config: ClusterConfig, args: argparse.Namespace) -> int:
    async def main() -> None:
        async with Client(config.task_addresses, caller_identity(config)) as client:
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

        async with Client(config.task_addresses, caller_identity(config)) as client:
            session = await client.submit(args.task_type, payload, key=args.key)
            if args.wait and session.state not in TERMINAL:
                # Follow it as `mca watch` does (live bars on a terminal), then read the outcome.
                await show_events(client.watch(session.session_id), Console(stderr=True))
                session = await client.get(session.session_id)
            return session

    return _show(config, asyncio.run(main()), args.out)


def _get(config: ClusterConfig, args: argparse.Namespace) -> int:
    async def main() -> Session:
        async with Client(config.task_addresses, caller_identity(config)) as client:
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
    address = ray_address(config)
    if address is None:
        print(f"mca: no cluster of {config.path} runs under Ray here (start it with mca up)", file=sys.stderr)
        return 1
    try:
        ray_init(config, address=address)
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
    top.run(config.replicas, caller_identity(config), args.interval, args.count)
    return 0


def _watch(config: ClusterConfig, args: argparse.Namespace) -> int:
    from rich.console import Console

    async def main() -> str:
        async with Client(config.task_addresses, caller_identity(config)) as client:
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
        async with Client(config.task_addresses, caller_identity(config)) as client:
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
    ray_init(config)
    deployment = deploy(config, spread=True)
    try:
        wait_ready(config)
        print_status(config)

        async def work() -> list[Session]:
            async with Client(config.task_addresses, caller_identity(config)) as client:
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
