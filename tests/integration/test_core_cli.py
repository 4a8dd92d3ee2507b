"""The core commands in-process: init, issue, sign, list, show, inspect, export; and refusals."""

import json
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlskit.ca.home import CaFiles


def _csr(key, cn="csr-client", sans=(), ca=False):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_init_writes_encrypted_keys_with_private_modes(tmp_path, cli, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", "correct horse battery")
    result = cli("--home", home, "init", "--name", "Enc CA")
    assert result.code == 0, result.err
    for name in ("root", "intermediate"):
        key_file = home / "ca" / f"{name}.key.pem"
        assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert b"correct horse" not in b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


def test_wrong_passphrase_is_a_clear_error(tmp_path, cli, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", "correct horse battery")
    assert cli("--home", home, "init").code == 0
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", "wrong passphrase!")
    result = cli("--home", home, "issue", "client", "alice", "--out", tmp_path / "alice")
    assert result.code == 2
    assert result.err.startswith("error: wrong passphrase for the")
    assert "Traceback" not in result.err
    assert not (tmp_path / "alice").exists()
    monkeypatch.delenv("MTLSKIT_CA_PASSPHRASE")
    missing = cli("--home", home, "issue", "client", "alice", "--out", tmp_path / "alice")
    assert missing.code == 2 and "no passphrase was given" in missing.err


def test_passphrase_file_works(tmp_path, cli):
    secret = tmp_path / "pass"
    secret.write_text("a long enough passphrase\n")
    secret.chmod(0o600)
    home = tmp_path / "home"
    assert cli("--home", home, "init", "--passphrase-file", secret).code == 0
    result = cli("--home", home, "issue", "client", "bob", "--out", tmp_path / "bob", "--passphrase-file", secret)
    assert result.code == 0, result.err


def test_init_refuses_without_passphrase_and_never_overwrites(tmp_path, cli, ca_home):
    refused = cli("--home", tmp_path / "h", "init")
    assert refused.code == 2 and "no passphrase for the CA keys" in refused.err
    assert not (tmp_path / "h" / "ca").exists()
    root_before = (ca_home / "ca" / "root.pem").read_bytes()
    again = cli("--home", ca_home, "init", "--no-passphrase")
    assert again.code == 4 and "a CA already exists" in again.err
    assert (ca_home / "ca" / "root.pem").read_bytes() == root_before


@pytest.mark.parametrize("args,code,message", [
    (["--key-type", "rsa-1024"], 2, "unknown key type 'rsa-1024'"),
    (["--permit-ip", "10.0.0.0/33"], 2, "is not a network in CIDR form"),
    (["--root-days", "100", "--intermediate-days", "200"], 2, "cannot outlive the root"),
    (["--public-url", "ftp://x"], 2, "public_url must start with http"),
    (["--passphrase-file", "/nonexistent/file"], 2, "cannot read passphrase file"),
])
def test_init_refusals(tmp_path, cli, args, code, message):
    result = cli("--home", tmp_path / "h", "init", *args)
    assert result.code == code and message in result.err, result.err
    assert not (tmp_path / "h" / "ca" / "root.pem").exists()


def test_issue_writes_the_bundle_with_safe_modes(ca_home, tmp_path, cli):
    out = tmp_path / "api"
    result = cli("--home", ca_home, "issue", "server", "api.example.com", "--dns", "api.internal",
                 "--ip", "10.0.0.1", "--out", out)
    assert result.code == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == ["ca.pem", "cert.pem", "chain.pem", "fullchain.pem", "key.pem"]
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["api.example.com", "api.internal"]
    assert (out / "fullchain.pem").read_bytes() == (out / "cert.pem").read_bytes() + (out / "chain.pem").read_bytes()
    assert (out / "ca.pem").read_bytes() == (ca_home / "ca" / "root.pem").read_bytes()
    key = serialization.load_pem_private_key((out / "key.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)


def test_issue_with_key_password_encrypts_key(ca_home, tmp_path, cli):
    pw = tmp_path / "pw"
    pw.write_text("key-secret\n")
    pw.chmod(0o600)
    assert cli("--home", ca_home, "issue", "client", "carol", "--out", tmp_path / "c",
               "--key-password-file", pw).code == 0
    data = (tmp_path / "c" / "key.pem").read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    serialization.load_pem_private_key(data, b"key-secret")


def test_batch_issue_from_file(ca_home, tmp_path, cli):
    names = tmp_path / "devices.txt"
    names.write_text("# fleet\n" + "".join(f"dev-{i:04d}\n" for i in range(150)) + "\n")
    result = cli("--home", ca_home, "issue", "client", "--from", names, "--out", tmp_path / "fleet", "--json")
    assert result.code == 0, result.err
    issued = json.loads(result.out)
    assert len(issued) == 150 and len({i["serial"] for i in issued}) == 150
    assert all((tmp_path / "fleet" / f"dev-{i:04d}" / "cert.pem").exists() for i in range(150))
    assert not list((tmp_path / "fleet").glob(".*.partial"))
    listed = json.loads(cli("--home", ca_home, "list", "--profile", "client", "--json").out)
    assert {f"dev-{i:04d}" for i in range(150)} <= {r["name"] for r in listed}
    # chain.pem and ca.pem are one shared copy (hard links), and no helper directory remains
    first, last = tmp_path / "fleet" / "dev-0000", tmp_path / "fleet" / "dev-0149"
    assert (first / "ca.pem").read_bytes() == (ca_home / "ca" / "root.pem").read_bytes()
    assert (first / "ca.pem").stat().st_ino == (last / "ca.pem").stat().st_ino
    assert (first / "chain.pem").read_bytes() == (ca_home / "ca" / "intermediate.pem").read_bytes()
    assert sorted(p.name for p in (tmp_path / "fleet").iterdir()) == [f"dev-{i:04d}" for i in range(150)]


def test_batch_refuses_before_writing_anything(ca_home, tmp_path, cli):
    out = tmp_path / "fleet"
    (out / "dev-2").mkdir(parents=True)
    (out / "dev-2" / "key.pem").write_text("precious")
    result = cli("--home", ca_home, "issue", "client", "dev-1", "dev-2", "dev-3", "--out", out)
    assert result.code == 4 and "dev-2 already exists" in result.err
    assert sorted(p.name for p in out.iterdir()) == ["dev-2"]
    assert (out / "dev-2" / "key.pem").read_text() == "precious"


def test_batch_failure_part_way_leaves_recorded_or_absent(fresh_home, tmp_path, cli, monkeypatch):
    """A failure while committing chunk 2 keeps chunk 1 (rows + files) and leaves nothing of the rest."""
    from mtlskit.issue import workflow
    from mtlskit.store.inventory import Inventory

    monkeypatch.setattr(workflow, "CHUNK_SIZE", 40)
    real_add = Inventory.add_certificates
    calls = []

    def failing_add(self, records, at, action="issue", session=None):
        calls.append(len(records))
        if len(calls) == 2:
            raise OSError("disk full")
        return real_add(self, records, at, action, session)

    monkeypatch.setattr(Inventory, "add_certificates", failing_add)
    names = [f"n{i:03d}" for i in range(100)]
    result = cli("--home", fresh_home, "issue", "client", *names, "--out", tmp_path / "out")
    assert result.code == 5 and "internal error" in result.err
    monkeypatch.setattr(Inventory, "add_certificates", real_add)
    listed = {r["name"] for r in json.loads(cli("--home", fresh_home, "list", "--profile", "client", "--json").out)}
    on_disk = {p.name for p in (tmp_path / "out").iterdir()}
    assert listed == on_disk == set(names[:40])
    for name in on_disk:
        cert = x509.load_pem_x509_certificate((tmp_path / "out" / name / "cert.pem").read_bytes())
        shown = json.loads(cli("--home", fresh_home, "show", name, "--json").out)[0]
        assert shown["serial"] == format(cert.serial_number, "x")


@pytest.mark.parametrize("args,code,message", [
    (["issue", "client"], 2, "give at least one NAME"),
    (["issue", "ca", "x"], 2, "unknown profile 'ca'"),
    (["issue", "client", "a", "b", "--email", "a@x.com"], 2, "apply to a single NAME"),
    (["issue", "client", "x", "--days", "900"], 4, "client profile allows at most 825 days"),
    (["issue", "server", "nohost"], 4, "needs at least one subjectAltName"),
    (["issue", "server", "h.example.com", "--ip", "1.2.3.999"], 2, "not a valid IP address"),
    (["issue", "client", "x", "--key-type", "dsa"], 2, "unknown key type"),
    (["issue", "client", "x", "--p12", "--p12-profile", "weird"], 2, "unknown PKCS#12 profile"),
    (["issue", "client", "--from", "/nonexistent.txt"], 2, "cannot read name list file /nonexistent.txt"),
    (["show", "nobody"], 3, "nobody: no certificate with this name or serial"),
    (["list", "--status", "sleepy"], 2, "unknown status"),
    (["list", "--expiring", "soon"], 2, "is not a duration"),
])
def test_issue_and_query_refusals(ca_home, tmp_path, cli, args, code, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("--home", ca_home, *args)
    assert result.code == code, (result.code, result.err)
    assert result.err.startswith("error: ") and message in result.err
    assert "Traceback" not in result.err
    assert not [p for p in tmp_path.iterdir()], "a refusal wrote files"


def test_commands_without_a_ca_say_so(tmp_path, cli):
    result = cli("--home", tmp_path / "none", "list")
    assert result.code == 3 and "no CA in" in result.err and "mtlskit init" in result.err


def test_name_constraints_refuse_outside_names(make_home, tmp_path, cli):
    home = make_home("--permit-dns", "example.com", "--permit-ip", "10.0.0.0/8")
    assert cli("--home", home, "issue", "server", "ok.example.com", "--ip", "10.1.1.1",
               "--out", tmp_path / "ok").code == 0
    refused = cli("--home", home, "issue", "server", "evil.com", "--out", tmp_path / "evil")
    assert refused.code == 4 and "DNS:evil.com is outside the CA's name constraints" in refused.err
    refused_ip = cli("--home", home, "issue", "server", "x.example.com", "--ip", "192.168.0.1",
                     "--out", tmp_path / "ip")
    assert refused_ip.code == 4 and "IP:192.168.0.1 is outside" in refused_ip.err
    assert not (tmp_path / "evil").exists() and not (tmp_path / "ip").exists()


def test_sign_applies_the_profile_not_the_csr(ca_home, tmp_path, cli):
    csr = tmp_path / "req.csr"
    csr.write_bytes(_csr(ec.generate_private_key(ec.SECP256R1()), "csr-client", ca=True))
    result = cli("--home", ca_home, "sign", csr, "--profile", "client", "--out", tmp_path / "c.pem")
    assert result.code == 0, result.err
    cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert json.loads(cli("--home", ca_home, "show", "csr-client", "--json").out)[0]["profile"] == "client"


def test_sign_refusals(make_home, tmp_path, cli):
    home = make_home("--permit-dns", "example.com")
    cases = {
        "weak.csr": (_csr(rsa.generate_private_key(65537, 1024), "weak"), 4, "RSA key of 1024 bits refused"),
        "curve.csr": (_csr(ec.generate_private_key(ec.SECP521R1()), "c"), 4, "curve secp521r1 refused"),
        "outside.csr": (_csr(ec.generate_private_key(ec.SECP256R1()), "evil.org", ["evil.org"]), 4,
                        "DNS:evil.org is outside"),
        "garbage.csr": (b"not a csr", 2, "not a certificate signing request"),
    }
    for file_name, (data, code, message) in cases.items():
        (tmp_path / file_name).write_bytes(data)
        result = cli("--home", home, "sign", tmp_path / file_name, "--profile", "server")
        assert (result.code, message in result.err) == (code, True), (file_name, result.err)
    good = tmp_path / "good.csr"
    good.write_bytes(_csr(ec.generate_private_key(ec.SECP256R1()), "www.example.com"))
    too_long = cli("--home", home, "sign", good, "--profile", "server", "--days", "500")
    assert too_long.code == 4 and "at most 397 days" in too_long.err


def test_tampered_csr_signature_is_refused(ca_home, tmp_path, cli):
    der = x509.load_pem_x509_csr(_csr(ec.generate_private_key(ec.SECP256R1()), "tamper")).public_bytes(
        serialization.Encoding.DER)
    tampered = der.replace(b"tamper", b"tamPer")
    (tmp_path / "t.der").write_bytes(tampered)
    result = cli("--home", ca_home, "sign", tmp_path / "t.der", "--profile", "client")
    assert result.code == 2 and "signature does not verify" in result.err


def test_list_show_and_expiring(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "issue", "server", "soon.example.com", "--days", "10", "--out", tmp_path / "s").code == 0
    assert cli("--home", fresh_home, "issue", "client", "later", "--out", tmp_path / "l").code == 0
    expiring = json.loads(cli("--home", fresh_home, "list", "--expiring", "30d", "--json").out)
    assert [r["name"] for r in expiring] == ["soon.example.com"]
    assert expiring[0]["days_left"] in (9, 10)
    text = cli("--home", fresh_home, "list").out
    assert "soon.example.com" in text and "later" in text and "4 certificate(s)" in text
    serial = expiring[0]["serial"]
    by_serial = json.loads(cli("--home", fresh_home, "show", serial.upper(), "--json").out)
    assert by_serial[0]["name"] == "soon.example.com"
    pem = cli("--home", fresh_home, "show", "later", "--pem").out
    assert x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string() == "CN=later"


def test_inspect_every_kind(ca_home, tmp_path, cli):
    out = tmp_path / "dev"
    assert cli("--home", ca_home, "issue", "client", "dev", "--out", out, "--p12").code == 0
    cert = json.loads(cli("inspect", out / "cert.pem", "--json").out)
    assert cert["subject"] == "CN=dev" and cert["extended_key_usage"] == ["clientAuth"]
    assert cert["key"] == {"algorithm": "EC P-256", "bits": 256} and cert["days_left"] == 364
    der = tmp_path / "cert.der"
    der.write_bytes(x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).public_bytes(serialization.Encoding.DER))
    assert json.loads(cli("inspect", der, "--json").out)["fingerprint_sha256"] == cert["fingerprint_sha256"]
    assert json.loads(cli("inspect", out / "key.pem", "--json").out)["type"] == "private-key"
    bundle = json.loads(cli("inspect", out / "bundle.p12", "--password-file", out / "bundle.pass", "--json").out)
    assert bundle[0]["has_key"] and bundle[1]["subject"] == "CN=dev"
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    wrong.chmod(0o600)
    refused = cli("inspect", out / "bundle.p12", "--password-file", wrong)
    assert refused.code == 2 and "PKCS#12" in refused.err
    (tmp_path / "junk").write_bytes(os.urandom(64))
    junk = cli("inspect", tmp_path / "junk")
    assert junk.code == 2 and "unrecognised file" in junk.err


def test_export_p12_refuses_mismatched_key(ca_home, tmp_path, cli):
    for name in ("a", "b"):
        assert cli("--home", ca_home, "issue", "client", f"x{name}", "--out", tmp_path / name).code == 0
    result = cli("export", "p12", "--cert", tmp_path / "a" / "cert.pem", "--key", tmp_path / "b" / "key.pem",
                 "--out", tmp_path / "x.p12")
    assert result.code == 2 and "is not the key of the certificate" in result.err
    assert not (tmp_path / "x.p12").exists()


def test_ca_files_know_the_hierarchy(make_home):
    single = make_home("--no-intermediate")
    assert sorted(CaFiles(single / "ca").certificates()) == ["root"]
    authority = CaFiles(single / "ca").load(lambda: None)
    assert authority.issuing is authority.root and authority.chain == []


@pytest.mark.parametrize("args,message", [
    (["issue", "client", "x", "--bogus"], "No such option: --bogus"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["show"], "Missing argument"),
    (["list", "--status"], "requires an argument"),
])
def test_usage_errors_are_one_line_and_exit_2(ca_home, cli, args, message):
    result = cli("--home", ca_home, *args)
    assert result.code == 2 and result.err.startswith("error: ") and message in result.err
    assert "Traceback" not in result.err


def test_no_arguments_prints_help(cli):
    result = cli()
    assert result.code == 0 and "Usage: mtlskit" in result.out


def test_exit_code_raised_inside_a_command_is_returned(monkeypatch):
    """typer.Exit(n) inside a command must come out as n (click returns it instead of raising)."""
    import typer
    from mtlskit.cli import app as cli_app

    def register(app):
        @app.command("fail-with-3")
        def _fail():
            raise typer.Exit(3)

    monkeypatch.setattr(cli_app, "COMMAND_MODULES", ["probe_module"])
    monkeypatch.setattr(cli_app.importlib, "import_module", lambda name: type("M", (), {"register": staticmethod(register)}))
    assert cli_app.main(["fail-with-3"]) == 3


def test_refused_batch_creates_no_output_directory(ca_home, tmp_path, cli):
    result = cli("--home", ca_home, "issue", "client", "same", "same", "--out", tmp_path / "new-fleet")
    assert result.code == 2 and "same: given twice" in result.err
    assert not (tmp_path / "new-fleet").exists()


def test_public_url_is_stored_as_a_valid_toml_string(tmp_path, cli):
    from mtlskit.config import load_settings
    home = tmp_path / "h"
    url = 'http://pki.example.com:8080/a"b\\c'
    assert cli("--home", home, "init", "--no-passphrase", "--public-url", url).code == 0
    assert load_settings(home).public_url == url
