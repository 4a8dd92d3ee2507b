"""The acceptor of `mtlskit serve` on a real listening socket and event loop: every
waiting connection is served although each wake-up accepts one, what it does not answer
reaches the protocol with the bytes already read, and running out of descriptors
pauses accepting instead of spinning."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest
import uvloop

from mtlskit.api import accept, server

REQUEST = b"POST /ocsp HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"


def answer(data: bytes) -> bytes | None:
    return b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok" if data == REQUEST else None


async def exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def run_acceptor(test, listener: socket.socket):
    async def go():
        handed: list[tuple[bytes, bytes]] = []

        def hand_over(conn, initial, pending=b""):
            handed.append((initial, pending))
            assert isinstance(conn, socket.socket)  # what loop.connect_accepted_socket takes
            conn.sendall(b"HTTP/1.0 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            conn.close()

        acceptor = accept.Acceptor(listener, answer, hand_over)
        acceptor.start()
        try:
            return await test(acceptor, listener.getsockname()[1], handed)
        finally:
            acceptor.stop()
    return uvloop.run(go())


@pytest.fixture()
def listener():
    sock = server.listen("127.0.0.1", 0)
    yield sock
    sock.close()


def test_every_waiting_connection_is_served_one_per_wake_up(listener):
    async def test(_acceptor, port, handed):
        replies = await asyncio.gather(*(exchange(port, REQUEST) for _ in range(40)))
        assert replies == [b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"] * 40
        assert handed == []
    run_acceptor(test, listener)


def test_what_it_does_not_answer_reaches_the_protocol_with_the_bytes_read(listener):
    async def test(_acceptor, port, handed):
        other = b"GET /healthz HTTP/1.0\r\n\r\n"
        assert (await exchange(port, other)).startswith(b"HTTP/1.0 404")
        assert handed == [(other, b"")]
    run_acceptor(test, listener)


def test_a_client_gone_before_asking_is_closed_quietly(listener):
    async def test(_acceptor, port, handed):
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"P")  # past TCP_DEFER_ACCEPT, then gone
        writer.close()
        await asyncio.sleep(0.1)
        assert await exchange(port, REQUEST) == b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"
        assert handed in ([], [(b"P", b"")])
    run_acceptor(test, listener)


def test_out_of_descriptors_pauses_accepting_then_resumes(listener, monkeypatch, caplog):
    monkeypatch.setattr(accept, "_PAUSE_SECONDS", 0.2)

    async def test(acceptor, port, handed):
        real = acceptor._accept
        calls = []

        def exhausted():
            calls.append(1)
            if len(calls) == 1:
                raise OSError(errno.EMFILE, "Too many open files")
            return real()

        acceptor._accept = exhausted
        reply = await exchange(port, REQUEST)
        assert reply == b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"
        assert len(calls) == 2  # one refusal, then a pause, not a spin
        assert "not accepting connections for 0.2s: Too many open files" in caplog.text
    run_acceptor(test, listener)
