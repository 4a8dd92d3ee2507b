"""OCSP stapling of the deployed server certificate against a real `mtlskit serve`
responder (issue 10), judged by `openssl s_client -status`: nginx (ssl_stapling),
apache (SSLUseStapling) and haproxy (`server.pem.ocsp`, fetched by deploy and
refreshed through the admin socket by `refresh_staple`)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import tempfile
import types
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.cli.app import main
from mtlskit.deploy.bundle import haproxy_serial
from mtlskit.deploy.stapling import check_response, refresh_staple, staple_path
from tests.support_deploy import ServerProcess, free_port, start_command, wait_for
from tests.support_ocsp import ServeProcess

pytestmark = pytest.mark.e2e


def _mtlskit(capsys, home: Path, *args) -> str:
    capsys.readouterr()
    assert main(["--home", str(home), *map(str, args)]) == 0, args
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def world():
    base = Path(tempfile.mkdtemp(prefix="mtlskit-staple-"))
    base.chmod(0o755)
    port = free_port()
    home = base / "home"
    assert main(["--home", str(home), "init", "--no-passphrase", "--public-url", f"http://127.0.0.1:{port}"]) == 0
    assert main(["--home", str(home), "crl"]) == 0
    assert main(["--home", str(home), "issue", "client", "alice", "--out", str(base / "alice")]) == 0
    serve = ServeProcess(home, port, log=base / "serve.log")
    yield types.SimpleNamespace(base=base, home=home, serve=serve, ocsp_url=f"{serve.url}/ocsp",
                                alice=base / "alice")
    serve.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=["nginx", "apache", "haproxy"])
def site(request, world):
    server, port = request.param, free_port()
    directory = world.base / server
    code = main(["--home", str(world.home), "deploy", server, "--name", "localhost", "--dir", str(directory),
                 "--listen", f"127.0.0.1:{port}", "--standalone", "--json"])
    assert code == 0
    process = ServerProcess(start_command(server, directory), port, world.base / f"{server}.log")
    leaf = x509.load_pem_x509_certificates((directory / "server.pem").read_bytes())[0]
    yield types.SimpleNamespace(server=server, port=port, directory=directory, leaf=leaf)
    process.close()


def s_client_status(port: int, world) -> str:
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-status", "-servername", "localhost",
         "-CAfile", str(world.alice / "ca.pem"), "-cert", str(world.alice / "cert.pem"),
         "-key", str(world.alice / "key.pem")],
        input="", capture_output=True, text=True, timeout=20)
    return proc.stdout + proc.stderr


def _stapled_good(text: str, leaf: x509.Certificate) -> bool:
    return ("OCSP Response Status: successful" in text and "Cert Status: good" in text
            and f"Serial Number: {haproxy_serial(leaf.serial_number)}" in text)


def test_the_server_staples_a_good_response_for_its_own_certificate(site, world):
    # nginx and apache fetch on the first handshakes and staple once they have the answer.
    assert wait_for(lambda: _stapled_good(s_client_status(site.port, world), site.leaf),
                    timeout=20, interval=0.3, times=1), s_client_status(site.port, world)[:3000]


def test_haproxy_staple_file_comes_from_the_responder_and_is_refreshed(site, world):
    if site.server != "haproxy":
        pytest.skip("nginx and apache fetch their own OCSP responses")
    path = staple_path(site.directory / "server.pem")
    issuer = x509.load_pem_x509_certificates((site.directory / "server.pem").read_bytes())[1]
    now = dt.datetime.now(dt.timezone.utc)
    assert check_response(path.read_bytes(), site.leaf, issuer, now)
    message = refresh_staple(site.directory / "server.pem", world.ocsp_url, now, site.directory / "admin.sock")
    assert message.startswith("stapled a fresh OCSP response through"), message
    assert _stapled_good(s_client_status(site.port, world), site.leaf)


def test_haproxy_staple_is_renewed_by_the_crl_refresh_and_by_serve_when_old(site, world, capsys):
    if site.server != "haproxy":
        pytest.skip("nginx and apache fetch their own OCSP responses")
    import os

    from mtlskit.config import load_settings
    from mtlskit.deploy.refresh import refresh_staples
    from mtlskit.service import Service

    path = staple_path(site.directory / "server.pem")
    os.utime(path, (0, 0))                       # as if fetched long ago
    _mtlskit(capsys, world.home, "crl")          # a CRL change refreshes every deployment
    assert path.stat().st_mtime > 0              # ... the staple with it
    service = Service.open(load_settings(world.home))
    assert refresh_staples(service) == []       # fresh: nothing to do
    os.utime(path, (0, 0))
    [line] = refresh_staples(service)            # serve's periodic pass: too old, fetched again
    assert "stapled a fresh OCSP response through" in line and str(site.directory) in line
    assert _stapled_good(s_client_status(site.port, world), site.leaf)


def test_deploy_says_what_became_of_stapling(world, tmp_path, capsys):
    report = json.loads(_mtlskit(capsys, world.home, "deploy", "haproxy", "--name", "localhost",
                                 "--dir", world.base / "json", "--listen", "127.0.0.1:9", "--json"))
    assert report["staple"] is True and report["stapling"].startswith("stapled the OCSP response in")
    # The responder is down: the deploy still succeeds, says so, and leaves no stale file.
    home = tmp_path / "home"
    _mtlskit(capsys, home, "init", "--no-passphrase", "--public-url", f"http://127.0.0.1:{free_port()}")
    _mtlskit(capsys, home, "crl")
    out = _mtlskit(capsys, home, "deploy", "haproxy", "--name", "localhost", "--dir", tmp_path / "d",
                   "--listen", "127.0.0.1:9")
    assert "OCSP stapling: not stapled yet: the OCSP responder http://127.0.0.1:" in out
    assert not staple_path(tmp_path / "d" / "server.pem").exists()


def test_without_a_public_url_nothing_is_stapled(tmp_path, capsys):
    home = tmp_path / "home"
    _mtlskit(capsys, home, "init", "--no-passphrase")
    base = Path(tempfile.mkdtemp(prefix="mtlskit-nostaple-"))
    base.chmod(0o755)
    try:
        port = free_port()
        out = _mtlskit(capsys, home, "deploy", "nginx", "--name", "localhost", "--dir", base / "n",
                       "--listen", f"127.0.0.1:{port}", "--standalone", "--revocation", "none")
        assert "OCSP stapling" not in out
        assert "ssl_stapling" not in (base / "n" / "mtls-server.conf").read_text()
        process = ServerProcess(start_command("nginx", base / "n"), port, base / "n.log")
        try:
            text = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-status"],
                                  input="", capture_output=True, text=True, timeout=20).stdout
        finally:
            process.close()
        assert "OCSP response: no response sent" in text
    finally:
        shutil.rmtree(base, ignore_errors=True)
