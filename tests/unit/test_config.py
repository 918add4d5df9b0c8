"""cluster.yaml: the shipped file loads, and every mistake is reported with the field to fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mca.config import ConfigError, load

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_cluster_yaml_loads_and_binds_loopback(tmp_path: Path) -> None:
    config = dataclasses.replace(load(ROOT / "cluster.yaml"), data_dir=tmp_path)  # secrets go there
    assert len(config.replicas) == 3 and config.bind == "127.0.0.1"
    assert all(r.grpc.startswith("127.0.0.1:") and r.raft.startswith("127.0.0.1:") for r in config.replicas)
    assert {a.agent_id for a in config.agents} == {"echo-1", "echo-2", "wpa-1", "npa-1"}
    assert config.timing.prepare_timeout == 5.0
    assert config.agents[0].build().capabilities == ("echo",)
    assert config.stores.embedded and config.documents_url.startswith("mongodb://mca:")
    password = (tmp_path / "documents.secret").read_text().strip()  # made on first use, private
    assert f"mca:{password}@127.0.0.1:" in config.documents_url
    assert (tmp_path / "documents.secret").stat().st_mode & 0o077 == 0
    assert {a: g.capabilities for a, g in config.grants().items()}["npa-1"] == frozenset({"meal_plan"})
    assert "retryWrites=false" in config.documents_url  # DESIGN.md: retryable writes slow SecantusDB


def test_production_stores_are_urls(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(
        GOOD + "stores: {embedded: false, documents: 'mongodb://u:p@db:27017/mca', redis: 'redis://:pw@cache:6379/0'}\n"
    )
    config = load(tmp_path / "cluster.yaml")
    assert config.documents_url == "mongodb://u:p@db:27017/mca" and config.redis_url() == "redis://:pw@cache:6379/0"


@pytest.mark.parametrize(
    ("stores", "field"),
    [
        ("{embedded: false, documents: 'mongodb://db:27017/mca'}", "stores.documents: the URL carries no credentials"),
        ("{embedded: false, redis: 'redis://cache:6379/0'}", "stores.redis: the URL carries no password"),
    ],
)
def test_production_stores_need_credentials(tmp_path: Path, stores: str, field: str) -> None:
    (tmp_path / "cluster.yaml").write_text(GOOD + f"stores: {stores}\n")
    with pytest.raises(ConfigError, match=field):
        load(tmp_path / "cluster.yaml")


GOOD = """
mca:
  replicas:
    - {id: a, raft_port: 7001, task_port: 7002}
agents:
  - {id: e, class: "mca.agents:EchoAgent", capacity: 2}
"""


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("- not a mapping", "must be a mapping"),
        (GOOD.replace("7002", "7001"), "mca.replicas: every raft_port"),
        (GOOD.replace("7002", "99999"), "mca.replicas[0].task_port"),
        (GOOD.replace("id: a, ", ""), "mca.replicas[0].id"),
        (GOOD + "bind: localhost\n", "bind"),
        (GOOD.replace("capacity: 2", "capacity: 0"), "agents[0].capacity"),
        (GOOD.replace("capacity: 2", "capacity: many"), "agents[0].capacity"),
        (GOOD + '  - {id: e, class: "mca.agents:EchoAgent"}\n', "every agent id"),
        (GOOD.replace("  replicas:", "  timing: {lease: -1}\n  replicas:"), "mca.timing.lease"),
        (GOOD.replace("  replicas:", "  timing: {patience: 1}\n  replicas:"), "mca.timing.patience"),
        (GOOD + "task_types:\n  t: oops\n", "task_types.t"),
        (GOOD.replace("- {id: a, raft_port: 7001, task_port: 7002}", "[]"), "mca.replicas"),
        (GOOD.replace("  replicas:", "  timing: {lease: true}\n  replicas:"), "mca.timing.lease"),
        (GOOD.replace("  replicas:", "  timing: {lease: 0.1, prepare_timeout: 1}\n  replicas:"), "mca.timing.lease"),
        (GOOD.replace("id: e,", "id: '',"), "agents[0].id"),
        (GOOD + "task_types:\n  echo: [echo]\n", "task_types.echo"),
        (GOOD + "task_types:\n  t: ['']\n", "task_types.t"),
        (GOOD + "task_types:\n  t: [" + ", ".join(["echo"] * 17) + "]\n", "task_types.t"),
        (GOOD + "stores: {embedded: yes-please}\n", "stores.embedded"),
        (GOOD + "stores: {documents_port: 70000}\n", "stores.documents_port"),
        (GOOD + "stores: {documents_port: 7200, redis_port: 7200}\n", "stores: documents_port and redis_port"),
        (GOOD + "stores: {documents: 'mongodb://db:27017'}\n", "stores: give URLs"),
        (GOOD + "stores: {embedded: false, documents: 'postgres://db'}\n", "stores.documents"),
        (GOOD + "stores: {embedded: false, redis: 'http://cache'}\n", "stores.redis"),
        (GOOD + "stores: {cache: 1}\n", "stores.cache"),
        (GOOD + "bind: 10.1.2.3\n", "stores.embedded: the embedded stores"),
        (GOOD.replace("  replicas:", "  limits: {sessions_in_flight_max: 0}\n  replicas:"), "mca.limits.sessions_in"),
        (GOOD.replace("  replicas:", "  limits: {retry_after: soon}\n  replicas:"), "mca.limits.retry_after"),
        (GOOD.replace("  replicas:", "  limits: {patience: 1}\n  replicas:"), "mca.limits.patience"),
    ],
)
def test_mistakes_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "cluster.yaml").write_text(text)
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        load(tmp_path / "cluster.yaml")


def test_a_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        load(tmp_path / "nope.yaml")


def test_an_agent_class_that_cannot_be_imported_names_the_agent(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(GOOD.replace("mca.agents:EchoAgent", "nowhere:Agent"))
    with pytest.raises(ConfigError, match=r"agents\[e\].class"):
        load(tmp_path / "cluster.yaml").agents[0].build()


def test_task_types_from_the_file_join_the_builtin_ones(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(GOOD + "task_types:\n  climate: [thermostat, echo]\n")
    catalog = load(tmp_path / "cluster.yaml").catalog
    assert {"echo", "echo_pair", "climate"} <= set(catalog)
    subtasks = catalog["climate"].subtasks({"value": 1.0})
    assert [s.capability for s in subtasks] == ["thermostat", "echo"]


def test_limits_are_read_and_default_sensibly(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(
        GOOD.replace("  replicas:", "  limits: {sessions_in_flight_max: 64, retry_after: 1}\n  replicas:")
    )
    limits = load(tmp_path / "cluster.yaml").limits
    assert (limits.sessions_in_flight_max, limits.retry_after) == (64, 1.0)
