"""The hosts' I/O helpers on a real event loop: a peer link sends in batches with one call
under way and never the same message twice at once; a timer wheel fires each live timer once,
late by at most its resolution, skips cancelled and moved ones, and fires timers due together
in one call."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

import grpc

from mca.io import Outbox, PeerLink, StreamLink, TimerWheel, parts_by_size
from protocol.batching import LAZY_SECONDS


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


class _EchoServer:
    """A real gRPC server on 127.0.0.1 with one bidirectional method: each request (a batch of
    words joined by commas) is recorded and answered with ``ack:<batch>``; a batch holding
    ``break`` aborts the stream."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.streams = 0

    async def exchange(self, requests: object, context: grpc.aio.ServicerContext) -> object:
        self.streams += 1
        async for raw in requests:  # type: ignore[attr-defined]
            batch = raw.decode().split(",")
            self.batches.append(batch)
            if "break" in batch:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "broken")
            yield b"ack:" + raw

    async def start(self) -> tuple[grpc.aio.Server, str]:
        handler = grpc.method_handlers_generic_handler(
            "t.T", {"X": grpc.stream_stream_rpc_method_handler(self.exchange)}
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, f"127.0.0.1:{port}"


async def _settle(condition: object, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.01)


def _link(address: str, received: list[bytes], **options: Any) -> tuple[StreamLink[str], grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(address)
    method = channel.stream_stream("/t.T/X")
    link: StreamLink[str] = StreamLink(
        method, lambda batch: ",".join(batch).encode(), received.append, Outbox(), **options
    )
    return link, channel


def test_a_stream_link_batches_on_one_stream_and_hands_over_every_reply() -> None:
    async def body() -> tuple[_EchoServer, list[bytes], int]:
        echo = _EchoServer()
        server, address = await echo.start()
        received: list[bytes] = []
        link, channel = _link(address, received)
        link.send("a")
        await asyncio.sleep(0)  # the writer has taken "a" and waits for its write
        for message in ("b", "c", "b"):  # queued meanwhile: one batch, "b" once
            link.send(message)
        await _settle(lambda: len(received) == 2)
        link.send("d")
        await _settle(lambda: len(received) == 3)
        link.close()
        await channel.close()
        await server.stop(None)
        return echo, received, link.opened

    echo, received, opened = asyncio.run(body())
    assert echo.batches == [["a"], ["b", "c"], ["d"]]
    assert received == [b"ack:a", b"ack:b,c", b"ack:d"]
    assert opened == 1 and echo.streams == 1


def test_a_broken_stream_is_reopened_by_the_next_send_and_a_closed_link_sends_nothing() -> None:
    async def body() -> tuple[_EchoServer, list[bytes], int]:
        echo = _EchoServer()
        server, address = await echo.start()
        received: list[bytes] = []
        link, channel = _link(address, received)
        link.send("break")
        await _settle(lambda: echo.batches == [["break"]] and link._call is None)
        link.send("again")
        await _settle(lambda: received == [b"ack:again"])
        link.close()
        link.send("after close")
        await asyncio.sleep(0.1)
        await channel.close()
        await server.stop(None)
        return echo, received, link.opened

    echo, received, opened = asyncio.run(body())
    assert received == [b"ack:again"]
    assert echo.batches == [["break"], ["again"]]
    assert opened == 2 and echo.streams == 2


def test_a_batch_is_cut_into_parts_and_every_end_of_a_stream_is_heard() -> None:
    """``parts`` splits what one write would carry; ``ended`` hears the peer's abort (its
    status) and then the local close."""

    async def body() -> tuple[_EchoServer, list[bytes], list[object], StreamLink[str]]:
        echo = _EchoServer()
        server, address = await echo.start()
        received: list[bytes] = []
        ends: list[object] = []
        link, channel = _link(
            address,
            received,
            ended=lambda error: ends.append(error.code() if isinstance(error, grpc.aio.AioRpcError) else error),
            parts=lambda batch: parts_by_size(batch, len, limit=3),
        )
        link.send("a")
        await asyncio.sleep(0)
        for message in ("bb", "c", "dddd"):
            link.send(message)
        await _settle(lambda: len(received) == 4)
        link.send("break")
        await _settle(lambda: len(ends) == 1)
        link.send("e")
        await _settle(lambda: len(received) == 5)
        link.close()
        await _settle(lambda: len(ends) == 2)
        await channel.close()
        await server.stop(None)
        return echo, received, ends, link

    echo, received, ends, link = asyncio.run(body())
    assert echo.batches == [["a"], ["bb", "c"], ["dddd"], ["break"], ["e"]]
    assert ends[0] == grpc.StatusCode.UNAVAILABLE and len(ends) == 2
    assert received[-1] == b"ack:e"  # the next send opened a new stream
    assert (link.written, link.carried) == (5, 6)


def test_parts_by_size_keeps_order_and_bounds_each_part() -> None:
    words = ["aa", "b", "cccc", "d", "ee", "ffffff"]
    parts = list(parts_by_size(words, len, limit=4))
    assert [w for part in parts for w in part] == words
    assert parts == [["aa", "b"], ["cccc"], ["d", "ee"], ["ffffff"]]  # too large alone: alone
    assert list(parts_by_size([], len)) == []


def test_a_lazy_message_rides_with_the_next_one_or_goes_alone_when_its_time_is_up() -> None:
    async def body() -> tuple[_EchoServer, list[bytes], float]:
        echo = _EchoServer()
        server, address = await echo.start()
        received: list[bytes] = []
        link, channel = _link(address, received)
        link.send("release", lazy=True)
        await asyncio.sleep(LAZY_SECONDS / 4)
        assert echo.batches == []  # it waits for company
        link.send("prepare")
        await _settle(lambda: len(received) == 1)
        await asyncio.sleep(LAZY_SECONDS)  # the first lazy message's timer has passed
        loop = asyncio.get_running_loop()
        started = loop.time()
        link.send("alone", lazy=True)
        await _settle(lambda: len(received) == 2)
        waited = loop.time() - started
        link.close()
        await channel.close()
        await server.stop(None)
        return echo, received, waited

    echo, received, waited = asyncio.run(body())
    assert echo.batches == [["release", "prepare"], ["alone"]]  # in order, one write
    assert received == [b"ack:release,prepare", b"ack:alone"]
    assert waited >= LAZY_SECONDS * 0.9  # alone, it went when its time was up
