"""Name constraints on the subject: `mtlskit verify` and `openssl verify` judge the same
certificates, made with cryptography directly under a constrained root, the same way.

OpenSSL reads a leaf's subject CN that looks like a DNS name as a DNS name when the leaf
has no DNS SAN, and every subject emailAddress as an email name (x509_vfy.c); cryptography's
verifier reads neither, so before the fix `mtlskit verify` said ok where OpenSSL (and nginx)
refuse the client.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlskit.cli.app import main
from tests.support_verify import Issued, make_ca

pytestmark = pytest.mark.e2e

NOW = dt.datetime.now(dt.timezone.utc)
PEM = serialization.Encoding.PEM

# name -> (subject attributes, SANs, both judges accept it)
CASES = {
    "cn-inside-no-san": ([(NameOID.COMMON_NAME, "alice.example.com")], [], True),
    "cn-inside-upper-case": ([(NameOID.COMMON_NAME, "ALICE.Example.COM")], [], True),
    "cn-outside-no-san": ([(NameOID.COMMON_NAME, "evil.attacker.org")], [], False),
    "cn-outside-uri-san": ([(NameOID.COMMON_NAME, "evil.attacker.org")],
                           [x509.UniformResourceIdentifier("https://mtlskit.invalid/client/x")], False),
    "cn-outside-ip-san": ([(NameOID.COMMON_NAME, "evil.attacker.org")],
                          [x509.IPAddress(ipaddress.ip_address("10.0.0.1"))], False),
    "cn-excluded": ([(NameOID.COMMON_NAME, "db.bad.example.com")], [], False),
    "cn-underscore-outside": ([(NameOID.COMMON_NAME, "a_b.evil.org")], [], False),
    "cn-suffix-not-label": ([(NameOID.COMMON_NAME, "notexample.com")], [], False),
    "cn-outside-dns-san-inside": ([(NameOID.COMMON_NAME, "evil.attacker.org")],
                                  [x509.DNSName("ok.example.com")], True),
    "cn-one-label": ([(NameOID.COMMON_NAME, "alice")], [], True),
    "cn-not-a-host": ([(NameOID.COMMON_NAME, "Alice Smith.org")], [], True),
    "cn-trailing-dot-label": ([(NameOID.COMMON_NAME, "evil.-org")], [], True),
    "second-cn-outside": ([(NameOID.COMMON_NAME, "alice.example.com"), (NameOID.COMMON_NAME, "x.evil.org")],
                          [], False),
    "email-attribute-inside": ([(NameOID.COMMON_NAME, "alice"), (NameOID.EMAIL_ADDRESS, "alice@example.com")],
                               [], True),
    "email-attribute-outside": ([(NameOID.COMMON_NAME, "alice"), (NameOID.EMAIL_ADDRESS, "alice@evil.org")],
                                [], False),
}


def _constrained_root() -> Issued:
    plain = make_ca("Constrained Root")
    key = plain.key
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("example.com"), x509.RFC822Name("example.com"),
                            x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))],
        excluded_subtrees=[x509.DNSName("bad.example.com")])
    builder = (x509.CertificateBuilder().subject_name(plain.cert.subject).issuer_name(plain.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(plain.cert.not_valid_before_utc).not_valid_after(plain.cert.not_valid_after_utc))
    for extension in plain.cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    builder = builder.add_extension(constraints, True)
    return Issued(builder.sign(key, hashes.SHA256()), key)


def _leaf(issuer: Issued, attributes, sans) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes]))
               .issuer_name(issuer.cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False)
               .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
    return builder.sign(issuer.key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("nc-judges")
    root = _constrained_root()
    intermediate = make_ca("Plain Intermediate", root)   # constraints are inherited down the path
    (base / "root.pem").write_bytes(root.cert.public_bytes(PEM))
    (base / "chain.pem").write_bytes(intermediate.cert.public_bytes(PEM))
    for name, (attributes, sans, _) in CASES.items():
        (base / f"{name}.pem").write_bytes(_leaf(intermediate, attributes, sans).public_bytes(PEM))
    return base


def _openssl_accepts(pki, name: str) -> tuple[bool, str]:
    judged = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(pki / "root.pem"),
                             "-untrusted", str(pki / "chain.pem"), str(pki / f"{name}.pem")],
                            capture_output=True, text=True, timeout=30)
    return judged.returncode == 0, judged.stdout + judged.stderr


def _mtlskit_errors(pki, name: str, tmp_path, capsys) -> list[dict]:
    capsys.readouterr()
    main(["--home", str(tmp_path / "no-home"), "verify", str(pki / f"{name}.pem"), "--chain",
          str(pki / "chain.pem"), "--ca", str(pki / "root.pem"), "--json"])
    return [f for f in json.loads(capsys.readouterr().out)["findings"] if f["level"] == "error"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_both_judges_agree_on_subject_names(pki, name, tmp_path, capsys):
    expected = CASES[name][2]
    openssl_ok, openssl_text = _openssl_accepts(pki, name)
    errors = _mtlskit_errors(pki, name, tmp_path, capsys)
    assert openssl_ok is expected, openssl_text
    assert (errors == []) is expected, errors
    if not expected:
        assert "subtree violation" in openssl_text
        assert errors[0]["code"] == "name-constraints", errors
