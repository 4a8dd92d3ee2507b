"""The agent reaches a real, running Nginx: `agent --once`, run when the deployed server
certificate is due, renews it, installs it into the deployment and reloads the server (the
new serial is served), logging a line for each; run again, it does
nothing. Time moved with the fixed clock."""

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
from tests.support_deploy import EchoUpstream, ServerProcess, free_port, start_command, wait_for

pytestmark = pytest.mark.e2e


def _served_serial(port: int) -> int:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def _file_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


@pytest.fixture(scope="module")
def site():
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    base = Path(tempfile.mkdtemp(prefix="mtlskit-agent-"))
    base.chmod(0o755)
    home, certs, deploy_dir = base / "home", base / "certs" / "localhost", base / "deploy"
    upstream = EchoUpstream("agent")
    port = free_port()
    assert main(["--home", str(home), "init", "--no-passphrase"]) == 0
    assert main(["--home", str(home), "crl"]) == 0
    assert main(["--home", str(home), "issue", "server", "localhost", "--ip", "127.0.0.1", "--days", "30",
                 "--out", str(certs)]) == 0
    assert main(["--home", str(home), "deploy", "nginx", "--name", "localhost", "--dir", str(deploy_dir),
                 "--listen", f"127.0.0.1:{port}", "--upstream", upstream.url, "--standalone",
                 "--cert-dir", str(certs), "--check"]) == 0
    server = ServerProcess(start_command("nginx", deploy_dir), port, base / "nginx.log")
    yield types.SimpleNamespace(base=base, home=home, certs=certs, deploy=deploy_dir, port=port)
    server.close()
    upstream.close()
    shutil.rmtree(base, ignore_errors=True)


def test_agent_once_renews_the_deployed_certificate_and_nginx_serves_it(site, capsys, monkeypatch):
    old = _file_serial(site.certs / "cert.pem")
    assert _served_serial(site.port) == old
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=22)     # past 2/3 + the jitter window
    monkeypatch.setattr("mtlskit.cli.common.SystemClock", lambda: FixedClock(later))
    capsys.readouterr()
    code = main(["--home", str(site.home), "agent", "--once"])
    out = capsys.readouterr().out
    assert code == 0, out
    new = _file_serial(site.certs / "cert.pem")
    assert new != old and f"renewed: localhost serial:{old:x}" in out
    assert f"deployed: localhost serial:{new:x}" in out and "updated" in out
    assert _file_serial(site.deploy / "server.pem") == new
    assert wait_for(lambda: _served_serial(site.port) == new)
    # (not asked over mTLS here: the successor starts 22 days from now, the client's clock is real)
    capsys.readouterr()
    assert main(["--home", str(site.home), "agent", "--once"]) == 0
    assert "renewed:" not in capsys.readouterr().out


def test_agent_once_renews_a_certificate_deploy_issued_itself(site, capsys, monkeypatch):
    port, deploy_dir = free_port(), site.base / "deploy-own"
    upstream = EchoUpstream("agent-own")
    assert main(["--home", str(site.home), "deploy", "nginx", "--name", "own.localhost", "--dir", str(deploy_dir),
                 "--listen", f"127.0.0.1:{port}", "--upstream", upstream.url, "--standalone", "--check"]) == 0
    server = ServerProcess(start_command("nginx", deploy_dir), port, site.base / "nginx-own.log")
    try:
        old = _served_serial(port)
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=65)   # 90-day server default
        monkeypatch.setattr("mtlskit.cli.common.SystemClock", lambda: FixedClock(later))
        capsys.readouterr()
        code = main(["--home", str(site.home), "agent", "--once"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert f"renewed: own.localhost serial:{old:x}" in out
        new = _file_serial(deploy_dir / "server.pem")
        assert new != old and wait_for(lambda: _served_serial(port) == new)
    finally:
        server.close()
        upstream.close()
