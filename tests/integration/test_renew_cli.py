"""`mtlskit renew`: the successor keeps everything of the certificate it replaces, its files
replace the old ones (kept as *.prev) in the directory recorded at issue, and every refusal
is one line with nothing written."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from mtlskit.clock import FixedClock
from mtlskit.issue.bundle import BundleOptions
from mtlskit.issue.issuer import IssueRequest, LeafTemplate, record_of
from mtlskit.issue.profiles import get_profile
from mtlskit.issue.workflow import issue_batch
from mtlskit.lifecycle.renew import renew_certificates, sign_renewal
from mtlskit.pki import names
from mtlskit.pki.keys import KeyType, generate_private_key
from tests.judges import openssl, pkilint
from tests.support_crl import no_passphrase, open_service

FILES = ("key.pem", "cert.pem", "chain.pem", "fullchain.pem", "ca.pem")


def _cert(directory: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())


def _sans(certificate: x509.Certificate) -> list:
    return names.sans_of(certificate)


def _lifetime(certificate: x509.Certificate) -> dt.timedelta:
    return certificate.not_valid_after_utc - certificate.not_valid_before_utc


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _renew(cli, home, *args):
    return cli("--home", home, "renew", *args)


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048", "ed25519"])
def test_renew_keeps_every_attribute_and_the_directory(fresh_home, tmp_path, cli, key_type):
    out = tmp_path / "alice"
    issued = cli("--home", fresh_home, "issue", "peer", "alice.example", "--dns", "alt.example", "--ip", "10.1.2.3",
                 "--email", "alice@example.org", "--uri", "spiffe://example.org/alice", "--org-unit", "Payments",
                 "--key-type", key_type, "--days", "40", "--out", out)
    assert issued.code == 0, issued.err
    before = _cert(out)
    old_key = (out / "key.pem").read_bytes()
    result = _renew(cli, fresh_home, "alice.example", "--json")
    assert result.code == 0, result.err
    [printed] = json.loads(result.out)
    after = _cert(out)
    assert printed["serial"] == format(after.serial_number, "x")
    assert printed["replaces"] == format(before.serial_number, "x")
    assert printed["directory"] == str(out)
    assert after.serial_number != before.serial_number
    assert after.subject == before.subject
    assert _sans(after) == _sans(before)
    assert _lifetime(after) == _lifetime(before)
    assert after.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        before.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert type(after.public_key()) is type(before.public_key())
    if hasattr(before.public_key(), "key_size"):
        assert after.public_key().key_size == before.public_key().key_size
    assert (out / "key.pem").read_bytes() != old_key           # a new key
    assert (out / "key.pem.prev").read_bytes() == old_key
    key = serialization.load_pem_private_key((out / "key.pem").read_bytes(), None)
    assert key.public_key().public_numbers() == after.public_key().public_numbers() if key_type != "ed25519" \
        else key.public_key().public_bytes_raw() == after.public_key().public_bytes_raw()
    service = open_service(fresh_home)
    old, new = service.inventory.by_name("alice.example")
    assert old.superseded_by == after.serial_number and new.superseded_by is None
    assert new.directory == str(out) and new.key_type == old.key_type and new.profile == "peer"


def test_files_are_the_issue_set_with_prev_and_modes(fresh_home, tmp_path, cli):
    out = tmp_path / "bob"
    assert cli("--home", fresh_home, "issue", "client", "bob", "--out", out).code == 0
    previous = _snapshot(out)
    assert _renew(cli, fresh_home, "bob").code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, *(f + ".prev" for f in FILES)])
    for name, data in previous.items():
        assert (out / (name + ".prev")).read_bytes() == data
    assert stat.S_IMODE(os.stat(out / "key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "key.pem.prev").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "cert.pem").st_mode) == 0o644
    assert (out / "fullchain.pem").read_bytes() == (out / "cert.pem").read_bytes() + (out / "chain.pem").read_bytes()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".partial")]
    # renewed again: .prev holds the set just replaced, nothing piles up
    second = _snapshot(out)
    assert _renew(cli, fresh_home, "bob").code == 0
    assert (out / "cert.pem.prev").read_bytes() == second["cert.pem"]
    assert len(list(out.iterdir())) == 2 * len(FILES)


def test_the_successor_verifies_and_lints_clean(fresh_home, tmp_path, cli):
    out = tmp_path / "web"
    assert cli("--home", fresh_home, "issue", "server", "web.example", "--ip", "192.0.2.7", "--out", out).code == 0
    assert _renew(cli, fresh_home, "web.example").code == 0
    verified = openssl("verify", "-CAfile", out / "ca.pem", "-untrusted", out / "chain.pem", out / "cert.pem")
    assert verified.returncode == 0, verified.stderr
    assert pkilint("cert", out / "cert.pem") == ""


def test_p12_bundles_are_renewed_with_their_password(fresh_home, tmp_path, cli):
    from cryptography.hazmat.primitives.serialization import pkcs12

    out = tmp_path / "p12"
    assert cli("--home", fresh_home, "issue", "client", "phone", "--p12", "--out", out).code == 0
    password = (out / "bundle.pass").read_bytes().strip()
    assert _renew(cli, fresh_home, "phone").code == 0
    bundle = pkcs12.load_pkcs12((out / "bundle.p12").read_bytes(), password)
    assert bundle.cert.certificate == _cert(out)
    assert (out / "bundle.p12.prev").exists() and (out / "bundle.pass").read_bytes().strip() == password


def test_a_rich_subject_and_multi_valued_rdn_are_kept(fresh_home, tmp_path):
    """Subjects that `sign` or other tools made: O, OU, C, ST, L and a multi-valued RDN."""
    service = open_service(fresh_home)
    authority = service.authority(no_passphrase)
    subject = x509.Name([
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Berlin")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.LOCALITY_NAME, "Berlin")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example AG"),
                                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Ops")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "rich")]),
    ])
    template = LeafTemplate(authority, get_profile("client"), None, service.clock.now(), 30)
    key = generate_private_key(KeyType.EC_P384)
    sans = [x509.RFC822Name("rich@example.org")]
    record = record_of(template.sign(subject, sans, key.public_key()), "intermediate", "rich", "client", sans)
    service.inventory.add_certificates([record], service.clock.now())
    successor = sign_renewal(service, authority, record, generate_private_key(KeyType.EC_P384).public_key())
    certificate = x509.load_pem_x509_certificate(successor.pem.encode())
    assert certificate.subject == subject
    assert names.sans_of(certificate) == sans
    assert successor.directory is None
    assert service.inventory.get("intermediate", record.serial).superseded_by == successor.serial


def test_reuse_key_keeps_the_key(fresh_home, tmp_path, cli):
    out = tmp_path / "carol"
    assert cli("--home", fresh_home, "issue", "client", "carol", "--out", out).code == 0
    key = (out / "key.pem").read_bytes()
    assert _renew(cli, fresh_home, "carol", "--reuse-key").code == 0
    assert (out / "key.pem").read_bytes() == key
    assert (out / "cert.pem.prev").exists()


def test_out_writes_elsewhere_and_records_it(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "issue", "client", "dave", "--out", tmp_path / "dave").code == 0
    elsewhere = tmp_path / "moved" / "dave"
    assert _renew(cli, fresh_home, "dave", "--out", elsewhere).code == 0
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(FILES)
    assert open_service(fresh_home).inventory.by_name("dave")[-1].directory == str(elsewhere)


def test_revoke_name_after_renew_revokes_both(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "issue", "client", "erin", "--out", tmp_path / "erin").code == 0
    assert _renew(cli, fresh_home, "erin").code == 0
    assert cli("--home", fresh_home, "revoke", "erin").code == 0
    assert {r.status for r in open_service(fresh_home).inventory.by_name("erin")} == {"revoked"}


def test_revoke_old_revokes_with_reason_superseded_and_publishes(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "issue", "client", "fay", "--out", tmp_path / "fay").code == 0
    result = _renew(cli, fresh_home, "fay", "--revoke-old", "--json")
    assert result.code == 0, result.err
    old, new = open_service(fresh_home).inventory.by_name("fay")
    assert (old.status, old.revocation_reason) == ("revoked", "superseded")
    assert new.status == "valid"
    crls = [x509.load_pem_x509_crl(b"-----BEGIN X509 CRL-----" + part)
            for part in (fresh_home / "crl" / "bundle.pem").read_bytes().split(b"-----BEGIN X509 CRL-----")[1:]]
    revoked = {entry.serial_number for c in crls for entry in c}
    assert old.serial in revoked and new.serial not in revoked
    assert json.loads(result.out)[0]["old_revoked"] is True


def test_list_marks_superseded(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "issue", "client", "gus", "--out", tmp_path / "gus").code == 0
    assert _renew(cli, fresh_home, "gus").code == 0
    rows = [r for r in json.loads(cli("--home", fresh_home, "list", "--json").out) if r["name"] == "gus"]
    assert sorted((r["superseded_by"] is None) for r in rows) == [False, True]
    text = cli("--home", fresh_home, "list").out
    assert "valid, superseded" in text


def test_expiring_and_all_select_live_not_superseded(fresh_home, tmp_path, cli):
    for name, days in (("soon", "10"), ("later", "200")):
        assert cli("--home", fresh_home, "issue", "client", name, "--days", days, "--out", tmp_path / name).code == 0
    result = _renew(cli, fresh_home, "--expiring", "30d", "--json")
    assert [r["name"] for r in json.loads(result.out)] == ["soon"]
    again = _renew(cli, fresh_home, "--expiring", "30d", "--json")   # the successor lives 10 days too
    assert [r["name"] for r in json.loads(again.out)] == ["soon"]
    every = _renew(cli, fresh_home, "--all", "--json")
    assert sorted(r["name"] for r in json.loads(every.out)) == ["later", "soon"]   # no CA, nothing superseded
    nothing = _renew(cli, fresh_home, "--expiring", "1d")
    assert nothing.code == 0 and "nothing to renew" in nothing.out


# --- refusals: one line, the right exit code, nothing written --------------------------

def _expired(home: Path, directory: Path):
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)
    service = open_service(home, FixedClock(past))
    [record] = issue_batch(service, service.authority(no_passphrase),
                           [IssueRequest(get_profile("client"), "old", days=1)], [directory],
                           KeyType.EC_P256, BundleOptions())
    return record


def _state(home: Path, tmp_path: Path) -> tuple:
    service = open_service(home)
    files = {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "home" not in p.parts}
    return service.inventory.count(), files


@pytest.mark.parametrize("case, code, message", [
    ("unknown", 3, "nobody: no certificate with this name or serial"),
    ("revoked", 4, "is revoked (key-compromise); a revoked certificate is not renewed"),
    ("expired", 4, "an expired certificate is not renewed"),
    ("superseded", 4, "was already renewed: its successor is serial"),
    ("no-directory", 2, "no directory was recorded when it was issued"),
    ("ca", 4, "only server, client and peer certificates are renewed"),
    ("ambiguous", 4, "2 live certificates have this name"),
    ("reuse-missing", 2, "--reuse-key, but"),
    ("reuse-mismatch", 2, "is not the key of this certificate"),
    ("directory-gone", 2, "its directory"),
    ("out-many", 2, "--out names one directory"),
    ("nothing", 2, "give NAME|serial:HEX..., or --expiring DURATION, or --all"),
])
def test_refusals(fresh_home, tmp_path, cli, case, code, message):
    target = ["hal"]
    assert cli("--home", fresh_home, "issue", "client", "hal", "--out", tmp_path / "hal").code == 0
    args: list = []
    if case == "unknown":
        target = ["nobody"]
    elif case == "revoked":
        assert cli("--home", fresh_home, "revoke", "hal", "--reason", "key-compromise").code == 0
    elif case == "expired":
        target = [f"serial:{_expired(fresh_home, tmp_path / 'old').serial_hex}"]
    elif case == "superseded":
        old = open_service(fresh_home).inventory.by_name("hal")[0]
        assert _renew(cli, fresh_home, "hal").code == 0
        target = [f"serial:{old.serial_hex}"]
    elif case == "no-directory":
        service = open_service(fresh_home)
        record = service.inventory.by_name("hal")[0]
        key = generate_private_key(KeyType.EC_P256)
        template = LeafTemplate(service.authority(no_passphrase), get_profile("client"), None, service.clock.now(), 5)
        sans = [x509.RFC822Name("nodir@example.org")]
        other = record_of(template.sign(names.subject_name("nodir"), sans, key.public_key()), "intermediate",
                          "nodir", "client", sans)
        service.inventory.add_certificates([other], service.clock.now())
        target = ["nodir"]
    elif case == "ca":
        target = ["intermediate"]
    elif case == "ambiguous":
        assert cli("--home", fresh_home, "issue", "client", "hal", "--out", tmp_path / "hal2").code == 0
    elif case == "reuse-missing":
        (tmp_path / "hal" / "key.pem").unlink()
        args = ["--reuse-key"]
    elif case == "reuse-mismatch":
        (tmp_path / "hal" / "key.pem").write_bytes(
            generate_private_key(KeyType.EC_P256).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        args = ["--reuse-key"]
    elif case == "directory-gone":
        (tmp_path / "hal").rename(tmp_path / "elsewhere")
    elif case == "out-many":
        args = ["--all", "--out", tmp_path / "x"]
        target = []
    elif case == "nothing":
        target = []
    before = _state(fresh_home, tmp_path)
    result = _renew(cli, fresh_home, *target, *args)
    assert result.code == code, (result.out, result.err)
    first = result.err.splitlines()[0]
    assert first.startswith("error: ") and message in first, result.err
    if case in ("revoked", "expired"):
        assert "mtlskit issue" in result.err   # the hint says what to do instead
    assert _state(fresh_home, tmp_path) == before


def test_a_new_key_is_never_written_in_clear_over_an_encrypted_one(fresh_home, tmp_path, cli):
    password = tmp_path / "pw"
    password.write_text("correct horse\n")
    password.chmod(0o600)
    assert cli("--home", fresh_home, "issue", "client", "ivy", "--key-password-file", password,
               "--out", tmp_path / "ivy").code == 0
    before = _snapshot(tmp_path / "ivy")
    result = _renew(cli, fresh_home, "ivy")
    assert result.code == 2 and "encrypted" in result.err.splitlines()[0]
    assert _snapshot(tmp_path / "ivy") == before


def test_a_renewal_that_fails_before_the_record_leaves_the_old_files(fresh_home, tmp_path, monkeypatch):
    """The database refuses (here: the old one was renewed meanwhile by another process)."""
    from mtlskit.errors import PolicyViolation

    out = tmp_path / "jay"
    service = open_service(fresh_home)
    [record] = issue_batch(service, service.authority(no_passphrase), [IssueRequest(get_profile("client"), "jay")],
                           [out], KeyType.EC_P256, BundleOptions())
    before = _snapshot(out)
    sign_renewal(service, service.authority(no_passphrase), record, generate_private_key(KeyType.EC_P256).public_key())
    stale = dataclasses.replace(record)   # as read before the other process renewed it
    monkeypatch.setattr("mtlskit.lifecycle.renew.check_renewable", lambda old, now: None)
    monkeypatch.setattr("mtlskit.lifecycle.renew_files.workflow.check_renewable", lambda old, now: None)
    with pytest.raises(PolicyViolation, match="renewed meanwhile"):
        renew_certificates(service, service.authority(no_passphrase), [stale])
    assert _snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(service.inventory.by_name("jay")) == 2   # the other process's successor only


def test_a_certificate_deploy_issued_is_renewed_into_its_deployment(fresh_home, tmp_path, cli):
    deployed = tmp_path / "deploy"
    assert cli("--home", fresh_home, "deploy", "nginx", "--name", "api.example.com", "--dir", deployed,
               "--listen", "443", "--revocation", "none").code == 0
    [old] = open_service(fresh_home).inventory.by_name("api.example.com")
    assert old.directory is None                      # deploy's scratch directory is not recorded
    refused = _renew(cli, fresh_home, "api.example.com", "--reuse-key")
    assert refused.code == 4 and "`deploy` issued this one" in refused.err
    result = _renew(cli, fresh_home, "--expiring", "100d", "--json")
    assert result.code == 0, result.err
    [printed] = json.loads(result.out)
    assert printed["replaces"] == old.serial_hex and printed["directory"] is None
    [line] = printed["deployments"]
    assert line.startswith(f"nginx {deployed}: not-running: ")    # no nginx runs here: files only
    served = x509.load_pem_x509_certificates((deployed / "server.pem").read_bytes())[0]
    assert format(served.serial_number, "x") == printed["serial"]
    key = serialization.load_pem_private_key((deployed / "server.pem.key").read_bytes(), None)
    assert key.public_key().public_numbers() == served.public_key().public_numbers()
    assert stat.S_IMODE(os.stat(deployed / "server.pem.key").st_mode) == 0o600
    assert names.sans_of(served) == names.sans_of(x509.load_pem_x509_certificate(old.pem.encode()))


def test_an_unwritable_parent_is_refused_before_anything_is_signed(fresh_home, tmp_path, cli, monkeypatch):
    """(The tests run as root, for whom every directory is writable: access(2) is stubbed.)"""
    assert cli("--home", fresh_home, "issue", "client", "kim", "--out", tmp_path / "kim").code == 0
    before = _snapshot(tmp_path / "kim")
    monkeypatch.setattr("mtlskit.lifecycle.renew_checks.writable", lambda directory: False)
    result = _renew(cli, fresh_home, "kim")
    assert result.code == 2 and "cannot write beside" in result.err.splitlines()[0]
    assert _snapshot(tmp_path / "kim") == before
    assert len(open_service(fresh_home).inventory.by_name("kim")) == 1
