"""The A2A endpoint's translations, without a cluster: the state table, what a message submits
(and the invalid-params errors naming the field), the card's skills and schemas, and the
``a2a_port`` of cluster.yaml."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from a2a.types.a2a_pb2 import Message, Part, SendMessageRequest, TaskState
from a2a.utils.errors import InvalidParamsError
from google.protobuf import json_format, struct_pb2

from mca.a2a import TASK_STATES, agent_card, input_schema, needs, submission, task_state
from mca.catalog import CATALOG, TaskType
from mca.config import ConfigError, load
from protocol.model import SubtaskSpec
from protocol.session_table import SessionState

ROOT = Path(__file__).resolve().parents[2]


def test_every_session_state_has_an_a2a_state() -> None:
    assert set(TASK_STATES) == {s.value for s in SessionState}
    assert task_state("completed", "commit") == TaskState.TASK_STATE_COMPLETED
    assert task_state("failed", "commit") == TaskState.TASK_STATE_FAILED
    assert task_state("failed", "abort") == TaskState.TASK_STATE_REJECTED  # nothing ran
    assert task_state("failed", "") == TaskState.TASK_STATE_REJECTED
    assert task_state("cancelled", "abort") == TaskState.TASK_STATE_CANCELED
    assert task_state("initialized", "") == TaskState.TASK_STATE_SUBMITTED
    assert task_state("executing", "commit") == TaskState.TASK_STATE_WORKING


def request(metadata: dict[str, object], *parts: Part, message_id: str = "m-1") -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            message_id=message_id,
            parts=list(parts),
            metadata=json_format.ParseDict(metadata, struct_pb2.Struct()),
        )
    )


def data(value: object) -> Part:
    return Part(data=json_format.ParseDict(value, struct_pb2.Value()))


def test_a_message_submits_its_data_part_keyed_by_its_id() -> None:
    submit = submission(request({"task_type": "echo"}, Part(text="hi"), data({"value": 3, "x": [1.5, 2]})), CATALOG)
    assert submit.task_type == "echo" and submit.idempotency_key == "m-1" and submit.wait
    assert json.loads(submit.payload) == {"value": 3, "x": [1.5, 2]}
    assert isinstance(json.loads(submit.payload)["value"], int)  # whole numbers are integers again, not 3.0
    keyed = submission(request({"task_type": "echo", "idempotency_key": "k"}, data({})), CATALOG)
    assert keyed.idempotency_key == "k"


@pytest.mark.parametrize(
    ("metadata", "parts", "field"),
    [
        ({}, [data({})], "message.metadata.task_type"),
        ({"task_type": 3}, [data({})], "message.metadata.task_type"),
        ({"task_type": "echo"}, [Part(text="{}")], "message.parts"),
        ({"task_type": "echo"}, [data({}), data({})], "message.parts"),
        ({"task_type": "echo"}, [data([1])], "message.parts[0].data"),
        ({"task_type": "echo", "idempotency_key": 7}, [data({})], "message.metadata.idempotency_key"),
    ],
)
def test_a_bad_message_is_invalid_params_naming_the_field(
    metadata: dict[str, object], parts: list[Part], field: str
) -> None:
    with pytest.raises(InvalidParamsError) as caught:
        submission(request(metadata, *parts), CATALOG)
    assert caught.value.message.startswith(f"{field}:")


def test_a_message_for_an_existing_task_is_refused() -> None:
    message = request({"task_type": "echo"}, data({}))
    message.message.task_id = "s1"
    with pytest.raises(InvalidParamsError, match=r"^message\.task_id:"):
        submission(message, CATALOG)


def test_the_card_lists_the_task_types_the_agents_serve() -> None:
    pair = TaskType("pair", "two capabilities", lambda p: (SubtaskSpec("a"), SubtaskSpec("b")))
    catalog = {**CATALOG, "pair": pair}
    assert needs(pair) == {"a", "b"} and needs(CATALOG["echo"]) == {"echo"}
    card = agent_card("https://127.0.0.1:1/", catalog, frozenset({"echo", "a"}))
    assert [s.id for s in card.skills] == ["echo", "echo_pair"]
    card = agent_card("https://127.0.0.1:1/", catalog, frozenset({"echo", "a", "b"}))
    assert [s.id for s in card.skills] == ["echo", "echo_pair", "pair"]
    params = json_format.MessageToDict(card.capabilities.extensions[0].params)
    assert set(params) == {"echo", "echo_pair", "pair"}
    assert card.supported_interfaces[0].url == "https://127.0.0.1:1/" and card.capabilities.streaming


def test_a_schema_is_read_off_an_example() -> None:
    example = {"profile": {"age": 41, "sex": "male", "dislikes": ["liver"], "vegan": False}}
    typed = TaskType("typed", "t", lambda p: (SubtaskSpec("x"),), examples=lambda: {"one": example})
    schema = input_schema(typed)
    profile = schema["properties"]["profile"]["properties"]
    assert profile["age"] == {"type": "number"} and profile["sex"] == {"type": "string"}
    assert profile["dislikes"] == {"type": "array", "items": {"type": "string"}}
    assert profile["vegan"] == {"type": "boolean"} and schema["examples"] == [example]


def test_a_declared_schema_wins() -> None:
    schema = {"type": "object", "required": ["n"]}
    declared = TaskType("declared", "d", lambda p: (SubtaskSpec("x"),), input_schema=schema)
    assert input_schema(declared) == schema
    assert input_schema(CATALOG["echo"])["additionalProperties"] == {"type": "number"}


def test_cluster_yaml_gives_each_replica_an_a2a_port(tmp_path: Path) -> None:
    config = dataclasses.replace(load(ROOT / "cluster.yaml"), data_dir=tmp_path)
    assert [r.a2a for r in config.replicas] == ["127.0.0.1:7103", "127.0.0.1:7113", "127.0.0.1:7123"]
    text = (ROOT / "cluster.yaml").read_text().replace("a2a_port: 7113", "a2a_port: 7110")
    (tmp_path / "cluster.yaml").write_text(text)
    with pytest.raises(ConfigError, match="a2a_port"):
        load(tmp_path / "cluster.yaml")
