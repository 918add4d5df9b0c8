"""I/O helpers shared by the hosts: a cache of gRPC channels and fire-and-forget tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Hashable
from typing import Any

import grpc


class Outbox:
    """One channel per address, and one-way calls whose failure is the protocol's to retry."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._in_flight: set[Hashable] = set()

    def channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(address)
            self._channels[address] = channel
        return channel

    def busy(self, key: Hashable) -> bool:
        """Whether a call spawned with ``key`` is still under way."""
        return key in self._in_flight

    def spawn(self, work: Awaitable[Any], key: Hashable = None) -> None:
        """Run ``work`` in the background; a failed or cancelled call is dropped (one-way).

        With a ``key`` (say, the destination and the message), callers can ask ``busy(key)``
        first and skip a resend of a message whose previous send has not even finished: under
        load that is what turned the protocol's timed resends into a storm of duplicate calls.
        """

        async def run() -> None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
                await work

        task = asyncio.ensure_future(run())
        self._tasks.add(task)  # keep a reference until it ends
        task.add_done_callback(self._tasks.discard)
        if key is not None:
            self._in_flight.add(key)
            task.add_done_callback(lambda _: self._in_flight.discard(key))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
