"""`--revocation ocsp`: Nginx (ssl_ocsp) and Apache (SSLOCSPEnable) ask an OCSP responder
about each client certificate; no CRL is installed, so a refusal can only come from OCSP."""

from __future__ import annotations

import shutil
import tempfile
import types
from pathlib import Path

import pytest

from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream, validate
from tests.support_deploy import (EchoUpstream, OcspResponder, ServerProcess, build_pki, free_port, get,
                                  start_command)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def setup():
    pki = build_pki()
    base = Path(tempfile.mkdtemp(prefix="mtlskit-ocsp-"))
    base.chmod(0o755)
    leaves = [pki.clients[n] for n in ("alice", "revoked")]
    ns = types.SimpleNamespace(
        pki=pki, base=base, ca=base / "root.pem", upstream=EchoUpstream("default"),
        responder=OcspResponder(pki.intermediate, leaves, {pki.clients["revoked"].cert.serial_number}),
        clients={n: pki.write_client(base, n) for n in ("alice", "revoked")})
    ns.ca.write_bytes(pki.root.pem())
    yield ns
    ns.upstream.close()
    ns.responder.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=["nginx", "apache"])
def server(request, setup):
    port = free_port()
    options = validate(DeployOptions(
        server=request.param, name="localhost", directory=setup.base / request.param,
        listen=parse_listen(f"127.0.0.1:{port}"), upstream=parse_upstream(setup.upstream.url),
        revocation="ocsp", ocsp_url=setup.responder.url, standalone=True))
    install(options.directory, deployment_files(
        options, setup.pki.server.pem() + setup.pki.intermediate.pem(), setup.pki.server.key_pem(),
        setup.pki.ca_certificates, []))
    assert not (options.directory / "crl.pem").exists()
    process = ServerProcess(start_command(request.param, options.directory), port,
                            options.directory / "stdout.log")
    yield types.SimpleNamespace(name=request.param, port=port)
    process.close()


def test_good_by_ocsp_is_accepted(server, setup):
    before = setup.responder.requests
    outcome = get(server.port, "/", setup.ca, setup.clients["alice"])
    assert outcome.status == 200, outcome
    assert setup.responder.requests > before          # the server really asked


def test_revoked_by_ocsp_is_refused(server, setup):
    outcome = get(server.port, "/", setup.ca, setup.clients["revoked"])
    if server.name == "nginx":
        assert outcome.status == 400 and b"The SSL certificate error" in outcome.body, outcome
    else:
        assert outcome.status is None and "CERTIFICATE_REVOKED" in outcome.tls_error, outcome
