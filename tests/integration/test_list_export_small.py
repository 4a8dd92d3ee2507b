"""What a new user meets first (issue 11, point 8): bounded durations, validated filters,
a not-yet-valid status, `export p12` that never creates or overwrites by surprise, and
`-` as stdout for `--out`."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from mtlskit.clock import FixedClock
from mtlskit.issue.bundle import BundleOptions
from mtlskit.issue.issuer import IssueRequest, SanRequest
from mtlskit.issue.profiles import get_profile
from mtlskit.issue.workflow import issue_batch
from mtlskit.pki.keys import KeyType
from tests.support_crl import no_passphrase, open_service


@pytest.fixture
def issued(tmp_path, ca_home, cli):
    out = tmp_path / "alice"
    assert cli("--home", ca_home, "issue", "client", "alice-small", "--out", out).code == 0
    return out


def issue_in_the_future(home, profile: str, name: str, directory, days_ahead: int = 10):
    """A certificate whose not_before lies ``days_ahead`` days from now (issued by a clock
    set then), as a CA whose clock runs ahead, or a backdated renewal, would leave."""
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days_ahead)
    service = open_service(home, FixedClock(later))
    sans = SanRequest(dns=(name,)) if profile == "server" else SanRequest()
    [record] = issue_batch(service, service.authority(no_passphrase),
                           [IssueRequest(get_profile(profile), name, sans)], [directory],
                           KeyType.parse("ec-p256"), BundleOptions())
    return record


# --- durations and filters ---------------------------------------------------------

@pytest.mark.parametrize("duration", ["1000000000d", "99999999999999w", "9" * 5000, "36526d"])
def test_a_huge_expiring_duration_is_refused_in_one_line(duration, ca_home, cli):
    result = cli("--home", ca_home, "list", "--expiring", duration)
    assert result.code == 2, result
    assert result.err.startswith("error: ") and "Traceback" not in result.err
    assert "at most" in result.err and len(result.err.strip().splitlines()) <= 2


@pytest.mark.parametrize("duration", ["٣٠d", "-5d", "1.5d", "5y"])
def test_durations_are_ascii_digits_and_a_known_unit(duration, ca_home, cli):
    result = cli("--home", ca_home, "list", "--expiring", duration)
    assert result.code == 2 and "is not a duration" in result.err


def test_the_largest_duration_is_accepted(ca_home, cli):
    result = cli("--home", ca_home, "list", "--expiring", "36525d", "--json")
    assert result.code == 0, result.err
    assert isinstance(json.loads(result.out), list)


def test_an_unknown_profile_is_refused_naming_the_choices(ca_home, cli):
    result = cli("--home", ca_home, "list", "--profile", "nope")
    assert result.code == 2
    assert "unknown profile 'nope'" in result.err
    for choice in ("server", "client", "peer", "ocsp", "root-ca", "intermediate-ca"):
        assert choice in result.err


def test_an_unknown_status_names_every_choice(ca_home, cli):
    result = cli("--home", ca_home, "list", "--status", "sleepy")
    assert result.code == 2
    for choice in ("valid", "not-yet-valid", "expired", "revoked"):
        assert choice in result.err


# --- not yet valid -----------------------------------------------------------------

def test_a_certificate_not_valid_yet_is_listed_as_such(fresh_home, tmp_path, cli):
    record = issue_in_the_future(fresh_home, "client", "tomorrow", tmp_path / "tomorrow")
    assert cli("--home", fresh_home, "issue", "client", "today", "--out", tmp_path / "today").code == 0
    listed = {r["name"]: r["status"] for r in json.loads(cli("--home", fresh_home, "list", "--json").out)}
    assert listed == {"tomorrow": "not-yet-valid", "today": "valid", "root": "valid", "intermediate": "valid"}
    table = cli("--home", fresh_home, "list").out
    assert any("tomorrow" in line and "not-yet-valid" in line for line in table.splitlines())
    only = json.loads(cli("--home", fresh_home, "list", "--status", "not-yet-valid", "--json").out)
    assert [r["serial"] for r in only] == [record.serial_hex]
    valid = json.loads(cli("--home", fresh_home, "list", "--status", "valid", "--json").out)
    assert {r["name"] for r in valid} == {"today", "root", "intermediate"}
    shown = cli("--home", fresh_home, "show", "tomorrow")
    assert "status: not-yet-valid" in shown.out
    expiring = json.loads(cli("--home", fresh_home, "list", "--expiring", "3650d", "--json").out)
    assert "tomorrow" not in {r["name"] for r in expiring}   # what is not valid yet is not "expiring"
    assert "today" in {r["name"] for r in expiring}


def test_deploy_does_not_reuse_a_server_certificate_not_valid_yet(fresh_home, tmp_path, cli):
    future = issue_in_the_future(fresh_home, "server", "api.example.com", tmp_path / "issued")
    args = ["--home", fresh_home, "deploy", "haproxy", "--name", "api.example.com", "--listen", ":8443",
            "--upstream", "127.0.0.1:8000", "--revocation", "none", "--json", "--dir", tmp_path / "d"]
    result = cli(*args, "--cert-dir", tmp_path / "issued")
    assert result.code == 2 and "valid server certificate" in result.err, result
    report = json.loads(cli(*args).out)
    assert report["certificate"]["issued"] is True
    assert report["certificate"]["serial"] != future.serial_hex
    leaf = x509.load_pem_x509_certificates((tmp_path / "d" / "server.pem").read_bytes())[0]
    assert leaf.not_valid_before_utc <= dt.datetime.now(dt.timezone.utc)


def test_revoke_by_name_reaches_a_certificate_not_valid_yet(fresh_home, tmp_path, cli):
    record = issue_in_the_future(fresh_home, "client", "early", tmp_path / "early")
    result = cli("--home", fresh_home, "revoke", "early", "--json")
    assert result.code == 0, result.err
    assert [r["serial"] for r in json.loads(result.out)["revoked"]] == [record.serial_hex]


# --- export p12 --------------------------------------------------------------------

def _export(cli, issued, out, *extra):
    return cli("export", "p12", "--cert", issued / "cert.pem", "--key", issued / "key.pem", "--out", out, *extra)


def test_export_refuses_a_missing_directory(issued, tmp_path, cli):
    out = tmp_path / "no" / "such" / "dir" / "a.p12"
    result = _export(cli, issued, out)
    assert result.code == 2 and "does not exist" in result.err and str(out.parent) in result.err, result
    assert not (tmp_path / "no").exists()


def test_export_never_overwrites_without_force(issued, tmp_path, cli):
    out = tmp_path / "a.p12"
    out.write_bytes(b"precious")
    result = _export(cli, issued, out)
    assert result.code == 2 and "already exists" in result.err and "--force" in result.err, result
    assert out.read_bytes() == b"precious" and not (tmp_path / "a.p12.pass").exists()
    forced = _export(cli, issued, out, "--force")
    assert forced.code == 0, forced.err
    password = (tmp_path / "a.p12.pass").read_bytes().strip()
    assert pkcs12.load_pkcs12(out.read_bytes(), password).cert is not None


def test_export_never_overwrites_a_password_file_without_force(issued, tmp_path, cli):
    out = tmp_path / "a.p12"
    (tmp_path / "a.p12.pass").write_bytes(b"old password\n")
    result = _export(cli, issued, out)
    assert result.code == 2 and "a.p12.pass" in result.err and "--force" in result.err, result
    assert not out.exists() and (tmp_path / "a.p12.pass").read_bytes() == b"old password\n"


def test_export_to_stdout_needs_a_password_file(issued, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused = _export(cli, issued, "-")
    assert refused.code == 2 and "--password-file" in refused.err, refused
    assert not (tmp_path / "-").exists() and not (tmp_path / "-.pass").exists()


def test_export_to_a_terminal_is_refused(issued, tmp_path, cli, monkeypatch):
    import sys

    secret = _password(tmp_path)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    refused = _export(cli, issued, "-", "--password-file", secret)
    assert refused.code == 2 and "terminal" in refused.err, refused


def _password(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("bundle password\n")
    secret.chmod(0o600)
    return secret


def _run(tmp_path, *args):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLSKIT_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "mtlskit", *map(str, args)], capture_output=True,
                          cwd=tmp_path, env=env, timeout=60, stdin=subprocess.DEVNULL)


def test_export_to_stdout_writes_the_bundle_bytes(issued, tmp_path):
    done = _run(tmp_path, "export", "p12", "--cert", issued / "cert.pem", "--key", issued / "key.pem",
                "--password-file", _password(tmp_path), "--out", "-")
    assert done.returncode == 0, done.stderr
    bundle = pkcs12.load_pkcs12(done.stdout, b"bundle password")
    assert bundle.key is not None and bundle.cert is not None
    assert not (tmp_path / "-").exists() and b"wrote" in done.stderr


# --- crl --out - ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["pem", "der"])
def test_crl_out_dash_is_stdout(fmt, fresh_home, tmp_path):
    done = _run(tmp_path, "--home", fresh_home, "crl", "--out", "-", "--format", fmt)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "-").exists()
    on_disk = x509.load_der_x509_crl((fresh_home / "crl" / "intermediate.crl").read_bytes())
    loaded = x509.load_pem_x509_crl(done.stdout) if fmt == "pem" else x509.load_der_x509_crl(done.stdout)
    assert loaded == on_disk
    assert b"CRL of intermediate" in done.stderr


def test_crl_der_to_a_terminal_is_refused_with_dash_too(fresh_home, tmp_path, cli, monkeypatch):
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    refused = cli("--home", fresh_home, "crl", "--out", "-", "--format", "der")
    assert refused.code == 2 and "terminal" in refused.err
    assert not (tmp_path / "-").exists()


# --- sign --out -, issue --out - ------------------------------------------------------

def test_sign_out_dash_is_stdout(ca_home, tmp_path, cli, monkeypatch):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dash-client")]))
           .sign(key, hashes.SHA256()))
    (tmp_path / "req.csr").write_bytes(csr.public_bytes(Encoding.PEM))
    monkeypatch.chdir(tmp_path)
    result = cli("--home", ca_home, "sign", "req.csr", "--profile", "client", "--out", "-")
    assert result.code == 0, result.err
    assert x509.load_pem_x509_certificate(result.out.encode()).public_key() == key.public_key()
    assert not (tmp_path / "-").exists()


def test_issue_out_dash_is_refused(ca_home, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("--home", ca_home, "issue", "client", "dash-dir", "--out", "-")
    assert result.code == 2 and "--out" in result.err and "directory" in result.err, result
    assert not (tmp_path / "-").exists()
    assert "dash-dir" not in cli("--home", ca_home, "list").out


def test_export_without_hard_links_still_writes_and_never_overwrites(issued, tmp_path, cli, monkeypatch):
    import errno

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "a.p12"
    result = _export(cli, issued, out)
    assert result.code == 0, result.err
    password = (tmp_path / "a.p12.pass").read_bytes().strip()
    assert pkcs12.load_pkcs12(out.read_bytes(), password).key is not None
    again = _export(cli, issued, out)
    assert again.code == 2 and "already exists" in again.err
    assert (tmp_path / "a.p12.pass").read_bytes().strip() == password
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary left
