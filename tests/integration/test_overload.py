"""Overload and retention on the real runtime (gRPC, pysyncobj, three replicas on 127.0.0.1):
past the bound of sessions in flight a submit is refused at once with RESOURCE_EXHAUSTED and a
retry hint, nothing is appended for it, and the SDK backs off and retries with the same key
until every task completes exactly once; settled sessions retire past the window and are then
NOT_FOUND with the reason."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

import grpc
import pytest

from mca.embedded import EmbeddedCluster
from mca.metrics import series_key
from mca.sdk import Agent, Job, RequestRejected
from mca.submissions import OVERLOADED
from mca.tls import Principal
from protocol import ledger as ledger_module
from protocol._pb import coordination_pb2 as pb
from protocol._pb import coordination_pb2_grpc as pb_grpc
from protocol.ledger import owned_key
from protocol.model import Limits
from protocol.wire import RETRY_AFTER


class Slow(Agent):
    capabilities = ("echo",)
    capacity = 64

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id

    async def execute(self, job: Job) -> Mapping[str, float]:
        await asyncio.sleep(job.inputs.get("sleep", 0.0))
        return {"value": job.inputs.get("value", 0.0)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    limits = Limits(sessions_in_flight_max=4, retry_after=0.02)
    data = tmp_path_factory.mktemp("overload")
    # Every replica of this in-process cluster builds its ledger at start: the same small window.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledger_module, "SETTLED_SESSIONS_KEPT", 5)
        with EmbeddedCluster(str(data), [Slow("slow-1"), Slow("slow-2")], limits=limits) as c:
            c.wait_ready(agents=2)
            yield c


def test_past_the_bound_submits_are_refused_with_a_hint_and_the_sdk_gets_them_all_done(
    cluster: EmbeddedCluster,
) -> None:
    leader = cluster.leader()
    assert leader is not None
    refusals = series_key("calls_refused_total", OVERLOADED)
    refused_before = leader.metrics.counts.get(refusals, 0)

    async def main() -> tuple[list[str], grpc.aio.AioRpcError, int]:
        async with cluster.client(retry_seconds=60) as client:
            # Four slow sessions fill the bound; a raw call past it is refused at once.
            holders = [
                asyncio.create_task(client.submit("echo", {"sleep": 1.0}, key=f"hold-{i}", wait=True)) for i in range(4)
            ]
            await asyncio.sleep(0.3)
            before = len(leader.ledger.sessions)
            async with cluster.identity(Principal("client", "local")).channel(leader.config.me.grpc) as channel:
                request = pb.SubmitRequest(idempotency_key="refused", task_type="echo", payload="{}")
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await pb_grpc.TaskServiceStub(channel).Submit(request, timeout=5)
            appended = len(leader.ledger.sessions) - before
            # Twenty more through the SDK: refused at first, retried with their keys, all done.
            burst = [client.submit("echo", {"value": i}, key=f"burst-{i}", wait=True) for i in range(20)]
            done = await asyncio.gather(*holders, *burst)
            return [s.state for s in done], refused.value, appended

    states, refused, appended = asyncio.run(main())
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry with the same idempotency key" in (refused.details() or "")
    assert dict(refused.trailing_metadata() or ()).get(RETRY_AFTER) == "20"
    assert appended == 0 and owned_key("client:local", "refused") not in leader.ledger.by_key
    assert states == ["completed"] * 24
    # Operators see the refusals: the raw one and the SDK's refused tries, one count each.
    assert leader.metrics.counts.get(refusals, 0) - refused_before >= 2
    keys = [r.idempotency_key for r in leader.ledger.sessions.values() if r.idempotency_key.startswith("burst-")]
    assert keys and len(keys) == len(set(keys))  # at most one session per key, though each was retried


def test_a_retired_session_is_not_found_with_the_reason(cluster: EmbeddedCluster) -> None:
    """An operator is told which it is; a client gets one wording for both (see test_security)."""

    async def main() -> tuple[str, RequestRejected, RequestRejected]:
        async with cluster.client("ops", operator=True) as client:
            first = await client.submit("echo", {"value": 1}, wait=True)
            for i in range(8):  # more than the five settled sessions the ledger keeps
                await client.submit("echo", {"value": i}, key=f"later-{i}", wait=True)
            await asyncio.sleep(0.5)  # settled
            with pytest.raises(RequestRejected) as retired:
                await client.get(first.session_id)
            with pytest.raises(RequestRejected) as never:
                await client.get("s99999")
            return first.session_id, retired.value, never.value

    sid, retired, never = asyncio.run(main())
    assert retired.code == "NOT_FOUND" and "left the coordinator's memory" in retired.message and sid in retired.message
    assert never.code == "NOT_FOUND" and "does not exist" in never.message
