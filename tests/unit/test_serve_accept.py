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

        def can_write_eof(self):
            return False

    async def go():
        shared = server._Shared(app=None, source=Source(), clock=SystemClock(), server_address=("127.0.0.1", 1))
        for data in (AB, OPENSSL, CURL_GET):
            for _ in range(3):  # the Date header may tick between the two
                fast = shared.wire.one_shot(data)
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


# --- the keep-alive fast path inside HttpProtocol --------------------------------------------

KEEP_ALIVE = [
    b"POST /ocsp HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /ocsp HTTP/1.0\r\nConnection: close, keep-alive\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /ocsp HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /ocsp HTTP/1.0\r\nContent-length: 83\r\nConnection: Keep-Alive\r\nHost: 127.0.0.1:8080\r\n"
    b"User-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n" + BODY,                               # ab -k
    b"GET /ocsp/MEMwQTA/MD0wOzAJBgUrDgMCGgUA= HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /ocsp/abc HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"x\"\r\n\r\n",
    b"POST /ocsp HTTP/1.1\r\nHost: x\r\nConnection: te, keep-alive\r\nContent-Length: 0\r\n\r\n",
]

# Connection values: the fast path must either leave them to httptools or decide as it does.
CONNECTION_VALUES = [b"keep-alive", b"close", b"Keep-Alive", b"CLOSE", b"keep-alive, close", b"close ,keep-alive",
                     b"te", b"te, close", b"", b"keep-alive;x", b"closex", b"x close", b"close x", b'"close"',
                     b",close", b"close,", b"keep-alive,,", b"upgrade", b"keep-alive, upgrade", b"\tclose\t"]


@pytest.mark.parametrize("data", ANSWERED + KEEP_ALIVE)
def test_requests_kept_alive_or_not_read_as_httptools_reads_them(data):
    found = accept.simple_request(data, server.MAX_BODY, server.MAX_HEADERS, keep_alive=True)
    assert found is not None
    method, target, headers, body, version, keep_alive = found
    reader = Reader()
    reader.parser.feed_data(data)
    assert reader.done == 1
    assert (method, target, body, version, keep_alive) == (reader.parser.get_method(), reader.url, reader.body,
                                                           reader.parser.get_http_version(), reader.keep_alive)
    expected = next((v for k, v in reader.headers if k == b"if-none-match"), None)
    assert headers == ([(b"if-none-match", expected)] if expected is not None else [])
    assert (accept.simple_request(data, server.MAX_BODY, server.MAX_HEADERS) is None) is keep_alive


@pytest.mark.parametrize("value", CONNECTION_VALUES)
@pytest.mark.parametrize("minor", [b"0", b"1"])
def test_the_keep_alive_decision_is_httptools_decision_or_none(value, minor):
    data = b"GET /ocsp HTTP/1." + minor + b"\r\nConnection: " + value + b"\r\n\r\n"
    found = accept.simple_request(data, server.MAX_BODY, server.MAX_HEADERS, keep_alive=True)
    reader = Reader()
    try:
        reader.parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        assert found is None
        return
    if found is not None:
        assert found[5] is reader.keep_alive


@pytest.mark.parametrize("data", [d for d in LEFT_TO_THE_PROTOCOL if d not in KEEP_ALIVE])
def test_anything_unusual_is_left_to_httptools_on_a_kept_connection_too(data):
    assert accept.simple_request(data, server.MAX_BODY, server.MAX_HEADERS, keep_alive=True) is None


def test_a_declared_body_over_the_limit_is_left_to_the_protocol():
    data = b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (server.MAX_BODY + 1) + b"x" * (server.MAX_BODY + 1)
    assert accept.simple_request(data, server.MAX_BODY, server.MAX_HEADERS, keep_alive=True) is None
    huge = b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\nx"
    assert accept.simple_request(huge, server.MAX_BODY, server.MAX_HEADERS, keep_alive=True) is None


