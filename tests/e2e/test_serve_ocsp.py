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
from mtlskit.store.inventory import Inventory
from tests.support_ocsp import ServeProcess, free_port, openssl, revoke_in_inventory

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
    serial = x509.load_pem_x509_certificate((out / "bob" / "cert.pem").read_bytes()).serial_number
    inventory = Inventory.open(f"sqlite:///{home / 'inventory.db'}")
    revoke_in_inventory(inventory, "intermediate", serial, "keyCompromise", dt.datetime.now(dt.timezone.utc))
    for extra in ((), ("-no_nonce",)):
        result = ocsp_query(served, "bob", *extra)
        text = result.stdout.decode()
        assert "cert.pem: revoked" in text, text
        assert "Reason: keyCompromise" in text
        assert "Revocation Time" in text
        assert "Response verify OK" in result.stderr.decode()


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
    inventory = Inventory.open(f"sqlite:///{home / 'inventory.db'}")
    responders = inventory.query(dt.datetime.now(dt.timezone.utc), profile="ocsp")
    assert {r.issuer for r in responders} == {"root", "intermediate"}
    assert oct((home / "ocsp" / "intermediate.key.pem").stat().st_mode & 0o777) == "0o600"
