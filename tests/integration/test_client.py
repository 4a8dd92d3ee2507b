"""mtlskit.client against a real TLS server on loopback that requires client certificates."""

from __future__ import annotations

import http.server
import importlib.util
import ssl
import threading

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mtlskit.client import httpx_client, requests_session, ssl_context
from mtlskit.errors import BadInput, UsageError
from tests.support_verify import run_cli


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        peer = self.connection.getpeercert()
        cn = dict(x[0] for x in peer["subject"])["commonName"] if peer else "-"
        body = f"hello {cn}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _TLSServer(http.server.ThreadingHTTPServer):
    def __init__(self, context: ssl.SSLContext):
        super().__init__(("127.0.0.1", 0), _Hello)
        self.context = context

    def get_request(self):
        sock, addr = super().get_request()
        return self.context.wrap_socket(sock, server_side=True), addr

    def handle_error(self, request, client_address):
        pass  # refused handshakes are the point of several tests


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("client")
    home, other = base / "home", base / "other"
    run_cli("--home", home, "init", "--no-passphrase", "--name", "Client Lab")
    run_cli("--home", other, "init", "--no-passphrase", "--name", "Other Lab")
    run_cli("--home", home, "issue", "server", "localhost", "--dns", "localhost", "--out", base / "server")
    run_cli("--home", home, "issue", "client", "alice", "--out", base / "alice")
    run_cli("--home", other, "issue", "client", "eve", "--out", base / "eve")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(base / "server/fullchain.pem", base / "server/key.pem")
    server_ctx.load_verify_locations(home / "ca/root.pem")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server = _TLSServer(server_ctx)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_httpx_client_does_mutual_tls(lab):
    base, port = lab
    with httpx_client(cert=base / "alice/fullchain.pem", key=base / "alice/key.pem", ca=base / "alice/ca.pem") as http:
        response = http.get(f"https://localhost:{port}/")
    assert response.status_code == 200 and response.text == "hello alice"


def test_without_client_certificate_the_server_refuses(lab):
    base, port = lab
    with httpx_client(ca=base / "alice/ca.pem") as http, pytest.raises(httpx.HTTPError):
        http.get(f"https://localhost:{port}/")


def test_certificate_of_another_ca_is_refused(lab):
    base, port = lab
    with httpx_client(cert=base / "eve/fullchain.pem", key=base / "eve/key.pem", ca=base / "alice/ca.pem") as http:
        with pytest.raises(httpx.HTTPError):
            http.get(f"https://localhost:{port}/")


def test_hostname_is_checked(lab):
    base, port = lab
    with httpx_client(cert=base / "alice/fullchain.pem", key=base / "alice/key.pem", ca=base / "alice/ca.pem") as http:
        with pytest.raises(httpx.ConnectError, match="IP address mismatch|hostname"):
            http.get(f"https://127.0.0.1:{port}/")


def test_server_from_an_untrusted_ca_is_refused(lab):
    base, port = lab
    with httpx_client(cert=base / "alice/fullchain.pem", key=base / "alice/key.pem", ca=base / "eve/ca.pem") as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get(f"https://localhost:{port}/")


def test_context_defaults():
    ctx = ssl_context()
    assert ctx.check_hostname and ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert ssl_context(minimum_version=ssl.TLSVersion.TLSv1).minimum_version is ssl.TLSVersion.TLSv1_2
    assert ssl_context(minimum_version=ssl.TLSVersion.TLSv1_3).minimum_version is ssl.TLSVersion.TLSv1_3


def test_pkcs12_bundle(lab, tmp_path):
    base, port = lab
    key = serialization.load_pem_private_key((base / "alice/key.pem").read_bytes(), None)
    from cryptography import x509
    leaf, *chain = x509.load_pem_x509_certificates((base / "alice/fullchain.pem").read_bytes())
    p12 = tmp_path / "alice.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"alice", key, leaf, chain, serialization.BestAvailableEncryption(b"s3cret")))
    ctx = ssl_context(p12=p12, p12_password="s3cret", ca=base / "alice/ca.pem")
    with httpx.Client(verify=ctx) as http:
        assert http.get(f"https://localhost:{port}/").text == "hello alice"
    with pytest.raises(BadInput, match="cannot open the PKCS#12 bundle"):
        ssl_context(p12=p12, p12_password="wrong")


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(cert="{b}/alice/fullchain.pem", key="{b}/eve/key.pem"), BadInput, "does not belong"),
    (dict(cert="{b}/nope.pem"), BadInput, "does not exist"),
    (dict(ca="{b}/alice/key.pem"), BadInput, "does not hold CA certificates"),
    (dict(key="{b}/alice/key.pem"), UsageError, "needs its certificate"),
    (dict(cert="{b}/alice/cert.pem", p12="{b}/x.p12"), UsageError, "not both"),
])
def test_bad_arguments_raise_domain_errors(lab, kwargs, error, text):
    base, _ = lab
    with pytest.raises(error, match=text):
        ssl_context(**{k: v.format(b=base) for k, v in kwargs.items()})


@pytest.mark.skipif(importlib.util.find_spec("requests") is not None, reason="requests is installed")
def test_requests_helper_says_requests_is_missing():
    with pytest.raises(UsageError, match="requests is not installed"):
        requests_session()