class CachingSource:
    """Pre-signed (cacheable, with an ETag) replies for bodies starting with "c", fresh
    ones otherwise, like OcspSource with and without a nonce."""

    def __init__(self) -> None:
        import datetime as dt

        from mtlskit.publish.ocsp_source import OcspReply
        now = dt.datetime.now(dt.timezone.utc)
        self.fresh = lambda der: OcspReply(b"signed for " + der)
        self.cached = OcspReply(b"pre-signed", now, now + dt.timedelta(hours=1), '"e1"')

    def respond(self, der: bytes):
        return self.cached if der[:1] in (b"c", b"") else self.fresh(der)

    def presigned(self, der: bytes, now):
        return self.cached if der[:1] in (b"c", b"") else None


class Transport:
    def __init__(self) -> None:
        self.written, self.closed = b"", False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.written += data

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name):
        return ("127.0.0.1", 2)


class CountingParser:
    """Wraps the protocol's httptools parser to count what it is fed."""

    def __init__(self, parser) -> None:
        self.parser, self.fed = parser, 0

    def feed_data(self, data: bytes) -> None:
        self.fed += 1
        self.parser.feed_data(data)

    def __getattr__(self, name):
        return getattr(self.parser, name)


def connection(shared):
    protocol, transport = server.HttpProtocol(shared), Transport()
    protocol.connection_made(transport)
    protocol._parser = CountingParser(protocol._parser)
    return protocol, transport


