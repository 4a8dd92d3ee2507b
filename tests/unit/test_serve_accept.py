"""The transport-less fast path of `mtlskit serve`: what it answers on the spot must be
read exactly as httptools (the full protocol's parser) reads it, and everything else
must be left to the protocol."""

from __future__ import annotations

import asyncio

import httptools
import pytest

from mtlskit.api import accept, server

BODY = bytes(range(83))
AB = (b"POST /ocsp HTTP/1.0\r\nContent-length: 83\r\nContent-type: application/ocsp-request\r\n"
      b"Host: 127.0.0.1:8080\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n" + BODY)
OPENSSL = (b"POST /ocsp HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nPragma: no-cache\r\n"
           b"Content-Type: application/ocsp-request\r\nContent-Length: 83\r\n\r\n" + BODY)
CURL_GET = b"GET /ocsp/MEMwQTA%2FMD0wOzAJBgUrDgMCGgUA HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7\r\nConnection: close\r\n\r\n"

ANSWERED = [
    AB, OPENSSL, CURL_GET,
    b"GET /ocsp/MEMwQTA/MD0wOzAJBgUrDgMCGgUA= HTTP/1.0\r\n\r\n",
    b"HEAD /ocsp/abc HTTP/1.0\r\nIf-None-Match: \"x\"\r\n\r\n",
    b"POST /ocsp HTTP/1.1\r\nHost: x\r\nCONNECTION: Close\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /ocsp HTTP/1.0\r\nConnection: close\r\ncontent-length:3\r\n\r\nabc",
    b"POST /ocsp/ HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    b"POST /ocsp?x=1 HTTP/1.0\r\nContent-Length:  2 \r\n\r\nab",
    b"GET /ocsp HTTP/1.0\r\nIf-None-Match: \"a\"\r\nIf-None-Match: \"b\"\r\n\r\n",
    b"POST /ocsp HTTP/1.0\r\nX-Empty:\r\nContent-Length: 1\r\n\r\nz",
]

LEFT_TO_THE_PROTOCOL = [
    b"POST /ocsp HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",      # keep-alive
    b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",                      # 1.1 keeps by default
    b"POST /ocsp HTTP/1.0\r\nConnection: close, keep-alive\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /ocsp HTTP/1.0\r\nContent-Length: 83\r\n\r\n" + BODY[:40],                      # body still coming
    b"POST /ocsp HTTP/1.0\r\nContent-Length: 83\r\nHost: x",                                 # headers still coming
    b"POST /ocsp HTTP/1.0\r\nContent-Length: 3\r\n\r\nabcGET /ocsp HTTP/1.0\r\n\r\n",       # pipelined
    b"POST /ocsp HTTP/1.0\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",           # repeated length
    b"POST /ocsp HTTP/1.0\r\nContent-Length: 03\r\n\r\nabc",
    b"POST /ocsp HTTP/1.0\r\nContent-Length: +3\r\n\r\nabc",
    b"POST /ocsp HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"POST /ocsp HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /ocsp HTTP/1.0\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
    b"POST /ocsp HTTP/1.0\r\nX-Folded: a\r\n b\r\nContent-Length: 3\r\n\r\nabc",            # obs-fold
    b"POST /ocsp HTTP/1.0\r\nBad Name: a\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /ocsp HTTP/1.0\r\nX: caf\xc3\xa9\r\nContent-Length: 3\r\n\r\nabc",              # obs-text
    b"POST /ocsp HTTP/1.0\nContent-Length: 3\n\nabc",                                       # bare LF
    b"POST /ocsp HTTP/1.0\r\nContent-Length: 3\r\n\r\nab",
    b"POST /ocsp HTTP/1.0\r\nContent-Length: 3\r\n\r\nabcd",
    b"GET /ocsp HTTP/1.0\r\n\r\nleftover",
    b"PUT /ocsp HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /ocspx HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /api/v1/revocations HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
    b"POST  /ocsp HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /ocsp/<x> HTTP/1.0\r\n\r\n",
    b"POST /ocsp HTTP/2.0\r\nContent-Length: 3\r\n\r\nabc",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"",
]


class Reader:
    """Collects what httptools reads, the way HttpProtocol does."""

    def __init__(self) -> None:
        self.url, self.headers, self.body, self.done = b"", [], b"", 0
        self.parser = httptools.HttpRequestParser(self)
        self.keep_alive = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done += 1
        self.keep_alive = self.parser.should_keep_alive()  # where HttpProtocol asks it


@pytest.mark.parametrize("data", ANSWERED)
def test_what_is_answered_on_the_spot_reads_as_httptools_reads_it(data):
    found = accept.simple_request(data, server.MAX_BODY, server.MAX_HEADERS)
    assert found is not None
    method, target, headers, body, version = found
    reader = Reader()
    reader.parser.feed_data(data)
    assert reader.done == 1
    assert (method, target, body, version) == (reader.parser.get_method(), reader.url, reader.body,
                                               reader.parser.get_http_version())
    assert reader.keep_alive is False
    expected = next((v for k, v in reader.headers if k == b"if-none-match"), None)
    assert headers == ([(b"if-none-match", expected)] if expected is not None else [])


@pytest.mark.parametrize("data", LEFT_TO_THE_PROTOCOL)
def test_anything_else_is_left_to_the_protocol(data):
    assert accept.simple_request(data, server.MAX_BODY, server.MAX_HEADERS) is None


def test_limits_are_left_to_the_protocol():
    many = b"POST /ocsp HTTP/1.0\r\n" + b"X: y\r\n" * (server.MAX_HEADERS + 1) + b"Content-Length: 1\r\n\r\nz"
    assert accept.simple_request(many, server.MAX_BODY, server.MAX_HEADERS) is None
    long_target = b"GET /ocsp/" + b"A" * server.MAX_BODY + b" HTTP/1.0\r\n\r\n"
    assert accept.simple_request(long_target, server.MAX_BODY, server.MAX_HEADERS) is None


class Source:
    def respond(self, request):
        from mtlskit.publish.ocsp_source import OcspReply
        return OcspReply(b"answer to " + request)


def test_fast_path_and_protocol_write_the_same_bytes():
    from mtlskit.clock import SystemClock

    class Transport:
        written = b""

        def write(self, data):
            self.written += data

        def close(self):
            pass

    async def go():
        shared = server._Shared(app=None, source=Source(), clock=SystemClock(), server_address=("127.0.0.1", 1))
        for data in (AB, OPENSSL, CURL_GET):
            for _ in range(3):  # the Date header may tick between the two
                fast = server._simple_answer(shared, data)
                protocol, transport = server.HttpProtocol(shared), Transport()
                protocol.connection_made(transport)
                protocol.data_received(data)
                if fast == transport.written:
                    break
            assert fast == transport.written
            assert fast.startswith(b"HTTP/1.") and b"connection: close\r\n" in fast
    asyncio.run(go())


@pytest.mark.parametrize("data", LEFT_TO_THE_PROTOCOL[:3])
def test_the_keep_alive_rule_is_httptools_rule(data):
    reader = Reader()
    reader.parser.feed_data(data)
    assert reader.done == 1 and reader.keep_alive is True
