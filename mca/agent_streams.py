"""Theory of operation: the leader's streams to its agents.

A ``Send`` to an agent joins the ``StreamLink`` (``mca.io``) of the address the agent
registered: one long-lived ``Exchange`` stream per agent and address, batches both ways. The
agent answers each batch on it (votes, acknowledgements) and sends its results there too. TLS
makes sure the other end is the agent the stream was opened to, so what comes back is taken as
that agent's; it passes the same checks as a Deliver call of the agent's own
(``mca.agent_checks``) before the leader is stepped with it. An agent that registers again at
another address gets a new stream, and the streams to its earlier addresses close. All streams
close with this replica's leadership (``close``), so an agent then sends to the next leader.

``links`` is read by the replica's effect runner for every message (a plain dict); a stream is
opened here only when there is none. The answers arrive on the event loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from mca.agent_checks import AgentChecks
from mca.heartbeats import Heartbeats
from mca.io import Outbox, StreamLink
from mca.metrics import Metrics
from mca.tls import Principal, server_name
from protocol._pb import coordination_pb2_grpc as pb_grpc
from protocol.wire import pack, unpack_to_mca


class AgentStreams:
    def __init__(
        self,
        outbox: Outbox,
        batching: dict[str, int],
        metrics: Metrics,
        checks: AgentChecks,
        heartbeats: Heartbeats,
        step_many: Callable[[Iterable[Any]], bool],
    ) -> None:
        self._outbox = outbox
        self._batching = batching
        self._metrics = metrics
        self._checks = checks
        self._heartbeats = heartbeats
        self._step_many = step_many
        self.links: dict[tuple[str, str], StreamLink[Any]] = {}  # by (agent id, address)

    def open(self, to: str, address: str) -> StreamLink[Any]:
        """The stream to agent ``to`` at ``address``, where there is none yet."""
        for moved in [k for k in self.links if k[0] == to]:  # its earlier lives' addresses
            self.links.pop(moved).close()
            self._outbox.forget(moved[1], server_name(Principal("agent", to)))
        server = server_name(Principal("agent", to))
        stub = pb_grpc.AgentServiceStub(self._outbox.channel(address, server))
        link = self.links[to, address] = StreamLink(
            stub.Exchange, self._to_agent, functools.partial(self._from_agent, to, address), self._outbox
        )
        return link

    def close(self) -> None:
        for link in self.links.values():  # agents send to the next leader, not on our streams
            link.close()
        self.links.clear()

    def _to_agent(self, batch: list[Any]) -> Any:
        self._batching["calls_out"] += 1
        self._batching["messages_out"] += len(batch)
        return pack(batch, to_agent=True)

    def _from_agent(self, agent_id: str, address: str, reply: Any) -> None:
        """What an agent sent on our stream to it: the answers to a batch (votes,
        acknowledgements) and messages of its own (results, lease queries), stepped at once as
        if they had come in a call of their own. TLS makes sure the server is ``agent_id`` (its
        certificate's name), so they are taken as that agent's and no other's."""
        answers = unpack_to_mca(reply)
        self._batching["answers"] += len(answers)
        # The same boundary as a Deliver call of the agent's own: a refused answer is dropped
        # (logged), never stepped; its sender resends or fails the subtask.
        answers, refused = self._checks.sift(answers, agent_id)
        if refused:
            self._metrics.count("calls_refused_total", {"reason": "message"})
            logging.getLogger(__name__).warning("answers from %s at %s refused: %s", agent_id, address, refused[:3])
        if answers and self._step_many(answers):
            self._heartbeats.took(answers)
