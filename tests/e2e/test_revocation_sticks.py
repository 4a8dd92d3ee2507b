"""Issue 10, doors 4 and 6, against the real servers: a revocation made while the
deployed server is stopped is written into the deployment and refuses the client as soon
as the server starts; a reload never starts a server; `deploy` again with other options
reloads the running server (and only when its files changed)."""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
import types
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.cli.app import main
from mtlskit.deploy.bundle import load_crls
from tests.support_deploy import (EchoUpstream, ServerProcess, client_context, free_port, get, resume_get,
                                  start_command, wait_for)

pytestmark = pytest.mark.e2e


def _mtlskit(home: Path, *args) -> None:
    assert main(["--home", str(home), *map(str, args)]) == 0, args


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _revoked_in(crl_pem: Path, serial: int) -> bool:
    return any(crl.get_revoked_certificate_by_serial_number(serial) is not None
               for crl in load_crls(crl_pem.read_bytes()))


@pytest.fixture(scope="module")
def upstream():
    echo = EchoUpstream("default")
    yield echo
    echo.close()


@pytest.fixture(scope="module", params=["nginx", "apache", "haproxy"])
def site(request, upstream):
    server = request.param
    base = Path(tempfile.mkdtemp(prefix=f"mtlskit-sticks-{server}-"))
    base.chmod(0o755)   # Apache's unprivileged children read mod_lua's script
    home, clients, deploy = base / "home", base / "clients", base / "deploy"
    _mtlskit(home, "init", "--no-passphrase")
    port = free_port()
    deploy_args = ["deploy", server, "--name", "localhost", "--dns", "localhost", "--ip", "127.0.0.1",
                   "--dir", deploy, "--listen", f"127.0.0.1:{port}", "--upstream", upstream.url,
                   "--standalone", "--check"]
    _mtlskit(home, *deploy_args)           # a fresh CA: deploy publishes the CRLs it needs
    for name in ("alice", "victim", "second"):
        _mtlskit(home, "issue", "client", name, "--out", clients / name)
    ns = types.SimpleNamespace(
        server=server, port=port, home=home, deploy=deploy, base=base, deploy_args=deploy_args,
        ca=clients / "alice" / "ca.pem",
        cert=lambda n: (clients / n / "fullchain.pem", clients / n / "key.pem"),
        serial=lambda n: x509.load_pem_x509_certificate((clients / n / "cert.pem").read_bytes()).serial_number,
        start=lambda: ServerProcess(start_command(server, deploy), port, base / "stdout.log"))
    yield ns
    shutil.rmtree(base, ignore_errors=True)


def _refused(site, name: str) -> bool:
    return get(site.port, "/", site.ca, site.cert(name)).status != 200


def _status_at(site, name: str, version: ssl.TLSVersion) -> int | None:
    """GET / with ``name``'s certificate at exactly one TLS version; None when refused in TLS."""
    ctx = client_context(site.ca, site.cert(name))
    ctx.minimum_version = ctx.maximum_version = version
    outcome, _, _ = resume_get(site.port, ctx)
    return outcome.status


def test_a_revocation_made_while_the_server_is_stopped_sticks(site, capsys):
    process = site.start()
    try:
        assert get(site.port, "/", site.ca, site.cert("victim")).status == 200
    finally:
        process.close()
    capsys.readouterr()

    assert main(["--home", str(site.home), "revoke", "victim"]) == 0
    out, err = capsys.readouterr()

    assert not _listening(site.port)                           # door 6: the reload started nothing
    lines = [line for line in out.splitlines() if str(site.deploy) in line]
    assert len(lines) == 1 and "not running" in lines[0], out
    assert "warning" not in err and "restored" not in out + err
    assert _revoked_in(site.deploy / "crl.pem", site.serial("victim"))   # never rolled back
    process = site.start()
    try:
        assert wait_for(lambda: _refused(site, "victim"))
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            assert _status_at(site, "victim", version) != 200, version
            assert _status_at(site, "alice", version) == 200, version
    finally:
        process.close()


def test_revoke_signals_the_running_server(site, capsys):
    process = site.start()
    try:
        assert get(site.port, "/", site.ca, site.cert("second")).status == 200
        capsys.readouterr()
        assert main(["--home", str(site.home), "revoke", "second"]) == 0
        out, err = capsys.readouterr()
        assert f"deployment {site.server} {site.deploy}: updated" in out and "warning" not in err
        assert wait_for(lambda: _refused(site, "second"))
        assert get(site.port, "/", site.ca, site.cert("alice")).status == 200
    finally:
        process.close()


def test_redeploy_with_other_options_reloads_the_running_server_only_on_change(site, capsys):
    """HAProxy too: the standalone configuration runs master-worker, reloaded by USR2."""
    process = site.start()
    try:
        assert get(site.port, "/public", site.ca, None).status != 200     # mode required
        capsys.readouterr()
        _mtlskit(site.home, *site.deploy_args, "--mode", "optional", "--require-on", "/admin")
        out, _ = capsys.readouterr()
        assert "reload: updated" in out, out
        assert wait_for(lambda: get(site.port, "/public", site.ca, None).status == 200)
        _mtlskit(site.home, *site.deploy_args, "--mode", "optional", "--require-on", "/admin")
        out, _ = capsys.readouterr()
        assert "reload: unchanged" in out, out
    finally:
        process.close()
