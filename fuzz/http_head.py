"""Fuzz target: the HTTP head readers of `mtlskit serve`.

- ``accept.simple_request`` (the fast reader) against httptools (llhttp) as the oracle:
  whatever it accepts, httptools reads as exactly one complete request with the same
  method, target, body, version, keep-alive decision and first If-None-Match; without
  ``keep_alive`` it accepts only what it accepts with it, as a request that closes.
- ``server.HttpProtocol`` fed the bytes of several requests (well-formed, malformed,
  mutated) in arbitrary chunks over an in-memory transport: no exception ever leaves
  ``data_received``, reading is paused and resumed in turn, and what is written is a
  sequence of complete HTTP/1.x responses with well-formed status lines, never more
  than the complete requests sent plus one error answer.
"""

from __future__ import annotations

import asyncio
import re

import httptools
from hypothesis import strategies as st

from fuzz import engine, pki
from fuzz.mutate import mutated
from fuzz.ocsp_request import seeds as ocsp_seeds, source
from mtlskit.api import accept, server
from mtlskit.clock import FixedClock

MAX_TARGET, MAX_FIELDS = 4096, 32

_VALUE = st.one_of(st.sampled_from([b"close", b"keep-alive", b"Keep-Alive, close", b"upgrade", b"h2c", b"0", b"5",
                                    b"00", b"-1", b"1e3", b"chunked", b"100-continue", b'"x"', b"a, , b", b""]),
                   st.binary(max_size=12), st.text(max_size=8).map(lambda t: t.encode()))
_NAME = st.one_of(st.sampled_from([b"Host", b"Content-Length", b"content-length", b"Connection", b"connection",
                                   b"If-None-Match", b"Transfer-Encoding", b"Upgrade", b"Expect", b"X-A",
                                   b"Bad Name", b"", b"Host "]),
                  st.binary(min_size=1, max_size=6))
_TARGET = st.one_of(st.sampled_from([b"/ocsp", b"/ocsp/", b"/ocsp?x=1", b"/ocsp/MEQw", b"/", b"/api/v1/status",
                                     b"/ocsp%2F", b"/ocspx", b"*", b"http://h/ocsp", b"/ocsp#f", b""]),
                    st.builds(lambda tail: b"/ocsp/" + tail, st.binary(max_size=16)))


@st.composite
def request(draw, methods=(b"POST", b"GET", b"HEAD", b"PUT", b"post", b"OPTIONS", b"")) -> bytes:
    method = draw(st.sampled_from(methods))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b""]))
    body = draw(st.one_of(st.just(b""), st.sampled_from(ocsp_seeds()), st.binary(max_size=40)))
    fields = draw(st.lists(st.tuples(_NAME, _VALUE), max_size=5))
    if draw(st.booleans()):
        fields.insert(draw(st.integers(0, len(fields))), (b"Host", b"ocsp.example"))
    if body and draw(st.booleans()):
        fields.append((b"Content-Length", str(len(body)).encode()))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"]))
    head = method + b" " + draw(_TARGET) + b" " + version + eol
    head += b"".join(name + draw(st.sampled_from([b": ", b":", b" : ", b":\t"])) + value + eol
                     for name, value in fields)
    return head + eol + body


CASES_SIMPLE = st.one_of(request(), request().flatmap(lambda r: mutated([r], 2)))


def httptools_reads(data: bytes) -> list[dict]:
    """The requests httptools completes in ``data`` (stopping at its first error)."""
    messages: list[dict] = []

    class Reader:
        def on_message_begin(self):
            messages.append({"url": b"", "headers": [], "body": b"", "complete": False})

        def on_url(self, url):
            messages[-1]["url"] += url

        def on_header(self, name, value):
            messages[-1]["headers"].append((name.lower(), value))

        def on_body(self, body):
            messages[-1]["body"] += body

        def on_message_complete(self):
            messages[-1].update(complete=True, method=parser.get_method(), version=parser.get_http_version(),
                                keep_alive=parser.should_keep_alive())

    parser = httptools.HttpRequestParser(Reader())
    try:
        parser.feed_data(data)
    except httptools.HttpParserError:
        messages.append({"error": True, "complete": False})
    return messages


