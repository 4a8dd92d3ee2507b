"""Renewal reaches a real, running Nginx, Apache and HAProxy: `renew NAME` installs the successor into the
deployment and reloads it (the new serial is served); `deploy` run again leaves the server
alone when nothing changed, and renews the server certificate once less than a third of
its lifetime is left (time moved with the fixed clock), reloading it."""

from __future__ import annotations

import datetime as dt
import shutil
import ssl
import tempfile
import types
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.cli.app import main
from mtlskit.clock import FixedClock
from tests.support_deploy import EchoUpstream, ServerProcess, free_port, get, start_command, wait_for

pytestmark = pytest.mark.e2e


def _mtlskit(capsys, home: Path, *args) -> str:
    capsys.readouterr()
    code = main(["--home", str(home), *map(str, args)])
    captured = capsys.readouterr()
    assert code == 0, (args, captured.err)
    return captured.out + captured.err   # warnings (a server not reloaded) go to stderr


def _served_serial(port: int) -> int:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def _file_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


BINARIES = {"nginx": "nginx", "apache": "apache2", "haproxy": "haproxy"}


@pytest.fixture(scope="module", params=["nginx", "apache", "haproxy"])
def site(request):
    server_type = request.param
    if shutil.which(BINARIES[server_type]) is None:
        pytest.skip(f"{server_type} is not installed")
    base = Path(tempfile.mkdtemp(prefix="mtlskit-renew-"))
    base.chmod(0o755)
    home, certs, deploy_dir = base / "home", base / "certs" / "localhost", base / "deploy"
    upstream = EchoUpstream("renew")
    port = free_port()
    flags = ["deploy", server_type, "--name", "localhost", "--dir", deploy_dir, "--listen", f"127.0.0.1:{port}",
             "--upstream", upstream.url, "--standalone"]
    assert main(["--home", str(home), "init", "--no-passphrase"]) == 0
    assert main(["--home", str(home), "crl"]) == 0
    assert main(["--home", str(home), "issue", "server", "localhost", "--ip", "127.0.0.1", "--days", "30",
                 "--out", str(certs)]) == 0
    assert main(["--home", str(home), *map(str, flags), "--cert-dir", str(certs), "--check"]) == 0
    assert main(["--home", str(home), "issue", "client", "alice", "--out", str(base / "alice")]) == 0
    server = ServerProcess(start_command(server_type, deploy_dir), port, base / "server.log")
    yield types.SimpleNamespace(server=server_type, base=base, home=home, certs=certs, deploy=deploy_dir,
                                port=port, flags=flags,
                                client=(base / "alice" / "cert.pem", base / "alice" / "key.pem"))
    server.close()
    upstream.close()
    shutil.rmtree(base, ignore_errors=True)


def _told_to_restart(site, out: str) -> bool:
    """HAProxy's admin socket applies CRLs but not (yet: the zero-downtime reload work) a new
    server certificate: then the operator must be told, in the outcome line, to restart."""
    if site.server == "haproxy" and "restart it to apply" in out:
        return True
    return False


def test_deploy_again_with_nothing_changed_does_not_reload(site, capsys):
    served = _served_serial(site.port)
    out = _mtlskit(capsys, site.home, *site.flags)
    assert "no file changed; nothing to reload" in out
    assert "renewed the server certificate" not in out
    assert _served_serial(site.port) == served


def test_renew_installs_into_the_deployment_and_reloads(site, capsys):
    old = _file_serial(site.certs / "cert.pem")
    out = _mtlskit(capsys, site.home, "renew", "localhost")
    new = _file_serial(site.certs / "cert.pem")
    assert new != old
    assert _file_serial(site.deploy / "server.pem") == new
    if _told_to_restart(site, out):
        return
    assert f"{site.server} {site.deploy}: updated" in out
    assert wait_for(lambda: _served_serial(site.port) == new)
    response = get(site.port, "/", site.certs / "ca.pem", site.client)   # still serves mTLS
    assert response.status == 200


def test_deploy_renews_when_less_than_a_third_is_left_and_reloads(site, capsys, monkeypatch):
    before = _file_serial(site.certs / "cert.pem")
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=25)    # 5 of 30 days left
    monkeypatch.setattr("mtlskit.cli.common.SystemClock", lambda: FixedClock(later))
    out = _mtlskit(capsys, site.home, *site.flags)
    assert "renewed the server certificate localhost: 4 of its 30 days left (less than a third)" in out \
        or "renewed the server certificate localhost: 5 of its 30 days left (less than a third)" in out
    renewed = _file_serial(site.certs / "cert.pem")
    assert renewed != before and _file_serial(site.deploy / "server.pem") == renewed
    if not _told_to_restart(site, out):
        assert wait_for(lambda: _served_serial(site.port) == renewed), out
    # and once renewed, deploying again at that time changes nothing
    again = _mtlskit(capsys, site.home, *site.flags)
    assert "renewed the server certificate" not in again and "nothing to reload" in again
