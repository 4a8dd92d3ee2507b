"""The whole path through the CLI, with certificates from mtlskit itself:
init -> crl -> deploy --standalone --check -> start the real server -> issue client
-> accepted with its identity -> revoke -> the deployment's CRL is rewritten and
reloaded -> refused, with no hand edit."""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.config import load_settings
from mtlskit.deploy import headers as H
from mtlskit.deploy.refresh import refresh_deployments
from mtlskit.service import Service
from tests.support_deploy import (EchoUpstream, ServerProcess, free_port, get, publish_home_crls,
                                  start_command, wait_for)

pytestmark = pytest.mark.e2e


@pytest.fixture
def public_dir():
    # World-readable like /etc/apache2, so Apache's unprivileged children can read mod_lua's script.
    path = Path(tempfile.mkdtemp(prefix="mtlskit-life-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def upstream():
    echo = EchoUpstream("default")
    yield echo
    echo.close()


def _revoke(cli, home: Path, name: str, serial: int):
    """`mtlskit revoke NAME` when main has it; until then the same two steps it performs
    after its transaction: publish the CRLs, then call the deploy refresh hook."""
    result = cli("--home", home, "revoke", name)
    if result.code == 0:
        return
    assert "No such command" in result.err, result.err
    bundle = publish_home_crls(home, revoked={"intermediate": [serial]}, number=2)
    results = refresh_deployments(Service.open(load_settings(home)), bundle)
    assert [r.status for r in results] == ["updated"], [r.message for r in results]


@pytest.mark.parametrize("server", ["nginx", "apache", "haproxy"])
def test_deploy_issue_accept_revoke_refuse(server, fresh_home, public_dir, upstream, cli):
    home = fresh_home
    if cli("--home", home, "crl").code != 0:
        publish_home_crls(home)
    port = free_port()
    directory = public_dir / server
    deployed = cli("--home", home, "deploy", server, "--name", "localhost", "--dns", "localhost",
                   "--ip", "127.0.0.1", "--dir", directory,
                   "--listen", f"127.0.0.1:{port}", "--upstream", upstream.url, "--standalone", "--check")
    assert deployed.code == 0, deployed.err
    assert "check: ok" in deployed.out
    assert cli("--home", home, "issue", "client", "alice", "--out", public_dir / "alice").code == 0
    alice = (public_dir / "alice" / "fullchain.pem", public_dir / "alice" / "key.pem")
    ca = public_dir / "alice" / "ca.pem"
    leaf = x509.load_pem_x509_certificate((public_dir / "alice" / "cert.pem").read_bytes())

    process = ServerProcess(start_command(server, directory), port, directory / "stdout.log")
    try:
        accepted = get(port, "/", ca, alice)
        assert accepted.status == 200, accepted
        assert accepted.header(H.SUBJECT_DN) == [leaf.subject.rfc4514_string()]
        assert int(accepted.header(H.SERIAL)[0], 16) == leaf.serial_number
        assert x509.load_pem_x509_certificate(urllib.parse.unquote(accepted.header(H.CERT)[0]).encode()) == leaf

        _revoke(cli, home, "alice", leaf.serial_number)

        assert wait_for(lambda: get(port, "/", ca, alice).status != 200)
        refused = get(port, "/", ca, alice)
        if server == "nginx":
            assert refused.status == 400 and b"The SSL certificate error" in refused.body
        else:
            assert "CERTIFICATE_REVOKED" in (refused.tls_error or ""), refused
    finally:
        process.close()