def check_simple(data: bytes) -> None:
    found = accept.simple_request(data, MAX_TARGET, MAX_FIELDS, keep_alive=True)
    closing = accept.simple_request(data, MAX_TARGET, MAX_FIELDS)
    if closing is not None:
        assert found is not None and found[:5] == closing and found[5] is False, (found, closing)
    if found is None:
        return
    method, target, headers, body, version, keep_alive = found
    messages = httptools_reads(data)
    assert len(messages) == 1 and messages[0]["complete"], f"httptools reads {messages} where {found}"
    read = messages[0]
    assert (read["method"], read["url"], read["body"], read["version"], read["keep_alive"]) == \
        (method, target, body, version, keep_alive), f"httptools reads {read} where {found}"
    first_match = next((v for k, v in read["headers"] if k == b"if-none-match"), None)
    assert headers == ([(b"if-none-match", first_match.strip(b" \t"))] if first_match is not None else []), \
        (headers, read["headers"])


# --- the protocol ----------------------------------------------------------------------------

class Transport:
    def __init__(self, eof: bool) -> None:
        self.written = b""
        self.closed = False
        self.reading = True
        self._eof = eof

    def pause_reading(self) -> None:
        assert self.reading, "pause_reading while paused"
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading, "resume_reading while reading"
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return self._eof

    def get_extra_info(self, _name):
        return ("127.0.0.1", 40000)


async def _app(scope, receive, send) -> None:
    await receive()
    body = b'{"ok": true}'
    await send({"type": "http.response.start", "status": 200 if scope["path"] != "/" else 404,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@st.composite
def _conversation(draw):
    requests = draw(st.lists(st.one_of(request((b"POST", b"GET", b"PUT", b"")),
                                       request((b"POST", b"GET")).flatmap(lambda r: mutated([r], 1))),
                             min_size=1, max_size=5))
    data = b"".join(requests)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    return chunks, draw(st.booleans()), draw(st.booleans())


CASES_PROTOCOL = _conversation()
_STATUS = re.compile(rb"HTTP/1\.[01] [1-5][0-9]{2} [A-Za-z][A-Za-z -]*\r\n")


def responses(written: bytes) -> int:
    """How many complete, well-formed responses ``written`` holds (asserts there is nothing else)."""
    count, pos = 0, 0
    while pos < len(written):
        line = _STATUS.match(written, pos)
        assert line, f"not a status line at {pos}: {written[pos:pos + 60]!r}"
        end = written.find(b"\r\n\r\n", pos)
        assert end > 0, f"unterminated head: {written[pos:]!r}"
        lengths = re.findall(rb"\r\ncontent-length: *([0-9]+)\r\n", written[pos:end + 2], re.IGNORECASE)
        assert len(lengths) == 1, f"{len(lengths)} content-length fields: {written[pos:end]!r}"
        pos = end + 4 + int(lengths[0])
        assert pos <= len(written), "truncated body"
        count += 1
    return count


def check_protocol(case) -> None:
    chunks, can_eof, half_close = case

    async def converse() -> Transport:
        shared = server._Shared(app=_app, source=source(), clock=FixedClock(pki.NOW),
                                server_address=("127.0.0.1", 1))
        protocol = server.HttpProtocol(shared)
        transport = Transport(can_eof)
        protocol.connection_made(transport)
        for chunk in chunks:
            if transport.closed:
                break
            protocol.data_received(chunk)
            await asyncio.sleep(0)
        if half_close and not transport.closed:
            protocol.eof_received()
        for _ in range(8):  # let the app's tasks answer
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport

    transport = asyncio.run(converse())
    sent = [m for m in httptools_reads(b"".join(chunks)) if m["complete"]]
    answered = responses(transport.written)
    assert answered <= len(sent) + 1, f"{answered} responses to {len(sent)} complete requests"


CASES = st.one_of(CASES_SIMPLE.map(lambda d: ("simple", d)), CASES_PROTOCOL.map(lambda c: ("protocol", c)))


def check(case) -> None:
    kind, value = case
    (check_simple if kind == "simple" else check_protocol)(value)


if __name__ == "__main__":
    engine.main("http_head", CASES, check)
