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
With ``--workers N`` the listening socket is shared by N forked processes.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import gc
import logging
import os
import signal
import socket
from typing import Awaitable, Callable

import httptools

from mtlskit.api.accept import Acceptor
from mtlskit.api.http1 import MAX_BODY, MAX_HEADERS, REASONS, DateHeader, Request, render
from mtlskit.api.ocsp_wire import OcspWire
from mtlskit.api.problems import problem
from mtlskit.clock import Clock

log = logging.getLogger("mtlskit.serve")
KEEP_ALIVE_SECONDS = 15.0
DEFER_ACCEPT_SECONDS = 5  # a client silent this long after connecting is accepted anyway, then idles out

AsgiApp = Callable[..., Awaitable[None]]


class _Shared:
    """What every connection of one serving process shares, and the idle sweep: one
    periodic pass over the open connections instead of a timer per request."""

    def __init__(self, app: AsgiApp, source, clock: Clock, server_address: tuple[str, int]) -> None:
        self.app = app
        self.server_address = server_address
        self.date = DateHeader()
        self.wire = OcspWire(source, clock, self.date)
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
        self._queue: collections.deque[Request] = collections.deque()
        self._busy = False
        self._closing = False
        self._between = True  # the parser holds no part of a request
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

    def close_idle(self) -> None:
        """Close a keep-alive connection that sent nothing for a while (not one mid-request)."""
        if not self._busy and self._transport:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._between and not self._busy and not self._closing:
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
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            # httptools wraps what a callback raises; _TooLarge is ours.
            if isinstance(exc.__context__, _TooLarge) or isinstance(exc, _TooLarge):
                self._fail(413, f"requests are limited to {MAX_BODY} bytes")
            else:
                self._fail(400, "malformed HTTP request")
        except _TooLarge:
            self._fail(413, f"requests are limited to {MAX_BODY} bytes")

    # --- httptools callbacks -----------------------------------------------------------

    def _reset_message(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0

    def on_message_begin(self) -> None:
        self._between = False
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_BODY:
            raise _TooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        if len(self._headers) > MAX_HEADERS:
            raise _TooLarge()

    def on_headers_complete(self) -> None:
        # Refuse a declared oversized body before it is sent (RFC 9110 §15.5.14).
        length = next((v for k, v in self._headers if k == b"content-length"), b"0")
        if length.isdigit() and int(length) > MAX_BODY:
            raise _TooLarge()

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > MAX_BODY:
            raise _TooLarge()
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._between = True
        request = Request(self._parser.get_method(), self._url, self._headers, b"".join(self._body),
                           self._parser.should_keep_alive(), self._parser.get_http_version())
        self.idle_since = self._shared.loop.time()
        if not self._busy and not self._queue and _is_ocsp(request.path):
            self._answer_ocsp(request)  # the hot path: no task, no ASGI
            return
        self._queue.append(request)
        if not self._busy:
            self._drain()

    # --- answering ---------------------------------------------------------------------

    def _drain(self) -> None:
        while self._queue and not self._closing:
            request = self._queue.popleft()
            if _is_ocsp(request.path):
                self._answer_ocsp(request)
            else:
                self._busy = True
                asyncio.ensure_future(self._answer_asgi(request))
                return

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
            "scheme": "http", "path": _unquote(path), "raw_path": raw_path, "query_string": query,
            "root_path": "", "headers": request.headers,
            "client": self._transport.get_extra_info("peername"),
            "server": self._shared.server_address, "state": {},
        }
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
        body = problem(status, detail)
        head = (f"HTTP/1.1 {status} {REASONS[status].decode()}\r\ncontent-type: application/problem+json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        if self._transport and not self._closing:
            self._transport.write(head + body)
            self._transport.close()
        self._closing = True


class _TooLarge(Exception):
    pass


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
                       periodic: Callable[[], None] | None = None, period: float = 30.0) -> None:
    """Serve on an already listening socket until SIGTERM/SIGINT; ``periodic`` runs every
    ``period`` seconds (responder renewal and reload)."""
    loop = asyncio.get_running_loop()
    shared = _Shared(app, source, clock, sock.getsockname()[:2])
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


@dataclasses.dataclass
class Worker:
    """What one serving process needs; built after fork, so nothing is shared by accident."""

    app: AsgiApp
    source: object
    clock: Clock
    periodic: Callable[[], None] | None = None


def run(sock: socket.socket, make_worker: Callable[[], Worker], workers: int = 1, period: float = 30.0) -> int:
    """Serve with ``workers`` processes sharing ``sock``; each builds its own app and source.

    With several workers the parent only forwards SIGTERM/SIGINT and reaps its children.
    """
    if workers <= 1:
        worker = make_worker()
        _run_loop(serve_socket(sock, worker.app, worker.source, worker.clock, worker.periodic, period))
        return 0
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                worker = make_worker()
                _run_loop(serve_socket(sock, worker.app, worker.source, worker.clock, worker.periodic, period))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    return _supervise(children)


def _run_loop(coroutine) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def _supervise(children: list[int]) -> int:
    def forward(signum, _frame) -> None:
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    for pid in children:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        code = code or (os.waitstatus_to_exitcode(status) if status else 0)
    return code
