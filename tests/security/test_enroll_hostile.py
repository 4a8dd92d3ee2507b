"""Hostile clients of `serve --tls-port`: forged identity headers, huge and malformed CSR
bodies, a token in a query string. One real server for the module."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse

import pytest
from cryptography import x509

from tests.support_enroll import TlsServe, csr_pem, enroll_cli
from tests.support_ocsp import REPO, mtlskit_env

pytestmark = pytest.mark.e2e

IDENTITY_HEADERS = ("X-SSL-Client-Cert", "X-Client-Cert", "X-Forwarded-Client-Cert", "SSL-Client-Cert",
                    "X-SSL-Client-Verify", "X-Client-Verify", "X-ARR-ClientCert", "Client-Cert")


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    server = TlsServe(tmp_path_factory.mktemp("enroll-hostile"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def two_hosts(serve, tmp_path_factory):
    root = tmp_path_factory.mktemp("hosts")
    for name in ("mallory", "victim"):
        result = enroll_cli(serve, serve.token(name, "--profile", "client"), root / name)
        assert result.returncode == 0, result.stderr.decode()
    return root / "mallory", root / "victim"


def forged_headers(certificate_dir) -> dict:
    pem = (certificate_dir / "cert.pem").read_text()
    quoted = urllib.parse.quote(pem)
    headers = {name: quoted for name in IDENTITY_HEADERS}
    headers["X-SSL-Client-Verify"] = headers["X-Client-Verify"] = "SUCCESS"
    return headers


def test_forged_identity_headers_without_a_certificate_authenticate_nobody(serve, two_hosts):
    _mallory, victim = two_hosts
    code, body = serve.post("/api/v1/renew", {"csr": csr_pem()}, headers=forged_headers(victim))
    assert code == 403 and body["code"] == "not-authenticated", body


def test_forged_identity_headers_beside_a_certificate_change_nothing(serve, two_hosts):
    mallory, victim = two_hosts
    code, body = serve.post("/api/v1/renew", {"csr": csr_pem()}, client_dir=mallory, headers=forged_headers(victim))
    assert code == 201 and body["name"] == "mallory", body  # the TLS certificate, not the header
    victim_serial = format(x509.load_pem_x509_certificate((victim / "cert.pem").read_bytes()).serial_number, "x")
    shown = serve.cli("show", f"serial:{victim_serial}", "--json").stdout.decode()
    assert '"superseded_by": null' in shown or "superseded" not in shown


@pytest.mark.parametrize("path", ["/api/v1/enroll", "/api/v1/renew"])
def test_a_huge_body_is_refused_with_413(serve, path):
    code, body = serve.post(path, b'{"csr": "' + b"A" * (2 * 1024 * 1024) + b'"}')
    assert code == 413, body


@pytest.mark.parametrize("payload, status", [
    ({"token": "t" * 43, "csr": "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n"}, 403),
    ({"token": "t" * 43, "csr": "A" * 60_000}, 400),
    ({"token": "t" * 43, "csr": 12}, 400),
    ({"token": "t" * 43}, 400),
    ({"token": "t" * 43, "csr": "x", "profile": "root-ca"}, 400),
    (b"{not json", 400),
    (b"[" * 100_00 + b"]" * 100_00, 400),
])
def test_malformed_enrollments_are_refused_without_echoing(serve, payload, status):
    code, body = serve.post("/api/v1/enroll", payload)
    assert code == status and body.get("type") == "about:blank", body  # problem+json
    assert "t" * 43 not in body.get("detail", "")


def test_a_malformed_csr_with_a_good_token_is_400_and_keeps_the_token(serve):
    token = serve.token("garbled", "--profile", "client")
    code, body = serve.post("/api/v1/enroll", {"token": token, "csr": "-----BEGIN CERTIFICATE REQUEST-----\n"
                                               "AAAA\n-----END CERTIFICATE REQUEST-----\n"})
    assert code == 400 and body["code"] == "bad-input" and token not in body["detail"]
    code, body = serve.post("/api/v1/enroll", {"token": token, "csr": csr_pem()})
    assert code == 201


def test_a_malformed_csr_on_renew_is_400(serve, two_hosts):
    mallory, _victim = two_hosts
    code, body = serve.post("/api/v1/renew", {"csr": "garbage"}, client_dir=mallory)
    assert code == 400 and body["code"] == "bad-input", body


def test_a_token_in_a_query_string_is_not_logged_and_not_used(serve):
    token = serve.token("query", "--profile", "client")
    code, body = serve.post(f"/api/v1/enroll?token={token}", {"csr": csr_pem()})
    assert code == 400
    code, _ = serve.post(f"/api/v1/nowhere?token={token}", {"csr": csr_pem()})
    assert code in (404, 405)
    assert token not in serve.log()
    listed = serve.cli("token", "list", "--json").stdout.decode()
    assert '"state": "pending"' in listed  # the query string did not use it


def test_the_token_can_come_from_stdin_not_argv(serve, tmp_path):
    token = serve.token("stdin-host", "--profile", "client")
    result = subprocess.run([sys.executable, "-m", "mtlskit", "enroll", "--ca-url", serve.url, "--token", "-",
                             "--fingerprint", serve.fingerprint, "--out", str(tmp_path / "h")],
                            input=(token + "\n").encode(), capture_output=True, env=mtlskit_env(), cwd=REPO,
                            timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert token.encode() not in result.stdout + result.stderr


def test_enroll_help_warns_that_argv_is_visible(serve):
    result = subprocess.run([sys.executable, "-m", "mtlskit", "enroll", "--help"], capture_output=True,
                            env=mtlskit_env(), cwd=REPO, timeout=60)
    assert b"ps" in result.stdout and b"--token-file" in result.stdout
