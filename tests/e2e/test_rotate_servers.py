"""Issue 12, intermediate rotation against the real Nginx, Apache and HAProxy: during the
overlap a client of the old intermediate and a client of the new one are both accepted,
and a revoked client of the old intermediate is refused, by CRL (all three servers) and
by OCSP through `mtlskit serve` (Nginx and Apache); both chains verify with openssl."""

from __future__ import annotations

import shutil
import tempfile
import types
from pathlib import Path

import pytest

from mtlskit.cli.app import main
from tests.judges import openssl
from tests.support_deploy import EchoUpstream, ServerProcess, free_port, get, start_command, wait_for
from tests.support_ocsp import ServeProcess

pytestmark = pytest.mark.e2e


def _mtlskit(home: Path, *args) -> None:
    assert main(["--home", str(home), *map(str, args)]) == 0, args


@pytest.fixture(scope="module")
def upstream():
    echo = EchoUpstream("default")
    yield echo
    echo.close()


def _rotated_site(server: str, upstream, revocation: str):
    """A CA with clients of the old intermediate, deployed, its server running; then the
    intermediate is rotated while it runs, a client of the new one issued, and one client
    of the old intermediate revoked."""
    base = Path(tempfile.mkdtemp(prefix=f"mtlskit-rotate-{server}-{revocation}-"))
    base.chmod(0o755)   # Apache's unprivileged children read mod_lua's script
    home, clients, deploy = base / "home", base / "clients", base / "deploy"
    serve_port, port = free_port(), free_port()
    _mtlskit(home, "init", "--no-passphrase", "--public-url", f"http://127.0.0.1:{serve_port}")
    _mtlskit(home, "deploy", server, "--name", "localhost", "--dns", "localhost", "--ip", "127.0.0.1",
             "--dir", deploy, "--listen", f"127.0.0.1:{port}", "--upstream", upstream.url,
             "--standalone", "--check", "--revocation", revocation)
    for name in ("old", "old-revoked"):
        _mtlskit(home, "issue", "client", name, "--out", clients / name)
    process = ServerProcess(start_command(server, deploy), port, base / "stdout.log")
    site = types.SimpleNamespace(server=server, port=port, home=home, deploy=deploy, base=base,
                                 ca=clients / "old" / "ca.pem", serve=None, process=process,
                                 cert=lambda n: (clients / n / "fullchain.pem", clients / n / "key.pem"),
                                 clients=clients)
    try:
        if revocation == "ocsp":
            site.serve = ServeProcess(home, serve_port, "--ocsp-refresh-seconds", "1")
        assert get(port, "/", site.ca, site.cert("old")).status == 200
        _mtlskit(home, "rotate", "intermediate")
        _mtlskit(home, "issue", "client", "new", "--out", clients / "new")
        _mtlskit(home, "revoke", "old-revoked")
        if revocation == "ocsp":   # a running serve picks the new CA up at its next upkeep (30 s);
            site.serve.stop()      # started again here so the test does not wait for it
            site.serve = ServeProcess(home, serve_port, "--ocsp-refresh-seconds", "1")
    except BaseException:
        _close(site)
        raise
    return site


def _close(site) -> None:
    site.process.close()
    if site.serve is not None:
        site.serve.stop()
    shutil.rmtree(site.base, ignore_errors=True)


@pytest.fixture(scope="module", params=["nginx", "apache", "haproxy"])
def crl_site(request, upstream):
    site = _rotated_site(request.param, upstream, "crl")
    yield site
    _close(site)


@pytest.fixture(scope="module", params=["nginx", "apache"])
def ocsp_site(request, upstream):
    site = _rotated_site(request.param, upstream, "ocsp")
    yield site
    _close(site)


def _status(site, name: str) -> int | None:
    return get(site.port, "/", site.ca, site.cert(name)).status


def test_crl_clients_of_old_and_new_are_accepted_and_the_revoked_one_refused(crl_site):
    assert crl_site.deploy.joinpath("client-ca.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 3
    assert wait_for(lambda: _status(crl_site, "new") == 200), crl_site.server
    assert _status(crl_site, "old") == 200
    assert wait_for(lambda: _status(crl_site, "old-revoked") != 200), crl_site.server


def test_ocsp_clients_of_old_and_new_are_accepted_and_the_revoked_one_refused(ocsp_site):
    assert wait_for(lambda: _status(ocsp_site, "new") == 200), ocsp_site.server
    assert _status(ocsp_site, "old") == 200
    assert wait_for(lambda: _status(ocsp_site, "old-revoked") != 200), ocsp_site.server


def test_both_chains_verify_with_openssl_against_the_deployed_bundles(crl_site):
    for name, ok in (("old", True), ("new", True), ("old-revoked", False)):
        leaf = crl_site.clients / name / "cert.pem"
        checked = openssl("verify", "-crl_check_all", "-CRLfile", crl_site.deploy / "crl.pem",
                          "-CAfile", crl_site.deploy / "client-ca.pem", leaf)
        assert (checked.returncode == 0) is ok, (name, checked.stdout + checked.stderr)
        chain = openssl("verify", "-CAfile", crl_site.ca, "-untrusted", crl_site.clients / name / "chain.pem", leaf)
        assert chain.returncode == 0, chain.stdout + chain.stderr
