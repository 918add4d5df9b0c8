"""Every RPC of both replica services, fuzzed: a documented status, a short message, no append on refusal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import note as hypothesis_note
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from mca import catalog
from mca.catalog import task_from_request
from mca.embedded import EmbeddedCluster
from mca.replica import Replica
from mca.sdk import Agent, Job
from mca.tls import REPLICA, Identity, Principal
from protocol._pb import coordination_pb2 as pb
from protocol.errors import InvalidTask
from protocol.model import NAME_LENGTH_MAX
from wellness.tasks import WELLNESS_PLAN
from wpa.request import GOALS

#: The built-in task types and the wellness plugin's (its payloads are the richest to fuzz).
CATALOG = {**catalog.CATALOG, WELLNESS_PLAN.name: WELLNESS_PLAN}

pytestmark = [
    # pysyncobj's tick thread draws its election timeouts from ``random`` while hypothesis draws
    # an example, which hypothesis takes for a strategy using ``random``.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

# Hypothesis runs each test's examples against the one module cluster: bounded, and no deadline
# (a call that waits for a Raft round is slow by hypothesis's standards, not by ours).
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(SETTINGS, max_examples=40)

#: The statuses the services document. UNAVAILABLE is one too, but only across a leader change,
#: which a quiet cluster does not have: it is allowed only when the leader did change.
DOCUMENTED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)
#: A status message longer than this is a message nobody reads (and a trailer that may not fit).
DETAILS_LENGTH_MAX = 1_000
#: A caller's string longer than this never comes back verbatim in a status message.
ECHOED_LENGTH_MAX = 100
#: No call of these tests waits on a task (Submit never sets wait): a call that takes longer is hung.
CALL_SECONDS = 15.0
#: How long a refused request's append, if there were one, could take to be applied.
APPLY_SECONDS = 0.03

PACKAGE = pb.DESCRIPTOR.package
TASK_METHODS = ("Submit", "Get", "Cancel", "Watch", "ListAgents")
COORDINATION_METHODS = ("Register", "Deliver", "Heartbeat", "ReportProgress")
FUZZ = Principal("client", "fuzz")
ME = "echo-1"
ECHO_CAPACITY = 8
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


class Echo(Agent):
    """Quick: fuzzed submissions that are accepted settle within a few Raft rounds. ``sleep``
    (capped) is for the fixture's session that gets cancelled while it runs."""

    capabilities = ("echo",)
    capacity = ECHO_CAPACITY

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id

    async def execute(self, job: Job) -> Mapping[str, float]:
        await asyncio.sleep(min(max(job.inputs.get("sleep", 0.0), 0.0), 1.0))
        if job.inputs.get("fail"):
            raise RuntimeError("asked to fail")
        return {"value": 2 * job.inputs.get("value", 0.0)}


# --- the cluster and what the tests know about it ----------------------------------------------


#: Who led, in which term: an answer is judged against the leadership it was asked under.
Leadership = tuple[Replica, int]


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    details: str
    reply: Any = None
    events: tuple[Any, ...] = ()


@dataclass
class World:
    cluster: EmbeddedCluster
    #: Sessions of ``client:fuzz`` (completed, failed, cancelled) and of ``client:other``.
    mine: list[str]
    theirs: list[str]
    #: (session id, subtask id, agent id) of every subtask of those sessions.
    subtasks: list[tuple[str, str, str]]
    _channels: dict[tuple[Principal, str], grpc.Channel] = field(default_factory=dict)

    def leader(self, seconds: float = 20.0) -> Replica:
        """The leader, waiting out an election (two busy cores can starve Raft's ticks)."""
        deadline = time.monotonic() + seconds
        while (leader := self.cluster.leader()) is None or leader.log is None:
            assert time.monotonic() < deadline, f"no leader for {seconds:g} s"
            time.sleep(0.02)
        return leader

    def leadership(self) -> Leadership:
        leader = self.leader()
        assert leader.log is not None
        return leader, leader.log.term

    def leader_changed(self, since: Leadership) -> bool:
        leader = self.cluster.leader()
        return leader is not since[0] or since[0].log is None or since[0].log.term != since[1]

    def channel(self, principal: Principal, address: str | None = None) -> grpc.Channel:
        """A blocking TLS channel as ``principal`` to ``address`` (the leader's by default)."""
        address = address or self.leader().config.me.grpc
        key = (principal, address)
        if key not in self._channels:
            identity: Identity = self.cluster.identity(principal)
            credentials = grpc.ssl_channel_credentials(identity.ca, identity.key, identity.cert)
            options = (("grpc.ssl_target_name_override", REPLICA),)
            self._channels[key] = grpc.secure_channel(address, credentials, options=options)
        return self._channels[key]

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def position(self) -> tuple[int, int, int]:
        """Where the leader's log is: records applied, agents registered, echo-1's incarnation."""
        leader = self.leader()
        assert leader.log is not None
        with leader.log.guard:
            return leader.log.applied_index, len(leader.ledger.agents), leader.ledger.incarnation(ME)

    def quiesce(self, seconds: float = 15.0) -> tuple[int, int, int]:
        """Wait until no session is in flight and the log stands still; its position then."""
        deadline = time.monotonic() + seconds
        last, stable = None, 0
        while time.monotonic() < deadline:
            leader = self.leader()
            assert leader.log is not None
            with leader.log.guard:
                in_flight = leader.ledger.in_flight
            now = self.position()
            stable = stable + 1 if in_flight == 0 and now == last else 0
            if stable >= 2:
                return now
            last = now
            time.sleep(0.01)
        raise TimeoutError(f"the cluster did not go quiet within {seconds:g} s")

    def incarnation(self) -> int:
        return self.position()[2]


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


