"""The HTTP protocol of `mtlskit serve` with an in-memory transport: idle sweep, limits."""

from __future__ import annotations

import asyncio

from mtlskit.api import server


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.reading = True

    def pause_reading(self) -> None:
        assert self.reading
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return False

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


def test_reading_pauses_while_the_client_does_not_read_and_resumes_after():
    def test(shared):
        protocol, transport = connect(shared)
        protocol.pause_writing()
        assert not transport.reading
        protocol.data_received(b"GET /nope HTTP/1.1\r\n")  # already in flight when reading paused
        protocol.resume_writing()
        assert transport.reading
    run(test)


def test_a_pipeline_longer_than_the_queue_bound_pauses_reading():
    def test(shared):
        protocol, transport = connect(shared)
        protocol._busy = True  # an app request is being answered: everything after it waits
        protocol.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" * server.MAX_QUEUED)
        assert len(protocol._queue) == server.MAX_QUEUED and not transport.reading
    run(test)


def test_a_head_fed_in_pieces_is_refused_past_the_bound():
    def test(shared):
        protocol, transport = connect(shared)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ")
        piece = b"a" * 4096
        for _ in range(server.MAX_HEAD // len(piece) + 1):
            protocol.data_received(piece)
        assert transport.written.startswith(b"HTTP/1.1 431 ") and transport.closed
    run(test)


def test_a_request_that_cannot_be_read_is_answered_after_the_pending_ones():
    def test(shared):
        protocol, transport = connect(shared)
        protocol._busy = True
        protocol.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n")
        assert transport.written == b"" and not transport.closed  # waits for /a's answer
        assert isinstance(protocol._queue[-1], server._Failure) and protocol._queue[-1].status == 400
    run(test)


def test_http11_without_host_is_refused():
    def test(shared):
        protocol, transport = connect(shared)
        protocol.data_received(b"GET /a HTTP/1.1\r\n\r\n")
        assert transport.written.startswith(b"HTTP/1.1 400 ") and b"Host" in transport.written
    run(test)
