"""Issue 14: a CA whose keys are in a SoftHSM2 token, judged by the real servers. `mtlskit
deploy` issues the server certificate through the token and writes the CRLs the token
signed; nginx, apache2 and haproxy accept a client the token certified, refuse one of
another CA and, after `mtlskit revoke`, the revoked one: mTLS works unchanged."""

from __future__ import annotations

import shutil
import tempfile
import types
import urllib.request
from pathlib import Path

import pytest

from mtlskit.cli.app import main
from tests.judges import openssl
from tests.support_deploy import EchoUpstream, ServerProcess, free_port, get, start_command, wait_for
from tests.support_softhsm import start_softhsm

pytestmark = pytest.mark.e2e

TOKEN = "servers"


def _mtlskit(home: Path, *args) -> None:
    assert main(["--home", str(home), *map(str, args)]) == 0, args


@pytest.fixture(scope="module")
def world():
    # world-readable like /etc (apache's and nginx's unprivileged workers read the files)
    base = Path(tempfile.mkdtemp(prefix="mtlskit-hsm-"))
    base.chmod(0o755)
    hsm = start_softhsm(base / "softhsm", TOKEN)
    other = base / "other-home"
    _mtlskit(other, "init", "--no-passphrase", "--name", "Other CA")
    _mtlskit(other, "issue", "client", "alice", "--out", base / "other-ca")
    ns = types.SimpleNamespace(base=base, hsm=hsm, upstream=EchoUpstream("default"))
    yield ns
    ns.upstream.close()
    hsm.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=["nginx", "apache", "haproxy"])
def site(request, world):
    server, base = request.param, world.base / request.param
    home, clients = base / "home", base / "clients"
    _mtlskit(home, "init", "--name", f"HSM {server}", *world.hsm.init_args(TOKEN, server))
    _mtlskit(home, "crl")
    port = free_port()
    _mtlskit(home, "deploy", server, "--name", "localhost", "--dns", "localhost", "--ip", "127.0.0.1",
             "--dir", base / "deploy", "--listen", f"127.0.0.1:{port}", "--upstream", world.upstream.url,
             "--standalone", "--check")
    for name in ("alice", "victim"):
        _mtlskit(home, "issue", "client", name, "--out", clients / name)
    process = ServerProcess(start_command(server, base / "deploy"), port, base / "stdout.log")
    yield types.SimpleNamespace(server=server, port=port, home=home, deploy=base / "deploy",
                                ca=clients / "alice" / "ca.pem", other=world.base / "other-ca",
                                cert=lambda n: (clients / n / "fullchain.pem", clients / n / "key.pem"))
    process.close()


def test_the_certificates_the_server_uses_verify_with_openssl(site):
    ca_dir = site.home / "ca"
    for name in ("alice", "victim"):
        result = openssl("verify", "-CAfile", ca_dir / "root.pem", "-untrusted", ca_dir / "intermediate.pem",
                         site.cert(name)[0].parent / "cert.pem")
        assert result.returncode == 0, result.stderr
    assert not list(ca_dir.glob("*.key.pem"))          # the CA keys are in the token only


def test_a_client_certified_in_the_token_is_accepted_and_others_refused(site):
    assert get(site.port, "/", site.ca, site.cert("alice")).status == 200
    other = get(site.port, "/", site.ca, (site.other / "fullchain.pem", site.other / "key.pem"))
    if site.server == "nginx":
        assert other.status == 400 and b"The SSL certificate error" in other.body, other
    else:
        assert other.status is None and "UNKNOWN_CA" in other.tls_error, other


def test_a_revocation_signed_in_the_token_reaches_the_server(site):
    assert get(site.port, "/", site.ca, site.cert("victim")).status == 200
    _mtlskit(site.home, "revoke", "victim")
    assert wait_for(lambda: get(site.port, "/", site.ca, site.cert("victim")).status != 200)
    refused = get(site.port, "/", site.ca, site.cert("victim"))
    if site.server == "nginx":
        assert refused.status == 400 and b"The SSL certificate error" in refused.body, refused
    else:
        assert refused.status is None and "CERTIFICATE_REVOKED" in refused.tls_error, refused
    assert get(site.port, "/", site.ca, site.cert("alice")).status == 200


def test_serve_with_token_keys_answers_ocsp_and_serves_the_token_signed_crl(world, tmp_path):
    """`serve --workers 2` on an HSM home: its responder certificate was signed in the
    token, each forked worker answers OCSP, and a revocation by another process is
    answered `revoked` with the CRL the token signed."""
    from tests.support_ocsp import ServeProcess, mtlskit_cli

    home, out, port = world.base / "serve-home", world.base / "serve-out", free_port()
    _mtlskit(home, "init", "--name", "HSM serve", "--public-url", f"http://127.0.0.1:{port}",
             *world.hsm.init_args(TOKEN, "serve"))
    _mtlskit(home, "issue", "client", "carol", "--out", out / "carol")
    server = ServeProcess(home, port, "--workers", "2")
    try:
        def ask(*extra):
            return openssl("ocsp", "-issuer", out / "carol" / "chain.pem", "-cert", out / "carol" / "cert.pem",
                           "-CAfile", out / "carol" / "ca.pem", "-url", f"{server.url}/ocsp", *extra)
        for _ in range(4):
            answer = ask()
            assert b"cert.pem: good" in answer.stdout and b"Response verify OK" in answer.stderr, answer
        revoked = mtlskit_cli(home, "revoke", "carol")
        assert revoked.returncode == 0, revoked.stderr
        for _ in range(4):
            assert b"cert.pem: revoked" in ask().stdout
        crl = tmp_path / "intermediate.crl"
        crl.write_bytes(urllib.request.urlopen(f"{server.url}/crl/intermediate.crl", timeout=10).read())
        verdict = openssl("crl", "-inform", "DER", "-in", crl, "-noout", "-verify",
                          "-CAfile", home / "ca" / "intermediate.pem")
        assert b"verify OK" in verdict.stdout + verdict.stderr, verdict.stderr
    finally:
        server.stop()
