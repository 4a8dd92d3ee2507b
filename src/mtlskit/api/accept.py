"""Accepting connections for `mtlskit serve`, and answering the simplest ones on the spot.

Most OCSP clients (openssl, nginx, ab) open a connection, POST one request and wait for
the close. For them an asyncio transport and protocol cost more than the answer: through
``loop.create_server`` (uvloop) such a connection took ten system calls (strace: accept4,
setsockopt TCP_NODELAY, getsockname, getpeername, an io_uring epoll registration, a
second epoll wait for the data, read, write, epoll_ctl DEL, close) plus the protocol's
callbacks, about 10-13 µs of Python, where looking up a pre-signed response takes 1 µs.

So the listening socket is polled here, not by ``loop.create_server``. It has
TCP_DEFER_ACCEPT (tcp(7)): the kernel completes accept() only once the client's first
bytes arrived. Each accepted socket gets one non-blocking recv(); when that holds one
complete request for /ocsp that does not ask to keep the connection, the answer goes
out with one non-blocking send() and the socket is closed: accept4, getsockname (Python's
socket object checks the descriptor), recv, send, close, and 2-8 µs of Python. The
listening socket is polled level-triggered and each wake-up accepts one connection, so
no accept4 ends in EAGAIN (and a Python exception) when clients come one at a time.

Everything else - keep-alive, a request not complete in the first read, other paths,
anything :func:`simple_request` does not positively recognise - is handed, with the
bytes already read, to the full protocol (:class:`mtlskit.api.server.HttpProtocol`)
through ``loop.connect_accepted_socket``. Nothing here ever blocks: a slow client is
the protocol's business (timeouts, partial reads), like before.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import re
import socket
from typing import Callable

log = logging.getLogger("mtlskit.serve")
READ_SIZE = 65536
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_PAUSE_SECONDS = 0.1  # out of file descriptors: stop accepting for a moment instead of spinning

# What the fast reader accepts, in one regular expression; anything else goes to httptools,
# which decides. Request line for /ocsp (RFC 9112 §3), then header fields whose names are
# tokens (RFC 9110 §5.6.2) and whose values are visible ASCII (no obs-fold, no obs-text).
_SIMPLE = re.compile(
    rb"(POST|GET|HEAD) (/ocsp(?:[/?][A-Za-z0-9\-._~%/+=:@!$&'()*,;?]*)?) HTTP/1\.([01])"
    rb"((?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*)*)\r\n\r\n")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2


def simple_request(data: bytes, max_target: int, max_headers: int, keep_alive: bool = False):
    """The request in ``data`` when it is exactly one complete request for /ocsp (POST with
    its whole body, GET or HEAD) that does not keep the connection; None otherwise,
    including for anything unusual, which the full protocol then reads. Pure.

    Returns (method, target, headers, body, version); headers holds If-None-Match only,
    the one field the OCSP answer reads. With ``keep_alive``, requests that keep the
    connection are returned too, with a sixth item: whether the request keeps it, as
    httptools (llhttp) decides. ``max_target`` bounds the body's length as well.
    """
    found = _SIMPLE.match(data)
    if found is None:
        return None
    method, target, minor, fields = found.groups()
    lowered = fields.lower()
    if minor == b"1" and b"\r\nhost:" not in lowered:
        return None  # HTTP/1.1 needs a Host field: the protocol refuses it (RFC 9112 §3.2)
    if len(target) > max_target or lowered.count(b"\r\n") > max_headers or b"\r\ntransfer-encoding:" in lowered \
            or b"\r\nupgrade:" in lowered or b"\r\nexpect:" in lowered:
        return None
    length = _field(fields, lowered, b"\r\ncontent-length:")
    connection = _field(fields, lowered, b"\r\nconnection:")
    if length is False or connection is False:
        return None  # repeated: rare, left to httptools
    if length is not None and (not length.isdigit() or (len(length) > 1 and length[0] == 0x30)
                               or len(length) > 18 or int(length) > max_target):
        return None
    tokens = [t.strip(b" \t").lower() for t in connection.split(b",")] if connection else []
    if not all(_TOKEN.fullmatch(t) for t in tokens):
        return None  # an empty element, a quoted string, parameters: left to httptools
    # Persistence as httptools (llhttp) decides it: HTTP/1.1 unless "close", HTTP/1.0 only with "keep-alive".
    persistent = b"keep-alive" in tokens if minor == b"0" else b"close" not in tokens
    body = data[found.end():]
    if b"upgrade" in tokens or len(body) != (int(length) if length else 0) or (persistent and not keep_alive):
        return None
    match = _field(fields, lowered, b"\r\nif-none-match:", first=True)
    headers = [(b"if-none-match", match)] if match is not None else []
    request = (method, target, headers, body, "1.0" if minor == b"0" else "1.1")
    return (*request, persistent) if keep_alive else request


def _field(fields: bytes, lowered: bytes, name: bytes, first: bool = False) -> bytes | None | bool:
    """The value of header ``name`` (b"\\r\\nname:"), None when absent, False when repeated
    (unless ``first``: then the first one's, as the protocol reads it)."""
    at = lowered.find(name)
    if at < 0:
        return None
    if not first and lowered.find(name, at + 1) >= 0:
        return False
    start = at + len(name)
    end = fields.find(b"\r\n", start)
    return fields[start:end if end >= 0 else len(fields)].strip(b" \t")


class Acceptor:
    """Accepts on a listening socket inside the running event loop.

    Args:
        sock: the listening socket (made non-blocking here).
        answer: request bytes -> the whole response for a simple request, or None.
        hand_over: (accepted socket, bytes read[, response bytes still to send]) -> None;
            gives the connection to the protocol.
    """

    def __init__(self, sock: socket.socket, answer: Callable[[bytes], bytes | None],
                 hand_over: Callable[..., None]) -> None:
        sock.setblocking(False)
        self._sock = sock
        # accept4(2) without socket.accept()'s Python wrapper, and C-level socket objects
        # for the connections (one Python call less each for creating and closing them)
        self._accept = sock._accept
        self._kind = (int(sock.family), int(sock.type), sock.proto)
        self._answer = answer
        self._hand_over = hand_over
        self._loop = asyncio.get_running_loop()
        self._paused: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._paused = None
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def stop(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
        self._loop.remove_reader(self._sock.fileno())

    def _on_readable(self) -> None:
        """Accepts one connection: the loop calls again at once while more wait."""
        try:
            fd, _address = self._accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.warning("not accepting connections for %.1fs: %s", _PAUSE_SECONDS, exc.strerror)
                self._loop.remove_reader(self._sock.fileno())
                self._paused = self._loop.call_later(_PAUSE_SECONDS, self.start)
            return
        conn = _socket.socket(*self._kind, fd)
        try:
            self._serve(conn)
        except Exception:  # a bug: never let one connection stop the accepting
            log.exception("serving a connection failed")
            conn.close()

    def _serve(self, conn: _socket.socket) -> None:
        if not _DONTWAIT:  # no MSG_DONTWAIT on this platform: make the socket itself non-blocking
            conn.setblocking(False)
        try:
            data = conn.recv(READ_SIZE, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            data = None  # nothing yet (accepted without TCP_DEFER_ACCEPT, or its timeout passed)
        except OSError:
            conn.close()
            return
        if data == b"":  # closed by the client before it asked anything
            conn.close()
            return
        wire = self._answer(data) if data else None
        if wire is None:
            self._hand_over(_full(conn), data or b"")
            return
        try:
            sent = conn.send(wire, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            conn.close()
            return
        if sent < len(wire):  # the send buffer is full: let a transport write the rest
            self._hand_over(_full(conn), b"", wire[sent:])
            return
        conn.close()


def _full(conn: _socket.socket) -> socket.socket:
    """The same connection as a :class:`socket.socket`, what event loop transports take."""
    return socket.socket(conn.family, conn.type, conn.proto, fileno=conn.detach())
