"""The HTTP server of `mtlskit serve`: asyncio (uvloop) + httptools, /ocsp answered in the protocol.

Why not uvicorn alone: relying parties ask for OCSP on every handshake, and openssl,
nginx and ApacheBench speak HTTP/1.0 to it. uvicorn closes every HTTP/1.0 connection
and spends tens of microseconds per request in its ASGI plumbing: a do-nothing ASGI app
on it reached about 11,000 requests/s here, against 50,000+ for a bare asyncio protocol,
while `openssl ocsp -port` does 5,000-9,000 (bench/bench_ocsp.py has the figures).
This protocol parses with httptools (the parser uvicorn uses), answers /ocsp straight
from the OcspSource without a task or a framework, honours HTTP/1.0 keep-alive, and
hands every other request, buffered, to the ASGI app (FastAPI), one at a time per
connection so that pipelined responses keep their order (RFC 9112 §9.3.2).
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
import time
from email.utils import formatdate
from typing import Awaitable, Callable

import httptools

from mtlskit.api import ocsp_http
from mtlskit.api.accept import Acceptor, simple_request
from mtlskit.api.problems import problem
from mtlskit.clock import Clock
from mtlskit.publish.ocsp import split_nonce
from mtlskit.publish.ocsp_source import INTERNAL_ERROR

log = logging.getLogger("mtlskit.serve")
MAX_BODY = 64 * 1024
MAX_HEADERS = 100
KEEP_ALIVE_SECONDS = 15.0
SIMPLE_MEMO_ENTRIES = 4096
DEFER_ACCEPT_SECONDS = 5  # a client silent this long after connecting is accepted anyway, then idles out
REASONS = {200: b"OK", 201: b"Created", 304: b"Not Modified", 400: b"Bad Request", 401: b"Unauthorized",
           403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed", 409: b"Conflict",
           413: b"Content Too Large", 415: b"Unsupported Media Type", 422: b"Unprocessable Content",
           500: b"Internal Server Error"}

AsgiApp = Callable[..., Awaitable[None]]


@dataclasses.dataclass
class _Request:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    version: str

    @property
    def path(self) -> bytes:
        return self.target.split(b"?", 1)[0]

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


class _DateHeader:
    """The Date header (RFC 9110 §6.6.1), formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._value


