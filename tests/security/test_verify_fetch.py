"""The bounded fetch of a certificate's CRL/OCSP URLs, against hostile HTTP servers on
loopback: wrong schemes, redirects, oversized and never-ending answers, trickling bytes."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from mtlskit.verify.fetch import FetchError, http_get, http_post


class RawServer:
    """A TCP server on 127.0.0.1 that runs ``behave(conn)`` for each connection."""

    def __init__(self, behave) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[bytes] = []
        self.behave = behave
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                self.requests.append(conn.recv(65536))
                self.behave(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve():
    servers = []

    def start(behave) -> RawServer:
        servers.append(RawServer(behave))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


def answer(body: bytes, status: str = "200 OK", extra: str = "", length: bool = True):
    def behave(conn: socket.socket) -> None:
        head = f"HTTP/1.1 {status}\r\n{extra}" + (f"Content-Length: {len(body)}\r\n" if length else "")
        conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
    return behave


def test_a_plain_answer_is_returned_and_the_request_names_the_path(serve):
    server = serve(answer(b"crl-bytes"))
    assert http_get(f"{server.url}/crl/intermediate.crl", limit=100) == b"crl-bytes"
    assert server.requests[0].startswith(b"GET /crl/intermediate.crl HTTP/1.1\r\n")


def test_post_sends_the_body_with_its_type(serve):
    server = serve(answer(b"ocsp-answer"))
    assert http_post(f"{server.url}/ocsp", b"\x30\x03", "application/ocsp-request", limit=100) == b"ocsp-answer"
    assert b"Content-Type: application/ocsp-request" in server.requests[0]


@pytest.mark.parametrize("url", ["https://127.0.0.1/crl", "file:///etc/passwd", "ldap://127.0.0.1/cn=crl",
                                 "ftp://127.0.0.1/crl", "/relative/crl", "http:///no-host", "http://h:99999/x"])
def test_only_http_urls_with_a_host_are_fetched(url):
    with pytest.raises(FetchError) as caught:
        http_get(url, limit=100, timeout=1)
    assert url in str(caught.value) or "http://" in str(caught.value)


def test_a_redirect_is_not_followed(serve):
    target = serve(answer(b"elsewhere"))
    server = serve(answer(b"", "302 Found", f"Location: {target.url}/secret\r\n"))
    with pytest.raises(FetchError, match="redirect to .* not followed"):
        http_get(f"{server.url}/crl", limit=100)
    assert target.requests == []


def test_an_error_status_is_refused(serve):
    server = serve(answer(b"not here", "404 Not Found"))
    with pytest.raises(FetchError, match="HTTP 404"):
        http_get(f"{server.url}/crl", limit=100)


def test_an_announced_oversize_answer_is_refused_before_reading(serve):
    server = serve(answer(b"x" * 2000))
    with pytest.raises(FetchError, match="announced 2000 bytes"):
        http_get(server.url, limit=1000)


def test_an_unannounced_endless_answer_is_cut_at_the_limit(serve):
    def endless(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(10000):
            conn.sendall(b"x" * 4096)
    server = serve(endless)
    with pytest.raises(FetchError, match="more than the 100000 bytes"):
        http_get(server.url, limit=100_000)


def test_a_server_that_trickles_is_cut_at_the_deadline(serve):
    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(200):          # one header byte every 50 ms: no read ever times out
            conn.sendall(b"X")
            time.sleep(0.05)
    server = serve(trickle)
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        http_get(server.url, limit=1000, timeout=0.5)
    assert time.monotonic() - started < 5  # bounded by the deadline, not by the server


def test_a_closed_port_is_a_fetch_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match="could not be fetched"):
        http_get(f"http://127.0.0.1:{port}/crl", limit=100, timeout=1)


def test_a_name_that_does_not_resolve_is_a_fetch_error():
    with pytest.raises(FetchError, match="could not be resolved"):
        http_get("http://no-such-host.invalid/crl", limit=100, timeout=2)


def test_a_resolver_that_hangs_is_cut_at_the_deadline(monkeypatch):
    import mtlskit.verify.fetch as fetch
    release = threading.Event()

    def hanging(*args, **kwargs):
        release.wait(10)
        raise OSError("released")
    monkeypatch.setattr(fetch.socket, "getaddrinfo", hanging)
    try:
        with pytest.raises(FetchError, match="could not be resolved in time"):
            http_get("http://crl.example/crl", limit=100, timeout=0.2)
    finally:
        release.set()
