"""Conversion between the core's messages (frozen dataclasses) and their protobuf form.

One generic converter, driven by the dataclass fields, serves every message: parameter tuples
become ``repeated Param``, nested ``Assignment``/``Outcome`` values become nested messages, and
``RegisterReply``'s ownership lists become ``repeated Owned``. A message whose fields and the
proto's disagree fails the round-trip test, so the two definitions cannot drift apart quietly.

Protocol messages travel in batches (``ToAgentBatch``, ``ToMcaBatch``) of one-field envelopes
(``ToAgent``, ``ToMca``: a ``oneof`` per message kind); ``pack`` and ``unpack`` convert a whole
batch, so the hosts never see an envelope. ``unpack_to_agent`` and ``unpack_to_mca`` also check
the direction and return typed lists (``ToAgent``, ``ToMca``): a batch or a message going the
wrong way raises ``TypeError``, as any batch that has no core form does (the boundary answers
a request that fails to decode that way with ``INVALID_ARGUMENT``).

This module is the only place that touches generated code; the stubs are built by setup.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, cast

from protocol import messages as m
from protocol.model import Assignment, Outcome, Params

try:
    from protocol._pb import coordination_pb2 as pb
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "the gRPC stubs are missing: install the project (pip install -e . or make install), "
        "which generates them from protocol/coordination.proto"
    ) from exc

T = TypeVar("T")

#: Trailing metadata with which a replica names the leader's task address: a follower that
#: forwards a client's call or refuses an agent's says where to go next time, so both talk to
#: the leader directly from then on (a forwarded call costs the follower a second call).
LEADER_HINT = "mca-leader"
#: Trailing metadata of a ``RESOURCE_EXHAUSTED`` answer: milliseconds to wait before retrying.
RETRY_AFTER = "mca-retry-after-ms"

#: Core message type -> protobuf class of the same shape.
PROTO_OF: dict[type, Any] = {
    m.Prepare: pb.Prepare,
    m.Commit: pb.Commit,
    m.Abort: pb.Abort,
    m.ResultAccepted: pb.ResultAccepted,
    m.Release: pb.Release,
    m.RegisterReply: pb.RegisterReply,
    m.Vote: pb.Vote,
    m.Ack: pb.Ack,
    m.QueryDecision: pb.QueryDecision,
    m.Result: pb.Result,
    m.Register: pb.Register,
}
CORE_OF: dict[Any, type] = {proto: core for core, proto in PROTO_OF.items()}

#: The envelope field that carries each message kind in a batch, by direction.
TO_AGENT_FIELD: dict[type, str] = {
    m.Prepare: "prepare",
    m.Commit: "commit",
    m.Abort: "abort",
    m.ResultAccepted: "result_accepted",
    m.Release: "release",
    m.RegisterReply: "registered",
}
TO_MCA_FIELD: dict[type, str] = {
    m.Vote: "vote",
    m.Ack: "ack",
    m.QueryDecision: "query_decision",
    m.Result: "result",
}


def _params_out(values: Params) -> list[Any]:
    return [pb.Param(name=n, value=v) for n, v in values]


def _params_in(values: Any) -> Params:
    return tuple((p.name, p.value) for p in values)


def _assignment_out(a: Assignment) -> Any:
    return pb.Assignment(
        subtask_id=a.subtask_id,
        agent_id=a.agent_id,
        capability=a.capability,
        demand=a.demand,
        inputs=_params_out(a.inputs),
        document=a.document,
    )


def _assignment_in(p: Any) -> Assignment:
    return Assignment(p.subtask_id, p.agent_id, p.capability, p.demand, _params_in(p.inputs), p.document)


def _outcome_out(o: Outcome) -> Any:
    return pb.Outcome(ok=o.ok, output=_params_out(o.output), error=o.error, document=o.document)


def _outcome_in(p: Any) -> Outcome:
    return Outcome(p.ok, _params_in(p.output), p.error, p.document)


def _owned_out(item: tuple[Any, ...]) -> Any:
    session_id, assignment = item[0], item[1]
    parameters = item[2] if len(item) > 2 else ()
    return pb.Owned(session_id=session_id, assignment=_assignment_out(assignment), parameters=_params_out(parameters))


def _same(value: Any) -> Any:
    return value


def _field_out(name: str) -> Callable[[Any], Any]:
    """How one field of a core message becomes its protobuf value (decided by the field's name,
    which is the same in both definitions; the round-trip test holds them together)."""
    if name == "assignment":
        return _assignment_out
    if name == "outcome":
        return _outcome_out
    if name in ("committed", "finished"):
        return lambda items: [_owned_out(item) for item in items]
    if name in ("parameters", "offers", "inputs", "output"):
        return _params_out
    if name == "capabilities":
        return list
    return _same


def _field_in(name: str) -> Callable[[Any], Any]:
    if name == "assignment":
        return _assignment_in
    if name == "outcome":
        return _outcome_in
    if name == "committed":
        return lambda items: tuple(
            (o.session_id, _assignment_in(o.assignment), _params_in(o.parameters)) for o in items
        )
    if name == "finished":
        return lambda items: tuple((o.session_id, _assignment_in(o.assignment)) for o in items)
    if name in ("parameters", "offers", "inputs", "output"):
        return _params_in
    if name == "capabilities":
        return tuple
    return _same


# Per message kind, the conversion of each field, worked out once: converting is on every
# protocol message's path, and looking at the dataclass fields each time cost more than the
# conversion itself.
_OUT = {core: [(f.name, _field_out(f.name)) for f in dataclasses.fields(core)] for core in PROTO_OF}
_IN = {core: [(f.name, _field_in(f.name)) for f in dataclasses.fields(core)] for core in PROTO_OF}


def to_proto(message: object) -> Any:
    """The protobuf form of a core message."""
    kind = type(message)
    plan = _OUT.get(kind)
    if plan is None:
        raise TypeError(f"{kind.__name__} has no wire form")
    return PROTO_OF[kind](**{name: convert(getattr(message, name)) for name, convert in plan})


def from_proto(proto: Any, core_class: type[T] | None = None) -> T:
    """The core message of a protobuf message (of ``core_class``, or found by its type)."""
    cls = core_class or CORE_OF.get(type(proto))
    plan = _IN.get(cls) if cls is not None else None
    if cls is None or plan is None:
        raise TypeError(f"{type(proto).__name__} has no core form")
    return cls(**{name: convert(getattr(proto, name)) for name, convert in plan})  # type: ignore[no-any-return]


def pack(messages: list[object], to_agent: bool) -> Any:
    """One batch message (``ToAgentBatch`` or ``ToMcaBatch``) carrying ``messages`` in order."""
    fields, batch = (TO_AGENT_FIELD, pb.ToAgentBatch()) if to_agent else (TO_MCA_FIELD, pb.ToMcaBatch())
    for message in messages:
        name = fields.get(type(message))
        if name is None:
            raise TypeError(f"{type(message).__name__} does not travel {'to agents' if to_agent else 'to the MCA'}")
        getattr(batch.messages.add(), name).CopyFrom(to_proto(message))
    return batch


def unpack(batch: Any) -> list[object]:
    """The core messages of a batch, in order (an envelope with no message is skipped: a newer
    peer's kind this version does not know)."""
    out: list[object] = []
    for envelope in batch.messages:
        name = envelope.WhichOneof("message")
        if name is not None:
            out.append(from_proto(getattr(envelope, name)))
    return out


def unpack_to_agent(batch: Any) -> list[m.ToAgent]:
    """The messages of a ``ToAgentBatch``, each checked to be one the MCA sends an agent."""
    return cast("list[m.ToAgent]", _unpack_checked(batch, pb.ToAgentBatch, TO_AGENT_FIELD, "to agents"))


def unpack_to_mca(batch: Any) -> list[m.ToMca]:
    """The messages of a ``ToMcaBatch``, each checked to be one an agent sends the MCA."""
    return cast("list[m.ToMca]", _unpack_checked(batch, pb.ToMcaBatch, TO_MCA_FIELD, "to the MCA"))


def _unpack_checked(batch: Any, batch_class: Any, fields: dict[type, str], direction: str) -> list[object]:
    if not isinstance(batch, batch_class):
        raise TypeError(f"{type(batch).__name__} is not a batch that travels {direction}")
    out = unpack(batch)
    for message in out:
        if type(message) not in fields:  # the cast above rests on this check
            raise TypeError(f"{type(message).__name__} does not travel {direction}")
    return out
