"""``cluster.yaml``: the deployment's topology, loaded and checked with errors that name the
field. Everything listens on ``bind`` (127.0.0.1 in the embedded default), with TLS: the
credentials come from ``tls.folder`` (``data_dir/tls`` by default; see ``mca.tls``).

Task types: ``echo`` and ``echo_pair`` are built in; ``task_type_plugins`` lists plugins as
``module:attribute``, the attribute a ``mca.tasks.TaskType`` or a list of them (imported here,
with the folder of cluster.yaml on the import path as it is for the agents; docs/task-types.md);
``task_types`` adds simple ones, ``name: [capability, ...]``, one subtask per capability, each
given the payload's numbers. A name is taken once: a plugin's task type named like a built-in
one or another plugin's is a ``ConfigError`` naming the entry."""

from __future__ import annotations

import importlib
import ipaddress
import os
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mca.catalog import CATALOG, TaskType, numbers, result_kinds, task_type_problem
from mca.sdk import Agent
from mca.stores import documents_url, redis_url, write_secret
from mca.tls import TLS_FOLDER, Identity, Principal, identity_in, private_folder
from mca.topology import Grant, ReplicaAddress
from protocol.model import SUBTASKS_MAX, Limits, SubtaskSpec, Timing, name_problem, params


class ConfigError(ValueError):
    """cluster.yaml is wrong; the message names the field."""


@dataclass(frozen=True)
class AgentSpec:
    agent_id: str
    class_path: str
    capacity: int
    #: What the agent may claim when it registers; empty: what its class declares.
    capabilities: tuple[str, ...] = ()

    def _class(self) -> Any:
        module_name, _, class_name = self.class_path.partition(":")
        try:
            return getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"agents[{self.agent_id}].class: cannot import {self.class_path!r}: {exc}") from exc

    def grant(self) -> Grant:
        """What this entry grants the agent: its capabilities (as listed, else its class's) and
        at most its capacity. A registration claiming more is refused."""
        capabilities = self.capabilities or tuple(getattr(self._class(), "capabilities", ()))
        return Grant(frozenset(capabilities), self.capacity)

    def build(self) -> Agent:
        cls = self._class()
        agent = cls(agent_id=self.agent_id, capacity=self.capacity)
        if not isinstance(agent, Agent):
            raise ConfigError(f"agents[{self.agent_id}].class: {self.class_path} is not an mca.sdk.Agent")
        return agent


@dataclass(frozen=True)
class StoresConfig:
    """Where the read model and the live state live. ``embedded``: the runtime starts SecantusDB
    and redis-server (with FalkorDB) itself, on ``bind`` and the two ports, data under data_dir."""

    embedded: bool = True
    documents_port: int = 7130
    redis_port: int = 7131
    documents: str = ""  # a MongoDB URL when not embedded; empty: no read model
    redis: str = ""  # a Redis URL when not embedded; empty: no live state


@dataclass(frozen=True)
class ClusterConfig:
    path: Path
    data_dir: Path
    bind: str
    dashboard_port: int
    replicas: tuple[ReplicaAddress, ...]
    timing: Timing
    agents: tuple[AgentSpec, ...]
    catalog: dict[str, TaskType] = field(default_factory=lambda: dict(CATALOG))
    stores: StoresConfig = field(default_factory=StoresConfig)
    limits: Limits = field(default_factory=Limits)
    #: Where the TLS credentials are (``mca.tls.identity_in``); data_dir/tls by default.
    tls_folder: Path | None = None

    def identity(self, principal: Principal) -> Identity:
        return identity_in(self.tls_folder or self.data_dir / TLS_FOLDER, principal)

    def operator_identity(self) -> Identity:
        """What ``mca`` itself uses on the machine that holds the credential folder."""
        return self.identity(Principal("operator", "local"))

    def grants(self) -> dict[str, Grant]:
        return {a.agent_id: a.grant() for a in self.agents}

    @property
    def documents_url(self) -> str:
        if self.stores.embedded:
            return documents_url(self.bind, self.stores.documents_port, password=self.secret("documents.secret"))
        return self.stores.documents

    def redis_url(self) -> str:
        """The live state's Redis URL; for the embedded server it carries the admin password."""
        if self.stores.embedded:
            return redis_url(self.bind, self.stores.redis_port, self.secret("redis.secret"))
        return self.stores.redis

    @property
    def task_addresses(self) -> list[str]:
        return [r.grpc for r in self.replicas]

    def password(self) -> str:
        """The Raft password: $MCA_RAFT_PASSWORD, or one generated once into the data folder."""
        return os.environ.get("MCA_RAFT_PASSWORD") or self.secret("raft.secret")

    def secret(self, name: str) -> str:
        """A secret generated once into the data folder (mode 0600) and read from there after."""
        secret = self.data_dir / name
        if not secret.exists():
            private_folder(self.data_dir)
            write_secret(secret, os.urandom(24).hex())
        return secret.read_text().strip()


