"""`mtlskit serve` against abusive HTTP clients (issue 11, point 3): a client that never
reads, a header that never ends, pipelines cut by garbage or a half-close, a worker
that dies. Each test fails on a server without flow control or ordering."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from mtlskit.cli.app import main
from tests.support_ocsp import ServeProcess, free_port, openssl

pytestmark = [pytest.mark.e2e, pytest.mark.security]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("abuse") / "home"
    out = home.parent / "out"
    assert main(["--home", str(home), "init", "--name", "Abuse Test CA", "--no-passphrase"]) == 0
    assert main(["--home", str(home), "issue", "client", "alice", "--out", str(out / "alice")]) == 0
    request = out / "request.der"
    assert openssl("ocsp", "-issuer", str(out / "alice" / "chain.pem"), "-cert", str(out / "alice" / "cert.pem"),
                   "-no_nonce", "-reqout", str(request)).returncode == 0
    server = ServeProcess(home, free_port())
    yield server, request.read_bytes(), out, home
    server.stop()


def ocsp_post(body: bytes) -> bytes:
    return (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(server, data: bytes, half_close: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def test_a_client_that_never_reads_is_stopped_by_flow_control(served):
    server, request, out, _home = served
    batch = ocsp_post(request) * 400           # each answer is ~10x its request
    before = rss_kib(server.process.pid)
    sent, limit = 0, 64 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(1.0)
        try:
            while sent < limit:
                sent += sock.send(batch)
        except (socket.timeout, BlockingIOError):
            pass
        # Another client is answered while the greedy one holds its connection open.
        result = openssl("ocsp", "-issuer", str(out / "alice" / "chain.pem"), "-cert", str(out / "alice" / "cert.pem"),
                         "-CAfile", str(out / "alice" / "ca.pem"), "-url", f"{server.url}/ocsp")
        assert "cert.pem: good" in result.stdout.decode(), result.stderr.decode()
        grown = rss_kib(server.process.pid) - before
    assert sent < limit, "the server kept reading requests whose answers nobody read"
    assert grown < 48 * 1024, f"the server's memory grew by {grown} KiB"


def test_a_header_that_never_ends_is_refused_after_a_bounded_read(served):
    server, _request, _out, _home = served
    sent = 0
    reply = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: ")
        chunk = b"a" * 65536
        try:
            while sent < 256 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            reply = read_all(sock)
        except ConnectionResetError:
            pass
    assert sent < 16 * 1024 * 1024, "the server read a 16 MiB header"
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431 ")
    assert exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_many_headers_of_moderate_size_are_refused(served):
    server, _request, _out, _home = served
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 8000) for i in range(12))
    reply = exchange(server, head + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:80]


def test_answers_before_garbage_are_sent_in_order_then_the_error(served):
    server, request, _out, _home = served
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"        # answered by the app (a task)
    reply = exchange(server, first + ocsp_post(request) + b"NOT HTTP AT ALL\r\n\r\n")
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)
    assert statuses == [b"200", b"200", b"400"], reply[:400]
    assert reply.index(b'"status":"ok"') < reply.index(b"application/ocsp-response")


def test_a_half_closed_pipeline_gets_every_answer(served):
    server, request, _out, _home = served
    asks = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + ocsp_post(request) + b"GET /ca/root.pem HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = exchange(server, asks, half_close=True)
    assert reply.count(b"HTTP/1.1 200 ") == 3, reply[:400]
    assert reply.index(b'"status":"ok"') < reply.index(b"application/ocsp-response") < reply.index(b"BEGIN CERTIFICATE")


@pytest.mark.parametrize("version", [b"1.1"])
def test_http11_without_host_is_a_400(served, version):
    server, request, _out, _home = served
    for ask in (b"GET /healthz HTTP/1.1\r\n\r\n",
                b"POST /ocsp HTTP/1.1\r\nContent-Type: application/ocsp-request\r\n"
                b"Content-Length: %d\r\n\r\n" % len(request) + request):
        assert exchange(server, ask).startswith(b"HTTP/1.1 400 ")
    assert exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 ")


def test_a_redirect_never_reflects_the_host_header(served):
    _server, _request, _out, home = served
    server = ServeProcess(home, free_port(), "--api")
    try:
        for path in (b"/api/v1/revocations/", b"/api/v1/certificates/x/", b"/healthz/"):
            reply = exchange(server, b"POST " + path + b" HTTP/1.1\r\nHost: evil.example\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            assert b"evil.example" not in reply and b" 307 " not in reply.split(b"\r\n")[0], reply[:200]
    finally:
        server.stop()


def test_a_worker_that_dies_is_reported_and_replaced(served):
    _server, _request, out, home = served
    log = home / "workers.log"
    server = ServeProcess(home, free_port(), "--workers", "2", log=log)
    try:
        pid = server.process.pid
        children = [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
        assert len(children) == 2
        os.kill(children[0], signal.SIGKILL)
        deadline = time.monotonic() + 30   # generous: the machine may be loaded
        now, text = children, ""
        while time.monotonic() < deadline:
            now = [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
            text = log.read_text()
            if len(now) == 2 and children[0] not in now and f"worker {children[0]}" in text:
                break
            time.sleep(0.1)
        assert len(now) == 2 and children[0] not in now, now
        assert f"worker {children[0]}" in text and "SIGKILL" in text, text
        answers = []
        for _ in range(20):   # the replacement builds its app before it accepts
            result = openssl("ocsp", "-issuer", str(out / "alice" / "chain.pem"), "-cert",
                             str(out / "alice" / "cert.pem"), "-CAfile", str(out / "alice" / "ca.pem"),
                             "-url", f"{server.url}/ocsp")
            answers.append(result.stdout.decode())
            if "cert.pem: good" in answers[-1]:
                break
            time.sleep(0.5)
        assert "cert.pem: good" in answers[-1], answers
    finally:
        server.stop()
    assert server.process.returncode == 0
