"""One TLS connection attempt that records what the handshake said (I/O; no judgement).

Server certificates are *not* verified during the handshake (CERT_NONE): the probe
must get far enough to see the chain, the CertificateRequest and the alerts, and
judges the chain afterwards with mtlskit's own verifier. Messages are captured with
``SSLContext._msg_callback`` (CPython, private but present since 3.8): OpenSSL passes
it every plaintext handshake message and alert in both directions, in TLS 1.3 too.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass, field

from cryptography import x509

from mtlskit.verify import tlswire

_READ_LIMIT = 16384


@dataclass
class Attempt:
    """What one connection learned."""

    tls_version: str | None = None
    handshake_ok: bool = False
    cert_requested: bool = False
    ca_names: list[x509.Name] = field(default_factory=list)
    server_chain: list[x509.Certificate] = field(default_factory=list)
    client_sent_certificates: int | None = None
    alert: int | None = None  # alert received from the server
    error: str | None = None
    http_status: int | None = None
    http_server: str | None = None
    http_body: str = ""

    @property
    def alert_name(self) -> str | None:
        return None if self.alert is None else tlswire.ALERTS.get(self.alert, f"alert {self.alert}")


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    servername: str | None
    path: str = "/"
    http: bool = True


def _recorder(attempt: Attempt):
    def callback(conn, direction, version, content_type, msg_type, data) -> None:
        try:
            _record(attempt, direction, version, int(content_type), data)
        except (tlswire.WireError, ValueError):
            pass  # a message we cannot parse is reported by its absence
    return callback


def _record(attempt: Attempt, direction: str, version, content_type: int, data: bytes) -> None:
    tls13 = getattr(version, "name", "") == "TLSv1_3"
    incoming = str(direction).lower().endswith("read")
    if content_type == 21 and incoming and len(data) >= 2:  # alert (RFC 8446 6)
        if data[1] != 0:
            attempt.alert = data[1]
        return
    if content_type != 22 or not data:
        return
    kind = data[0]
    if kind == tlswire.HANDSHAKE_CERTIFICATE_REQUEST and incoming:
        attempt.cert_requested = True
        body = tlswire.strip_header(data, kind)
        attempt.ca_names = tlswire.certificate_request_names(body, tls13)
    elif kind == tlswire.HANDSHAKE_CERTIFICATE:
        body = tlswire.strip_header(data, kind)
        certs = tlswire.certificate_list(body, tls13)
        if incoming:
            attempt.server_chain = certs
            # Negotiated by now; known even when the handshake is refused later.
            attempt.tls_version = attempt.tls_version or ("TLSv1.3" if tls13 else "TLSv1.2")
        else:
            attempt.client_sent_certificates = len(certs)


def client_context(version: ssl.TLSVersion | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.post_handshake_auth = True  # TLS 1.3 servers that ask per location (Apache) ask after the handshake
    context.minimum_version = version or ssl.TLSVersion.TLSv1_2
    if version:
        context.maximum_version = version
    if cert:
        context.load_cert_chain(cert, key)
    return context


def connect(target: Target, *, version: ssl.TLSVersion | None = None, cert: str | None = None,
            key: str | None = None, timeout: float = 5.0, request: bool = True) -> Attempt:
    """Handshake with ``target`` and, when ``request``, send ``GET path`` and read the answer.

    TLS 1.3 servers check the client certificate after the client's Finished, so their
    refusal (an alert) only shows when reading; the GET makes the server speak.
    """
    attempt = Attempt()
    context = client_context(version, cert, key)
    context._msg_callback = _recorder(attempt)
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=target.servername) as tls:
                attempt.handshake_ok = True
                attempt.tls_version = tls.version() or attempt.tls_version
                if request:
                    _http(tls, target, attempt)
    except (ssl.SSLError, OSError) as exc:
        attempt.error = _describe(exc)
    return attempt


def _http(tls: ssl.SSLSocket, target: Target, attempt: Attempt) -> None:
    host = target.servername or target.host
    tls.sendall(f"GET {target.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mtlskit-probe\r\n"
                "Connection: close\r\n\r\n".encode())
    data = b""
    try:
        while len(data) < _READ_LIMIT:
            chunk = tls.recv(_READ_LIMIT)
            if not chunk:
                break
            data += chunk
    except (ssl.SSLError, OSError):
        if not data:  # refused: the caller records why
            raise
        # an answer followed by an unclean close is still an answer
    text = data.decode("latin-1")
    match = re.match(r"HTTP/\d(?:\.\d)? (\d{3})", text)
    if match:
        attempt.http_status = int(match.group(1))
        server = re.search(r"^server:\s*(.+?)\r?$", text, re.I | re.M)
        attempt.http_server = server.group(1) if server else None
        attempt.http_body = text.partition("\r\n\r\n")[2][:4096]


def _describe(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, socket.timeout):
        return "timed out"
    return exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else str(exc)