def load(path: str | Path) -> ClusterConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file; pass --config with the path of your cluster.yaml") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of settings")
    bind = _get(raw, "bind", str, "127.0.0.1")
    try:
        ipaddress.ip_address(bind)
    except ValueError as exc:
        raise ConfigError(f"bind: {bind!r} is not an IP address") from exc
    data_dir = Path(_get(raw, "data_dir", str, "./data"))
    if not data_dir.is_absolute():
        data_dir = (path.parent / data_dir).resolve()
    mca = _get(raw, "mca", dict, {})
    replicas_raw = _get(mca, "replicas", list, [], "mca.replicas")
    if len(replicas_raw) not in (1, 3, 5):
        raise ConfigError(f"mca.replicas: a Raft group of 1, 3 or 5 replicas, not {len(replicas_raw)}")
    replicas = []
    for i, r in enumerate(replicas_raw):
        where = f"mca.replicas[{i}]"
        if not isinstance(r, dict):
            raise ConfigError(f"{where}: must be a mapping with id, raft_port and task_port")
        replicas.append(
            ReplicaAddress(
                _get(r, "id", str, None, f"{where}.id"),
                f"{bind}:{_port(r, 'raft_port', where)}",
                f"{bind}:{_port(r, 'task_port', where)}",
                f"{bind}:{_port(r, 'metrics_port', where)}" if "metrics_port" in r else "",
                f"{bind}:{_port(r, 'a2a_port', where)}" if "a2a_port" in r else "",
            )
        )
    ports = [p for a in replicas for p in (a.raft, a.grpc, a.metrics, a.a2a) if p]
    if len(set(ports)) != len(ports):
        raise ConfigError("mca.replicas: every raft_port, task_port, metrics_port and a2a_port must be different")
    if len({r.replica_id for r in replicas}) != len(replicas) or not all(r.replica_id for r in replicas):
        raise ConfigError("mca.replicas: every replica needs its own non-empty id")
    timing_raw = _get(mca, "timing", dict, {}, "mca.timing")
    known = {f.name for f in fields(Timing)}
    unknown = sorted(set(timing_raw) - known)
    if unknown:
        raise ConfigError(f"mca.timing.{unknown[0]}: unknown; known: {', '.join(sorted(known))}")
    for name, value in timing_raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"mca.timing.{name}: must be a positive number of seconds")
    timing = Timing(**{k: float(v) for k, v in timing_raw.items()})
    if timing.lease <= timing.prepare_timeout:
        # Otherwise every yes voter asks for the decision before it can be reached (and so
        # presumes an abort) whenever a vote is slow.
        raise ConfigError("mca.timing.lease: must be longer than mca.timing.prepare_timeout")
    limits = _limits(_get(mca, "limits", dict, {}, "mca.limits"))
    agents = []
    for i, a in enumerate(_get(raw, "agents", list, [])):
        where = f"agents[{i}]"
        if not isinstance(a, dict):
            raise ConfigError(f"{where}: must be a mapping with id, class and capacity")
        capacity = _get(a, "capacity", int, 1, f"{where}.capacity")
        if capacity < 1:
            raise ConfigError(f"{where}.capacity: must be at least 1")
        agent_id = _get(a, "id", str, None, f"{where}.id")
        if problem := name_problem(agent_id):
            raise ConfigError(f"{where}.id: {problem}")
        capabilities = _get(a, "capabilities", list, [], f"{where}.capabilities")
        if any(name_problem(c) for c in capabilities):
            raise ConfigError(f"{where}.capabilities: every capability {name_problem('')}")
        agents.append(AgentSpec(agent_id, _get(a, "class", str, None, f"{where}.class"), capacity, tuple(capabilities)))
    if len({a.agent_id for a in agents}) != len(agents):
        raise ConfigError("agents: every agent id must be different")
    catalog = _plugins(_get(raw, "task_type_plugins", list, []), path.parent)
    for name, capabilities in _get(raw, "task_types", dict, {}).items():
        if name in catalog:
            raise ConfigError(f"task_types.{name}: is built in or a plugin's; choose another name")
        if not isinstance(capabilities, list) or not 1 <= len(capabilities) <= SUBTASKS_MAX:
            raise ConfigError(f"task_types.{name}: must be a list of 1 to {SUBTASKS_MAX} capabilities, one per subtask")
        if any(name_problem(c) for c in capabilities):
            raise ConfigError(f"task_types.{name}: every capability {name_problem('')}")
        catalog[name] = TaskType(name, f"subtasks: {', '.join(capabilities)}", _subtasks_of(tuple(capabilities)))
    stores = _stores(_get(raw, "stores", dict, {}), bind)
    tls = _get(raw, "tls", dict, {})
    unknown = sorted(set(tls) - {"folder"})
    if unknown:
        raise ConfigError(f"tls.{unknown[0]}: unknown; known: folder")
    tls_folder = Path(_get(tls, "folder", str, "", "tls.folder")) if tls.get("folder") else None
    if tls_folder is not None and not tls_folder.is_absolute():
        tls_folder = (path.parent / tls_folder).resolve()
    return ClusterConfig(
        path,
        data_dir,
        bind,
        _port(raw, "dashboard_port", "", 8265),
        tuple(replicas),
        timing,
        tuple(agents),
        catalog,
        stores,
        limits,
        tls_folder,
    )


