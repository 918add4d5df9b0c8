"""Theory of operation: what waits on the leader, and what wakes it.

A client request (``Submit``, ``Cancel``) is stepped with a fresh token as its client's address;
the core answers it with a ``Send`` to that token, which the replica's effect runner hands to the
request's future in ``answers`` (a plain dict: the effect runner is the hot path). A request
not answered within ``APPLY_WAIT_SECONDS`` times out; when leadership ends, every waiting request
fails with ``NotLeader`` (``fail``), as this replica will not hear its answer. Either way
``mca.services`` tells the caller to retry, which its idempotency key makes safe.

A reader takes a ``waiter`` for a session *before* it reads it (``Watch``), and
``Submit(wait)`` waits with ``ended`` until its session is terminal. After each applied batch the
replica calls ``woke`` with the sessions the batch touched, and only their waiters wake. A waiter
whose caller went away is removed (``unwait``, ``ended``'s ``finally``), so nothing piles up.
Everything here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from mca.leadership import Leadership
from mca.raftlog import RaftDecisionLog

#: How long a client request waits for its entry to be applied, and a relayed call for the
#: leader when its caller set no deadline (``Submit(wait)`` excepted: it may rightly take as long
#: as its task), before it is told to retry.
APPLY_WAIT_SECONDS = 10.0


class NotLeader(Exception):
    """This replica does not lead (or stopped leading before the request was decided)."""


class Waiting:
    def __init__(
        self, step: Callable[[Any], bool], leadership: Leadership, log_of: Callable[[], RaftDecisionLog]
    ) -> None:
        self._step = step
        self._leadership = leadership
        self._log = log_of
        #: Client requests waiting for the core's answer, by the token they were stepped with.
        self.answers: dict[str, asyncio.Future[Any]] = {}
        self._tokens = itertools.count(1)
        self._watchers: dict[str, list[asyncio.Future[None]]] = {}
        self._ending: dict[str, list[asyncio.Future[None]]] = {}  # Submit(wait) until terminal

    async def request(self, make: Callable[[str], object]) -> object:
        """Step the leader with a client request and wait for the answer the core sends back."""
        if self._leadership.leader is None:
            raise NotLeader("not the leader")
        token = f"request-{next(self._tokens)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.answers[token] = future
        if not self._step(make(token)):
            self.answers.pop(token, None)
            raise NotLeader("not the leader")
        try:
            return await asyncio.wait_for(future, APPLY_WAIT_SECONDS)
        finally:
            self.answers.pop(token, None)

    def fail(self) -> None:
        """Leadership changed: no waiting request will be answered here."""
        for future in self.answers.values():
            if not future.done():
                future.set_exception(NotLeader("leadership changed before the request was decided"))
        self.answers.clear()

    async def ended(self, session_id: str) -> None:
        """Wait until ``session_id`` is terminal (one wakeup, not one per applied record)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ending.setdefault(session_id, []).append(waiter)
        try:
            record = self._log().ledger.session(session_id)
            if record is None or record.terminal:  # it ended before we registered
                return
            await waiter
        finally:  # a client that went away leaves nothing behind
            waiting = self._ending.get(session_id, [])
            if waiter in waiting:
                waiting.remove(waiter)
            if not waiting:
                self._ending.pop(session_id, None)

    def waiter(self, session_id: str) -> asyncio.Future[None]:
        """A future done when the next entry about ``session_id`` is applied. Registered at
        once: take it *before* reading the session, or a wakeup can fall in between."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.setdefault(session_id, []).append(waiter)
        return waiter

    def unwait(self, session_id: str, waiter: asyncio.Future[None]) -> None:
        waiting = self._watchers.get(session_id)
        if waiting is None:
            return
        if waiter in waiting:
            waiting.remove(waiter)
        if not waiting:
            del self._watchers[session_id]

    def woke(self, session_ids: Iterable[str]) -> None:
        """Entries about ``session_ids`` were applied. Wake only those waiting on these sessions:
        a wake-everyone event would cost O(requests in flight) per applied batch."""
        for session_id in session_ids:
            for waiter in self._watchers.pop(session_id, []):
                if not waiter.done():
                    waiter.set_result(None)
            if session_id in self._ending:
                record = self._log().ledger.session(session_id)
                if record is None or record.terminal:
                    for waiter in self._ending.pop(session_id):
                        if not waiter.done():
                            waiter.set_result(None)