ka = b"Connection: keep-alive\r\n"
CONVERSATIONS = [
    # ab -k: the same request again and again, then one that closes
    [KEEP_ALIVE[4]] * 3 + [AB],
    # HTTP/1.1 default persistence; a GET; a conditional GET (304) and HEAD; a nonce request; close
    [b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nc1",
     b"GET /ocsp/YzI= HTTP/1.1\r\nHost: x\r\n\r\n",
     b"GET /ocsp/YzI= HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"e1\"\r\n\r\n",
     b"GET /ocsp/YzI= HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n\r\n",
     b"HEAD /ocsp/YzI= HTTP/1.1\r\nHost: x\r\n\r\n",
     b"HEAD /ocsp/YzI= HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"e1\"\r\n\r\n",
     b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nnonce",
     b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nnonce",
     b"POST /ocsp HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nc1"],
    # HTTP/1.0 keep-alive, conditional, garbage GET (malformedRequest), then a plain 1.0 request closes
    [b"POST /ocsp HTTP/1.0\r\n" + ka + b"Content-Length: 2\r\n\r\nc3",
     b"GET /ocsp/YzI= HTTP/1.0\r\n" + ka + b"If-None-Match: \"e1\"\r\n\r\n",
     b"GET /ocsp/!!! HTTP/1.0\r\n" + ka + b"\r\n",
     b"POST /ocsp HTTP/1.0\r\nContent-Length: 2\r\n\r\nc3"],
    # unusual requests in between go to httptools; the fast path takes over again afterwards
    [b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nc1",
     b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 03\r\n\r\nc1x",
     b"POST /ocsp HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\nc1",
     b"PUT /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nc1",
     b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nc1"],
    # a malformed request ends the conversation with a 400 on both paths
    [b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nc1",
     b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nc1",
     b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nc1"],
    # a request a keep-alive client must not get an answer to after "close"
    [b"POST /ocsp HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nc1",
     b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nc1"],
]


def converse(shared, pieces: list[bytes], fast: bool):
    """Feeds ``pieces`` to a new connection; without ``fast``, every byte goes to httptools."""
    if not fast:
        shared.wire.simple = lambda *args, **kwargs: None
    try:
        protocol, transport = connection(shared)
        for piece in pieces:
            if transport.closed:
                break
            protocol.data_received(piece)
    finally:
        shared.wire.__dict__.pop("simple", None)
    return transport, protocol._parser.fed


@pytest.mark.parametrize("pieces", CONVERSATIONS)
def test_the_keep_alive_fast_path_writes_what_httptools_path_writes(pieces):
    from mtlskit.clock import SystemClock

    async def go():
        shared = server._Shared(app=None, source=CachingSource(), clock=SystemClock(),
                                server_address=("127.0.0.1", 1))
        for _ in range(3):  # the Date header may tick between the two
            fast, fed = converse(shared, pieces, fast=True)
            slow, fed_slow = converse(shared, pieces, fast=False)
            if fast.written == slow.written:
                break
        assert fast.written == slow.written and fast.closed is slow.closed
        assert fed < fed_slow  # the fast path did answer some of them itself
        return fast.written
    written = asyncio.run(go())
    assert written.startswith(b"HTTP/1.")


def test_the_fast_path_is_taken_for_simple_requests_only():
    from mtlskit.clock import SystemClock

    async def go():
        shared = server._Shared(app=None, source=CachingSource(), clock=SystemClock(),
                                server_address=("127.0.0.1", 1))
        _transport, fed = converse(shared, CONVERSATIONS[0], fast=True)
        assert fed == 0
        _transport, fed = converse(shared, CONVERSATIONS[3], fast=True)
        assert fed == 3  # the leading zero, the obs-text and the PUT
    asyncio.run(go())


def test_pipelined_partial_and_smuggled_requests_go_through_httptools():
    from mtlskit.clock import SystemClock

    one = b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nc1"
    looks_whole = b"GET /ocsp/YzI= HTTP/1.1\r\nHost: x\r\n\r\n"
    cases = [
        [one + one],                                               # pipelined in one read
        [one[:10], one[10:], one],                                 # in pieces, then whole again
        [b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(looks_whole), looks_whole, one],  # a body
        [b"\r\n", one],                                            # a stray CRLF first
    ]

    async def go():
        shared = server._Shared(app=None, source=CachingSource(), clock=SystemClock(),
                                server_address=("127.0.0.1", 1))
        for pieces in cases:
            for _ in range(3):
                fast, _fed = converse(shared, pieces, fast=True)
                slow, _fed = converse(shared, pieces, fast=False)
                if fast.written == slow.written:
                    break
            assert fast.written == slow.written and not fast.closed
        body_case = converse(shared, cases[2], fast=True)[0].written
        assert body_case.count(b"HTTP/1.1 200 OK") == 2 and b"signed for GET" in body_case  # read as a body
    asyncio.run(go())


def test_an_ocsp_request_behind_a_pending_api_request_waits_its_turn():
    from mtlskit.clock import SystemClock

    async def go():
        release = asyncio.Event()

        async def app(scope, receive, send):
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"api"})

        shared = server._Shared(app=app, source=CachingSource(), clock=SystemClock(),
                                server_address=("127.0.0.1", 1))
        protocol, transport = connection(shared)
        protocol.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        protocol.data_received(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nc1")
        await asyncio.sleep(0)
        assert transport.written == b""  # not answered before the request in front of it
        release.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert transport.written.index(b"api") < transport.written.index(b"pre-signed")
    asyncio.run(go())


def test_the_fast_path_keeps_the_idle_clock_and_the_closing_rule():
    from mtlskit.clock import SystemClock

    async def go():
        shared = server._Shared(app=None, source=CachingSource(), clock=SystemClock(),
                                server_address=("127.0.0.1", 1))
        protocol, transport = connection(shared)
        protocol.idle_since -= 100
        protocol.data_received(KEEP_ALIVE[4])
        assert protocol._parser.fed == 0 and not transport.closed
        shared.close_idle(idle_seconds=50)
        assert not transport.closed  # the request counted as activity
        protocol.idle_since -= 100
        shared.close_idle(idle_seconds=50)
        assert transport.closed  # and an idle keep-alive connection is still closed
        protocol, transport = connection(shared)
        protocol.data_received(AB)
        assert transport.closed and protocol._closing and b"connection: close\r\n" in transport.written
    asyncio.run(go())
