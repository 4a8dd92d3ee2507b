"""The HTTP server of `mtlskit serve`: asyncio (uvloop) + httptools, /ocsp answered in the protocol.

Why not uvicorn alone: relying parties ask for OCSP on every handshake, and openssl,
nginx and ApacheBench speak HTTP/1.0 to it. uvicorn closes every HTTP/1.0 connection
and spends tens of microseconds per request in its ASGI plumbing: a do-nothing ASGI app
on it reached about 11,000 requests/s here, against 50,000+ for a bare asyncio protocol,
while `openssl ocsp -port` does 5,000-9,000 (bench/bench_ocsp.py has the figures).
This protocol parses with httptools (the parser uvicorn uses), answers /ocsp straight
from the OcspSource without a task or a framework (the response bytes, and the memories
that spare rebuilding them, come from :mod:`mtlskit.api.ocsp_wire`), honours HTTP/1.0
keep-alive, and hands every other request, buffered, to the ASGI app (FastAPI), one at
a time per connection so that pipelined responses keep their order (RFC 9112 §9.3.2).
Connections are accepted by :mod:`mtlskit.api.accept`, which answers a complete
one-shot /ocsp request without creating a transport at all and gives every other
connection to this protocol. On a kept-alive connection, a whole unremarkable /ocsp
request arriving between requests is recognised the same way and answered without the
parser's callbacks (at c=1 with ab -k, 7,200 -> 8,400 requests/s for pre-signed replies).
With ``--workers N`` the listening socket is shared by N forked processes (:mod:`mtlskit.api.workers`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import gc
import logging
import signal
import socket
import ssl
from typing import Awaitable, Callable

import httptools

from mtlskit.api.accept import Acceptor
from mtlskit.api.http1 import MAX_BODY, MAX_HEADERS, REASONS, DateHeader, Request, render
from mtlskit.api.ocsp_wire import OcspWire
from mtlskit.api.problems import problem
from mtlskit.api.tls import tls_extension
from mtlskit.clock import Clock

log = logging.getLogger("mtlskit.serve")
KEEP_ALIVE_SECONDS = 15.0
MAX_HEAD = 16 * 1024   # request line and header fields of one request, in bytes
MAX_QUEUED = 32        # pipelined requests read ahead of their answers before reading pauses
LINGER_SECONDS = 2.0   # after an error answer, what the client still sends is read and dropped ...
LINGER_BYTES = 1024 * 1024  # ... for this long or this much, so the close does not reset the answer
TLS_HANDSHAKE_SECONDS = 10.0  # a TLS client that has not finished its handshake by then is dropped
DEFER_ACCEPT_SECONDS = 5  # a client silent this long after connecting is accepted anyway, then idles out

AsgiApp = Callable[..., Awaitable[None]]


class _Shared:
    """What every connection of one serving process shares, and the idle sweep: one
    periodic pass over the open connections instead of a timer per request."""

    def __init__(self, app: AsgiApp, source, clock: Clock, server_address: tuple[str, int],
                 tls: bool = False) -> None:
        self.app = app
        self.tls = tls  # connections come through the TLS listener (`serve --tls-port`)
        self.server_address = server_address
        self.date = DateHeader()
        metrics = getattr(app, "metrics", None)  # mtlskit.metrics.worker.WorkerMetrics, or None: metrics off
        self.recorder = metrics.recorder if metrics is not None else None
        self.wire = OcspWire(source, clock, self.date, self.recorder)
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpProtocol] = set()
        self.adopting: set[asyncio.Future] = set()

    def close_idle(self, idle_seconds: float = KEEP_ALIVE_SECONDS) -> None:
        horizon = self.loop.time() - idle_seconds
        for connection in [c for c in self.connections if c.idle_since < horizon]:
            connection.close_idle()


class HttpProtocol(asyncio.Protocol):
    """One client connection; ``initial`` holds what was read from it before it was
    handed over (see :mod:`mtlskit.api.accept`)."""

    def __init__(self, shared: _Shared, initial: bytes = b"") -> None:
        self._initial = initial
        self._shared = shared
        self._app = shared.app
        self._date = shared.date
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._queue: collections.deque[Request | _Failure] = collections.deque()
        self._busy = False
        self._closing = False
        self._between = True  # the parser holds no part of a request
        self._in_head = False  # the parser is inside a request line or header fields
        self._head_bytes = 0  # bytes of the current head fed after the chunk that began it
        self._field_bytes = 0  # bytes of the header fields read whole
        self._messages = 0
        self._failed = False  # a malformed request was read: nothing after it is
        self._eof = False  # the client half-closed: answer what was read, then close
        self._write_paused = False  # the transport's buffer is full (the client does not read)
        self._read_paused = False
        self._lingering = 0  # > 0: the error answer is sent; bytes read and dropped since
        self.idle_since = shared.loop.time()
        self._reset_message()

    # --- connection ------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self._transport = transport
        self._shared.connections.add(self)
        if self._initial:  # before any data_received: the bytes keep their order
            initial, self._initial = self._initial, b""
            self.data_received(initial)

    def connection_lost(self, exc) -> None:
        self._closing = True
        self._shared.connections.discard(self)

    # --- flow control: never read requests faster than the client reads answers ----------

    def pause_writing(self) -> None:
        self._write_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self._write_paused = False
        if not self._busy:
            self._drain()
        self._flow()

    def eof_received(self) -> bool:
        """A half-close ends the requests, not the answers: keep the transport open until
        what was read is answered (RFC 9112 §9.6)."""
        if self._lingering:
            return False
        self._eof = True
        if self._busy or self._queue:
            self._flow()
            return True
        return False

    def _flow(self) -> None:
        """Pause reading while answers wait for the client or too many requests wait for answers."""
        if self._transport is None or self._closing:
            return
        pause = self._write_paused or len(self._queue) >= MAX_QUEUED or self._failed or self._eof
        if pause != self._read_paused:
            self._read_paused = pause
            (self._transport.pause_reading if pause else self._transport.resume_reading)()

    def close_idle(self) -> None:
        """Close a keep-alive connection that sent nothing for a while (not one mid-request)."""
        if not self._busy and self._transport:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self._transport.close()
            return
        if self._failed or self._closing:
            return
        if self._between and not self._busy and not self._write_paused and not self._queue:
            # Between requests, one whole unremarkable /ocsp request (a keep-alive client
            # asking again) is answered without the parser's callbacks: the same bytes,
            # the same keep-alive decision. Anything else goes to httptools.
            found = self._shared.wire.simple(data)
            if found is not None:
                self.idle_since = self._shared.loop.time()
                self._transport.write(found[0])
                if not found[1]:
                    self._closing = True
                    self._transport.close()
                return
        head_before, message = self._in_head, self._messages
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            # httptools wraps what a callback raises; _TooLarge is ours.
            too_large = exc if isinstance(exc, _TooLarge) else exc.__context__
            if isinstance(too_large, _TooLarge):
                self._fail(*too_large.args)
            else:
                self._fail(400, "malformed HTTP request")
        except _TooLarge as exc:
            self._fail(*exc.args)
        else:
            # httptools joins the pieces of a header field one bytes object at a time
            # (quadratic): bound the head by the bytes fed while it stays open.
            if self._in_head and head_before and message == self._messages:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD:
                    self._fail(*_HEAD_TOO_LARGE)

    # --- httptools callbacks -----------------------------------------------------------

    def _reset_message(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0

    def on_message_begin(self) -> None:
        self._between = False
        self._in_head = True
        self._head_bytes = self._field_bytes = 0
        self._messages += 1
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_BODY:
            raise _TooLarge(414, f"request targets are limited to {MAX_BODY} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._field_bytes += len(name) + len(value)
        if len(self._headers) > MAX_HEADERS or self._field_bytes > MAX_HEAD:
            raise _TooLarge(*_HEAD_TOO_LARGE)

    def on_headers_complete(self) -> None:
        self._in_head = False
        # Refuse a declared oversized body before it is sent (RFC 9110 §15.5.14).
        length = next((v for k, v in self._headers if k == b"content-length"), b"0")
        if length.isdigit() and int(length) > MAX_BODY:
            raise _TooLarge(*_BODY_TOO_LARGE)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > MAX_BODY:
            raise _TooLarge(*_BODY_TOO_LARGE)
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._between = True
        request = Request(self._parser.get_method(), self._url, self._headers, b"".join(self._body),
                           self._parser.should_keep_alive(), self._parser.get_http_version())
        self.idle_since = self._shared.loop.time()
        if request.version == "1.1" and request.header(b"host") is None:
            self._fail(400, "an HTTP/1.1 request needs a Host field (RFC 9112 §3.2)")
            return
        if not self._busy and not self._queue and not self._write_paused and _is_ocsp(request.path):
            self._answer_ocsp(request)  # the hot path: no task, no ASGI
            return
        self._queue.append(request)
        if not self._busy:
            self._drain()
        self._flow()

    # --- answering ---------------------------------------------------------------------

    def _drain(self) -> None:
        """Answer queued requests in order until one needs the app or the client stops reading."""
        while self._queue and not self._closing and not self._write_paused:
            request = self._queue.popleft()
            if isinstance(request, _Failure):
                self._write_failure(request)
            elif _is_ocsp(request.path):
                self._answer_ocsp(request)
            else:
                self._busy = True
                asyncio.ensure_future(self._answer_asgi(request))
                return
        if self._eof and not self._queue and not self._busy and not self._closing:
            self._closing = True
            self._transport.close()
        else:
            self._flow()

    def _answer_ocsp(self, request: Request) -> None:
        self._send(request, self._shared.wire.answer(request))

    async def _answer_asgi(self, request: Request) -> None:
        try:
            status, headers, body = await self._call_app(request)
        except Exception as exc:  # the app maps its errors; this is the last line of defence
            log.exception("%s %s failed", request.method.decode("latin-1"), request.path.decode("latin-1"))
            status, headers = 500, [(b"content-type", b"application/problem+json")]
            body = problem(500, f"internal error: {type(exc).__name__}", "internal")
        self._busy = False
        if not self._closing:
            self._write(request, status, headers, b"" if request.method == b"HEAD" else body)
            self._drain()

    async def _call_app(self, request: Request) -> tuple[int, list, bytes]:
        path, _, query = request.target.partition(b"?")
        raw_path = path
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.version, "method": request.method.decode("latin-1"),
            "scheme": "https" if self._shared.tls else "http", "path": _unquote(path), "raw_path": raw_path,
            "query_string": query, "root_path": "", "headers": request.headers,
            "client": self._transport.get_extra_info("peername"),
            "server": self._shared.server_address, "state": {},
        }
        if self._shared.tls:  # the caller's identity: the verified certificate, never a header
            scope["extensions"] = {"tls": tls_extension(self._transport.get_extra_info("ssl_object"))}
        received = False
        response: dict = {"status": 500, "headers": [], "body": []}

        async def receive() -> dict:
            nonlocal received
            if received:
                await asyncio.Event().wait()  # nothing more will come until the response is sent
            received = True
            return {"type": "http.request", "body": request.body, "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["headers"] = [(k.lower(), v) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                response["body"].append(message.get("body", b""))

        await self._app(scope, receive, send)
        body = b"".join(response["body"])
        headers = [(k, v) for k, v in response["headers"] if k not in (b"content-length", b"connection",
                                                                        b"transfer-encoding", b"date")]
        headers.append((b"content-length", str(len(body)).encode()))
        return response["status"], headers, body

    def _write(self, request: Request, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._send(request, render(request, status, headers, body, self._date.get()))

    def _send(self, request: Request, data: bytes) -> None:
        self._transport.write(data)
        if not request.keep_alive:
            self._closing = True
            self._transport.close()

    def _fail(self, status: int, detail: str) -> None:
        """Answer a request that cannot be read after the ones read before it, then close."""
        self._failed = True
        self._queue.append(_Failure(status, detail))
        if not self._busy:
            self._drain()
        self._flow()

    def _write_failure(self, failure: _Failure) -> None:
        if self._shared.recorder is not None:  # refused before any route: counted as "unparsed"
            self._shared.recorder.request("unparsed", "other", failure.status)
        body = problem(failure.status, failure.detail)
        head = (f"HTTP/1.1 {failure.status} {REASONS[failure.status].decode()}\r\n"
                f"content-type: application/problem+json\r\ncontent-length: {len(body)}\r\n"
                f"connection: close\r\n\r\n").encode()
        self._closing = True
        if self._transport is None:
            return
        self._transport.write(head + body)
        if not self._transport.can_write_eof():
            self._transport.close()
            return
        # Lingering close (as nginx's lingering_close): closing with unread bytes in the
        # receive buffer makes the kernel send a reset, which can destroy the answer
        # before the client reads it. Half-close, then drop what still comes, bounded.
        self._transport.write_eof()
        self._lingering = 1
        if self._read_paused:
            self._read_paused = False
            self._transport.resume_reading()
        self._shared.loop.call_later(LINGER_SECONDS, self._transport.close)


@dataclasses.dataclass(frozen=True)
class _Failure:
    """A request that could not be read, answered in its place in the pipeline."""

    status: int
    detail: str


class _TooLarge(Exception):
    """(status, detail) of a request refused for its size."""


_HEAD_TOO_LARGE = (431, f"request heads are limited to {MAX_HEADERS} fields and {MAX_HEAD} bytes")
_BODY_TOO_LARGE = (413, f"requests are limited to {MAX_BODY} bytes")


def _is_ocsp(path: bytes) -> bool:
    return path == b"/ocsp" or path.startswith(b"/ocsp/")


def _unquote(path: bytes) -> str:
    from urllib.parse import unquote

    return unquote(path.decode("latin-1"))


# --- running ------------------------------------------------------------------------------

def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    if hasattr(socket, "TCP_DEFER_ACCEPT"):  # Linux: wake the server when the request is there (tcp(7))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_SECONDS)
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


async def serve_socket(sock: socket.socket, app: AsgiApp, source, clock: Clock,
                       periodic: Callable[[], None] | None = None, period: float = 30.0,
                       tls: tuple[socket.socket, ssl.SSLContext] | None = None) -> None:
    """Serve on an already listening socket until SIGTERM/SIGINT; ``periodic`` runs every
    ``period`` seconds (responder renewal and reload). With ``tls`` (a listening socket and
    its context), the same app is also served over TLS there (see :mod:`mtlskit.api.tls`)."""
    loop = asyncio.get_running_loop()
    shared = _Shared(app, source, clock, sock.getsockname()[:2])
    tls_server = None
    if tls is not None:
        tls_shared = _Shared(app, source, clock, tls[0].getsockname()[:2], tls=True)
        shared.connections = tls_shared.connections = set()  # one idle sweep for both
        tls_server = await loop.create_server(lambda: HttpProtocol(tls_shared), sock=tls[0], ssl=tls[1],
                                              ssl_handshake_timeout=TLS_HANDSHAKE_SECONDS)
    acceptor = Acceptor(sock, shared.wire.one_shot,
                        lambda conn, initial, pending=b"": _hand_over(shared, conn, initial, pending))
    # What start-up built (app, inventory, keys) lives as long as the process: keep it out
    # of the collector's full passes (the gc module's advice for long-running servers).
    gc.collect()
    gc.freeze()
    acceptor.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def tick() -> None:
        elapsed = 0.0
        while True:
            await asyncio.sleep(1.0)
            shared.close_idle()
            elapsed += 1.0
            if periodic and elapsed >= period:
                elapsed = 0.0
                periodic()

    ticker = asyncio.ensure_future(tick())
    try:
        await stop.wait()
    finally:
        ticker.cancel()
        acceptor.stop()
        if tls_server is not None:
            tls_server.close()


def _hand_over(shared: _Shared, conn: socket.socket, initial: bytes, pending: bytes = b"") -> None:
    """Give an accepted connection to a transport: the HTTP protocol, fed ``initial``
    first, or (``pending``) one that writes the rest of an answer and closes."""
    factory = (lambda: _Finish(pending)) if pending else (lambda: HttpProtocol(shared, initial))
    conn.setblocking(False)
    task = asyncio.ensure_future(_adopt(shared.loop, factory, conn))
    shared.adopting.add(task)  # the loop keeps only weak references to tasks
    task.add_done_callback(shared.adopting.discard)


async def _adopt(loop, factory, conn: socket.socket) -> None:
    try:
        await loop.connect_accepted_socket(factory, conn)
    except OSError:  # the client left in between
        conn.close()


class _Finish(asyncio.Protocol):
    """Writes what the first send() could not, then closes."""

    def __init__(self, pending: bytes) -> None:
        self._pending = pending

    def connection_made(self, transport) -> None:
        transport.write(self._pending)
        transport.close()