def _stores(raw: dict[str, Any], bind: str) -> StoresConfig:
    known = {f.name for f in fields(StoresConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"stores.{unknown[0]}: unknown; known: {', '.join(sorted(known))}")
    embedded = _get(raw, "embedded", bool, True, "stores.embedded")
    stores = StoresConfig(
        embedded,
        _port(raw, "documents_port", "stores", 7130),
        _port(raw, "redis_port", "stores", 7131),
        _get(raw, "documents", str, "", "stores.documents"),
        _get(raw, "redis", str, "", "stores.redis"),
    )
    if embedded and (stores.documents or stores.redis):
        raise ConfigError("stores: give URLs (documents, redis) only with embedded: false")
    if embedded and not ipaddress.ip_address(bind).is_loopback:
        raise ConfigError(
            f"stores.embedded: the embedded stores listen on bind ({bind}) without TLS; use a loopback bind, "
            "or embedded: false with your own servers"
        )
    if embedded and stores.documents_port == stores.redis_port:
        raise ConfigError("stores: documents_port and redis_port must be different")
    if stores.documents and not stores.documents.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(f"stores.documents: {stores.documents!r} is not a mongodb:// URL")
    if stores.documents:
        parts = urllib.parse.urlsplit(stores.documents)
        x509 = urllib.parse.parse_qs(parts.query).get("authMechanism") == ["MONGODB-X509"]
        if not parts.username and not x509:
            raise ConfigError(
                "stores.documents: the URL carries no credentials; give mongodb://user:password@host/... "
                "(or authMechanism=MONGODB-X509) so the store takes no reads or writes from anyone"
            )
    if stores.redis and not urllib.parse.urlsplit(stores.redis).password:
        raise ConfigError("stores.redis: the URL carries no password; give redis://user:password@host:port")
    if stores.redis and not stores.redis.startswith(("redis://", "rediss://")):
        raise ConfigError(f"stores.redis: {stores.redis!r} is not a redis:// URL")
    return stores


def _plugins(entries: list[Any], folder: Path) -> dict[str, TaskType]:
    """The built-in task types and those of the plugins ``entries`` name (``task_type_plugins``),
    each checked (``task_type_problem``); every error names the entry. Plugins may live next to
    cluster.yaml: its folder joins the import path (at the end: it never hides an installed
    package), as it does for the agents' processes (``mca.deploy``)."""
    catalog = dict(CATALOG)
    origin = dict.fromkeys(catalog, "is built in")
    if entries and str(folder.resolve()) not in sys.path:
        sys.path.append(str(folder.resolve()))
    for i, entry in enumerate(entries):
        where = f"task_type_plugins[{i}]"
        module_name, _, attribute = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        if not module_name or not attribute.isidentifier():
            raise ConfigError(f"{where}: {entry!r} is not module:attribute (e.g. 'wellness.tasks:TASK_TYPES')")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"{where}: cannot import module {module_name!r} of {entry!r}: {exc}") from exc
        except Exception as exc:  # the plugin's own code failed: say which plugin
            raise ConfigError(f"{where}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
        if not hasattr(module, attribute):
            raise ConfigError(f"{where}: module {module_name!r} has no attribute {attribute!r}")
        found = getattr(module, attribute)
        task_types = list(found) if isinstance(found, (list, tuple)) else [found]
        if not task_types:
            raise ConfigError(f"{where}: {entry} holds no task type")
        for task_type in task_types:
            problem = task_type_problem(task_type)
            if problem:
                raise ConfigError(f"{where}: {entry}: {problem}")
            if task_type.name in origin:
                raise ConfigError(
                    f"{where}: {entry} declares task type {task_type.name!r}, which {origin[task_type.name]}; "
                    "a task type name must be unique"
                )
            origin[task_type.name] = f"{where} ({entry}) declares too"
            catalog[task_type.name] = task_type
    try:
        result_kinds(catalog)
    except ValueError as exc:
        raise ConfigError(f"task_type_plugins: {exc}") from exc
    return catalog


def _subtasks_of(capabilities: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[SubtaskSpec, ...]]:
    """A task type from cluster.yaml: one subtask per capability, each given the payload."""

    def subtasks(payload: Mapping[str, Any]) -> tuple[SubtaskSpec, ...]:
        inputs = params(numbers(payload))
        return tuple(SubtaskSpec(c, 1, inputs) for c in capabilities)

    return subtasks


#: Bounds of ``mca.limits``: (smallest, largest) for each field of ``Limits``.
LIMIT_RANGES: dict[str, tuple[float, float]] = {
    "sessions_in_flight_max": (1, 1_000_000),
    "retry_after": (0.001, 60.0),
}


def _limits(raw: dict[str, Any]) -> Limits:
    values: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"mca.limits.{name}"
        if name not in LIMIT_RANGES:
            raise ConfigError(f"{where}: unknown; known: {', '.join(LIMIT_RANGES)}")
        low, high = LIMIT_RANGES[name]
        whole = isinstance(getattr(Limits(), name), int)
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or not low <= value <= high:
            kind = "a whole number" if whole else "a number of seconds"
            raise ConfigError(f"{where}: must be {kind} from {low:g} to {high:g}")
        values[name] = value if whole else float(value)
    return Limits(**values)


def _get(raw: dict[str, Any], key: str, kind: type, default: Any, where: str | None = None) -> Any:
    name = where or key
    if key not in raw:
        if default is None:
            raise ConfigError(f"{name}: required")
        return default
    value = raw[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{name}: must be a {kind.__name__}, got {value!r}")
    return value


def _port(raw: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    name = f"{where}.{key}" if where else key
    value = _get(raw, key, int, default, name)
    if not 1 <= value <= 65535:
        raise ConfigError(f"{name}: {value} is not a TCP port")
    return int(value)
