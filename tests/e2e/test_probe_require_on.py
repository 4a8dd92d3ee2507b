"""`mtlskit probe` against mtlskit's own `--mode optional --require-on /admin`
configurations, run by the real nginx, apache2 and haproxy.

Such a server completes the handshake without a client certificate and answers a
protected path with HTTP 403 "client certificate required" (deploy/render.py
DENY_BODY): the probe must say `client-cert-required` and exit 1, not `ok`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import types
from pathlib import Path

import pytest

from mtlskit.cli.app import main
from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream, validate
from tests.support_deploy import EchoUpstream, ServerProcess, build_pki, free_port, start_command

pytestmark = pytest.mark.e2e

SERVERS = ["nginx", "apache", "haproxy"]
BINARIES = {"nginx": "nginx", "apache": "apache2", "haproxy": "haproxy"}


@pytest.fixture(scope="module")
def pki():
    return build_pki()


@pytest.fixture(scope="module")
def work(pki):
    # Apache's workers (nobody) read the deployment directory: not pytest's 0700 tmp.
    base = Path(tempfile.mkdtemp(prefix="mtlskit-probe-"))
    base.chmod(0o755)
    clients = base / "clients"
    clients.mkdir()
    ns = types.SimpleNamespace(base=base, ca=clients / "root.pem", upstream=EchoUpstream("default"),
                               clients={n: pki.write_client(clients, n) for n in ("alice", "expired")})
    ns.ca.write_bytes(pki.root.pem())
    yield ns
    ns.upstream.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=SERVERS)
def optional(request, pki, work):
    server = request.param
    if shutil.which(BINARIES[server]) is None:
        pytest.skip(f"{BINARIES[server]} is not installed")
    port = free_port()
    options = validate(DeployOptions(
        server=server, name="localhost", directory=work.base / server, listen=parse_listen(f"127.0.0.1:{port}"),
        upstream=parse_upstream(work.upstream.url), mode="optional", require_on=("/admin",), standalone=True))
    install(options.directory, deployment_files(options, pki.server.pem() + pki.intermediate.pem(),
                                                pki.server.key_pem(), pki.ca_certificates, pki.crls()))
    process = ServerProcess(start_command(server, options.directory), port, options.directory / "stdout.log")
    yield types.SimpleNamespace(server=server, port=port, process=process)
    process.close()


def probe(capsys, work, url: str, client: str | None = None) -> tuple[int, dict]:
    capsys.readouterr()
    args = ["--home", str(work.base / "no-home"), "probe", url, "--ca", str(work.ca), "--json"]
    if client is not None:
        cert, key = work.clients[client]
        args += ["--cert", str(cert), "--key", str(key)]
    rc = main(args)
    return rc, json.loads(capsys.readouterr().out)


def errors(report: dict) -> list[str]:
    return [f["code"] for f in report["findings"] if f["level"] == "error"]


def test_protected_path_without_certificate_is_client_cert_required(optional, work, capsys):
    rc, report = probe(capsys, work, f"https://127.0.0.1:{optional.port}/admin")
    assert (rc, report["ok"], report["http_status"]) == (1, False, 403), report
    assert errors(report) == ["client-cert-required"]
    assert report["client_auth"] == "required"
    finding = report["findings"][0]
    assert "/admin" in finding["message"] and "--cert" in finding["hint"]


def test_public_path_without_certificate_is_ok_and_optional(optional, work, capsys):
    rc, report = probe(capsys, work, f"https://127.0.0.1:{optional.port}/")
    assert (rc, report["ok"], report["http_status"], report["client_auth"]) == (0, True, 200, "optional"), report


def test_protected_path_with_a_valid_certificate_is_ok(optional, work, capsys):
    rc, report = probe(capsys, work, f"https://127.0.0.1:{optional.port}/admin", "alice")
    assert (rc, report["ok"], report["http_status"]) == (0, True, 200), report


def test_protected_path_with_an_expired_certificate_names_the_expiry(optional, work, capsys):
    rc, report = probe(capsys, work, f"https://127.0.0.1:{optional.port}/admin", "expired")
    assert (rc, report["ok"]) == (1, False), report
    assert errors(report)[0] == "client-cert-expired"