def _call_path(service: str, method: str) -> tuple[str, Any, bool]:
    """The method's path, its reply class and whether it streams."""
    descriptor = pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    return f"/{PACKAGE}.{service}/{method}", getattr(pb, descriptor.output_type.name), descriptor.server_streaming


def call(
    channel: grpc.Channel,
    service: str,
    method: str,
    request: Any,
    metadata: tuple[tuple[str, str], ...] = (),
    events_max: int = 20,
) -> Answer:
    """One call, by path: ``request`` is a message or raw bytes (sent as they are). A stream is
    read up to ``events_max`` events, then cancelled."""
    path, reply_class, streaming = _call_path(service, method)
    serialize = None if isinstance(request, bytes) else _serialize
    try:
        if not streaming:
            stub = channel.unary_unary(path, request_serializer=serialize, response_deserializer=reply_class.FromString)
            return Answer(grpc.StatusCode.OK, "", stub(request, timeout=CALL_SECONDS, metadata=metadata))
        stream = channel.unary_stream(path, request_serializer=serialize, response_deserializer=reply_class.FromString)
        events: list[Any] = []
        watch = stream(request, timeout=CALL_SECONDS, metadata=metadata)
        for event in watch:
            events.append(event)
            if len(events) >= events_max:
                watch.cancel()
                break
        return Answer(grpc.StatusCode.OK, "", None, tuple(events))
    except grpc.RpcError as exc:
        return Answer(exc.code(), exc.details() or "")


def strings_in(value: Any) -> Iterator[str]:
    """Every string of a protobuf message (nested and repeated fields too), or of a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key)
            yield from strings_in(item)
    elif hasattr(value, "ListFields"):
        for _, item in value.ListFields():
            yield from strings_in(item)
    elif not isinstance(value, (bytes, int, float, bool, type(None))):
        for item in value:
            yield from strings_in(item)


def note(text: str) -> None:
    """Hypothesis's note inside a property test; nothing in a named test (which has none)."""
    if currently_in_test_context():
        hypothesis_note(text)


def judge(world: World, answer: Answer, sent: Any, since: Leadership, allowed: frozenset[grpc.StatusCode]) -> bool:
    """The answer is one of ``allowed`` (all documented), short, and quotes no long string of
    ``sent`` (the request, or anything holding the caller's strings). UNAVAILABLE is allowed
    across a leader change only; False then (the caller's finer checks do not apply)."""
    note(f"answer: {answer.code.name} {answer.details[:300]!r}")
    assert answer.code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), answer
    if answer.code is grpc.StatusCode.UNAVAILABLE:
        assert world.leader_changed(since), f"UNAVAILABLE without a leader change: {answer}"
    else:
        assert answer.code in allowed, answer
    assert len(answer.details) < DETAILS_LENGTH_MAX, f"{len(answer.details)} characters of details"
    for text in strings_in(sent):
        if len(text) > ECHOED_LENGTH_MAX:
            assert text not in answer.details, f"the details quote a {len(text)}-character input verbatim"
    return answer.code is not grpc.StatusCode.UNAVAILABLE


