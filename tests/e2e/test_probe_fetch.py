"""`probe` and `verify` without the CA home: the client certificate's own CRL (CDP) and
OCSP responder (AIA), served by a real `mtlskit serve`, name `client-cert-revoked`; a
CRL that expires within a day is flagged (crl_days = 1 in this CA home).

Servers are nginx, apache2 and haproxy configured by hand (tests/support_verify.py):
one listener with the CRL, one without.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mtlskit.cli.app import main
from tests.support_ocsp import ServeProcess
from tests import support_verify
from tests.support_verify import free_port, run_cli, start_server, stop

pytestmark = pytest.mark.e2e

SERVERS = ["nginx", "apache", "haproxy"]
BINARIES = {"nginx": "nginx", "apache": "apache2", "haproxy": "haproxy"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A CA home whose certificates name http://127.0.0.1:PORT (CRL and OCSP), `serve` on PORT."""
    base = tmp_path_factory.mktemp("fetch-lab")
    home, port = base / "home", free_port()
    run_cli("--home", home, "init", "--no-passphrase", "--name", "Fetch Lab", "--public-url",
            f"http://127.0.0.1:{port}")
    with open(home / "mtlskit.toml", "a") as settings:
        settings.write("crl_days = 1\nroot_crl_days = 1\n")  # every CRL of this home expires within a day
    run_cli("--home", home, "issue", "server", "localhost", "--dns", "localhost", "--ip", "127.0.0.1",
            "--out", base / "server")
    for name in ("alice", "mallory"):
        run_cli("--home", home, "issue", "client", name, "--out", base / name)
    run_cli("--home", home, "revoke", "mallory", "--reason", "keyCompromise")
    run_cli("--home", home, "crl", "--bundle", "--out", base / "crl.pem")
    serve = ServeProcess(home, port)
    pki = support_verify.TestPki(home=home, root=home / "ca/root.pem", intermediate=home / "ca/intermediate.pem",
                  server_fullchain=base / "server/fullchain.pem", server_key=base / "server/key.pem",
                  crl=base / "crl.pem")
    yield pki, base, serve
    serve.stop()


@pytest.fixture(scope="module", params=SERVERS)
def server(request, lab, tmp_path_factory):
    kind = request.param
    if shutil.which(BINARIES[kind]) is None:
        pytest.skip(f"{BINARIES[kind]} is not installed")
    srv = start_server(kind, lab[0], tmp_path_factory.mktemp(kind), "1.3")
    yield srv
    stop(srv)


def probe(capsys, lab, port: int, client: str, *extra: str) -> tuple[int, dict]:
    pki, base, _ = lab
    capsys.readouterr()
    rc = main(["--home", str(base / "no-ca-here"), "probe", f"https://127.0.0.1:{port}/", "--ca", str(pki.root),
               "--cert", str(base / client / "fullchain.pem"), "--key", str(base / client / "key.pem"),
               "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)


def codes(report: dict, level: str) -> list[str]:
    return [f["code"] for f in report["findings"] if f["level"] == level]


def test_refused_revoked_client_is_named_from_its_own_crl_and_ocsp(server, lab, capsys):
    rc, report = probe(capsys, lab, server.port, "mallory")
    assert (rc, report["ok"]) == (1, False)
    assert codes(report, "error")[0] == "client-cert-revoked", report
    assert "crl-unavailable" not in codes(report, "warning")


def test_nginx_needs_the_fetch_to_name_the_revocation(server, lab, capsys):
    """nginx answers every certificate error with the same 400 page: only the fetched CRL
    or OCSP answer tells a revocation apart (Apache and HAProxy send certificate_revoked)."""
    if server.kind != "nginx":
        pytest.skip("apache and haproxy name the revocation in their alert")
    rc, report = probe(capsys, lab, server.port, "mallory", "--no-fetch")
    assert codes(report, "error") == ["client-cert-rejected"], report


def test_accepted_revoked_client_is_flagged_from_its_own_crl(server, lab, capsys):
    rc, report = probe(capsys, lab, server.nocrl_port, "mallory")
    assert (rc, report["ok"], report["http_status"]) == (0, True, 200), report
    revoked = next(f for f in report["findings"] if f["code"] == "client-cert-revoked")
    assert revoked["level"] == "warning" and "keyCompromise".lower() in revoked["message"].replace("-", "").lower()


def test_valid_client_gets_ocsp_good_and_the_crl_expiring_warning(server, lab, capsys):
    rc, report = probe(capsys, lab, server.port, "alice")
    assert (rc, report["ok"], report["http_status"]) == (0, True, 200), report
    assert "ocsp-good" in codes(report, "info")
    expiring = [f for f in report["findings"] if f["code"] == "crl-expiring"]
    assert expiring and all(f["level"] == "warning" for f in expiring)
    assert "mtlskit serve" in expiring[0]["hint"] and "mtlskit crl" in expiring[0]["hint"]


def test_verify_without_home_fetches_the_crl(lab, capsys):
    pki, base, _ = lab
    capsys.readouterr()
    rc = main(["--home", str(base / "no-ca-here"), "verify", str(base / "mallory/fullchain.pem"),
               "--ca", str(pki.root), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and codes(report, "error") == ["revoked"], report
    assert "crl-expiring" in codes(report, "warning")
    rc = main(["--home", str(base / "no-ca-here"), "verify", str(base / "alice/fullchain.pem"),
               "--ca", str(pki.root), "--json", "--no-fetch"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and "revocation-not-checked" in codes(report, "info"), report


def test_unreachable_crl_and_ocsp_are_clear_warnings(lab, tmp_path, capsys):
    """A certificate naming a port where nothing answers: the probe says what it could not
    fetch and goes on; it does not fail because of it."""
    pki, base, _ = lab
    dead = tmp_path / "dead-home"
    run_cli("--home", dead, "init", "--no-passphrase", "--name", "Dead Lab", "--public-url",
            f"http://127.0.0.1:{free_port()}")
    run_cli("--home", dead, "issue", "client", "ghost", "--out", tmp_path / "ghost")
    capsys.readouterr()
    rc = main(["--home", str(base / "no-ca-here"), "verify", str(tmp_path / "ghost/fullchain.pem"),
               "--ca", str(dead / "ca/root.pem"), "--json", "--ocsp"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report
    crl = [f["message"] for f in report["findings"] if f["code"] == "crl-unavailable"]
    assert "ocsp-unavailable" in codes(report, "warning") and "crl-unavailable" in codes(report, "warning")
    leaf = next(m for m in crl if "'ghost'" in m)
    assert "/crl/intermediate.crl could not be fetched: Connection refused" in leaf
