"""The HTTP protocol of `mtlskit serve` with an in-memory transport: idle sweep, limits."""

from __future__ import annotations

import asyncio

from mtlskit.api import server


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, _name):
        return ("127.0.0.1", 40000)


class NoSource:
    def respond(self, _request):  # pragma: no cover - these tests never reach /ocsp
        raise AssertionError("not called")


def run(test):
    async def go():
        shared = server._Shared(app=None, source=NoSource(), clock=None, server_address=("127.0.0.1", 1))
        return test(shared)
    return asyncio.run(go())


def connect(shared):
    protocol = server.HttpProtocol(shared)
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def test_idle_connections_are_closed_by_the_sweep_and_busy_ones_are_not():
    def test(shared):
        idle, idle_transport = connect(shared)
        busy, busy_transport = connect(shared)
        fresh, fresh_transport = connect(shared)
        idle.idle_since = busy.idle_since = shared.loop.time() - server.KEEP_ALIVE_SECONDS - 1
        busy._busy = True
        shared.close_idle()
        assert idle_transport.closed and not busy_transport.closed and not fresh_transport.closed
        for protocol in (idle, busy, fresh):
            protocol.connection_lost(None)
        assert shared.connections == set()
    run(test)


def test_declared_oversized_body_is_refused_before_it_is_sent():
    def test(shared):
        protocol, transport = connect(shared)
        protocol.data_received(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n")
        assert transport.written.startswith(b"HTTP/1.1 413 ") and transport.closed
        assert b'"status": 413' in transport.written
    run(test)


def test_garbage_is_a_400_problem():
    def test(shared):
        protocol, transport = connect(shared)
        protocol.data_received(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS ClientHello
        assert transport.written.startswith(b"HTTP/1.1 400 ") and transport.closed
        assert b"application/problem+json" in transport.written
    run(test)
