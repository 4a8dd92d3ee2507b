"""Issue 12, an offline root: with the root key exported and removed, everything that
needs only the intermediate works (issue, revoke, the intermediate's CRL, serve's OCSP);
the root's CRL and rotation refuse in one line that says how to bring the key back; the
root's CRL lives root_crl_days, and routine publications leave it alone while fresh."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp as cocsp

from mtlskit.api.wiring import build_worker
from mtlskit.cli.app import main
from mtlskit.clock import FixedClock
from mtlskit.config import load_settings
from mtlskit.publish import crls
from mtlskit.publish.refresher import CrlRefresher
from mtlskit.service import Service
from tests.support_ocsp import request_der

PASSPHRASE = "correct horse battery"


@pytest.fixture
def home(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", PASSPHRASE)
    home = tmp_path / "home"
    assert cli("--home", home, "init").code == 0
    assert cli("--home", home, "issue", "client", "alice", "--out", tmp_path / "alice").code == 0
    assert cli("--home", home, "crl", "--out", tmp_path / "first.crl").code == 0
    return home


@pytest.fixture
def offline(home, tmp_path, cli):
    """The home with its root key exported to tmp_path/root.key and removed."""
    result = cli("--home", home, "root", "export-key", "--out", tmp_path / "root.key", "--remove")
    assert result.code == 0, result.err
    assert not (home / "ca" / "root.key.pem").exists()
    return home


def _root_crl_number(home: Path) -> int:
    der = (home / "crl" / "root.crl").read_bytes()
    return x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _one_error_line(result) -> str:
    lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]


def test_export_writes_the_stored_key_0600_and_never_overwrites(home, tmp_path, cli):
    out = tmp_path / "root.key"
    assert cli("--home", home, "root", "export-key", "--out", out).code == 0
    assert out.read_bytes() == (home / "ca" / "root.key.pem").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in out.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    out.write_bytes(b"something else")
    result = cli("--home", home, "root", "export-key", "--out", out, "--remove")
    assert result.code == 4 and "already exists" in _one_error_line(result)
    assert out.read_bytes() == b"something else"
    assert (home / "ca" / "root.key.pem").exists()  # nothing removed


def test_remove_refuses_when_the_copy_does_not_open(home, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", "not the passphrase")
    result = cli("--home", home, "root", "export-key", "--out", tmp_path / "root.key", "--remove")
    assert result.code == 2 and "passphrase" in _one_error_line(result)
    assert (home / "ca" / "root.key.pem").exists()


def test_without_the_root_key_leaves_are_issued_and_revoked(offline, tmp_path, cli):
    root_number = _root_crl_number(offline)
    assert cli("--home", offline, "issue", "client", "bob", "--out", tmp_path / "bob").code == 0
    result = cli("--home", offline, "revoke", "alice")
    assert result.code == 0, result.err
    assert "CRL of intermediate" in result.out and "CRL of root" not in result.out
    result = cli("--home", offline, "crl", "--bundle", "--out", tmp_path / "bundle.pem")
    assert result.code == 0, result.err
    assert "warning" not in result.err  # the root CRL is fresh: nothing to say
    assert _root_crl_number(offline) == root_number
    bundle = (tmp_path / "bundle.pem").read_bytes()
    assert bundle.count(b"BEGIN X509 CRL") == 2


def test_without_the_root_key_the_root_crl_and_rotation_refuse_in_one_line(offline, tmp_path, cli):
    before = sorted(p.name for p in (offline / "ca").iterdir())
    for args in (["crl", "--ca", "root", "--out", tmp_path / "root.crl"], ["rotate", "intermediate"]):
        result = cli("--home", offline, *args)
        assert result.code == 2, (args, result.err)
        line = _one_error_line(result)
        assert "root CA key" in line and "not on this machine" in line
        assert "root import-key" in result.err
    assert sorted(p.name for p in (offline / "ca").iterdir()) == before
    assert not (tmp_path / "root.crl").exists()


def test_import_checks_the_key_and_brings_the_root_back(offline, tmp_path, cli, make_home):
    other = make_home()   # another CA's root key is refused
    (tmp_path / "other.key").write_bytes((other / "ca" / "root.key.pem").read_bytes())
    (tmp_path / "other.key").chmod(0o600)
    result = cli("--home", offline, "root", "import-key", tmp_path / "other.key")
    assert result.code == 2 and "not the key of this root" in _one_error_line(result)
    assert not (offline / "ca" / "root.key.pem").exists()

    assert cli("--home", offline, "root", "import-key", tmp_path / "root.key").code == 0
    key = offline / "ca" / "root.key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    result = cli("--home", offline, "root", "import-key", tmp_path / "root.key")
    assert result.code == 4 and "already" in _one_error_line(result)
    result = cli("--home", offline, "crl", "--ca", "root", "--out", tmp_path / "root.crl")
    assert result.code == 0, result.err


def test_serve_answers_ocsp_for_the_intermediate_without_the_root_key(offline):
    clock = FixedClock(dt.datetime.now(dt.timezone.utc))
    service = Service.open(load_settings(offline), clock)
    worker = build_worker(service, service.authority(lambda: PASSPHRASE.encode()))
    assert sorted(worker.source.cas) == ["intermediate"]
    cas = service.ca_certificates()
    alice = service.inventory.find_one("alice")[0]
    leaf = x509.load_pem_x509_certificate(alice.pem.encode())
    response = cocsp.load_der_ocsp_response(worker.source.respond(request_der(leaf, cas["intermediate"])).body)
    assert response.response_status == cocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == cocsp.OCSPCertStatus.GOOD


def test_the_refresher_skips_a_fresh_root_crl_and_says_when_it_needs_the_key(offline, caplog):
    clock = FixedClock(dt.datetime.now(dt.timezone.utc))
    service = Service.open(load_settings(offline), clock)
    refresher = CrlRefresher(service, service.authority(lambda: PASSPHRASE.encode()))
    clock.advance(dt.timedelta(days=4))
    assert refresher.publish_due() == ["intermediate"]
    assert "root" not in caplog.text
    clock.advance(dt.timedelta(days=183))   # past half of the root CRL's 365 days
    assert refresher.publish_due() == ["intermediate"]
    notes = [r.getMessage() for r in caplog.records if "root CRL" in r.getMessage()]
    assert len(notes) == 1 and "needs the root key" in notes[0] and "import-key" in notes[0]


def test_the_root_crl_lives_root_crl_days(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", PASSPHRASE)
    home = tmp_path / "home"
    assert cli("--home", home, "init", "--root-crl-days", "100").code == 0
    assert "root_crl_days = 100" in (home / "mtlskit.toml").read_text()
    assert cli("--home", home, "crl", "--out", tmp_path / "i.crl").code == 0
    service = Service.open(load_settings(home))
    state = crls.published(service)
    now = dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=99) < state["root"]["next_update"] - now <= dt.timedelta(days=100)
    assert state["intermediate"]["next_update"] - now <= dt.timedelta(days=7)
    assert cli("--home", home, "crl", "--ca", "root", "--root-crl-days", "400",
               "--out", tmp_path / "r.crl").code == 0
    root = x509.load_pem_x509_crl((tmp_path / "r.crl").read_bytes())
    assert root.next_update_utc - root.last_update_utc == dt.timedelta(days=400)


def test_a_single_ca_keeps_the_short_crl(make_home):
    home = make_home("--no-intermediate")
    service = Service.open(load_settings(home))
    assert crls.crl_lifetime_days(service, "root") == 7   # the root issues leaves here


def test_root_crl_days_is_validated(tmp_path):
    (tmp_path / "mtlskit.toml").write_text("root_crl_days = 0\n")
    with pytest.raises(Exception, match="root_crl_days"):
        load_settings(tmp_path)


def test_without_the_root_key_a_certificate_is_renewed(offline, tmp_path, cli):
    before = x509.load_pem_x509_certificate((tmp_path / "alice" / "cert.pem").read_bytes())
    result = cli("--home", offline, "renew", "alice")
    assert result.code == 0, result.err
    after = x509.load_pem_x509_certificate((tmp_path / "alice" / "cert.pem").read_bytes())
    assert after.serial_number != before.serial_number and after.issuer == before.issuer


def test_revoke_and_crl_say_in_one_line_when_the_root_crl_is_due_and_its_key_offline(offline, tmp_path, cli):
    assert cli("--home", offline, "issue", "client", "carol", "--out", tmp_path / "carol").code == 0
    # a root CRL with one day left, against root_crl_days = 365: past half its lifetime, due
    assert cli("--home", offline, "root", "import-key", tmp_path / "root.key").code == 0
    assert cli("--home", offline, "crl", "--ca", "root", "--root-crl-days", "1", "--out", tmp_path / "r.crl").code == 0
    (offline / "ca" / "root.key.pem").unlink()
    for args in (["revoke", "carol"], ["crl", "--out", tmp_path / "i.crl"]):
        result = cli("--home", offline, *args)
        assert result.code == 0, result.err
        warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and "root CRL expires" in warnings[0] and "import-key" in warnings[0], result.err


def test_removing_the_key_signs_a_fresh_root_crl_first_so_deploy_works_without_it(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", PASSPHRASE)
    home = tmp_path / "home"
    assert cli("--home", home, "init").code == 0   # no CRL published yet
    result = cli("--home", home, "root", "export-key", "--out", tmp_path / "root.key", "--remove")
    assert result.code == 0 and "signed the root CRL" in result.out, result.err
    assert (home / "crl" / "root.crl").exists() and not (home / "ca" / "root.key.pem").exists()
    deploy = tmp_path / "deploy"
    result = cli("--home", home, "deploy", "nginx", "--name", "localhost", "--dns", "localhost",
                 "--dir", deploy, "--listen", "127.0.0.1:18444", "--upstream", "http://127.0.0.1:9", "--standalone")
    assert result.code == 0, result.err
    assert (deploy / "crl.pem").read_bytes().count(b"BEGIN X509 CRL") == 2


def test_revoking_an_intermediate_needs_the_root_and_changes_nothing_without_it(offline, cli):
    result = cli("--home", offline, "revoke", "name:intermediate")
    assert result.code == 2, result.err
    assert "root CA key" in _one_error_line(result)
    shown = cli("--home", offline, "show", "name:intermediate", "--json")
    assert '"status": "valid"' in shown.out


@pytest.mark.parametrize("days", ["0", "3651", "-5"])
def test_crl_root_crl_days_out_of_range_is_refused(home, cli, days, tmp_path):
    result = cli("--home", home, "crl", "--ca", "root", "--root-crl-days", days, "--out", tmp_path / "r.crl")
    assert result.code == 2 and "--root-crl-days must be between 1 and 3650" in result.err
    assert not (tmp_path / "r.crl").exists()
