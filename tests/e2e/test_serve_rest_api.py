"""The REST API on a real `mtlskit serve --api --tls-port --workers 2`: tokens made with the
CLI (curl sends them from a file, never argv), a token revoked with the CLI refused by
every worker on the next request, and client certificates over real TLS mapped to roles."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support_deploy import CLIENT, make_ca, make_leaf
from tests.support_ocsp import ServeProcess, free_port, mtlskit_cli

pytestmark = pytest.mark.e2e


class Served:
    def __init__(self, root):
        self.root = root
        self.home = root / "home"
        assert mtlskit_cli(self.home, "init", "--no-passphrase").returncode == 0
        with open(self.home / "mtlskit.toml", "a") as toml:
            toml.write('\n[roles]\nadmin = ["ops-alice", "ops-gone", "web-admin"]\nread = ["ops-bob"]\n')
        for profile, name in (("client", "ops-alice"), ("client", "ops-bob"), ("client", "ops-gone"),
                              ("server", "web-admin"), ("client", "victim-1"), ("client", "victim-2")):
            sans = ("--dns", "web.example") if profile == "server" else ()
            assert mtlskit_cli(self.home, "issue", profile, name, "--out", str(root / name), *sans).returncode == 0
        self.tls_port = free_port()
        self.server = ServeProcess(self.home, free_port(), "--api", "--tls-port", str(self.tls_port),
                                   "--workers", "2")
        self.root_pem = (self.home / "ca" / "root.pem").read_text()

    def token(self, name: str, role: str) -> str:
        result = mtlskit_cli(self.home, "token", "api", "create", name, "--role", role)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode().splitlines()[-1]

    def curl(self, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
        header = self.root / "auth-header"
        fd = os.open(header, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"Authorization: Bearer {token}\n")
        args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-H", f"@{header}"]
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        result = subprocess.run([*args, self.server.url + "/api/v1" + path], capture_output=True, text=True,
                                timeout=30)
        text, _, code = result.stdout.rpartition("\n")
        return int(code), json.loads(text) if text else {}

    def tls(self, path: str, client: tuple | None, body: dict | None = None) -> tuple[int, dict]:
        context = ssl.create_default_context(cadata=self.root_pem)
        if client is not None:
            context.load_cert_chain(*client)
        connection = http.client.HTTPSConnection("127.0.0.1", self.tls_port, context=context, timeout=30)
        try:
            if body is None:
                connection.request("GET", "/api/v1" + path)
            else:
                connection.request("POST", "/api/v1" + path, body=json.dumps(body),
                                   headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()

    def client(self, name: str) -> tuple:
        return self.root / name / "fullchain.pem", self.root / name / "key.pem"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    world = Served(tmp_path_factory.mktemp("rest-e2e"))
    yield world
    world.server.stop()


def test_tokens_of_the_cli_work_and_a_revoked_one_stops_in_every_worker(served):
    token = served.token("deployer", "issue")
    status, body = served.curl("/certificates", token, {"profile": "client", "name": "from-curl"})
    assert status == 201, body
    assert body["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    status, _ = served.curl("/revocations", token, {"targets": ["victim-1"]})
    assert status == 403
    assert mtlskit_cli(served.home, "token", "api", "revoke", "deployer").returncode == 0
    # one connection per request: the kernel spreads them over both workers
    answers = {served.curl("/certificates?limit=1", token)[0] for _ in range(12)}
    assert answers == {401}
    listed = mtlskit_cli(served.home, "token", "api", "list", "--json")
    [row] = json.loads(listed.stdout)
    assert row["state"] == "revoked" and token not in listed.stdout.decode()


def test_client_certificates_over_tls(served, tmp_path):
    status, body = served.tls("/revocations", served.client("ops-alice"), {"targets": ["victim-2"]})
    assert status == 201, body
    events = mtlskit_cli(served.home, "show", "victim-2", "--json")
    assert events.returncode == 0 and json.loads(events.stdout)[0]["status"] == "revoked"
    status, body = served.tls("/crls", served.client("ops-bob"))
    assert status == 200 and {c["ca"] for c in body} == {"root", "intermediate"}
    assert served.tls("/revocations", served.client("ops-bob"), {"targets": ["ops-alice"]})[0] == 403
    # a server certificate named as an admin: no clientAuth, no entry
    status, body = served.tls("/crls", served.client("web-admin"))
    assert status == 401 and "clientAuth" in body["detail"]
    # no certificate and no token
    assert served.tls("/crls", None)[0] == 401


def test_a_revoked_client_certificate_is_refused_on_its_next_connection(served):
    assert served.tls("/crls", served.client("ops-gone"))[0] == 200
    assert served.tls("/revocations", served.client("ops-alice"), {"targets": ["ops-gone"]})[0] == 201
    status, body = served.tls("/crls", served.client("ops-gone"))
    assert status == 401 and "revoked" in body["detail"]


def test_a_certificate_of_another_ca_never_reaches_the_app(served, tmp_path):
    stranger = make_leaf(make_ca("Other CA"), "ops-alice", CLIENT)
    (tmp_path / "cert.pem").write_bytes(stranger.pem())
    (tmp_path / "key.pem").write_bytes(stranger.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        served.tls("/crls", (tmp_path / "cert.pem", tmp_path / "key.pem"))


def _raw(served, request: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", served.server.port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_wire_refuses_what_the_app_refuses(served):
    token = served.token("wire", "admin")
    body = json.dumps({"targets": ["ops-bob"]}).encode()
    twice = (f"POST /api/v1/revocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
             f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
             f"Connection: close\r\n\r\n").encode() + body
    answer = _raw(served, twice)
    assert answer.startswith(b"HTTP/1.1 401") and b"\r\nwww-authenticate: bearer realm=" in answer.lower()
    in_query = (f"GET /api/v1/crls?access_token={token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode()
    assert _raw(served, in_query).startswith(b"HTTP/1.1 401")
    huge = (f"POST /api/v1/certificates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {8 * 1024 * 1024}\r\nConnection: close\r\n\r\n").encode()
    assert _raw(served, huge).startswith(b"HTTP/1.1 413")
    status, body = served.tls("/crls", served.client("ops-bob"))  # ops-bob was not revoked by any of them
    assert status == 200
