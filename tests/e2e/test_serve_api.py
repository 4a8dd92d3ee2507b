"""`mtlskit serve --api` as a real process: revoke with curl and the bearer token, then
`openssl ocsp` says "revoked" at once; one worker (invalidate) and two (change marker)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mtlskit.cli.app import main
from tests.support_ocsp import ServeProcess, free_port, openssl

pytestmark = pytest.mark.e2e


def make_pki(home: Path, out: Path, port: int) -> None:
    assert main(["--home", str(home), "init", "--name", "API Test CA", "--no-passphrase",
                 "--public-url", f"http://127.0.0.1:{port}"]) == 0
    for name in ("alice", "bob"):
        assert main(["--home", str(home), "issue", "client", name, "--out", str(out / name)]) == 0


def header_file(home: Path, where: Path) -> Path:
    """An `Authorization: Bearer` line for `curl -H @file`: the token never enters an argv."""
    path = where / "auth-header"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"Authorization: Bearer {(home / 'api-token').read_text().strip()}\n")
    return path


def curl_revoke(server: ServeProcess, body: dict, headers: Path | None) -> tuple[int, dict]:
    args = ["curl", "-sS", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
            "--data-binary", "@-", f"{server.url}/api/v1/revocations"]
    if headers is not None:
        args[2:2] = ["-H", f"@{headers}"]
    result = subprocess.run(args, input=json.dumps(body).encode(), capture_output=True, timeout=60)
    text, _, code = result.stdout.decode().rpartition("\n")
    return int(code), json.loads(text)


def ocsp_status(out: Path, url: str, name: str, *extra: str) -> str:
    result = openssl("ocsp", "-issuer", str(out / name / "chain.pem"), "-cert", str(out / name / "cert.pem"),
                     "-CAfile", str(out / name / "ca.pem"), "-url", f"{url}/ocsp", *extra)
    assert "Response verify OK" in result.stderr.decode(), result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture(scope="module", params=[("--workers", "1", "--ocsp-refresh-seconds", "3600"),
                                        ("--workers", "2", "--ocsp-refresh-seconds", "0")],
                ids=["one-worker-invalidate", "two-workers-marker"])
def served(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    home, out, port = root / "home", root / "out", free_port()
    make_pki(home, out, port)
    server = ServeProcess(home, port, "--api", *request.param)
    yield home, out, server, root
    server.stop()


def test_curl_revoke_then_openssl_ocsp_says_revoked(served):
    home, out, server, root = served
    assert "cert.pem: good" in ocsp_status(out, server.url, "alice", "-no_nonce")  # cached as good
    code, body = curl_revoke(server, {"targets": ["alice"], "reason": "key-compromise"}, header_file(home, root))
    assert code == 201, body
    assert [r["name"] for r in body["revoked"]] == ["alice"] and body["crl_numbers"]["intermediate"] >= 1
    for extra in (("-no_nonce",), ()):
        text = ocsp_status(out, server.url, "alice", *extra)
        assert "cert.pem: revoked" in text and "Reason: keyCompromise" in text, text
    code, body = curl_revoke(server, {"targets": ["alice"]}, header_file(home, root))
    assert code == 409 and body["code"] == "already-revoked"


def test_without_token_401_and_nothing_revoked(served):
    home, out, server, root = served
    code, body = curl_revoke(server, {"targets": ["bob"]}, None)
    assert code == 401 and body["status"] == 401
    assert "cert.pem: good" in ocsp_status(out, server.url, "bob")


def test_token_is_private_and_in_no_banner_or_log(served):
    home, _out, server, _root = served
    token_file = home / "api-token"
    assert os.stat(token_file).st_mode & 0o777 == 0o600
    log = server.log.read_text()
    assert f"or the admin token in {token_file}>" in log
    assert token_file.read_text().strip() not in log


def test_serve_without_api_answers_404(tmp_path):
    home, out, port = tmp_path / "home", tmp_path / "out", free_port()
    make_pki(home, out, port)
    server = ServeProcess(home, port)
    try:
        code, body = curl_revoke(server, {"targets": ["alice"]}, None)
        assert code == 404 and body["status"] == 404
        assert not (home / "api-token").exists()
        assert "/api/v1" not in server.log.read_text()
    finally:
        server.stop()
