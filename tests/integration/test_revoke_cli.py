"""`mtlskit revoke` and `mtlskit crl` in-process: outputs, files, refusals and exit codes."""

from __future__ import annotations

import json

import pytest
from cryptography import x509

from tests.support_crl import cli, issue, make_home, serial_of


@pytest.fixture()
def pki(tmp_path):
    home = make_home(tmp_path)
    out = tmp_path / "out"
    alice, bob = issue(home, "client", "alice", out), issue(home, "client", "bob", out)
    return home, out, serial_of(alice), serial_of(bob)


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def test_revoke_prints_what_it_did(pki, capsys):
    home, _, alice, _ = pki
    assert cli(home, "revoke", "alice", "--reason", "key-compromise") == 0
    out = capsys.readouterr().out
    assert f"revoked {alice:x} (alice, intermediate): key-compromise" in out
    assert "CRL of intermediate: number 1, 1 revoked" in out


def test_revoke_json(pki, capsys):
    home, _, alice, bob = pki
    assert cli(home, "revoke", "alice", "bob", "--json", "--reason", "superseded",
               "--at", "2026-11-01T10:00:00Z") == 0
    data = json.loads(capsys.readouterr().out)
    assert sorted(r["serial"] for r in data["revoked"]) == sorted([f"{alice:x}", f"{bob:x}"])
    assert data["reason"] == "superseded" and data["revoked_at"].startswith("2026-11-01T10:00:00")
    assert data["crls"]["intermediate"]["entries"] == 2


def test_revoke_from_file(pki, tmp_path):
    home, _, alice, bob = pki
    listing = tmp_path / "revoke.txt"
    listing.write_text(f"# leavers\nalice\n\n  {bob:X}  \n")
    assert cli(home, "revoke", "--from", str(listing)) == 0
    crl = x509.load_der_x509_crl((home / "crl" / "intermediate.crl").read_bytes())
    assert {r.serial_number for r in crl} == {alice, bob}


@pytest.mark.parametrize("args, code, message", [
    (["revoke", "nobody"], 3, "error: nobody: no certificate with this name or serial"),
    (["revoke", "alice", "--reason", "stolen"], 2, "error: unknown revocation reason 'stolen'"),
    (["revoke", "alice", "--at", "yesterday"], 2, "error: 'yesterday' is not a time"),
    (["revoke", "alice", "--at", "2999-01-01"], 2, "is in the future"),
    (["revoke"], 2, "error: nothing to revoke"),
    (["revoke", "--from", "/nonexistent/list.txt"], 2, "error: cannot read target list file /nonexistent/list.txt"),
    (["crl", "--bundle", "--format", "der"], 2, "error: --bundle is PEM only"),
    (["crl", "--bundle", "--ca", "root"], 2, "error: --bundle and --ca cannot be used together"),
    (["crl", "--format", "xml"], 2, "error: unknown format 'xml'"),
    (["crl", "--ca", "sub"], 2, "error: unknown CA 'sub'"),
])
def test_refusals(pki, capsys, args, code, message):
    home = pki[0]
    assert cli(home, *args) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (home / "crl" / "intermediate.crl").exists()  # nothing was published


def test_bad_reason_lists_the_valid_words(pki, capsys):
    assert cli(pki[0], "revoke", "alice", "--reason", "lost") == 2
    err = capsys.readouterr().err
    assert "hint: choose one of: unspecified, key-compromise, ca-compromise" in err


def test_twice_exit_4(pki, capsys):
    home, _, alice, _ = pki
    assert cli(home, "revoke", "alice") == 0
    capsys.readouterr()
    assert cli(home, "revoke", "alice") == 4
    assert _lines(capsys.readouterr().err)[0] == f"error: {alice:x}: certificate is already revoked."
    assert cli(home, "revoke", f"{alice:x}") == 4


def test_a_name_with_two_live_certificates_revokes_both(pki, capsys):
    home, out, alice, _ = pki
    again = serial_of(issue(home, "client", "alice", out))
    capsys.readouterr()
    assert cli(home, "revoke", "alice") == 0
    out_text = capsys.readouterr().out
    assert f"{alice:x}" in out_text and f"{again:x}" in out_text


def test_crl_to_stdout_pem_and_files(pki, capsys):
    home = pki[0]
    assert cli(home, "crl") == 0
    captured = capsys.readouterr()
    crl = x509.load_pem_x509_crl(captured.out.encode())
    assert crl.issuer.rfc4514_string().endswith("Intermediate")
    assert "CRL of root: number 1" in captured.err and "CRL of intermediate: number 1" in captured.err
    for name in ("root", "intermediate"):
        der = x509.load_der_x509_crl((home / "crl" / f"{name}.crl").read_bytes())
        assert der == x509.load_pem_x509_crl((home / "crl" / f"{name}.pem").read_bytes())
        assert der.issuer.rfc4514_string().lower().endswith(name)


