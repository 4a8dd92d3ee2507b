"""`mtlskit serve`'s acceptor on real sockets: requests answered on the spot, requests
that arrive in pieces, silent and slow clients, keep-alive, several workers."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from cryptography.x509 import ocsp as cocsp

from mtlskit.cli.app import main
from tests.support_ocsp import ServeProcess, free_port, openssl

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("accept") / "home"
    out = home.parent / "out"
    assert main(["--home", str(home), "init", "--name", "Accept Test CA", "--no-passphrase"]) == 0
    assert main(["--home", str(home), "issue", "client", "alice", "--out", str(out / "alice")]) == 0
    requests = {}
    for kind, extra in (("cached", ["-no_nonce"]), ("nonce", [])):
        path = out / f"{kind}.der"
        assert openssl("ocsp", "-issuer", str(out / "alice" / "chain.pem"), "-cert", str(out / "alice" / "cert.pem"),
                       "-reqout", str(path), *extra).returncode == 0
        requests[kind] = path.read_bytes()
    server = ServeProcess(home, free_port(), "--workers", "2")
    yield server, requests, out
    server.stop()


def post(body: bytes, version: bytes = b"1.0", extra: bytes = b"") -> bytes:
    return (b"POST /ocsp HTTP/" + version + b"\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def exchange(server, *pieces: bytes, pause: float = 0.0) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(pause)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(reply: bytes) -> cocsp.OCSPCertStatus:
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200 OK") or head.startswith(b"HTTP/1.1 200 OK"), head
    return cocsp.load_der_ocsp_response(body).certificate_status


def header_names(reply: bytes) -> list[bytes]:
    return [line.split(b":")[0] for line in reply.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]]


def test_request_in_one_piece_and_in_pieces_get_the_same_answer(served):
    server, requests, _out = served
    whole = post(requests["cached"])
    at_once = exchange(server, whole)
    split = exchange(server, whole[:20], whole[20:-10], whole[-10:], pause=0.05)  # via the protocol
    assert status_of(at_once) is status_of(split) is cocsp.OCSPCertStatus.GOOD
    # Each worker signs its own pre-signed response and max-age counts down: compare the form.
    assert header_names(at_once) == header_names(split)
    assert at_once.split(b"\r\n")[0] == split.split(b"\r\n")[0] == b"HTTP/1.0 200 OK"
    assert b"connection: close\r\n" in at_once and b"etag: " in at_once and b"max-age=" in at_once


def test_nonce_requests_in_one_piece_and_in_pieces_verify(served):
    server, requests, _out = served
    for pieces in ([post(requests["nonce"])], [post(requests["nonce"])[:30], post(requests["nonce"])[30:]]):
        reply = exchange(server, *pieces, pause=0.05)
        assert status_of(reply) is cocsp.OCSPCertStatus.GOOD
        assert b"cache-control: no-store" in reply


def test_a_silent_client_does_not_hold_up_others(served):
    server, requests, _out = served
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
    try:
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        slow.sendall(post(requests["cached"])[:15])  # half a request line, then nothing for now
        started = time.monotonic()
        for _ in range(5):
            assert status_of(exchange(server, post(requests["cached"]))) is cocsp.OCSPCertStatus.GOOD
        assert time.monotonic() - started < 5  # not queued behind the silent ones (the bound is generous)
        slow.sendall(post(requests["cached"])[15:])
        assert status_of(read_all(slow)) is cocsp.OCSPCertStatus.GOOD
        slow.close()
    finally:
        for sock in silent:
            sock.close()


def test_keep_alive_connections_are_served_by_the_protocol(served):
    server, requests, _out = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        replies = []
        for _ in range(3):
            sock.sendall(post(requests["cached"], extra=b"Connection: keep-alive\r\n"))
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(head.split(b"\r\n\r\n", 1)[1]) < length:
                head += sock.recv(65536)
            replies.append(head)
        assert all(b"connection: keep-alive" in r for r in replies)
        assert all(status_of(r) is cocsp.OCSPCertStatus.GOOD for r in replies)


def test_openssl_and_curl_clients_through_the_fast_path(served):
    server, requests, out = served
    for extra in ([], [], [], ["-no_nonce"]):  # random nonces: after the first, read by their shape only
        result = openssl("ocsp", "-issuer", str(out / "alice" / "chain.pem"), "-cert", str(out / "alice" / "cert.pem"),
                         "-CAfile", str(out / "alice" / "ca.pem"), "-url", f"{server.url}/ocsp", *extra)
        text = result.stdout.decode() + result.stderr.decode()
        assert result.returncode == 0 and "Response verify OK" in text and "cert.pem: good" in text, text
        assert "nonce" not in text.lower()
    curl = subprocess.run(["curl", "-sS", "--http1.1", "-H", "Connection: close", "--data-binary",
                           f"@{out / 'cached.der'}", "-H", "Content-Type: application/ocsp-request", "-D", "-",
                           f"{server.url}/ocsp"], capture_output=True, timeout=30)
    assert curl.returncode == 0, curl.stderr.decode()
    assert status_of(curl.stdout) is cocsp.OCSPCertStatus.GOOD


def test_garbage_on_the_fast_path_is_still_a_malformed_request_or_a_400(served):
    server, _requests, _out = served
    reply = exchange(server, post(b"\x30\x03\x02\x01\x01"))
    assert cocsp.load_der_ocsp_response(reply.split(b"\r\n\r\n", 1)[1]).response_status \
        is cocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert exchange(server, b"POST /ocsp HTTP/1.0\r\nBad Name: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert exchange(server, b"PUT /ocsp HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 405 ")


def read_reply(sock: socket.socket, buffer: bytearray, bodiless: bool = False) -> bytes:
    """One response from a kept-alive connection (``buffer`` keeps what came after it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "closed before a whole response"
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    length = 0 if bodiless else int(bytes(buffer[:end]).lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(buffer) < end + length:
        chunk = sock.recv(65536)
        assert chunk, "closed before a whole response"
        buffer += chunk
    reply = bytes(buffer[:end + length])
    del buffer[:end + length]
    return reply


@pytest.mark.parametrize("version, ka", [(b"1.0", b"Connection: keep-alive\r\n"), (b"1.1", b"")])
def test_a_kept_alive_conversation_whole_pipelined_and_in_pieces(served, version, ka):
    from cryptography import x509

    server, requests, _out = served
    cached, nonce = post(requests["cached"], version, ka), post(requests["nonce"], version, ka)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        replies = []
        for _ in range(3):  # whole requests, one at a time: the fast path
            sock.sendall(cached)
            replies.append(read_reply(sock, buffer))
        sock.sendall(cached + cached)  # pipelined: httptools
        replies += [read_reply(sock, buffer), read_reply(sock, buffer)]
        for piece in (cached[:25], cached[25:-5], cached[-5:]):  # in pieces: httptools
            sock.sendall(piece)
            time.sleep(0.05)
        replies.append(read_reply(sock, buffer))
        assert all(status_of(r) is cocsp.OCSPCertStatus.GOOD for r in replies)
        assert {r.split(b"\r\n")[0] for r in replies} == {b"HTTP/" + version + b" 200 OK"}
        assert all(header_names(r) == header_names(replies[0]) for r in replies)
        assert all((b"connection: keep-alive\r\n" in r) is (version == b"1.0") for r in replies)
        assert not any(b"connection: close" in r for r in replies)

        etag = replies[0].lower().split(b"etag: ")[1].split(b"\r\n")[0]
        sock.sendall(b"GET /ocsp/x HTTP/" + version + b"\r\nHost: x\r\n" + ka + b"\r\n")  # garbage: malformedRequest
        malformed = read_reply(sock, buffer)
        assert cocsp.load_der_ocsp_response(malformed.split(b"\r\n\r\n", 1)[1]).response_status \
            is cocsp.OCSPResponseStatus.MALFORMED_REQUEST
        sock.sendall(nonce)
        signed = read_reply(sock, buffer)
        assert status_of(signed) is cocsp.OCSPCertStatus.GOOD and b"cache-control: no-store" in signed
        request_nonce = cocsp.load_der_ocsp_request(requests["nonce"]).extensions.get_extension_for_class(
            x509.OCSPNonce).value.nonce
        assert cocsp.load_der_ocsp_response(signed.split(b"\r\n\r\n", 1)[1]).extensions.get_extension_for_class(
            x509.OCSPNonce).value.nonce == request_nonce

        import base64
        from urllib.parse import quote

        target = b"/ocsp/" + quote(base64.b64encode(requests["cached"]).decode(), safe="").encode()
        sock.sendall(b"GET " + target + b" HTTP/" + version + b"\r\nHost: x\r\n" + ka + b"If-None-Match: " + etag + b"\r\n\r\n")
        assert read_reply(sock, buffer, bodiless=True).startswith(b"HTTP/" + version + b" 304 Not Modified\r\n")
        sock.sendall(b"HEAD " + target + b" HTTP/" + version + b"\r\nHost: x\r\n" + ka + b"\r\n")
        head = read_reply(sock, buffer, bodiless=True)
        assert head.startswith(b"HTTP/" + version + b" 200 OK\r\n") and b"etag: " + etag in head.lower()

        sock.sendall(post(requests["cached"], version, b"Connection: close\r\n"))
        last = read_reply(sock, buffer)
        assert status_of(last) is cocsp.OCSPCertStatus.GOOD and b"connection: close\r\n" in last
        assert sock.recv(65536) == b"" and not buffer  # and the server closed the connection
