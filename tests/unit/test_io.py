"""The hosts' I/O helpers on a real event loop: a peer link sends in batches with one call
under way and never the same message twice at once; a timer wheel fires each live timer once,
late by at most its resolution, skips cancelled and moved ones, and fires timers due together
in one call."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import grpc

from mca.io import Outbox, PeerLink, TimerWheel


def test_a_peer_link_batches_what_queues_while_a_call_is_under_way() -> None:
    async def body() -> list[list[str]]:
        calls: list[list[str]] = []
        gate = asyncio.Event()

        async def deliver(batch: list[str]) -> None:
            calls.append(batch)
            if len(calls) == 1:
                await gate.wait()  # the first call is slow: the rest queue behind it

        link: PeerLink[str] = PeerLink(deliver, Outbox())
        link.send("a")
        await asyncio.sleep(0)
        for message in ("b", "c", "b", "a"):  # "a" is on its way, "b" already queued
            link.send(message)
        gate.set()
        for _ in range(100):
            await asyncio.sleep(0)
        return calls

    assert asyncio.run(body()) == [["a"], ["b", "c"]]


def test_a_failed_call_drops_its_batch_and_the_link_goes_on() -> None:
    async def body() -> list[list[str]]:
        calls: list[list[str]] = []

        async def deliver(batch: list[str]) -> None:
            calls.append(batch)
            if batch == ["lost"]:
                raise OSError("connection refused")

        link: PeerLink[str] = PeerLink(deliver, Outbox())
        link.send("lost")
        for _ in range(20):
            await asyncio.sleep(0)
        link.send("next")
        for _ in range(20):
            await asyncio.sleep(0)
        return calls

    assert asyncio.run(body()) == [["lost"], ["next"]]


def test_the_timer_wheel_fires_live_timers_once_and_together() -> None:
    async def body() -> tuple[list[list[Hashable]], float]:
        fired: list[list[Hashable]] = []
        loop = asyncio.get_running_loop()
        wheel = TimerWheel(fired.append, resolution=0.01)
        start = loop.time()
        wheel.set("a", start + 0.03)
        wheel.set("b", start + 0.03)
        wheel.set("gone", start + 0.03)
        wheel.cancel("gone")
        wheel.set("moved", start + 0.03)
        wheel.set("moved", start + 0.06)  # set again: only the later deadline counts
        await asyncio.sleep(0.1)
        assert len(wheel) == 0
        return fired, loop.time() - start

    fired, _ = asyncio.run(body())
    assert [sorted(map(str, keys)) for keys in fired] == [["a", "b"], ["moved"]]


def test_clearing_the_wheel_fires_nothing() -> None:
    async def body() -> list[list[Hashable]]:
        fired: list[list[Hashable]] = []
        wheel = TimerWheel(fired.append)
        wheel.set(("retry", "s1"), asyncio.get_running_loop().time() + 0.02)
        wheel.clear()
        await asyncio.sleep(0.05)
        return fired

    assert asyncio.run(body()) == []


def test_an_rpc_error_is_a_lost_batch_too() -> None:
    async def body() -> int:
        calls = 0

        async def deliver(batch: list[str]) -> None:
            nonlocal calls
            calls += 1
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())

        link: PeerLink[str] = PeerLink(deliver, Outbox())
        link.send("x")
        for _ in range(20):
            await asyncio.sleep(0)
        link.send("x")  # not on its way any more: sent again
        for _ in range(20):
            await asyncio.sleep(0)
        return calls

    assert asyncio.run(body()) == 2


def test_a_bug_in_handling_a_reply_does_not_silence_the_peer() -> None:
    async def body() -> list[list[str]]:
        calls: list[list[str]] = []

        async def deliver(batch: list[str]) -> None:
            calls.append(batch)
            if len(calls) == 1:
                await asyncio.sleep(0.01)
                raise ValueError("a bug in handling the reply")

        link: PeerLink[str] = PeerLink(deliver, Outbox())
        link.send("a")
        await asyncio.sleep(0)
        link.send("b")  # queued behind the failing call
        for _ in range(3):
            await asyncio.sleep(0.02)
            link.send("b")  # the protocol's resend of the same message
        return calls

    calls = asyncio.run(body())
    assert calls[0] == ["a"] and ["b"] in calls  # "b" went out after the failure