def test_crl_der_out_and_bundle_out(pki, tmp_path):
    home = pki[0]
    der_file, bundle_file = tmp_path / "root.crl", tmp_path / "nginx" / "crl.pem"
    assert cli(home, "crl", "--ca", "root", "--format", "der", "--out", str(der_file)) == 0
    root_crl = x509.load_der_x509_crl(der_file.read_bytes())
    assert root_crl.issuer.rfc4514_string().endswith("Root")
    assert cli(home, "crl", "--bundle", "--out", str(bundle_file)) == 0
    assert bundle_file.read_bytes().count(b"-----BEGIN X509 CRL-----") == 2
    number = root_crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    newer = x509.load_der_x509_crl((home / "crl" / "root.crl").read_bytes())
    assert newer.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 1


def test_crl_intermediate_on_single_tier_home_is_not_found(tmp_path, capsys):
    home = make_home(tmp_path, "--no-passphrase", "--no-intermediate")
    assert cli(home, "crl", "--ca", "intermediate") == 3
    assert "error: this CA has no intermediate CA" in capsys.readouterr().err
    assert cli(home, "crl", "--ca", "root", "--out", str(tmp_path / "r.pem")) == 0


def test_passphrase_protected_home(tmp_path, capsys, monkeypatch):
    secret = tmp_path / "pass.txt"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    home = make_home(tmp_path, "--passphrase-file", str(secret))
    assert cli(home, "issue", "client", "alice", "--out", str(tmp_path / "a"), "--passphrase-file", str(secret)) == 0
    monkeypatch.delenv("MTLSKIT_CA_PASSPHRASE", raising=False)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope\n")
    capsys.readouterr()
    assert cli(home, "revoke", "alice", "--passphrase-file", str(wrong)) == 2
    assert "error:" in capsys.readouterr().err
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", "correct horse battery staple")
    assert cli(home, "revoke", "alice") == 0
    assert cli(home, "crl", "--out", str(tmp_path / "c.pem")) == 0


def test_revoke_refreshes_a_recorded_nginx_deployment(pki, tmp_path, capsys):
    """With the deploy package: the deployed CRL bundle follows each revocation."""
    home, _, alice, bob = pki
    assert cli(home, "crl", "--out", str(tmp_path / "first.pem")) == 0
    site = tmp_path / "site"
    assert cli(home, "deploy", "nginx", "--name", "www", "--dir", str(site), "--listen", "127.0.0.1:8443",
               "--dns", "www.example.test", "--reload", "true") == 0
    deployed = [p for p in site.rglob("*.pem") if b"BEGIN X509 CRL" in p.read_bytes()]
    assert len(deployed) == 1
    capsys.readouterr()
    assert cli(home, "revoke", "alice", "--reason", "key-compromise") == 0
    out = capsys.readouterr().out
    assert f"deployment nginx {site}: updated" in out
    crl_pem = deployed[0].read_bytes()
    assert crl_pem == (home / "crl" / "bundle.pem").read_bytes()
    bundle_crls = [x509.load_pem_x509_crl(b"-----BEGIN" + part) for part in crl_pem.split(b"-----BEGIN")[1:]]
    revoked = {entry.serial_number for crl in bundle_crls for entry in crl}
    assert alice in revoked and bob not in revoked


def test_a_failed_deployment_refresh_is_a_warning_not_a_failure(pki, tmp_path, capsys):
    home, _, alice, _ = pki
    assert cli(home, "crl", "--out", str(tmp_path / "first.pem")) == 0
    site = tmp_path / "site"
    assert cli(home, "deploy", "nginx", "--name", "www", "--dir", str(site), "--listen", "127.0.0.1:8443",
               "--dns", "www.example.test", "--reload", "false") == 0
    capsys.readouterr()
    assert cli(home, "revoke", "alice") == 0  # the revocation and the CRL stand
    err = capsys.readouterr().err
    assert f"warning: deployment nginx {site}: reload failed ('false' exited with 1" in err
    crl = x509.load_der_x509_crl((home / "crl" / "intermediate.crl").read_bytes())
    assert alice in {entry.serial_number for entry in crl}


def test_crl_der_to_stdout(pki, capsysbinary):
    home, _, alice, _ = pki
    assert cli(home, "revoke", "alice") == 0
    capsysbinary.readouterr()
    assert cli(home, "crl", "--format", "der") == 0
    crl = x509.load_der_x509_crl(capsysbinary.readouterr().out)
    assert [entry.serial_number for entry in crl] == [alice]
