"""`probe --home` against deployments that home recorded (`mtlskit deploy ... --standalone`),
run by the real nginx, apache2 and haproxy: the probe reads the dates of the CRL file the
deployment serves from. A CRL that expires within a day is a warning saying how to keep it
fresh; an expired one is the first cause of the refusal (every client is refused).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import types
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtlskit.cli.app import main
from tests.support_deploy import EchoUpstream, ServerProcess, free_port, start_command
from tests.support_verify import run_cli

pytestmark = pytest.mark.e2e

SERVERS = ["nginx", "apache", "haproxy"]
BINARIES = {"nginx": "nginx", "apache": "apache2", "haproxy": "haproxy"}


@pytest.fixture(scope="module")
def lab():
    # Apache's workers (nobody) read the deployment directory: not pytest's 0700 tmp.
    base = Path(tempfile.mkdtemp(prefix="mtlskit-probe-deploy-"))
    base.chmod(0o755)
    home = base / "home"
    run_cli("--home", home, "init", "--no-passphrase", "--name", "Deploy Lab")
    with open(home / "mtlskit.toml", "a") as settings:
        settings.write("crl_days = 1\nroot_crl_days = 1\n")  # every CRL of this home expires within a day
    run_cli("--home", home, "crl")
    run_cli("--home", home, "issue", "client", "alice", "--out", base / "alice")
    upstream = EchoUpstream("default")
    yield types.SimpleNamespace(base=base, home=home, upstream=upstream)
    upstream.close()
    shutil.rmtree(base, ignore_errors=True)


def _deploy(lab, server: str, directory: Path):
    port = free_port()
    run_cli("--home", lab.home, "deploy", server, "--name", "localhost", "--dir", directory,
            "--listen", f"127.0.0.1:{port}", "--upstream", lab.upstream.url, "--standalone",
            "--dns", "localhost", "--ip", "127.0.0.1")
    return port


def _start(server: str, directory: Path, port: int):
    return ServerProcess(start_command(server, directory), port, directory / "stdout.log")


def _expired_crl(home: Path) -> bytes:
    """The intermediate's CRL as a server would hold it two days after its nextUpdate."""
    ca = x509.load_pem_x509_certificate((home / "ca/intermediate.pem").read_bytes())
    key = serialization.load_pem_private_key((home / "ca/intermediate.key.pem").read_bytes(), None)
    now = dt.datetime.now(dt.timezone.utc)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
           .last_update(now - dt.timedelta(days=3)).next_update(now - dt.timedelta(days=2))
           .add_extension(x509.CRLNumber(1), False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
           .sign(key, hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module", params=SERVERS)
def deployed(request, lab):
    server = request.param
    if shutil.which(BINARIES[server]) is None:
        pytest.skip(f"{BINARIES[server]} is not installed")
    fresh_dir, stale_dir = lab.base / f"{server}-fresh", lab.base / f"{server}-stale"
    fresh_port, stale_port = _deploy(lab, server, fresh_dir), _deploy(lab, server, stale_dir)
    crl_file = stale_dir / "crl.pem"
    crl_file.write_bytes(_expired_crl(lab.home) + _other_crls(crl_file.read_bytes(), lab.home))
    fresh, stale = _start(server, fresh_dir, fresh_port), _start(server, stale_dir, stale_port)
    yield types.SimpleNamespace(server=server, fresh=fresh_port, stale=stale_port, stale_dir=stale_dir)
    fresh.close()
    stale.close()


def _other_crls(bundle: bytes, home: Path) -> bytes:
    """The CRLs of the bundle not issued by the intermediate (the root's)."""
    inter = x509.load_pem_x509_certificate((home / "ca/intermediate.pem").read_bytes()).subject
    marker = b"-----BEGIN X509 CRL-----"
    blocks = [marker + part for part in bundle.split(marker)[1:]]
    return b"".join(b for b in blocks if x509.load_pem_x509_crl(b).issuer != inter)


def probe(capsys, lab, port: int, *client: str) -> tuple[int, dict]:
    capsys.readouterr()
    args = ["--home", str(lab.home), "probe", f"https://127.0.0.1:{port}/", "--ca", str(lab.home / "ca/root.pem"),
            "--json"]
    if client:
        args += ["--cert", str(lab.base / client[0] / "fullchain.pem"), "--key", str(lab.base / client[0] / "key.pem")]
    rc = main(args)
    return rc, json.loads(capsys.readouterr().out)


def test_a_deployment_crl_expiring_within_a_day_is_a_warning(deployed, lab, capsys):
    rc, report = probe(capsys, lab, deployed.fresh, "alice")
    assert (rc, report["ok"], report["http_status"]) == (0, True, 200), report
    expiring = [f for f in report["findings"] if f["code"] == "crl-expiring"]
    assert expiring and {f["level"] for f in expiring} == {"warning"}
    assert f"{deployed.server}-fresh/crl.pem (deployment localhost)" in expiring[0]["message"]
    assert "mtlskit serve" in expiring[0]["hint"] and "cron" in expiring[0]["hint"]


def test_an_expired_deployment_crl_is_the_first_cause(deployed, lab, capsys):
    rc, report = probe(capsys, lab, deployed.stale, "alice")
    assert (rc, report["ok"]) == (1, False), report
    assert report["http_status"] != 200  # the server refused a client with nothing wrong
    first = next(f for f in report["findings"] if f["level"] == "error")
    assert first["code"] == "crl-expired", report
    assert str(deployed.stale_dir / "crl.pem") in first["message"]


def test_an_expired_deployment_crl_fails_the_probe_without_a_certificate_too(deployed, lab, capsys):
    rc, report = probe(capsys, lab, deployed.stale)
    assert rc == 1 and "crl-expired" in [f["code"] for f in report["findings"] if f["level"] == "error"]
