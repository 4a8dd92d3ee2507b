"""Certificates with every subject field, and short-lived ones, judged by pkilint (WARNING
and above) and openssl: the CA subjects from `init`, a leaf of each profile from `issue`,
an `--hours` leaf, and a CSR signed with its own fields."""

from __future__ import annotations

import subprocess

import pytest

from tests.judges import openssl, pkilint

pytestmark = pytest.mark.e2e

EVERY = ("--country", "de", "--state", "Bayern", "--locality", "München", "--org", "Acme GmbH",
         "--org-unit", "Équipe Ω")


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    from mtlskit.cli.app import main

    base = tmp_path_factory.mktemp("subject-judged")
    home = base / "home"
    assert main(["--home", str(home), "init", "--no-passphrase", "--public-url", "http://pki.example.com:8080",
                 *EVERY]) == 0
    files = {"root": home / "ca" / "root.pem", "intermediate": home / "ca" / "intermediate.pem"}
    for profile, name in (("server", "srv.example.com"), ("client", "alice"), ("peer", "svc.example.com")):
        assert main(["--home", str(home), "issue", profile, name, *EVERY, "--out", str(base / name)]) == 0
        files[profile] = base / name / "cert.pem"
    assert main(["--home", str(home), "issue", "client", "brief", "--hours", "8", "--out", str(base / "brief")]) == 0
    files["hours"] = base / "brief" / "cert.pem"
    csr = base / "req.csr"
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(base / "req.key"), "-out", str(csr), "-utf8",
                    "-subj", "/C=FR/ST=IdF/L=Paris/O=Société/OU=Ops/CN=device-1/emailAddress=d@example.com"],
                   check=True, capture_output=True, timeout=60)
    assert main(["--home", str(home), "sign", str(csr), "--profile", "client", "--out", str(base / "signed.pem")]) == 0
    files["signed"] = base / "signed.pem"
    return files


@pytest.mark.parametrize("which", ["root", "intermediate", "server", "client", "peer", "hours", "signed"])
def test_every_field_lints_clean(issued, which):
    assert pkilint("cert", issued[which]) == ""


def test_openssl_prints_the_fields_in_the_order_of_the_guides(issued):
    def subject(which: str) -> str:
        result = openssl("x509", "-in", issued[which], "-noout", "-subject")
        assert result.returncode == 0
        return result.stdout.decode().strip()

    fields = r"C = DE, ST = Bayern, L = M\C3\BCnchen, O = Acme GmbH, OU = \C3\89quipe \CE\A9"
    assert subject("client") == f"subject={fields}, CN = alice"
    assert subject("root") == f"subject={fields}, CN = mtlskit CA Root"
    assert subject("hours") == r"subject=C = DE, ST = Bayern, L = M\C3\BCnchen, O = Acme GmbH, CN = brief"
    assert subject("signed") == r"subject=C = FR, ST = IdF, L = Paris, O = Soci\C3\A9t\C3\A9, OU = Ops, CN = device-1"


def test_openssl_verifies_the_chain_of_a_subject_rich_leaf(issued):
    result = openssl("verify", "-CAfile", issued["root"], "-untrusted", issued["intermediate"], issued["client"])
    assert result.returncode == 0, result.stderr
