"""Hostile subject fields: what a CSR, an option or mtlskit.toml may try to put into the
C, ST, L, O and OU of a certificate, which the servers then pass upstream in
X-Client-Subject-DN. Every one is refused in one line, and nothing is signed."""

from __future__ import annotations

import json
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

HOSTILE = [
    (NameOID.ORGANIZATION_NAME, "Acme\r\nX-Client-Verify: SUCCESS"),     # header injection
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "ops\x00admin"),                  # NUL truncation
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "ops\x7f"),                       # DEL
    (NameOID.LOCALITY_NAME, "Paris\u2028CN=admin"),                     # Unicode line separator
    (NameOID.ORGANIZATION_NAME, "\u202eevil"),                          # bidi override
    (NameOID.STATE_OR_PROVINCE_NAME, "x" * 129),                        # past ub-state-name
    (NameOID.ORGANIZATION_NAME, "o" * 65),                              # past ub-organization-name
    (NameOID.COUNTRY_NAME, "D\n"),                                      # not two letters
    (NameOID.COUNTRY_NAME, "12"),
]


def _csr(attribute: tuple, encoding: _ASN1Type | None = None) -> bytes:
    oid, value = attribute
    if oid == NameOID.COUNTRY_NAME and encoding is None:
        encoding = _ASN1Type.UTF8String   # a PrintableString cannot even hold a line break
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # cryptography's own length warning
        field = (x509.NameAttribute(oid, value, encoding, _validate=False) if encoding
                 else x509.NameAttribute(oid, value, _validate=False))
    name = x509.Name([field, x509.NameAttribute(NameOID.COMMON_NAME, "device-x")])
    key = ec.generate_private_key(ec.SECP256R1())
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM)


def _count(cli, home) -> int:
    return len(json.loads(cli("--home", home, "list", "--json").out))


@pytest.mark.parametrize("attribute", HOSTILE, ids=lambda a: repr(a[1])[:24])
def test_a_csr_cannot_smuggle_a_hostile_field(ca_home, tmp_path, cli, attribute):
    csr = tmp_path / "req.csr"
    csr.write_bytes(_csr(attribute))
    before = _count(cli, ca_home)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = cli("--home", ca_home, "sign", csr, "--profile", "client", "--out", tmp_path / "cert.pem")
    assert result.code == 2, result
    assert result.err.startswith("error: the CSR's ") and len(result.err.splitlines()) == 1
    assert not (tmp_path / "cert.pem").exists() and _count(cli, ca_home) == before


def test_a_field_in_another_string_type_is_reencoded(ca_home, tmp_path, cli):
    """A BMPString O from the CSR comes out as the UTF8String every other O is."""
    csr = tmp_path / "req.csr"
    csr.write_bytes(_csr((NameOID.ORGANIZATION_NAME, "Société"), _ASN1Type.BMPString))
    assert cli("--home", ca_home, "sign", csr, "--profile", "client", "--out", tmp_path / "cert.pem").code == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    [org] = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert org.value == "Société" and org._type is _ASN1Type.UTF8String


@pytest.mark.parametrize("value", ["Acme\nX: y", "ops\x00", "a\u200bb", "\u202eevil"])
def test_settings_cannot_smuggle_a_hostile_default(make_home, tmp_path, cli, value):
    home = make_home()
    (home / "mtlskit.toml").write_text(f"[subject]\norg = {json.dumps(value)}\n")
    result = cli("--home", home, "issue", "client", "x", "--out", tmp_path / "x")
    assert result.code == 2 and result.err.startswith("error: [subject] org ")
    assert len([line for line in result.err.splitlines() if line.startswith("error:")]) == 1
    assert not (tmp_path / "x").exists()
