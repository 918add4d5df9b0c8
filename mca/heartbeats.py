"""Theory of operation: which agents a replica has heard from.

Each agent message the leader steps, each registration and each heartbeat counts as hearing from
its agent (``took``, ``heard_from``); the replica keeps when, in this process only, and only for
registered agents, so the table stays bounded. ListAgents shows an agent offline when it was not
heard within ``HEARTBEAT_STALE_SECONDS``, unless the live state still has its status key: the
leader refreshes that key on each heartbeat, so a replica that has just become leader (and heard
from no one yet) shows what its predecessor heard. ``took`` is on the hot path (once per batch
of agent messages); it counts the votes too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from mca.io import Outbox
from mca.leadership import Leadership
from mca.livestate import LiveState
from mca.metrics import Metrics
from mca.raftlog import RaftDecisionLog
from mca.views import HEARTBEAT_STALE_SECONDS, agent_views
from protocol import messages as m


class Heartbeats:
    def __init__(
        self,
        log_of: Callable[[], RaftDecisionLog],
        leadership: Leadership,
        live: LiveState,
        outbox: Outbox,
        metrics: Metrics,
    ) -> None:
        self._log = log_of
        self._leadership = leadership
        self._live = live
        self._outbox = outbox
        self._metrics = metrics
        #: When this replica last heard from each agent (``time.monotonic()``).
        self.heard: dict[str, float] = {}

    def took(self, messages: Iterable[object]) -> None:
        """Bookkeeping for agent messages the leader stepped: who was heard, votes counted."""
        now = time.monotonic()
        for message in messages:
            agent_id = getattr(message, "agent_id", "")
            if agent_id in self._log().ledger.agents:  # never a key from a stranger's message
                self.heard[agent_id] = now
            if isinstance(message, m.Vote):
                self._metrics.count("votes_total", {"vote": "yes" if message.yes else "no"})

    def heard_from(self, agent_id: str) -> None:
        self.heard[agent_id] = time.monotonic()

    def heartbeat(self, agent_id: str) -> None:
        """A heartbeat: the agent is alive; as leader, refresh its status key in the live state
        (one write at a time per agent: a slow Redis delays a refresh, it does not pile them up)."""
        self.heard_from(agent_id)
        key = ("status", agent_id)
        if self._leadership.leader is None or not self._live.url or self._outbox.busy(key):
            return
        with self._log().guard:
            agent = self._log().ledger.agents.get(agent_id)
            used = self._log().ledger.load().get(agent_id, 0) if agent is not None else 0
        if agent is None:
            return
        status = {
            "status": "busy" if used >= agent.capacity else "available",
            "load": used,
            "capacity": agent.capacity,
            "incarnation": agent.incarnation,
        }
        self._outbox.spawn(self._live.agent_seen(agent_id, status, HEARTBEAT_STALE_SECONDS), key)

    async def agent_views(self) -> list[Any]:
        # Agents this replica has not heard lately (it may have just become leader): what the
        # live state says, if their status key has not expired.
        now = time.monotonic()
        unheard = [
            a for a in list(self._log().ledger.agents) if now - self.heard.get(a, -1e9) > HEARTBEAT_STALE_SECONDS
        ]
        stored = await self._live.agent_statuses(unheard)
        with self._log().guard:  # load() walks dicts the tick thread changes
            return agent_views(self._log().ledger, self.heard, stored, time.monotonic())
