"""Subject fields users know (--country, --state, --locality, --org, --org-unit) on
`init`, `issue` and `sign`, defaults from [subject] in mtlskit.toml, `--hours` for
short-lived certificates, and `list --expiring` without the certificates `serve` renews
itself. The subjects are read back with `openssl x509 -subject`."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tomllib
import warnings

import pytest
from cryptography import x509

from mtlskit.clock import FixedClock
from tests.judges import openssl

EVERY = ("--country", "de", "--state", "Bayern", "--locality", "München", "--org", "Acme GmbH",
         "--org-unit", "Équipe Ω")
EVERY_SUBJECT = "C=DE, ST=Bayern, L=München, O=Acme GmbH, OU=Équipe Ω"


def subject_of(path) -> str:
    """The subject as `openssl x509 -subject` prints it (UTF-8, in DER order)."""
    result = openssl("x509", "-in", path, "-noout", "-subject", "-nameopt", "utf8,sep_comma_plus_space,sname")
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().strip().removeprefix("subject=")


def inventory(cli, home) -> list[dict]:
    result = cli("--home", home, "list", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out) if result.out.strip() else []


@pytest.fixture
def acme_home(make_home):
    return make_home("--country", "de", "--org", "Acme GmbH", "--state", "Bayern", "--locality", "München",
                     "--org-unit", "PKI")


def test_init_puts_the_fields_in_the_ca_subjects_and_the_defaults_in_the_settings(acme_home):
    fields = "C=DE, ST=Bayern, L=München, O=Acme GmbH, OU=PKI"
    assert subject_of(acme_home / "ca" / "root.pem") == f"{fields}, CN=Test CA Root"
    assert subject_of(acme_home / "ca" / "intermediate.pem") == f"{fields}, CN=Test CA Intermediate"
    settings = tomllib.loads((acme_home / "mtlskit.toml").read_text())
    assert settings["subject"] == {"country": "DE", "state": "Bayern", "locality": "München", "org": "Acme GmbH"}


def test_issue_takes_the_defaults_and_the_options_win(acme_home, tmp_path, cli):
    assert cli("--home", acme_home, "issue", "client", "alice", "--org-unit", "Ops",
               "--out", tmp_path / "alice").code == 0
    assert subject_of(tmp_path / "alice" / "cert.pem") == "C=DE, ST=Bayern, L=München, O=Acme GmbH, OU=Ops, CN=alice"
    assert cli("--home", acme_home, "issue", "client", "bob", "--org", "Other", "--locality", "",
               "--out", tmp_path / "bob").code == 0
    assert subject_of(tmp_path / "bob" / "cert.pem") == "C=DE, ST=Bayern, O=Other, CN=bob"
    [bob] = [r for r in inventory(cli, acme_home) if r["name"] == "bob"]
    assert bob["subject"] == "CN=bob,O=Other,ST=Bayern,C=DE"


@pytest.mark.parametrize("profile, name", [("server", "www.example.com"), ("client", "carol"),
                                           ("peer", "svc.example.com")])
def test_every_field_on_every_profile(ca_home, tmp_path, cli, profile, name):
    assert cli("--home", ca_home, "issue", profile, name, *EVERY, "--out", tmp_path / name).code == 0
    assert subject_of(tmp_path / name / "cert.pem") == f"{EVERY_SUBJECT}, CN={name}"


def test_a_batch_gives_every_name_the_same_fields(ca_home, tmp_path, cli):
    names = [f"fleet-{i}" for i in range(70)]   # past the threshold where workers sign
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    result = cli("--home", ca_home, "issue", "client", "--from", tmp_path / "names.txt", *EVERY,
                 "--out", tmp_path / "out", "--json")
    assert result.code == 0, result.err
    for name in (names[0], names[-1]):
        assert subject_of(tmp_path / "out" / name / "cert.pem") == f"{EVERY_SUBJECT}, CN={name}"
    subjects = {r["name"]: r["subject"] for r in inventory(cli, ca_home) if r["name"].startswith("fleet-")}
    assert subjects == {n: f"CN={n},OU=Équipe Ω,O=Acme GmbH,L=München,ST=Bayern,C=DE" for n in names}


@pytest.mark.parametrize("args, message", [
    (["--country", "Germany"], "--country 'Germany' is not a country"),
    (["--country", "D1"], "is not a country"),
    (["--country", "uk"], "--country 'uk' is not a country"),
    (["--org", "x" * 65], "--org is 65 characters: at most 64"),
    (["--org-unit", "x" * 65], "--org-unit is 65 characters: at most 64"),
    (["--state", "x" * 129], "--state is 129 characters: at most 128"),
    (["--locality", "x" * 129], "--locality is 129 characters: at most 128"),
    (["--org", "Acme\nX-Client-Verify: SUCCESS"], "--org 'Acme\\nX-Client-Verify: SUCCESS' holds a control"),
    (["--org-unit", "a\u202eb"], "--org-unit 'a\\u202eb' holds a control or format character"),   # shown escaped
    (["--locality", " Berlin"], "starts or ends with a space"),
    (["--hours", "0"], "--hours 0 refused: at least 1 hour is required"),
    (["--hours", "-1"], "at least 1 hour"),
    (["--days", "0"], "--days 0 refused: at least 1 day is required"),
    (["--hours", "12", "--days", "1"], "--days and --hours cannot be used together"),
])
@pytest.mark.parametrize("batch", [False, True])
def test_issue_refusals_write_nothing(ca_home, tmp_path, cli, monkeypatch, args, message, batch):
    monkeypatch.chdir(tmp_path)
    names_file = tmp_path.parent / f"{tmp_path.name}-names.txt"
    names_file.write_text("one\ntwo\n")
    before = inventory(cli, ca_home)
    target = ["--from", names_file] if batch else ["refused"]
    result = cli("--home", ca_home, "issue", "client", *target, *args)
    assert result.code == 2, (result.code, result.err)
    assert result.err.startswith("error: ") and message in result.err
    assert [line for line in result.err.splitlines() if line.startswith("error:")] == [result.err.splitlines()[0]]
    assert "Traceback" not in result.err
    assert not list(tmp_path.iterdir()), "a refusal wrote files"
    assert inventory(cli, ca_home) == before


@pytest.mark.parametrize("command", ["init", "sign"])
def test_init_and_sign_refuse_bad_fields(tmp_path, cli, ca_home, command):
    if command == "init":
        result = cli("--home", tmp_path / "home", "init", "--no-passphrase", "--country", "DEU")
        assert not (tmp_path / "home").exists()
    else:
        csr = tmp_path / "req.csr"
        _openssl_csr(csr, "/CN=device-9")
        result = cli("--home", ca_home, "sign", csr, "--profile", "client", "--org", "a\tb",
                     "--out", tmp_path / "cert.pem")
        assert not (tmp_path / "cert.pem").exists()
    assert result.code == 2 and result.err.startswith("error: ") and "Traceback" not in result.err
    assert "--country 'DEU' is not a country" in result.err or "--org 'a\\tb' holds a control" in result.err


def test_the_uk_mistake_gets_a_hint(ca_home, tmp_path, cli):
    result = cli("--home", ca_home, "issue", "client", "x", "--country", "UK", "--out", tmp_path / "x")
    assert result.code == 2 and result.err.splitlines()[1] == "hint: UK is written GB in ISO 3166"


def test_a_bad_default_in_the_settings_is_refused_in_one_line(make_home, tmp_path, cli):
    home = make_home()
    (home / "mtlskit.toml").write_text('[subject]\ncountry = "Deutschland"\n')
    result = cli("--home", home, "issue", "client", "x", "--out", tmp_path / "x")
    assert result.code == 2 and result.err.startswith("error: [subject] country 'Deutschland' is not a country")
    assert not (tmp_path / "x").exists()


def _openssl_csr(path, subject: str) -> None:
    """A CSR as the guides make them: `openssl req -new -subj ...` (UTF-8)."""
    key = path.with_suffix(".key")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(path), "-subj", subject, "-utf8"],
                   check=True, capture_output=True, timeout=60)


def test_sign_keeps_the_csr_fields_and_warns_about_the_rest(ca_home, tmp_path, cli):
    csr = tmp_path / "req.csr"
    _openssl_csr(csr, "/C=FR/ST=IdF/L=Paris/O=Société/OU=Ops/CN=device-1/emailAddress=d@example.com")
    result = cli("--home", ca_home, "sign", csr, "--profile", "client", "--out", tmp_path / "cert.pem")
    assert result.code == 0, result.err
    assert subject_of(tmp_path / "cert.pem") == "C=FR, ST=IdF, L=Paris, O=Société, OU=Ops, CN=device-1"
    assert result.err.count("\n") == 1
    assert result.err.startswith("warning: left out of the subject") and "d@example.com" in result.err


def test_sign_options_replace_csr_fields_and_defaults_fill_the_rest(acme_home, tmp_path, cli):
    csr = tmp_path / "req.csr"
    _openssl_csr(csr, "/O=Device Maker/OU=Sensors/CN=device-2")
    result = cli("--home", acme_home, "sign", csr, "--profile", "client", "--org-unit", "Fleet",
                 "--out", tmp_path / "cert.pem")
    assert result.code == 0 and result.err == ""
    assert subject_of(tmp_path / "cert.pem") == "C=DE, ST=Bayern, L=München, O=Device Maker, OU=Fleet, CN=device-2"


def test_sign_refuses_a_csr_with_a_bad_country(ca_home, tmp_path, cli):
    csr = tmp_path / "req.csr"
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                         check=True, capture_output=True).stdout
    (tmp_path / "k.pem").write_bytes(key)
    # openssl refuses C=Germany itself; a CSR crafted elsewhere may hold it: build it raw.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID
    private = serialization.load_pem_private_key(key, None)
    with pytest.warns(UserWarning):
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "Germany", _validate=False),
                          x509.NameAttribute(NameOID.COMMON_NAME, "device-3")])
    csr.write_bytes(x509.CertificateSigningRequestBuilder().subject_name(name).sign(private, hashes.SHA256())
                    .public_bytes(serialization.Encoding.PEM))
    before = inventory(cli, ca_home)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # cryptography's warning would be a second line on stderr
        result = cli("--home", ca_home, "sign", csr, "--profile", "client", "--out", tmp_path / "cert.pem")
    assert result.code == 2 and result.err.startswith("error: the CSR's C 'Germany' is not a country")
    assert not (tmp_path / "cert.pem").exists() and inventory(cli, ca_home) == before


# -- short-lived certificates -------------------------------------------------------------

@pytest.fixture
def at(monkeypatch):
    """Run the CLI at a fixed time: at(T) makes every command see T."""
    import mtlskit.cli.common as common

    def set_time(when: dt.datetime) -> None:
        monkeypatch.setattr(common, "SystemClock", lambda: FixedClock(when))

    return set_time


def test_hours_gives_a_short_lived_certificate_and_list_counts_hours(ca_home, tmp_path, cli, at):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)   # the CA's validity is real time
    at(now)
    result = cli("--home", ca_home, "issue", "client", "brief", "--hours", "12", "--out", tmp_path / "brief")
    assert result.code == 0, result.err
    cert = x509.load_pem_x509_certificate((tmp_path / "brief" / "cert.pem").read_bytes())
    assert cert.not_valid_after_utc == now + dt.timedelta(hours=12)
    assert f"until {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z" in result.out
    at(now + dt.timedelta(hours=1, minutes=30))
    [row] = [r for r in json.loads(cli("--home", ca_home, "list", "--json").out) if r["name"] == "brief"]
    assert row["hours_left"] == 10 and row["days_left"] == 0
    table = cli("--home", ca_home, "list", "--profile", "client").out
    [line] = [line for line in table.splitlines() if " brief " in f" {line} "]
    assert line.split()[-1] == "10h"
    shown = json.loads(cli("--home", ca_home, "show", "brief", "--json").out)
    assert shown[0]["hours_left"] == 10


def test_hours_on_sign(ca_home, tmp_path, cli):
    csr = tmp_path / "req.csr"
    _openssl_csr(csr, "/CN=device-4")
    assert cli("--home", ca_home, "sign", csr, "--profile", "client", "--hours", "2",
               "--out", tmp_path / "cert.pem").code == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(hours=2, minutes=5)
    refused = cli("--home", ca_home, "sign", csr, "--profile", "client", "--hours", "3", "--days", "1")
    assert refused.code == 2 and "cannot be used together" in refused.err


def test_hours_past_the_issuing_ca_are_refused_not_cut_short(make_home, tmp_path, cli):
    home = make_home("--root-days", "2", "--intermediate-days", "1")
    refused = cli("--home", home, "issue", "client", "late", "--hours", "25", "--out", tmp_path / "late")
    assert refused.code == 4 and "would outlive its issuing CA" in refused.err and "--hours" in refused.err
    assert not (tmp_path / "late").exists()
    assert cli("--home", home, "issue", "client", "fits", "--hours", "23", "--out", tmp_path / "fits").code == 0


def test_hours_beyond_the_profile_maximum(ca_home, tmp_path, cli):
    refused = cli("--home", ca_home, "issue", "server", "h.example.com", "--hours", str(397 * 24 + 1),
                  "--out", tmp_path / "h")
    assert refused.code == 4 and "the server profile allows at most 397 days" in refused.err
    assert "--hours 9528 or less" in refused.err
    assert not (tmp_path / "h").exists()


# -- managed certificates -----------------------------------------------------------------

def test_list_expiring_leaves_out_the_responders_serve_renews(fresh_home, tmp_path, cli):
    from mtlskit.clock import SystemClock
    from mtlskit.config import load_settings
    from mtlskit.publish.responder import ResponderKeeper
    from mtlskit.service import Service

    service = Service.open(load_settings(fresh_home, environ={}), SystemClock())
    authority = service.authority(lambda: None)
    ResponderKeeper(fresh_home / "ocsp", authority.signers, service.inventory, SystemClock()).current()
    assert cli("--home", fresh_home, "issue", "client", "soon", "--days", "5", "--out", tmp_path / "soon").code == 0

    listed = json.loads(cli("--home", fresh_home, "list", "--expiring", "30d", "--json").out)
    assert [r["name"] for r in listed] == ["soon"] and listed[0]["managed"] is False
    everything = json.loads(cli("--home", fresh_home, "list", "--expiring", "30d", "--all", "--json").out)
    managed = [r for r in everything if r["managed"]]
    assert {r["profile"] for r in managed} == {"ocsp"} and len(managed) == 2   # root and intermediate
    table = cli("--home", fresh_home, "list", "--expiring", "30d")
    assert "1 certificate(s); 2 managed by `serve` (OCSP responders it renews itself) left out: --all shows them" in table.out.splitlines()
    plain = json.loads(cli("--home", fresh_home, "list", "--json").out)
    assert sum(r["managed"] for r in plain) == 2   # without --expiring: everything, marked


def test_renew_keeps_every_subject_field_and_an_hours_lifetime(make_home, tmp_path, cli):
    home = make_home()
    assert cli("--home", home, "issue", "client", "brief", *EVERY, "--hours", "6", "--out", tmp_path / "brief").code == 0
    old = x509.load_pem_x509_certificate((tmp_path / "brief" / "cert.pem").read_bytes())
    result = cli("--home", home, "renew", "brief")
    assert result.code == 0, result.err
    new = x509.load_pem_x509_certificate((tmp_path / "brief" / "cert.pem").read_bytes())
    assert new.serial_number != old.serial_number
    assert subject_of(tmp_path / "brief" / "cert.pem") == f"{EVERY_SUBJECT}, CN=brief"
    assert new.not_valid_after_utc - new.not_valid_before_utc == dt.timedelta(hours=6, minutes=5)


def test_deploy_issues_its_server_certificate_with_the_defaults(acme_home, tmp_path, cli):
    result = cli("--home", acme_home, "deploy", "nginx", "--name", "web.example.com", "--dir", tmp_path / "d",
                 "--listen", "443", "--revocation", "none")
    assert result.code == 0, result.err
    leaf = x509.load_pem_x509_certificates((tmp_path / "d" / "server.pem").read_bytes())[0]
    assert leaf.subject.rfc4514_string() == "CN=web.example.com,O=Acme GmbH,L=München,ST=Bayern,C=DE"
