"""Bounded HTTP for revocation data: a certificate's CRL (distribution point) and OCSP (AIA).

A certificate under test is input, not trust, so fetching what it names is bounded:
  * only ``http://`` URLs, exactly as the certificate names them (RFC 5280 4.2.1.13 and
    RFC 6960 A.1 use plain HTTP; the data is signed, so TLS adds nothing but a circular
    dependency); no ``https``, ``ldap`` or ``file``; no proxy from the environment;
  * redirects are not followed (they would lead somewhere the certificate does not name);
  * one deadline for the whole exchange (a server that trickles bytes cannot hold us);
  * a size limit per kind (Content-Length checked first, then the bytes read).
The only network I/O of ``verify`` and ``probe`` besides the probe's TLS connections.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from urllib.parse import urlsplit

MAX_CRL_BYTES = 10 * 1024 * 1024    # a private CA's CRL with ~200,000 entries
MAX_OCSP_BYTES = 64 * 1024          # one response with its responder certificate
DEFAULT_TIMEOUT = 5.0               # seconds for one whole fetch
_CHUNK = 65536


class FetchError(Exception):
    """A fetch that gave no usable body; the message says why, in plain words."""


def http_get(url: str, limit: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """GET ``url`` and return its body (HTTP 200 only)."""
    return _exchange("GET", url, None, {}, limit, timeout)


def http_post(url: str, body: bytes, content_type: str, limit: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """POST ``body`` to ``url`` and return the answer's body (HTTP 200 only)."""
    return _exchange("POST", url, body, {"Content-Type": content_type}, limit, timeout)


def _split(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        raise FetchError(f"only http:// URLs are fetched, not {parts.scheme or 'a relative'} URL {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise FetchError(f"the URL {url!r} has a bad port") from None
    if not parts.hostname:
        raise FetchError(f"the URL {url!r} names no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, path


class _Connection(http.client.HTTPConnection):
    """An HTTPConnection to an address resolved beforehand (with a deadline); the Host
    header still names the host of the URL."""

    def __init__(self, host: str, port: int, address: tuple, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection(self.address[:2], self.timeout)


def _resolve(host: str, port: int, timeout: float) -> tuple:
    """getaddrinfo ignores socket timeouts and may block for long on a dead resolver, so it
    runs in a daemon thread that is abandoned at the deadline."""
    answer: dict = {}

    def lookup() -> None:
        try:
            answer["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            answer["error"] = exc
    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise FetchError(f"the name {host!r} could not be resolved in time")
    if "error" in answer or not answer.get("addresses"):
        raise FetchError(f"the name {host!r} could not be resolved: {_reason(answer.get('error') or OSError())}")
    return answer["addresses"][0][4]


def _exchange(method: str, url: str, body: bytes | None, headers: dict, limit: int, timeout: float) -> bytes:
    host, port, path = _split(url)
    started = time.monotonic()
    address = _resolve(host, port, timeout)
    left = max(0.001, timeout - (time.monotonic() - started))
    conn = _Connection(host, port, address, left)
    expired = threading.Event()
    timer = None
    try:
        conn.connect()
        # One deadline for the whole exchange: a server that trickles its header or body a
        # byte at a time never trips a per-read timeout, so the socket is cut when it expires.
        timer = threading.Timer(max(0.001, timeout - (time.monotonic() - started)), _cut, (conn.sock, expired))
        timer.daemon = True
        timer.start()
        conn.request(method, path, body=body, headers={"User-Agent": "mtlskit-verify", "Connection": "close",
                                                       **headers})
        response = conn.getresponse()
        _check_head(response, url, limit)
        data = _read_bounded(response, url, limit)
        if expired.is_set():  # cut mid-answer: what was read is truncated
            raise OSError("timed out")
        return data
    except (OSError, http.client.HTTPException, ValueError) as exc:
        why = "timed out" if expired.is_set() else _reason(exc)
        raise FetchError(f"{url} could not be fetched: {why}") from None
    finally:
        if timer is not None:
            timer.cancel()
        conn.close()


def _cut(sock: socket.socket, expired: threading.Event) -> None:
    expired.set()
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the exchange is over


def _check_head(response: http.client.HTTPResponse, url: str, limit: int) -> None:
    if response.status != 200:
        where = response.getheader("Location")
        extra = f" (redirect to {where!r} not followed)" if where and 300 <= response.status < 400 else ""
        raise FetchError(f"{url} answered HTTP {response.status}{extra}")
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FetchError(f"{url} announced {declared} bytes, more than the {limit} allowed")


def _read_bounded(response: http.client.HTTPResponse, url: str, limit: int) -> bytes:
    data = bytearray()
    while chunk := response.read1(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise FetchError(f"{url} sent more than the {limit} bytes allowed")
    return bytes(data)


def _reason(exc: Exception) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
