"""`mtlskit serve` judged by real clients: openssl ocsp (POST, nonce, -no_nonce, several
certificates), curl with the GET form, and revocation made by another process."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.cli.app import main
from mtlskit.config import load_settings
from mtlskit.store.inventory import Inventory
from tests.support_ocsp import ServeProcess, free_port, mtlskit_cli, openssl

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve") / "home"
    out = home.parent / "out"
    port = free_port()
    assert main(["--home", str(home), "init", "--name", "Serve Test CA", "--no-passphrase",
                 "--public-url", f"http://127.0.0.1:{port}"]) == 0
    for name in ("alice", "bob", "carol"):
        assert main(["--home", str(home), "issue", "client", name, "--out", str(out / name)]) == 0
    server = ServeProcess(home, port, "--ocsp-refresh-seconds", "0")
    yield home, out, server
    server.stop()


def ocsp_query(served, name: str, *extra: str) -> subprocess.CompletedProcess:
    _home, out, server = served
    return openssl("ocsp", "-issuer", str(out / name / "chain.pem"), "-cert", str(out / name / "cert.pem"),
                   "-CAfile", str(out / name / "ca.pem"), "-url", f"{server.url}/ocsp", *extra)


def test_openssl_post_with_nonce_says_good_and_verifies(served):
    result = ocsp_query(served, "alice")
    text = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, text
    assert "Response verify OK" in text
    assert "cert.pem: good" in text
    assert "nonce" not in text.lower()  # openssl warns "WARNING: no nonce in response" otherwise


def test_openssl_without_nonce_gets_the_presigned_response(served):
    result = ocsp_query(served, "alice", "-no_nonce", "-resp_text")
    text = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, text
    assert "Response verify OK" in text and "cert.pem: good" in text
    assert "Next Update" in text and "OCSP Nonce" not in text
    assert "OCSP Signing" in text  # the delegated responder certificate travels in the response


def test_revocation_by_another_process_is_answered_next(served):
    home, out, _server = served
    assert "cert.pem: good" in ocsp_query(served, "bob").stdout.decode()
    assert "cert.pem: good" in ocsp_query(served, "bob", "-no_nonce").stdout.decode()  # now cached
    revoked = mtlskit_cli(home, "revoke", "bob", "--reason", "key-compromise")
    assert revoked.returncode == 0, revoked.stderr.decode()
    for extra in ((), ("-no_nonce",)):
        result = ocsp_query(served, "bob", *extra)
        text = result.stdout.decode()
        assert "cert.pem: revoked" in text, text
        assert "Reason: keyCompromise" in text
        assert "Revocation Time" in text
        assert "Response verify OK" in result.stderr.decode()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_revocation_by_another_process_is_answered_on_the_next_request_without_a_refresh_interval(
        served, workers):
    home, out, _server = served
    name = f"dave{workers}"
    assert main(["--home", str(home), "issue", "client", name, "--out", str(out / name)]) == 0
    server = ServeProcess(home, free_port(), "--workers", workers)   # the default 5 s refresh interval
    try:
        def ask(*extra):
            return openssl("ocsp", "-issuer", str(out / name / "chain.pem"), "-cert", str(out / name / "cert.pem"),
                           "-CAfile", str(out / name / "ca.pem"), "-url", f"{server.url}/ocsp", *extra)
        for _ in range(4):  # both workers hold the pre-signed "good" and the status
            assert "cert.pem: good" in ask("-no_nonce").stdout.decode()
            assert "cert.pem: good" in ask().stdout.decode()
        assert mtlskit_cli(home, "revoke", name).returncode == 0
        for _ in range(4):
            assert "cert.pem: revoked" in ask("-no_nonce").stdout.decode()
            assert "cert.pem: revoked" in ask().stdout.decode()
    finally:
        server.stop()


def test_crl_and_ca_routes_serve_what_revoke_published(served, tmp_path):
    home, out, server = served
    if "bob" not in mtlskit_cli(home, "list", "--status", "revoked").stdout.decode():
        assert mtlskit_cli(home, "revoke", "bob", "--reason", "key-compromise").returncode == 0
    bob = x509.load_pem_x509_certificate((out / "bob" / "cert.pem").read_bytes())
    for suffix, form in ((".crl", "DER"), (".pem", "PEM")):
        path = tmp_path / f"intermediate{suffix}"
        subprocess.run(["curl", "-sSf", "-o", str(path), f"{server.url}/crl/intermediate{suffix}"], check=True)
        text = openssl("crl", "-inform", form, "-in", str(path), "-noout", "-text").stdout.decode()
        assert format(bob.serial_number, "X") in text  # "Serial Number: <hex>" of the revoked entry
        assert "Key Compromise" in text
    crt = tmp_path / "intermediate.crt"
    subprocess.run(["curl", "-sSf", "-o", str(crt), f"{server.url}/ca/intermediate.crt"], check=True)
    assert x509.load_der_x509_certificate(crt.read_bytes()) == \
        x509.load_pem_x509_certificate((home / "ca" / "intermediate.pem").read_bytes())
    missing = subprocess.run(["curl", "-sS", "-w", "%{http_code}", f"{server.url}/crl/nope.crl"],
                             capture_output=True).stdout.decode()
    assert missing.endswith("404") and '"detail": "no CA named \'nope\'"' in missing


def test_foreign_serial_is_unknown(served):
    _home, out, server = served
    result = openssl("ocsp", "-issuer", str(out / "alice" / "chain.pem"), "-serial", "0x1234abcd",
                     "-CAfile", str(out / "alice" / "ca.pem"), "-url", f"{server.url}/ocsp")
    assert "0x1234abcd: unknown" in result.stdout.decode(), result.stdout.decode() + result.stderr.decode()
    assert "Response verify OK" in result.stderr.decode()


def test_several_certificates_in_one_request(served):
    _home, out, server = served
    result = openssl("ocsp", "-issuer", str(out / "alice" / "chain.pem"),
                     "-cert", str(out / "alice" / "cert.pem"), "-cert", str(out / "carol" / "cert.pem"),
                     "-serial", "0x99", "-CAfile", str(out / "alice" / "ca.pem"), "-url", f"{server.url}/ocsp")
    text = result.stdout.decode()
    assert "Response verify OK" in result.stderr.decode(), result.stderr.decode()
    assert text.count("cert.pem: good") == 2 and "0x99: unknown" in text


def test_curl_get_form(served, tmp_path):
    _home, out, server = served
    request = tmp_path / "request.der"
    assert openssl("ocsp", "-issuer", str(out / "carol" / "chain.pem"), "-cert", str(out / "carol" / "cert.pem"),
                   "-no_nonce", "-reqout", str(request)).returncode == 0
    encoded = urllib.parse.quote(base64.b64encode(request.read_bytes()).decode(), safe="")
    response = tmp_path / "response.der"
    headers = subprocess.run(["curl", "-sS", "-D", "-", "-o", str(response), f"{server.url}/ocsp/{encoded}"],
                             capture_output=True, timeout=30).stdout.decode().lower()
    assert headers.startswith("http/1.1 200")
    assert "content-type: application/ocsp-response" in headers
    assert "cache-control: max-age=" in headers and "etag:" in headers and "last-modified:" in headers
    check = openssl("ocsp", "-respin", str(response), "-issuer", str(out / "carol" / "chain.pem"),
                    "-cert", str(out / "carol" / "cert.pem"), "-CAfile", str(out / "carol" / "ca.pem"))
    assert "cert.pem: good" in check.stdout.decode(), check.stderr.decode()


@pytest.mark.parametrize("body", [b"this is not DER", b"\x30\x82\xff\xff"])
def test_garbage_gets_malformed_request_not_a_500(served, tmp_path, body):
    _home, _out, server = served
    response = tmp_path / "response.der"
    code = subprocess.run(["curl", "-sS", "-o", str(response), "-w", "%{http_code}", "--data-binary", "@-",
                           "-H", "Content-Type: application/ocsp-request", f"{server.url}/ocsp"],
                          input=body, capture_output=True, timeout=30).stdout.decode()
    assert code == "200"
    text = openssl("ocsp", "-respin", str(response), "-resp_text", "-noverify").stdout.decode()
    assert "Responder Error: malformedrequest (1)" in text


def test_responders_are_in_the_inventory_with_profile_ocsp(served):
    home, _out, _server = served
    inventory = Inventory.open(load_settings(home, environ={}).database_url)   # SQLite or PostgreSQL
    responders = inventory.query(dt.datetime.now(dt.timezone.utc), profile="ocsp")
    assert {r.issuer for r in responders} == {"root", "intermediate"}
    assert oct((home / "ocsp" / "intermediate.key.pem").stat().st_mode & 0o777) == "0o600"


def test_several_workers_answer_and_stop_together(served):
    home, out, _server = served
    server = ServeProcess(home, free_port(), "--workers", "2")
    try:
        pid = server.process.pid
        children = [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
        assert len(children) == 2
        for _ in range(4):
            result = openssl("ocsp", "-issuer", str(out / "alice" / "chain.pem"), "-cert", str(out / "alice" / "cert.pem"),
                             "-CAfile", str(out / "alice" / "ca.pem"), "-url", f"{server.url}/ocsp")
            assert "cert.pem: good" in result.stdout.decode(), result.stderr.decode()
    finally:
        server.stop()
    assert server.process.returncode == 0
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "Z" in open(f"/proc/{child}/stat").read().split()[2]


def _raw_exchange(server, data: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_broken_http_gets_a_problem_and_the_server_lives_on(served):
    _home, out, server = served
    reply = _raw_exchange(server, b"THIS IS NOT HTTP\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ") and b"application/problem+json" in reply
    huge = b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"  # body never sent
    reply = _raw_exchange(server, huge)
    assert reply.startswith(b"HTTP/1.1 413 ") and b"limited to" in reply
    assert "cert.pem: good" in ocsp_query(served, "alice").stdout.decode()


def test_http10_keep_alive_and_pipelining_keep_their_order(served):
    _home, _out, server = served
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    two = b"GET /ca/root.pem HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = _raw_exchange(server, one + two + last)
    assert reply.count(b"HTTP/1.1 ") == 3
    assert reply.index(b'"status":"ok"') < reply.index(b"BEGIN CERTIFICATE") < reply.index(b"404 Not Found")
    ten = _raw_exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert ten.startswith(b"HTTP/1.0 200 ") and b"connection: close" in ten.lower()


def test_presigned_reply_bytes_fit_each_connection_kind(served, tmp_path):
    _home, out, server = served
    request = tmp_path / "request.der"
    assert openssl("ocsp", "-issuer", str(out / "alice" / "chain.pem"), "-cert", str(out / "alice" / "cert.pem"),
                   "-no_nonce", "-reqout", str(request)).returncode == 0
    der_request = request.read_bytes()

    def post(version: bytes, extra: bytes = b"") -> bytes:
        return (b"POST /ocsp HTTP/" + version + b"\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                + extra + b"Content-Length: %d\r\n\r\n" % len(der_request) + der_request)

    kept = _raw_exchange(server, post(b"1.1") + post(b"1.1", b"Connection: close\r\n"))
    first, second = kept.split(b"HTTP/1.1 200 OK")[1:]
    assert b"connection:" not in first.lower() and b"connection: close" in second.lower()
    ten = _raw_exchange(server, post(b"1.0"))
    assert ten.startswith(b"HTTP/1.0 200 OK") and b"connection: close" in ten.lower()
    bodies = {part.split(b"\r\n\r\n", 1)[1] for part in (first, second, ten)}
    assert len(bodies) == 1  # the same pre-signed response each time


def test_mtlskit_verify_ocsp_asks_this_responder(served):
    home, out, _server = served
    if "bob" not in mtlskit_cli(home, "list", "--status", "revoked").stdout.decode():
        assert mtlskit_cli(home, "revoke", "bob", "--reason", "key-compromise").returncode == 0
    good = mtlskit_cli(home, "verify", str(out / "alice" / "fullchain.pem"), "--ocsp")
    assert good.returncode == 0, good.stdout.decode() + good.stderr.decode()
    revoked = mtlskit_cli(home, "verify", str(out / "bob" / "fullchain.pem"), "--ocsp")
    assert revoked.returncode == 1
    assert "revoked" in (revoked.stdout + revoked.stderr).decode().lower()