def unmoved(world: World, answer: Answer, before: tuple[int, int, int], since: Leadership) -> None:
    """A refused request left the log where it was: checked after a moment, long enough for an
    append it made to be applied. Not comparable across a leader change (a new leader appends)."""
    if answer.code is grpc.StatusCode.OK:
        return
    time.sleep(APPLY_SECONDS)
    after = world.position()
    if world.leader_changed(since):
        note("the leader changed during the call: the log position is not compared")
        return
    assert after == before, f"refused with {answer.code.name}, but the log moved: {before} -> {after}"


def exchange(world: World, make: Callable[[], Answer]) -> tuple[Answer, Leadership]:
    """``make`` a call on a quiet cluster; if it is refused, the log has not moved (``unmoved``)."""
    before = world.quiesce()
    since = world.leadership()
    answer = make()
    unmoved(world, answer, before, since)
    return answer, since


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("fuzz-cluster")
    with EmbeddedCluster(str(data), [Echo("echo-1"), Echo("echo-2")], catalog=CATALOG) as cluster:
        cluster.wait_ready(agents=2)

        async def sessions() -> tuple[list[str], list[str]]:
            async with cluster.client("fuzz") as client:
                done = await client.submit("echo", {"value": 1}, key="fixture-echo", wait=True)
                pair = await client.submit("echo_pair", {"value": 2}, key="fixture-pair", wait=True)
                failed = await client.submit("echo", {"fail": 1}, key="fixture-fail", wait=True)
                slow = await client.submit("echo", {"sleep": 1}, key="fixture-slow")
                cancelled = await client.cancel(slow.session_id)
            async with cluster.client("other") as client:
                theirs = await client.submit("echo_pair", {"value": 3}, key="fixture-theirs", wait=True)
            assert (done.state, pair.state, failed.state) == ("completed", "completed", "failed")
            assert (cancelled.state, theirs.state) == ("cancelled", "completed")
            return [done.session_id, pair.session_id, failed.session_id, cancelled.session_id], [theirs.session_id]

        mine, theirs = asyncio.run(sessions())
        world = World(cluster, mine, theirs, [])
        world.quiesce()
        leader = world.leader()
        world.subtasks = [
            (sid, a.subtask_id, a.agent_id)
            for sid in mine + theirs
            for a in (leader.ledger.sessions[sid].assignments if sid in leader.ledger.sessions else ())
        ]
        assert any(agent == ME for _, _, agent in world.subtasks), world.subtasks
        try:
            yield world
        finally:
            world.close()


# --- strategies ---------------------------------------------------------------------------------

# Any code point UTF-8 carries (protobuf strings are UTF-8: a lone surrogate cannot even be set),
# with the control and format characters that trip printers and parsers drawn more often.
CHARS = st.characters(codec="utf-8") | st.sampled_from(list("\x00\t\n\r\x1b\x7f\x85\u200b\u202e\u2028\ufeff\U0010ffff"))


