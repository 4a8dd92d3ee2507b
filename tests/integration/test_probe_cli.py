"""`mtlskit probe` against loopback Python TLS servers: the server-side findings
(untrusted, expired, wrong name), optional client auth, and bad input."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading

import pytest
from cryptography.hazmat.primitives import serialization

from mtlskit.cli.app import main
from tests.support_verify import ONE_DAY, make_ca, make_leaf

PEM = serialization.Encoding.PEM


def _write(tmp, name, issued, *chain):
    cert = tmp / f"{name}.pem"
    cert.write_bytes(b"".join(c.public_bytes(PEM) for c in (issued.cert, *chain)))
    key = tmp / f"{name}.key"
    key.write_bytes(issued.key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key


class _Server:
    """Accepts TLS connections and answers one HTTP 200 per connection."""

    def __init__(self, context: ssl.SSLContext):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.context = context
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                tls.sendall(b"HTTP/1.1 200 OK\r\nServer: pytest\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except (OSError, ssl.SSLError):
            pass

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe-cli")
    root = make_ca("Probe Root")
    root_file = tmp / "root.pem"
    root_file.write_bytes(root.cert.public_bytes(PEM))
    now = dt.datetime.now(dt.timezone.utc)
    good = make_leaf("localhost", root, eku=("server",), dns=("localhost",),
                     not_before=now - ONE_DAY, not_after=now + 30 * ONE_DAY)
    expired = make_leaf("localhost", root, eku=("server",), dns=("localhost",),
                        not_before=now - 60 * ONE_DAY, not_after=now - ONE_DAY)
    alice = make_leaf("alice", root, not_before=now - ONE_DAY, not_after=now + 30 * ONE_DAY)
    servers = {}
    for name, leaf, mode in (("good", good, ssl.CERT_OPTIONAL), ("expired", expired, ssl.CERT_NONE)):
        cert, key = _write(tmp, name, leaf)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if mode is not ssl.CERT_NONE:
            ctx.load_verify_locations(root_file)
        ctx.verify_mode = mode
        servers[name] = _Server(ctx)
    alice_files = _write(tmp, "alice", alice)
    yield tmp, root_file, servers, alice_files
    for server in servers.values():
        server.close()


def probe(capsys, *args):
    capsys.readouterr()
    rc = main(["probe", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return rc, json.loads(out) if out.strip() else None, err


def errors(report):
    return [f["code"] for f in report["findings"] if f["level"] == "error"]


def test_optional_client_auth_with_certificate_is_ok(lab, capsys):
    _, root, servers, (cert, key) = lab
    rc, report, _ = probe(capsys, f"https://localhost:{servers['good'].port}/", "--ca", root,
                          "--cert", cert, "--key", key)
    assert (rc, report["ok"], report["client_auth"], report["http_status"]) == (0, True, "optional", 200)
    # Python's ssl never calls SSL_CTX_set_client_CA_list: its CertificateRequest names no CA
    assert report["acceptable_cas"] == []


def test_optional_client_auth_without_certificate_is_ok(lab, capsys):
    _, root, servers, _ = lab
    rc, report, _ = probe(capsys, f"localhost:{servers['good'].port}", "--ca", root)
    assert (rc, report["client_auth"], errors(report)) == (0, "optional", [])


def test_server_from_unknown_ca_is_untrusted(lab, capsys, tmp_path):
    _, _, servers, _ = lab
    other = tmp_path / "other.pem"
    other.write_bytes(make_ca("Someone Else").cert.public_bytes(PEM))
    rc, report, err = probe(capsys, f"https://localhost:{servers['good'].port}/", "--ca", other)
    assert rc == 1 and errors(report)[0] == "server-cert-untrusted"
    assert "error: mutual TLS with" in err


def test_wrong_server_name(lab, capsys):
    _, root, servers, _ = lab
    rc, report, _ = probe(capsys, f"https://localhost:{servers['good'].port}/", "--ca", root,
                          "--servername", "api.example.com")
    assert rc == 1 and errors(report)[0] == "server-name-mismatch"


def test_expired_server_certificate_and_no_client_auth(lab, capsys):
    _, root, servers, _ = lab
    rc, report, _ = probe(capsys, f"https://localhost:{servers['expired'].port}/", "--ca", root)
    assert rc == 1 and errors(report) == ["server-cert-expired", "client-auth-not-requested"]
    assert report["client_auth"] == "none"


def test_nothing_listening_is_connection_failed(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, report, _ = probe(capsys, f"127.0.0.1:{port}", "--timeout", "2")
    assert rc == 1 and errors(report) == ["connection-failed"]


@pytest.mark.parametrize("args, message", [
    (["http://example.com/"], "cannot probe 'http://example.com/'"),
    (["localhost:99999"], "bad port"),
    (["localhost:443", "--key", "k.pem"], "--key needs --cert"),
    (["localhost:443", "--timeout", "0"], "--timeout 0.0 is out of range"),
    (["localhost:443", "--timeout", "301"], "--timeout 301.0 is out of range"),
    (["localhost:443", "--timeout", "nan"], "--timeout nan is out of range"),
])
def test_bad_arguments_exit_2(capsys, args, message):
    rc, _, err = probe(capsys, *args)
    assert rc == 2 and message in err and "Traceback" not in err


def test_human_output_names_the_cause(lab, capsys):
    _, root, servers, _ = lab
    capsys.readouterr()
    rc = main(["probe", f"https://localhost:{servers['expired'].port}/", "--ca", str(root)])
    out = capsys.readouterr().out
    assert rc == 1 and "[server-cert-expired]" in out and "client certificate: none" in out
