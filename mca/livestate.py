"""Theory of operation: live state in Redis, the fast and forgettable side of the runtime.

Nothing here is a coordination decision, so nothing here goes through the Raft log; losing it
loses no task. Two kinds of keys:

* ``agent:{id}:status``: the agent's status as the leader last saw it (available or busy, load,
  capacity, incarnation), written on each heartbeat with a TTL of a few heartbeats. When the
  heartbeats stop the key expires, and that is what "offline" means. A new leader, which has
  heard no heartbeat yet, reads these keys instead of calling every agent offline.
* ``coord:{session_id}``: a hash of the latest progress of each running subtask (fraction and
  note, as the agent's ``execute`` reported it), expiring an hour after the last report. Each
  report is also published on the channel of the same name; every replica listens on
  ``coord:*`` and hands the reports to the ``Watch`` streams it serves.

Without a Redis URL (an embedded program or a test that runs no Redis) the same class fans
progress out inside the process and keeps agent status only in the leader's memory.
Redis errors are logged and dropped: a watcher may miss a progress report, never a state change
(those come from the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

#: Seconds a ``coord:{session_id}`` hash lives after its last progress report.
PROGRESS_TTL_SECONDS = 3600
#: Longest note an agent may attach to a progress report (longer ones are cut).
NOTE_LENGTH_MAX = 200

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    session_id: str
    subtask_id: str
    fraction: float  # 0.0 .. 1.0
    note: str = ""

    def to_json(self) -> str:
        return json.dumps({"s": self.session_id, "t": self.subtask_id, "f": self.fraction, "n": self.note})

    @staticmethod
    def from_json(text: str) -> Progress:
        d = json.loads(text)
        return Progress(str(d["s"]), str(d["t"]), float(d["f"]), str(d.get("n", "")))


def agent_key(agent_id: str) -> str:
    return f"agent:{agent_id}:status"


def session_key(session_id: str) -> str:
    return f"coord:{session_id}"


class LiveState:
    def __init__(self, url: str = "") -> None:
        self.url = url
        self._redis: aioredis.Redis | None = (
            aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0)
            if url
            else None
        )
        self._local: dict[str, dict[str, Progress]] = {}  # latest progress per session, without Redis
        self._queues: dict[str, set[asyncio.Queue[Progress]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self.error = ""

    async def start(self) -> None:
        if self._redis is not None:
            self._listener = asyncio.create_task(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._redis is not None:
            with contextlib.suppress(RedisError):
                await self._redis.aclose()

    # --- agent status -------------------------------------------------------------------------

    async def agent_seen(self, agent_id: str, status: dict[str, Any], ttl_seconds: float) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.set(agent_key(agent_id), json.dumps(status), px=max(1, int(ttl_seconds * 1000)))
        except RedisError as exc:
            self._failed(exc)

    async def agent_statuses(self, agent_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The unexpired statuses of these agents (absent: offline or unknown)."""
        ids = list(agent_ids)
        if self._redis is None or not ids:
            return {}
        try:
            values = await self._redis.mget([agent_key(a) for a in ids])
        except RedisError as exc:
            self._failed(exc)
            return {}
        return {a: json.loads(v) for a, v in zip(ids, values, strict=True) if v}

    # --- session progress ---------------------------------------------------------------------

    async def report(self, progress: Progress) -> None:
        """Record a subtask's progress and fan it out to every watcher of the session."""
        if self._redis is None:
            self._local.setdefault(progress.session_id, {})[progress.subtask_id] = progress
            self._dispatch(progress)
            return
        key = session_key(progress.session_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, progress.subtask_id, progress.to_json())
                pipe.expire(key, PROGRESS_TTL_SECONDS)
                pipe.publish(key, progress.to_json())
                await pipe.execute()
        except RedisError as exc:
            self._failed(exc)

    async def current(self, session_id: str) -> list[Progress]:
        """The latest report of each subtask (what a watcher that just connected has missed)."""
        if self._redis is None:
            return sorted(self._local.get(session_id, {}).values(), key=lambda p: p.subtask_id)
        try:
            stored = await self._redis.hgetall(session_key(session_id))
        except RedisError as exc:
            self._failed(exc)
            return []
        reports = (Progress.from_json(v if isinstance(v, str) else v.decode()) for v in stored.values())
        return sorted(reports, key=lambda p: p.subtask_id)

    @contextlib.asynccontextmanager
    async def listen(self, session_id: str) -> AsyncIterator[asyncio.Queue[Progress]]:
        """A queue that receives the session's progress reports while the context is open."""
        queue: asyncio.Queue[Progress] = asyncio.Queue(maxsize=256)
        self._queues.setdefault(session_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._queues.get(session_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._queues[session_id]

    def forget(self, session_id: str) -> None:
        self._local.pop(session_id, None)

    def _dispatch(self, progress: Progress) -> None:
        for queue in self._queues.get(progress.session_id, ()):
            with contextlib.suppress(asyncio.QueueFull):  # a slow watcher misses reports, not states
                queue.put_nowait(progress)

    async def _listen(self) -> None:
        """Hand every report published on ``coord:*`` to the local watchers; reconnect on errors."""
        if self._redis is None:
            return
        delay = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe("coord:*")
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "pmessage":
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            self._dispatch(Progress.from_json(message["data"]))
            except RedisError as exc:
                self._failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(RedisError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _failed(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"[:200]
        if text != self.error:
            log.warning("live state: %s", text)
        self.error = text
