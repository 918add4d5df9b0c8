"""The wire form: every protocol message survives the trip to protobuf and back unchanged,
so the .proto and the core's dataclasses cannot drift apart quietly."""

from __future__ import annotations

import pytest

from protocol import messages as m
from protocol.model import Assignment, Outcome
from protocol.wire import (
    PROTO_OF,
    TO_AGENT_FIELD,
    TO_MCA_FIELD,
    from_proto,
    pack,
    to_proto,
    unpack,
    unpack_to_agent,
    unpack_to_mca,
)

A = Assignment("s1.0", "npa", "plan_meal", 2, (("kcal", 2100.0),))
SAMPLES: list[object] = [
    m.Prepare(3, 2, "s1", A),
    m.Commit(3, 2, "s1", "s1.0", (("weekly_kcal", 1800.5),)),
    m.Abort(3, 2, "s1", "s1.0", "agent wpa voted no"),
    m.ResultAccepted(3, 2, "s1", "s1.0"),
    m.Release(3, 2, "s1", "s1.0", compensate=True),
    m.RegisterReply(3, "npa", 2, committed=(("s1", A, (("k", 1.0),)),), finished=(("s0", A),)),
    m.Vote("npa", 2, "s1", "s1.0", True, "", (("weekly_kcal", 1800.0),)),
    m.Vote("npa", 2, "s1", "s1.0", False, "no room"),
    m.Ack("npa", 2, "s1", "s1.0", "release"),
    m.QueryDecision("npa", 2, "s1", "s1.0"),
    m.Result("npa", 2, "s1", "s1.0", Outcome(True, (("value", 1.0),))),
    m.Result("npa", 2, "s1", "s1.0", Outcome(False, error="boom")),
    m.Register("npa", ("plan_meal", "echo"), 4, 2, "127.0.0.1:7201"),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda x: type(x).__name__)
def test_round_trip(message: object) -> None:
    assert from_proto(to_proto(message)) == message


def test_every_wire_message_has_a_sample() -> None:
    assert {type(s) for s in SAMPLES} == set(PROTO_OF)


def test_a_message_without_a_wire_form_is_refused() -> None:
    with pytest.raises(TypeError):
        to_proto(m.Submit("c", "k", None))  # type: ignore[arg-type]


def test_batches_keep_every_message_and_its_order() -> None:
    to_agents = [s for s in SAMPLES if type(s) in TO_AGENT_FIELD]
    to_mca = [s for s in SAMPLES if type(s) in TO_MCA_FIELD]
    assert unpack(pack(to_agents, to_agent=True)) == to_agents
    assert unpack(pack(to_mca[::-1], to_agent=False)) == to_mca[::-1]
    # every message kind travels in exactly one direction, but for Register (its own call)
    assert set(TO_AGENT_FIELD) | set(TO_MCA_FIELD) | {m.Register} == set(PROTO_OF)


def test_a_message_in_the_wrong_direction_is_refused() -> None:
    with pytest.raises(TypeError):
        pack([m.QueryDecision("npa", 2, "s1", "s1.0")], to_agent=True)


def test_typed_unpacking_keeps_each_direction_and_refuses_the_other() -> None:
    to_agents = [s for s in SAMPLES if type(s) in TO_AGENT_FIELD]
    to_mca = [s for s in SAMPLES if type(s) in TO_MCA_FIELD]
    assert unpack_to_agent(pack(to_agents, to_agent=True)) == to_agents
    assert unpack_to_mca(pack(to_mca, to_agent=False)) == to_mca
    # TypeError: what the boundary answers as a malformed request when decoding fails
    with pytest.raises(TypeError, match="travels to agents"):
        unpack_to_agent(pack(to_mca, to_agent=False))
    with pytest.raises(TypeError, match="travels to the MCA"):
        unpack_to_mca(pack(to_agents, to_agent=True))