def _repeat(unit: str, length: int) -> str:
    return (unit * (length // len(unit) + 1))[:length]


#: Long text, cheaply: a short unit repeated to a drawn length up to ~70 KB.
HUGE = st.builds(_repeat, st.text(CHARS, min_size=1, max_size=6), st.integers(ECHOED_LENGTH_MAX + 1, 70_000))
EDGE_TEXTS = st.sampled_from(
    [
        "",
        " ",
        "x" * NAME_LENGTH_MAX,
        "x" * (NAME_LENGTH_MAX + 1),
        "é" * (NAME_LENGTH_MAX + 1),
        "\x00",
        "null",
        "{}",
        "echo",
        ME,
        "echo-2",
        "client:fuzz",
        "operator:root",
        "%s%n{0}",
    ]
)
TEXT = st.text(CHARS, max_size=30) | EDGE_TEXTS | HUGE


def ints(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    low, high = bounds
    return st.sampled_from([low, low + 1, -1, 0, 1, 2, high - 1, high]) | st.integers(low, high)


INT32S = ints(INT32)
INT64S = ints(INT64)
DOUBLES = st.floats() | st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.0000001, float("nan"), float("inf"), -float("inf")])
#: What session ids look like (``s<n>``), and near misses: other digits, a digit run too long to
#: convert, plus any text.
SESSION_JUNK = (
    TEXT
    | st.integers(-3, 10**9).map(lambda n: f"s{n}")
    | st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4).map(lambda d: "s" + d)
    | st.builds(_repeat, st.sampled_from(["9", "0", "12"]), st.integers(1, 6_000)).map(lambda d: "s" + d)
)

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | ints(INT64)
    | st.integers(-(10**400), 10**400)
    | st.sampled_from([2**63, -(2**63) - 1, 10**19])
    | DOUBLES
    | TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(CHARS, max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


def _nest(depth: int, as_object: bool, inside: Any) -> Any:
    value = inside
    for _ in range(depth):
        value = {"a": value} if as_object else [value]
    return value


DEEP = st.builds(_nest, st.integers(1, 400), st.booleans(), JSON_SCALARS)
ECHO_PAYLOADS = st.dictionaries(
    st.sampled_from(["value", "fail", "x", "y"]) | st.text(CHARS, max_size=10),
    st.floats(-1e6, 1e6) | st.integers(-10, 10) | st.sampled_from([2**63 - 1, 1e308]),
    max_size=4,
)
PROFILE = {"sex": "female", "age": 30, "height_cm": 170, "weight_kg": 65}
WELLNESS = st.fixed_dictionaries(
    {
        "profile": st.dictionaries(
            st.sampled_from([*PROFILE, "activity", "goal", "restrictions", "dislikes"]), JSON_VALUES, max_size=3
        ).map(lambda fuzzed: PROFILE | fuzzed),
        "training": st.dictionaries(
            st.sampled_from(["goal", "level", "days_per_week", "equipment", "weeks"]),
            JSON_VALUES | st.sampled_from(GOALS),
            max_size=3,
        ).map(lambda fuzzed: {"goal": GOALS[0]} | fuzzed),
    }
)


def _dumps(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


PAYLOADS = (
    st.builds(_dumps, ECHO_PAYLOADS | WELLNESS | JSON_VALUES | DEEP, st.booleans())
    | st.builds(_dumps, st.dictionaries(st.text(CHARS, max_size=10), JSON_VALUES | DEEP, max_size=4), st.booleans())
    | st.sampled_from([0, 18, 19, 20, 400, 4_301, 6_000]).map(lambda n: '{"value": ' + "9" * max(n, 1) + "}")
    | st.sampled_from([1, 64, 65, 1_000, 5_000]).map(lambda n: "[" * n + "]" * n)
    | st.sampled_from(['{"value": NaN}', '{"value": 1e400}', '{"a": "\\ud800"}', '{"pad": "' + "x" * 70_000 + '"}'])
    | TEXT
)
SUBMITS = st.builds(
    pb.SubmitRequest,
    idempotency_key=st.text(st.sampled_from("abc"), min_size=1, max_size=3) | TEXT,
    task_type=st.sampled_from(sorted(CATALOG)) | TEXT,
    payload=PAYLOADS,
    success_criteria=st.lists(
        st.sampled_from(["all_subtasks_ok", "documents_present", "outputs_agree"]) | TEXT, max_size=3
    ),
    wait=st.just(False),
)


def session_ids(world: World) -> st.SearchStrategy[str]:
    return st.sampled_from(world.mine) | st.sampled_from(world.theirs) | SESSION_JUNK


def agent_ids() -> st.SearchStrategy[str]:
    """Mostly the caller itself (to get past the first check), else someone or something else."""
    return st.just(ME) | st.just(ME) | st.sampled_from(["echo-2", "echo-3", "", ME + " ", ME.upper()]) | TEXT


def _owned(world: World, session_id: str) -> str | None:
    """The state of ``session_id`` if client:fuzz owns it (None: NOT_FOUND for client:fuzz)."""
    leader = world.leader()
    assert leader.log is not None
    with leader.log.guard:
        record = leader.ledger.session(session_id)
        return record.state.value if record is not None and record.owner == str(FUZZ) else None


def _addresses(world: World) -> st.SearchStrategy[str]:
    return st.sampled_from(world.cluster.task_addresses)


# --- TaskService ------------------------------------------------------------------------------


def _predicted_invalid(request: Any) -> bool | None:
    """Whether the boundary must refuse ``request`` as INVALID_ARGUMENT (None: cannot tell)."""
    key = request.idempotency_key
    if not key or len(key) > NAME_LENGTH_MAX or not key.isprintable():
        return True
    try:
        task_from_request(request.task_type, request.payload, tuple(request.success_criteria), CATALOG)
    except InvalidTask:
        return True
    except Exception:  # the server must still not answer INTERNAL: judged on its answer alone
        return None
    return False


@given(data=st.data())
@SETTINGS
def test_submit_answers_a_documented_status_and_a_refusal_appends_nothing(world: World, data: st.DataObject) -> None:
    request = data.draw(SUBMITS, label="request")
    address = data.draw(_addresses(world), label="replica")
    answer, leader = exchange(world, lambda: call(world.channel(FUZZ, address), "TaskService", "Submit", request))
    try:
        payload = json.loads(request.payload)
    except Exception:  # not JSON, too deep, a number too long to convert...
        payload = None
    if not judge(world, answer, (request, payload), leader, DOCUMENTED):
        return
    invalid = _predicted_invalid(request)
    if invalid is True:
        assert answer.code is grpc.StatusCode.INVALID_ARGUMENT, answer
    elif invalid is False:
        assert answer.code is not grpc.StatusCode.INVALID_ARGUMENT, answer


@given(data=st.data())
@SETTINGS
def test_get_answers_only_its_owner(world: World, data: st.DataObject) -> None:
    request = pb.GetRequest(session_id=data.draw(session_ids(world), label="session_id"))
    address = data.draw(_addresses(world), label="replica")
    leader = world.leadership()
    answer = call(world.channel(FUZZ, address), "TaskService", "Get", request)
    if not judge(world, answer, request, leader, frozenset({grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND})):
        return
    if _owned(world, request.session_id) is None:
        assert answer.code is grpc.StatusCode.NOT_FOUND, answer
    else:
        assert answer.code is grpc.StatusCode.OK and answer.reply.session_id == request.session_id, answer


@given(data=st.data())
@SETTINGS
def test_cancel_answers_a_documented_status_and_a_refusal_appends_nothing(world: World, data: st.DataObject) -> None:
    request = pb.CancelRequest(session_id=data.draw(session_ids(world), label="session_id"))
    address = data.draw(_addresses(world), label="replica")
    answer, leader = exchange(world, lambda: call(world.channel(FUZZ, address), "TaskService", "Cancel", request))
    allowed = frozenset({grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION})
    if not judge(world, answer, request, leader, allowed):
        return
    # Every session is terminal by now (quiet cluster): a cancelled one answers the same again.
    state = _owned(world, request.session_id)
    expected = {None: grpc.StatusCode.NOT_FOUND, "cancelled": grpc.StatusCode.OK}
    assert answer.code is expected.get(state, grpc.StatusCode.FAILED_PRECONDITION), (state, answer)


@given(data=st.data())
@SETTINGS
def test_watch_answers_a_documented_status_and_streams_in_order(world: World, data: st.DataObject) -> None:
    request = pb.WatchRequest(
        session_id=data.draw(session_ids(world), label="session_id"), after_seq=data.draw(INT64S, label="after_seq")
    )
    address = data.draw(_addresses(world), label="replica")
    world.quiesce()  # every session settled: a stream ends (or is cut at events_max)
    leader = world.leadership()
    answer = call(world.channel(FUZZ, address), "TaskService", "Watch", request, events_max=5)
    if not judge(world, answer, request, leader, frozenset({grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND})):
        return
    first = max(request.after_seq, 0) + 1
    assert [e.seq for e in answer.events] == list(range(first, first + len(answer.events))), answer.events
    assert (answer.code is grpc.StatusCode.NOT_FOUND) == (_owned(world, request.session_id) is None), answer


@given(index=st.integers(0, 2))
@settings(FEW, max_examples=6)
def test_list_agents_lists_the_deployment(world: World, index: int) -> None:
    leader = world.leadership()
    answer = call(
        world.channel(FUZZ, world.cluster.task_addresses[index]), "TaskService", "ListAgents", pb.ListAgentsRequest()
    )
    if not judge(world, answer, (), leader, frozenset({grpc.StatusCode.OK})):
        return
    assert sorted(a.agent_id for a in answer.reply.agents) == ["echo-1", "echo-2"]


def _mutated(valid: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    body = bytearray(valid)
    for at, byte in flips:
        if body:
            body[at % len(body)] = byte
    return bytes(body[: max(cut, 0)] if cut < len(body) else body)


#: Bodies: arbitrary bytes, or a valid message with some bytes overwritten and its end cut off.
def bodies(messages: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=2048) | st.builds(
        _mutated,
        messages.map(_serialize),
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
        st.integers(0, 4096),
    )


TASK_BODIES = bodies(
    SUBMITS | st.builds(pb.GetRequest, session_id=TEXT) | st.builds(pb.WatchRequest, session_id=TEXT, after_seq=INT64S)
)


@given(data=st.data())
@SETTINGS
def test_a_corrupt_task_body_is_invalid_argument_or_a_documented_status(world: World, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(TASK_METHODS), label="method")
    body = data.draw(TASK_BODIES, label="body")
    address = data.draw(_addresses(world), label="replica")
    answer, leader = exchange(
        world, lambda: call(world.channel(FUZZ, address), "TaskService", method, body, events_max=5)
    )
    judge(world, answer, (), leader, DOCUMENTED)


# --- CoordinationService ----------------------------------------------------------------------


def _registrations(world: World, incarnation: int) -> st.SearchStrategy[Any]:
    capability = st.sampled_from(["echo", "plan_sleep", "workout_plan", "meal_plan"]) | TEXT
    return st.builds(
        pb.Register,
        agent_id=agent_ids(),
        capabilities=st.lists(capability, max_size=5) | st.lists(st.just("echo"), min_size=64, max_size=66),
        capacity=INT32S | st.integers(1, ECHO_CAPACITY + 1),
        incarnation=INT64S | st.sampled_from([incarnation - 1, incarnation, incarnation + 1]),
        address=st.sampled_from(["127.0.0.1:1", "localhost:65535", "no-port", ""]) | TEXT,
    )


def _within_grant(request: Any) -> bool:
    return request.agent_id == ME and set(request.capabilities) <= {"echo"} and request.capacity <= ECHO_CAPACITY


@given(data=st.data())
@SETTINGS
def test_register_outside_the_grant_or_stale_is_refused_and_appends_nothing(world: World, data: st.DataObject) -> None:
    incarnation = world.incarnation()
    request = data.draw(_registrations(world, incarnation), label="request")
    if _within_grant(request) and request.incarnation >= incarnation:
        # A valid registration would legitimately restart echo-1 (or move its address): this
        # test sends only ones that must be refused, so an earlier life it is.
        request.incarnation = data.draw(st.integers(INT64[0], incarnation - 1), label="stale incarnation")
    answer, leader = exchange(
        world, lambda: call(world.channel(Principal("agent", ME)), "CoordinationService", "Register", request)
    )
    if not judge(world, answer, request, leader, DOCUMENTED - {grpc.StatusCode.OK}):
        return
    if not _within_grant(request):
        assert answer.code is grpc.StatusCode.PERMISSION_DENIED, answer


def _envelopes(world: World, incarnation: int) -> st.SearchStrategy[Any]:
    real = st.sampled_from(world.subtasks)
    ids = st.one_of(
        real.map(lambda t: (t[0], t[1])),
        real.map(lambda t: (t[0], t[1])),
        st.tuples(st.sampled_from(world.mine + world.theirs), TEXT),
        st.tuples(SESSION_JUNK, TEXT | real.map(lambda t: t[1])),
    )
    incarnations = INT64S | st.just(incarnation)
    params = st.lists(st.builds(pb.Param, name=TEXT, value=DOUBLES), max_size=3)
    document = st.builds(_dumps, JSON_VALUES | DEEP, st.booleans()) | PAYLOADS | TEXT

    def envelope(kind: str, agent_id: str, incarnation: int, where: tuple[str, str], extra: dict[str, Any]) -> Any:
        session_id, subtask_id = where
        common = {"agent_id": agent_id, "incarnation": incarnation, "session_id": session_id, "subtask_id": subtask_id}
        if kind == "vote":
            return pb.ToMca(vote=pb.Vote(**common, yes=extra["yes"], reason=extra["text"], offers=extra["params"]))
        if kind == "ack":
            return pb.ToMca(ack=pb.Ack(**common, kind=extra["kind"]))
        if kind == "query_decision":
            return pb.ToMca(query_decision=pb.QueryDecision(**common))
        if kind == "result":
            outcome = pb.Outcome(
                ok=extra["yes"], output=extra["params"], error=extra["text"], document=extra["document"]
            )
            return pb.ToMca(result=pb.Result(**common, outcome=outcome))
        return pb.ToMca()  # no message: a newer peer's kind, skipped

    return st.builds(
        envelope,
        st.sampled_from(["vote", "ack", "query_decision", "result", "none"]),
        agent_ids(),
        incarnations,
        ids,
        st.fixed_dictionaries(
            {
                "yes": st.booleans(),
                "text": TEXT,
                "params": params,
                "kind": st.sampled_from(["commit", "abort", "release"]) | TEXT,
                "document": document,
            }
        ),
    )


def _maybe_taken(world: World, envelope: Any) -> bool:
    """Whether the leader may step this message (the caller's own, about its subtask of a session
    in the ledger): a batch that holds one may move the log even when another is refused."""
    kind = envelope.WhichOneof("message")
    if kind is None:
        return False
    message = getattr(envelope, kind)
    leader = world.leader()
    assert leader.log is not None
    with leader.log.guard:
        record = leader.ledger.session(message.session_id)
        return (
            message.agent_id == ME
            and record is not None
            and any(a.subtask_id == message.subtask_id and a.agent_id == ME for a in record.assignments)
        )


@given(data=st.data())
@SETTINGS
def test_deliver_answers_a_documented_status_and_a_refusal_appends_nothing(world: World, data: st.DataObject) -> None:
    messages = data.draw(st.lists(_envelopes(world, world.incarnation()), max_size=6), label="messages")
    request = pb.ToMcaBatch(messages=messages)
    taken = any(_maybe_taken(world, e) for e in messages)
    before = world.quiesce()
    leader = world.leadership()
    answer = call(world.channel(Principal("agent", ME)), "CoordinationService", "Deliver", request)
    decided = judge(world, answer, request, leader, DOCUMENTED)
    if not taken:
        unmoved(world, answer, before, leader)
    if not decided:
        return
    first = next((e for e in messages if e.WhichOneof("message") is not None), None)
    if first is not None and getattr(first, first.WhichOneof("message")).agent_id != ME:
        assert answer.code is grpc.StatusCode.PERMISSION_DENIED, answer


@given(data=st.data())
@SETTINGS
def test_report_progress_answers_a_documented_status_and_appends_nothing(world: World, data: st.DataObject) -> None:
    session_id, subtask_id = data.draw(
        st.sampled_from(world.subtasks).map(lambda t: (t[0], t[1])) | st.tuples(session_ids(world), TEXT), label="ids"
    )
    request = pb.Progress(
        agent_id=data.draw(agent_ids(), label="agent_id"),
        incarnation=data.draw(INT64S, label="incarnation"),
        session_id=session_id,
        subtask_id=subtask_id,
        fraction=data.draw(DOUBLES, label="fraction"),
        note=data.draw(TEXT, label="note"),
    )
    answer, leader = exchange(
        world, lambda: call(world.channel(Principal("agent", ME)), "CoordinationService", "ReportProgress", request)
    )
    # Every session is terminal: there is no running subtask to report on.
    refusals = frozenset({grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION})
    if judge(world, answer, request, leader, refusals) and request.agent_id != ME:
        assert answer.code is grpc.StatusCode.PERMISSION_DENIED, answer


@given(data=st.data())
@FEW
def test_heartbeat_is_taken_from_the_agent_itself_only(world: World, data: st.DataObject) -> None:
    request = pb.Heartbeat(
        agent_id=data.draw(agent_ids(), label="agent_id"),
        incarnation=data.draw(INT64S, label="incarnation"),
        load=data.draw(INT32S, label="load"),
    )
    answer, leader = exchange(
        world, lambda: call(world.channel(Principal("agent", ME)), "CoordinationService", "Heartbeat", request)
    )
    if not judge(world, answer, request, leader, frozenset({grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED})):
        return
    assert (answer.code is grpc.StatusCode.OK) == (request.agent_id == ME), answer


COORDINATION_BODIES = bodies(
    st.builds(pb.Heartbeat, agent_id=agent_ids(), incarnation=INT64S, load=INT32S)
    | st.builds(pb.Progress, agent_id=agent_ids(), session_id=TEXT, fraction=DOUBLES)
    | st.builds(
        pb.ToMcaBatch, messages=st.lists(st.builds(pb.ToMca, ack=st.builds(pb.Ack, agent_id=agent_ids())), max_size=3)
    )
)


@given(data=st.data())
@SETTINGS
def test_a_corrupt_coordination_body_is_invalid_argument_or_a_documented_status(
    world: World, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(COORDINATION_METHODS), label="method")
    body = data.draw(COORDINATION_BODIES, label="body")
    if method == "Register":
        with contextlib.suppress(Exception):  # bytes that happen to be a valid registration: not sent
            parsed = pb.Register.FromString(body)
            if _within_grant(parsed) and parsed.incarnation >= world.incarnation():
                return
    answer, leader = exchange(
        world, lambda: call(world.channel(Principal("agent", ME)), "CoordinationService", method, body)
    )
    judge(world, answer, (), leader, DOCUMENTED)


# --- the wrong role -----------------------------------------------------------------------------

ON_BEHALF = st.sampled_from(["", "operator:root", "agent:echo-1", "client:other", "replica:mca-1", "nobody"]) | st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
)


@given(data=st.data())
@SETTINGS
def test_only_agents_call_coordination_and_only_clients_call_tasks(world: World, data: st.DataObject) -> None:
    """A client (claiming anyone in the relay metadata, which only a replica is believed on) or a
    replica calling for itself gets PERMISSION_DENIED from CoordinationService, an agent from
    TaskService, whatever the body."""
    caller, service, methods = data.draw(
        st.sampled_from(
            [
                (FUZZ, "CoordinationService", COORDINATION_METHODS),
                (Principal("operator", "fuzz"), "CoordinationService", COORDINATION_METHODS),
                (Principal("replica", "mca-1"), "CoordinationService", COORDINATION_METHODS),
                (Principal("agent", ME), "TaskService", TASK_METHODS),
                (Principal("agent", "echo-2"), "TaskService", TASK_METHODS),
                (Principal("replica", "mca-2"), "TaskService", TASK_METHODS),
            ]
        ),
        label="caller",
    )
    method = data.draw(st.sampled_from(methods), label="method")
    body = data.draw(st.binary(max_size=256) | TASK_BODIES | COORDINATION_BODIES, label="body")
    address = data.draw(_addresses(world), label="replica")
    on_behalf = data.draw(ON_BEHALF, label="on behalf of") if caller.role != "replica" else ""
    metadata = (("mca-on-behalf-of", on_behalf),) if on_behalf else ()
    answer, leader = exchange(world, lambda: call(world.channel(caller, address), service, method, body, metadata, 5))
    judge(world, answer, (), leader, frozenset({grpc.StatusCode.PERMISSION_DENIED}))


@given(on_behalf=ON_BEHALF, session=st.integers(0, 10))
@FEW
def test_a_client_cannot_read_for_someone_else_by_metadata(world: World, on_behalf: str, session: int) -> None:
    session_id = world.theirs[session % len(world.theirs)]
    leader = world.leadership()
    metadata = (("mca-on-behalf-of", on_behalf),) if on_behalf else ()
    answer = call(world.channel(FUZZ), "TaskService", "Get", pb.GetRequest(session_id=session_id), metadata)
    judge(world, answer, (), leader, frozenset({grpc.StatusCode.NOT_FOUND}))


# --- named scenarios: what the fuzzing found ------------------------------------------------------

#: Session ids that pass ``str.isdigit`` after the "s" but that ``int()`` refuses: a superscript
#: digit, and a digit run longer than Python converts (4,300 digits).
NOT_QUITE_NUMBERS = ["s²", "s" + "1" * 5_000]


@pytest.mark.parametrize("session_id", NOT_QUITE_NUMBERS, ids=["superscript", "5000-digits"])
@pytest.mark.parametrize("method", ["Get", "Cancel", "Watch"])
def test_a_session_id_that_is_almost_a_number_is_not_found(world: World, method: str, session_id: str) -> None:
    request = {
        "Get": pb.GetRequest(session_id=session_id),
        "Cancel": pb.CancelRequest(session_id=session_id),
        "Watch": pb.WatchRequest(session_id=session_id),
    }[method]
    leader = world.leadership()
    answer = call(world.channel(FUZZ), "TaskService", method, request)
    judge(world, answer, request, leader, frozenset({grpc.StatusCode.NOT_FOUND}))


@pytest.mark.parametrize("session_id", NOT_QUITE_NUMBERS, ids=["superscript", "5000-digits"])
def test_an_agent_message_about_an_almost_number_session_is_refused(world: World, session_id: str) -> None:
    vote = pb.Vote(agent_id=ME, incarnation=world.incarnation(), session_id=session_id, subtask_id="x", yes=True)
    deliver = pb.ToMcaBatch(messages=[pb.ToMca(vote=vote)])
    progress = pb.Progress(agent_id=ME, session_id=session_id, subtask_id="x", fraction=0.5)
    agent = world.channel(Principal("agent", ME))
    leader = world.leadership()
    answers = (
        call(agent, "CoordinationService", "Deliver", deliver),
        call(agent, "CoordinationService", "ReportProgress", progress),
    )
    judge(world, answers[0], deliver, leader, frozenset({grpc.StatusCode.NOT_FOUND}))
    judge(world, answers[1], progress, leader, frozenset({grpc.StatusCode.FAILED_PRECONDITION}))
