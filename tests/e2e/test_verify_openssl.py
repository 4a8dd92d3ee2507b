"""`mtlskit verify` beside an independent judge: `openssl verify` must reach the same
verdict, for the same reason, on every client case of the probe PKI."""

from __future__ import annotations

import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.cli.app import main
from tests.support_verify import build_pki

pytestmark = pytest.mark.e2e

# openssl's X509_verify_cert_error_string() texts beside mtlskit's codes
AGREEMENT = {
    "valid": (None, "ok"),
    "other-ca": ("unable to get local issuer certificate", "chain-untrusted"),
    "expired": ("certificate has expired", "cert-expired"),
    "not-yet-valid": ("certificate is not yet valid", "cert-not-yet-valid"),
    "revoked": ("certificate revoked", "revoked"),
    "server-only-eku": ("unsuitable certificate purpose", "wrong-purpose"),
    "leaf-without-intermediate": ("unable to get local issuer certificate", "chain-untrusted"),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_pki(tmp_path_factory.mktemp("verify-judge"))


@pytest.mark.parametrize("case_name", sorted(AGREEMENT))
def test_mtlskit_and_openssl_agree(pki, case_name, tmp_path, capsys):
    case = pki.cases[case_name]
    certs = x509.load_pem_x509_certificates(case.cert.read_bytes())
    leaf, chain = tmp_path / "leaf.pem", tmp_path / "chain.pem"
    leaf.write_bytes(certs[0].public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs[1:]))
    judge = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-crl_check_all", "-CAfile", str(pki.root),
                            "-CRLfile", str(pki.crl), *(["-untrusted", str(chain)] if certs[1:] else []), str(leaf)],
                           capture_output=True, text=True)
    openssl_reason, code = AGREEMENT[case_name]
    capsys.readouterr()
    rc = main(["--home", str(tmp_path / "no-home"), "verify", str(leaf), *(["--chain", str(chain)] if certs[1:] else []),
               "--ca", str(pki.root), "--crl", str(pki.crl), "--json"])
    report = json.loads(capsys.readouterr().out)
    errors = [f["code"] for f in report["findings"] if f["level"] == "error"]
    if openssl_reason is None:
        assert judge.returncode == 0 and rc == 0 and errors == []
    else:
        assert judge.returncode != 0 and openssl_reason in judge.stdout + judge.stderr
        assert rc == 1 and errors[0] == code