class _Shared:
    """What every connection of one serving process shares, and the idle sweep: one
    periodic pass over the open connections instead of a timer per request."""

    def __init__(self, app: AsgiApp, source, clock: Clock, server_address: tuple[str, int]) -> None:
        self.app, self.source, self.clock = app, source, clock
        self.server_address = server_address
        self.date = _DateHeader()
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpProtocol] = set()
        self.adopting: set[asyncio.Future] = set()
        self.simple_memo: dict[bytes, tuple] = {}  # see _simple_reply
        self.nonce_memo: dict[bytes, tuple[int, bool, str]] = {}  # see _simple_reply
        self.nonce_heads: dict[tuple, bytes] = {}  # see _nonce_wire

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
        self._queue: collections.deque[_Request] = collections.deque()
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
            found = _simple_reply(self._shared, data)
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
        request = _Request(self._parser.get_method(), self._url, self._headers, b"".join(self._body),
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

    def _answer_ocsp(self, request: _Request) -> None:
        self._send(request, ocsp_wire(self._shared, request))

    async def _answer_asgi(self, request: _Request) -> None:
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

    async def _call_app(self, request: _Request) -> tuple[int, list, bytes]:
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

    def _write(self, request: _Request, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._send(request, render(request, status, headers, body, self._date.get()))

    def _send(self, request: _Request, data: bytes) -> None:
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


def ocsp_wire(shared: _Shared, request: _Request) -> bytes:
    """The whole HTTP response (status line to body) to one request for /ocsp."""
    return _ocsp_answer(shared, request)[2]


def _ocsp_answer(shared: _Shared, request: _Request) -> tuple:
    """(the reply when it is a pre-signed one sent whole, else None; the clock's time; the response bytes)."""
    now = shared.clock.now()
    try:
        reply = ocsp_http.reply_for(shared.source, request.method, request.path, request.body)
    except Exception:  # a bug, not bad input: OCSP clients understand internalError (RFC 6960 §2.3)
        log.exception("OCSP request failed")
        reply = INTERNAL_ERROR
    if reply is None:
        return None, now, render(request, *ocsp_http.METHOD_NOT_ALLOWED, shared.date.get())
    if_none_match = request.header(b"if-none-match")
    if reply.cacheable and not if_none_match:
        return reply, now, _cached_wire(shared, request, reply, now)
    status, headers, body = 200, ocsp_http.reply_headers(reply, now), reply.body
    if reply.etag and if_none_match and reply.etag.encode() in if_none_match:
        status, body = 304, b""
    return None, now, render(request, status, headers, b"" if request.method == b"HEAD" else body, shared.date.get())


def _cached_wire(shared: _Shared, request: _Request, reply, now) -> bytes:
    """A pre-signed reply goes out as bytes built once per second and connection kind
    (Date and max-age change each second): the common case costs one dict lookup."""
    key = (int(now.timestamp()), request.version, request.keep_alive, request.method == b"HEAD")
    memo = reply.__dict__.get("_wire")  # OcspReply is frozen; this is a memo, not state
    if memo is None or memo[0] != key:
        memo = (key, render(request, 200, ocsp_http.reply_headers(reply, now),
                            b"" if request.method == b"HEAD" else reply.body, shared.date.get()))
        reply.__dict__["_wire"] = memo
    return memo[1]


def render(request: _Request, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
           date: bytes) -> bytes:
    """Status line, the Date field line (``date``, see _DateHeader), headers, the connection
    header this request needs, and body."""
    version = b"HTTP/1.0" if request.version == "1.0" else b"HTTP/1.1"
    lines = [version, b" ", str(status).encode(), b" ", REASONS.get(status, b"Unknown"), b"\r\n", date]
    for name, value in headers:
        lines += [name, b": ", value, b"\r\n"]
    if not request.keep_alive:
        lines.append(b"connection: close\r\n")
    elif request.version == "1.0":
        lines.append(b"connection: keep-alive\r\n")  # HTTP/1.0 persistence must be announced
    lines += [b"\r\n", body]
    return b"".join(lines)


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
    acceptor = Acceptor(sock, lambda data: _simple_answer(shared, data),
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


def _simple_answer(shared: _Shared, data: bytes) -> bytes | None:
    """The response to a request answered without a transport (see mtlskit.api.accept):
    one that does not keep the connection."""
    found = _simple_reply(shared, data, keep_alive_ok=False)
    return None if found is None else found[0]


def _simple_reply(shared: _Shared, data: bytes, keep_alive_ok: bool = True) -> tuple[bytes, bool] | None:
    """(response, keep the connection?) when ``data`` is exactly one simple /ocsp request
    (see :func:`mtlskit.api.accept.simple_request`); None otherwise, and for a keep-alive
    request unless ``keep_alive_ok``, before anything is answered.

    Two memories spare reading a request again:
    - A client asking again with the same bytes within the same second, while the source
      still holds the same pre-signed reply (revocations drop it, see OcspSource.presigned),
      gets the same bytes.
    - A POST that differs from one answered before only in the octets of the nonce that
      ends it (:func:`mtlskit.publish.ocsp.split_nonce`; the HTTP head, Content-Length
      included, and every DER length are in the part before) is signed by the source
      for the request shape it already knows (OcspSource.respond_nonce).
    """
    memo = shared.simple_memo.get(data)
    if memo is not None:
        der, reply, second, wire, keep_alive = memo
        if keep_alive and not keep_alive_ok:
            return None
        now = shared.clock.now()
        if int(now.timestamp()) == second and shared.source.presigned(der, now) is reply:
            return wire, keep_alive
    split = split_nonce(data)
    if split is not None:
        known = shared.nonce_memo.get(split[0])
        if known is not None:
            body_start, keep_alive, version = known
            if keep_alive and not keep_alive_ok:
                return None
            reply = shared.source.respond_nonce(split[0][body_start:], split[1])
            if reply is not None:
                return _nonce_wire(shared, reply, version, keep_alive), keep_alive
    found = simple_request(data, MAX_BODY, MAX_HEADERS, keep_alive=True)
    if found is None or (found[5] and not keep_alive_ok):
        return None
    method, target, headers, body, version, keep_alive = found
    reply, now, wire = _ocsp_answer(shared, _Request(method, target, headers, body, keep_alive, version))
    if reply is not None and method == b"POST":
        _remember(shared.simple_memo, data, (body, reply, int(now.timestamp()), wire, keep_alive))
    elif split is not None and method == b"POST" and \
            shared.source.knows_nonce_shape(split[0][len(data) - len(body):]):
        _remember(shared.nonce_memo, split[0], (len(data) - len(body), keep_alive, version))
    return wire, keep_alive


def _remember(memo: dict, key: bytes, value: tuple) -> None:
    if len(memo) >= SIMPLE_MEMO_ENTRIES:
        memo.clear()
    memo[key] = value


def _nonce_wire(shared: _Shared, reply, version: str, keep_alive: bool) -> bytes:
    """What :func:`_ocsp_answer` writes for a reply signed for one request: the head
    (Date, length and connection fields) is rendered once per second and body length."""
    date = shared.date.get()
    key = (date, len(reply.body), version, keep_alive)
    head = shared.nonce_heads.get(key)
    if head is None:
        if len(shared.nonce_heads) >= 64:
            shared.nonce_heads.clear()
        request = _Request(b"POST", b"/ocsp", [], b"", keep_alive, version)
        headers = ocsp_http.reply_headers(reply, shared.clock.now())
        head = shared.nonce_heads[key] = render(request, 200, headers, b"", date)
    return head + reply.body


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
