"""The whole path through mtlskit itself, against the real servers:
init -> crl -> deploy --standalone --check -> start -> clients issued by mtlskit are
judged (valid, other CA, expired, server-only EKU, none) -> `mtlskit revoke` -> the
deployment's CRL is rewritten and reloaded -> refused, with no hand edit."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import types
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.cli.app import main
from mtlskit.clock import FixedClock
from mtlskit.config import load_settings
from mtlskit.deploy import headers as H
from mtlskit.issue.bundle import BundleOptions
from mtlskit.issue.issuer import IssueRequest
from mtlskit.issue.profiles import get_profile
from mtlskit.issue.workflow import issue_batch
from mtlskit.pki.keys import KeyType
from mtlskit.service import Service
from tests.support_deploy import EchoUpstream, ServerProcess, free_port, get, start_command, wait_for

pytestmark = pytest.mark.e2e

REFUSALS = {   # client -> (nginx's 400 body, the TLS alert apache and haproxy send)
    None: (b"No required SSL certificate was sent", "CERTIFICATE_REQUIRED"),
    "other-ca": (b"The SSL certificate error", "UNKNOWN_CA"),
    "expired": (b"The SSL certificate error", "CERTIFICATE_EXPIRED"),
    "server-only": (b"The SSL certificate error", "UNSUPPORTED_CERTIFICATE"),
}


def _mtlskit(home: Path, *args) -> None:
    assert main(["--home", str(home), *map(str, args)]) == 0, args


def _issue_expired(home: Path, name: str, out: Path) -> None:
    """A client certificate that expired yesterday, through mtlskit's own issuance pipeline."""
    past = FixedClock(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    service = Service.open(load_settings(home), past)
    issue_batch(service, service.authority(lambda: None), [IssueRequest(get_profile("client"), name, days=1)],
                [out], KeyType.parse("ec-p256"), BundleOptions())


@pytest.fixture(scope="module")
def world():
    # World-readable like /etc/apache2, so Apache's unprivileged children can read mod_lua's script.
    base = Path(tempfile.mkdtemp(prefix="mtlskit-life-"))
    base.chmod(0o755)
    other = base / "other-home"
    _mtlskit(other, "init", "--no-passphrase", "--name", "Other CA")
    _mtlskit(other, "issue", "client", "alice", "--out", base / "other-ca")
    ns = types.SimpleNamespace(base=base, upstream=EchoUpstream("default"))
    yield ns
    ns.upstream.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=["nginx", "apache", "haproxy"])
def site(request, world):
    server, base = request.param, world.base / request.param
    home, clients = base / "home", base / "clients"
    _mtlskit(home, "init", "--no-passphrase")
    _mtlskit(home, "crl", "--bundle", "--out", base / "bundle.pem")
    port = free_port()
    _mtlskit(home, "deploy", server, "--name", "localhost", "--dns", "localhost", "--ip", "127.0.0.1",
             "--dir", base / "deploy", "--listen", f"127.0.0.1:{port}", "--upstream", world.upstream.url,
             "--standalone", "--check")
    for name in ("alice", "victim"):
        _mtlskit(home, "issue", "client", name, "--out", clients / name)
    _mtlskit(home, "issue", "server", "srv.example.com", "--out", clients / "server-only")
    _issue_expired(home, "old", clients / "expired")
    shutil.copytree(world.base / "other-ca", clients / "other-ca")
    process = ServerProcess(start_command(server, base / "deploy"), port, base / "stdout.log")
    yield types.SimpleNamespace(server=server, port=port, home=home, deploy=base / "deploy",
                                ca=clients / "alice" / "ca.pem",
                                cert=lambda n: (clients / n / "fullchain.pem", clients / n / "key.pem"),
                                leaf=lambda n: x509.load_pem_x509_certificate((clients / n / "cert.pem").read_bytes()))
    process.close()


def test_mtlskit_client_is_accepted_with_its_identity(site):
    outcome = get(site.port, "/", site.ca, site.cert("alice"), headers={H.SUBJECT_DN: "CN=forged"})
    assert outcome.status == 200, outcome
    leaf = site.leaf("alice")
    assert outcome.header(H.VERIFY) == ["SUCCESS"]
    assert outcome.header(H.SUBJECT_DN) == [leaf.subject.rfc4514_string()]
    assert int(outcome.header(H.SERIAL)[0], 16) == leaf.serial_number
    assert x509.load_pem_x509_certificate(urllib.parse.unquote(outcome.header(H.CERT)[0]).encode()) == leaf


@pytest.mark.parametrize("client", [None, "other-ca", "expired", "server-only"])
def test_mtlskit_bad_clients_are_refused(site, client):
    outcome = get(site.port, "/", site.ca, site.cert(client) if client else None)
    body, alert = REFUSALS[client]
    if site.server == "nginx":
        assert outcome.status == 400 and body in outcome.body, outcome
    else:
        assert outcome.status is None and alert in outcome.tls_error, outcome


def test_mtlskit_revoke_reaches_the_running_server(site, capsys):
    assert get(site.port, "/", site.ca, site.cert("victim")).status == 200
    capsys.readouterr()
    assert main(["--home", str(site.home), "revoke", "victim"]) == 0
    out, err = capsys.readouterr()
    assert f"deployment {site.server} {site.deploy}: updated" in out and "warning" not in err

    assert wait_for(lambda: get(site.port, "/", site.ca, site.cert("victim")).status != 200)
    refused = get(site.port, "/", site.ca, site.cert("victim"))
    if site.server == "nginx":
        assert refused.status == 400 and b"The SSL certificate error" in refused.body
    else:
        assert "CERTIFICATE_REVOKED" in (refused.tls_error or ""), refused
    assert get(site.port, "/", site.ca, site.cert("alice")).status == 200
